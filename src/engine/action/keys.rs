//! The key family: JWS keypairs (create per node or shared, install, publish the staged public
//! keys, remove retired ones, distribute public keys) and the Fernet repository (rotate on one
//! node, sync the others from it).

use super::kit::{Action, Cx, Family, Piece, PlanError, Touches, list, not_mine};
use crate::inventory::KeyGen;
use crate::runbook::{Gate, Item};
use serde::{Deserialize, Serialize};

pub const CREATE_KEYPAIR: Action = Action {
    name: "keystone.create_jws_keypair",
    short: "create_keypair",
    verb: "keygen",
};
pub const INSTALL_KEYS: Action = Action {
    name: "keystone.install_jws_keys",
    short: "install_keys",
    verb: "installing",
};
pub const PUBLISH_STAGED: Action = Action {
    name: "keystone.publish_staged_public_keys",
    short: "publish_staged_public_keys",
    verb: "keystone.publish_staged_public_keys",
};
pub const REMOVE_RETIRED: Action = Action {
    name: "keystone.remove_retired_public_keys",
    short: "remove_retired_public_keys",
    verb: "keystone.remove_retired_public_keys",
};
pub const ROTATE_FERNET: Action = Action {
    name: "keystone.rotate_fernet_keys",
    short: "rotate_fernet_keys",
    verb: "keystone.rotate_fernet_keys",
};
pub const SYNC_FERNET: Action = Action {
    name: "keystone.sync_fernet_keys",
    short: "sync_fernet_keys",
    verb: "keystone.sync_fernet_keys",
};
pub const DISTRIBUTE: Action = Action {
    name: "keystone.distribute_public_keys",
    short: "copy_pubkeys",
    verb: "copying keys",
};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Keys {
    /// Generate a keypair on the node (keystone-manage in a staging dir, or natively).
    CreateKeypair {
        node: String,
        keygen: KeyGen,
    },
    /// Generate one keypair (on `origin`, or natively) and place it in every node's staging dir.
    CreateSharedKeypair {
        origin: String,
        nodes: Vec<String>,
        keygen: KeyGen,
    },
    InstallKeys {
        node: String,
        #[serde(default = "yes")]
        public: bool,
    },
    /// Copy the staged public keys of `from` (and the node's own) into this node's public
    /// repository, named `<node>.<fingerprint tag>.pem`.
    PublishStagedKeys {
        node: String,
        from: Vec<String>,
    },
    /// Move aside public keys on this node that match no node's private.pem.
    RemoveRetiredKeys {
        node: String,
        nodes: Vec<String>,
    },
    RotateFernet {
        node: String,
    },
    SyncFernet {
        node: String,
        from: String,
    },
    /// Copy every other node's public key into this node's public repository.
    DistributePublicKeys {
        node: String,
        from: Vec<String>,
    },
}

fn yes() -> bool {
    true
}

impl Family for Keys {
    const TAGS: &'static [&'static str] = &[
        "create_keypair",
        "create_shared_keypair",
        "install_keys",
        "publish_staged_keys",
        "remove_retired_keys",
        "rotate_fernet",
        "sync_fernet",
        "distribute_public_keys",
    ];
    const ACTIONS: &'static [Action] = &[
        CREATE_KEYPAIR,
        INSTALL_KEYS,
        PUBLISH_STAGED,
        REMOVE_RETIRED,
        ROTATE_FERNET,
        SYNC_FERNET,
        DISTRIBUTE,
    ];

    fn action(&self) -> Action {
        match self {
            Keys::CreateKeypair { .. } | Keys::CreateSharedKeypair { .. } => CREATE_KEYPAIR,
            Keys::InstallKeys { .. } => INSTALL_KEYS,
            Keys::PublishStagedKeys { .. } => PUBLISH_STAGED,
            Keys::RemoveRetiredKeys { .. } => REMOVE_RETIRED,
            Keys::RotateFernet { .. } => ROTATE_FERNET,
            Keys::SyncFernet { .. } => SYNC_FERNET,
            Keys::DistributePublicKeys { .. } => DISTRIBUTE,
        }
    }

    fn node(&self) -> Option<&str> {
        match self {
            Keys::CreateKeypair { node, .. }
            | Keys::InstallKeys { node, .. }
            | Keys::PublishStagedKeys { node, .. }
            | Keys::RemoveRetiredKeys { node, .. }
            | Keys::RotateFernet { node }
            | Keys::SyncFernet { node, .. }
            | Keys::DistributePublicKeys { node, .. } => Some(node),
            Keys::CreateSharedKeypair { .. } => None,
        }
    }

    fn idempotent(&self) -> bool {
        !matches!(
            self,
            Keys::CreateKeypair { .. }
                | Keys::CreateSharedKeypair { .. }
                | Keys::RotateFernet { .. }
        )
    }

    fn describe(&self) -> String {
        match self {
            Keys::CreateKeypair { node, keygen } => match keygen {
                KeyGen::KeystoneManage => {
                    format!("keystone-manage create_jws_keypair in a staging directory on {node}")
                }
                KeyGen::Native => format!("generate an ES256 keypair for {node}"),
            },
            Keys::CreateSharedKeypair {
                origin,
                nodes,
                keygen,
            } => format!(
                "generate one keypair ({}) and stage it on {}",
                match keygen {
                    KeyGen::KeystoneManage => format!("keystone-manage on {origin}"),
                    KeyGen::Native => "ES256, in memory".into(),
                },
                list(nodes)
            ),
            Keys::InstallKeys { node, public } => {
                if *public {
                    format!(
                        "install private.pem (0600, keystone-owned) and {node}'s public key on {node}"
                    )
                } else {
                    format!(
                        "swap in {node}'s staged private.pem (0600, keystone-owned); old public keys stay"
                    )
                }
            }
            Keys::PublishStagedKeys { node, from } => format!(
                "copy the staged public keys of {} into {node}'s public repository",
                list(from)
            ),
            Keys::RemoveRetiredKeys { node, .. } => {
                format!("move aside the public keys on {node} that no node signs with any more")
            }
            Keys::RotateFernet { node } => format!(
                "rotate the Fernet keys on {node} (staged key 0 becomes primary, a new staged key is made)"
            ),
            Keys::SyncFernet { node, from } => {
                format!("make {node}'s Fernet repository identical to {from}'s")
            }
            Keys::DistributePublicKeys { node, from } => {
                format!(
                    "copy the public keys of {} into {node}'s public repository",
                    list(from)
                )
            }
        }
    }

    fn required_gates(&self) -> Vec<Gate> {
        match self {
            // Rotation: a node may only start signing with a key every node accepts.
            Keys::InstallKeys { public: false, .. } => vec![Gate::StagedKeysEverywhere],
            _ => vec![],
        }
    }

    fn touches(&self) -> Touches {
        Touches {
            jws_keys: matches!(
                self,
                Keys::InstallKeys { .. }
                    | Keys::CreateKeypair { .. }
                    | Keys::CreateSharedKeypair { .. }
            ),
            fernet_keys: matches!(self, Keys::RotateFernet { .. } | Keys::SyncFernet { .. }),
            ..Touches::default()
        }
    }

    fn compile(cx: &Cx, item: &Item) -> Result<Vec<Piece<Keys>>, PlanError> {
        let specs = match item {
            Item::CreateJwsKeypair(c) => {
                let strategy = (cx.render)(&c.strategy, None)?;
                let keygen_of = |n: &str| cx.inv.node(n).map(|x| x.keygen).unwrap_or_default();
                match strategy.as_str() {
                    "per-node" => cx.per_target(|t| {
                        Ok(Keys::CreateKeypair {
                            node: t.to_string(),
                            keygen: keygen_of(t),
                        })
                    })?,
                    "shared" => {
                        let all = cx.targets_or_all();
                        vec![Keys::CreateSharedKeypair {
                            origin: all[0].clone(),
                            keygen: keygen_of(&all[0]),
                            nodes: all,
                        }]
                    }
                    other => {
                        return Err(cx.error(format!(
                            "key strategy `{other}`: expected per-node or shared"
                        )));
                    }
                }
            }
            Item::InstallJwsKeys(k) => cx.per_target(|t| {
                Ok(Keys::InstallKeys {
                    node: t.to_string(),
                    public: k.public,
                })
            })?,
            Item::DistributePublicKeys(_) => cx.per_target(|t| {
                Ok(Keys::DistributePublicKeys {
                    node: t.to_string(),
                    from: cx.nodes.iter().filter(|n| *n != t).cloned().collect(),
                })
            })?,
            Item::PublishStagedPublicKeys(_) => cx.per_target(|t| {
                Ok(Keys::PublishStagedKeys {
                    node: t.to_string(),
                    from: cx.nodes.clone(),
                })
            })?,
            Item::RemoveRetiredPublicKeys(_) => cx.per_target(|t| {
                Ok(Keys::RemoveRetiredKeys {
                    node: t.to_string(),
                    nodes: cx.nodes.clone(),
                })
            })?,
            // Rotation happens on one node (the first, or the step's node); the others get its
            // repository by sync.
            Item::RotateFernetKeys(_) => vec![Keys::RotateFernet {
                node: cx.node.clone().unwrap_or_else(|| cx.nodes[0].clone()),
            }],
            Item::SyncFernetKeys(_) => {
                let from = cx.nodes[0].clone();
                cx.per_target(|t| {
                    Ok(Keys::SyncFernet {
                        node: t.to_string(),
                        from: from.clone(),
                    })
                })?
                .into_iter()
                .filter(|s| s.node() != Some(from.as_str()))
                .collect()
            }
            _ => return Err(not_mine(cx, "keys")),
        };
        Ok(vec![Piece::Act(specs)])
    }
}

#[cfg(test)]
mod tests {
    use super::super::kit::test_support::{check_family, compile_item};
    use super::*;

    #[test]
    fn tags_and_names() {
        check_family::<Keys>();
        // A journal written before `public` existed still reads: it meant an install with it.
        let s: Keys = serde_json::from_str(r#"{"action":"install_keys","node":"ks1"}"#).unwrap();
        assert_eq!(
            s,
            Keys::InstallKeys {
                node: "ks1".into(),
                public: true
            }
        );
    }

    #[test]
    fn a_shared_keypair_is_one_spec_over_the_step_nodes() {
        let p = compile_item::<Keys>(
            "all-nodes",
            "keystone.create_jws_keypair: {strategy: shared}",
            None,
            false,
        )
        .unwrap();
        let [Piece::Act(specs)] = &p[..] else {
            panic!("{p:?}")
        };
        assert!(
            matches!(&specs[..], [Keys::CreateSharedKeypair { origin, nodes, .. }] if origin == "ks1" && nodes.len() == 3)
        );
        assert!(!specs[0].idempotent());
        let e = compile_item::<Keys>(
            "all-nodes",
            "keystone.create_jws_keypair: {strategy: other}",
            None,
            false,
        )
        .unwrap_err();
        assert_eq!(
            e.0,
            "step `s`: key strategy `other`: expected per-node or shared"
        );
    }

    #[test]
    fn sync_leaves_out_the_node_it_copies_from_and_a_rotation_install_needs_staged_keys() {
        let p = compile_item::<Keys>("all-nodes", "keystone.sync_fernet_keys: {}", None, false)
            .unwrap();
        let [Piece::Act(specs)] = &p[..] else {
            panic!("{p:?}")
        };
        let on: Vec<_> = specs.iter().filter_map(|s| s.node()).collect();
        assert_eq!(on, ["ks2", "ks3"]);
        let s = Keys::InstallKeys {
            node: "ks1".into(),
            public: false,
        };
        assert_eq!(s.required_gates(), [Gate::StagedKeysEverywhere]);
        assert!(s.touches().jws_keys);
    }
}
