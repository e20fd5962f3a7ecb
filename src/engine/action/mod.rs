//! Actions, one file per family: each family's file holds, for its actions, the spec (what the
//! runtime's drivers do, fully resolved), its words (name, short label, verb), whether it is
//! idempotent, how it is described, the gates it requires, the phase it leaves its node in,
//! what it may change while in flight, its compile from runbook items, and its tests.
//!
//! Adding an action to a family touches that family's file here, its driver, and the runbook
//! item: nothing in this file lists actions.
//!
//! In the journal a spec is one JSON object tagged by `action` (`{"action":"lb_drain",…}`),
//! whatever its family: [`ActionSpec`] serializes its family's spec as it is and reads one back
//! by asking each family whether the tag is one of its own.

pub mod keys;
pub mod keystone;
pub mod kit;
pub mod lb;
pub mod misc;
pub mod service;

pub use keys::Keys;
pub use keystone::Keystone;
pub use kit::{Action, Cx, Family, Phase, Piece, PlanError, PoolMove, Touches, UNTIL_UP_SECS};
pub use lb::Lb;
pub use misc::{Misc, issued_only, probe_covers};
pub use service::Service;

use crate::inventory::Inventory;
use crate::runbook::{self, Gate, Item};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An effect, fully resolved: what the runtime's drivers do. One variant per family.
#[derive(Debug, Clone, PartialEq)]
pub enum ActionSpec {
    Lb(Lb),
    Keystone(Keystone),
    Keys(Keys),
    Service(Service),
    Misc(Misc),
}

/// `$spec.method(args)` on whichever family the spec is of.
macro_rules! each {
    ($self:expr, $s:ident => $e:expr) => {
        match $self {
            ActionSpec::Lb($s) => $e,
            ActionSpec::Keystone($s) => $e,
            ActionSpec::Keys($s) => $e,
            ActionSpec::Service($s) => $e,
            ActionSpec::Misc($s) => $e,
        }
    };
}

macro_rules! from_family {
    ($($f:ident),*) => {$(
        impl From<$f> for ActionSpec {
            fn from(s: $f) -> ActionSpec {
                ActionSpec::$f(s)
            }
        }
    )*};
}
from_family!(Lb, Keystone, Keys, Service, Misc);

impl ActionSpec {
    /// The action's words (name, short label, verb).
    pub fn action(&self) -> Action {
        each!(self, s => s.action())
    }

    /// The action's name, as runbooks, intents and the log spell it.
    pub fn name(&self) -> &'static str {
        self.action().name
    }

    pub fn node(&self) -> Option<&str> {
        each!(self, s => s.node())
    }

    /// Safe to run again when a crash lost its outcome.
    pub fn idempotent(&self) -> bool {
        each!(self, s => s.idempotent())
    }

    /// One line for the log and the journal: what is done, where.
    pub fn describe(&self) -> String {
        each!(self, s => s.describe())
    }

    /// The exact command or request, where there is one (see [`Family::exact`]).
    pub fn exact(&self, inv: &Inventory) -> Option<String> {
        each!(self, s => s.exact(inv))
    }

    /// The gates that must have passed on fresh probes right before it.
    pub fn required_gates(&self) -> Vec<Gate> {
        each!(self, s => s.required_gates())
    }

    /// The phase its node shows while it runs.
    pub fn phase_on_start(&self) -> Option<Phase> {
        each!(self, s => s.phase_on_start())
    }

    /// The phase it leaves its node in when it succeeded.
    pub fn phase_after(&self) -> Option<Phase> {
        each!(self, s => s.phase_after())
    }

    /// How it moves its node in the pool.
    pub fn pool_move(&self) -> Option<PoolMove> {
        each!(self, s => s.pool_move())
    }

    /// The probe whose read this action's outcome holds, when it only read: a token issued
    /// and validated directly at a node is what a probe of that node's token reads.
    pub fn token_read(&self) -> Option<ActionSpec> {
        match self {
            ActionSpec::Keystone(Keystone::IssueToken { node, .. }) => Some(
                Misc::Probe {
                    nodes: vec![],
                    lb: false,
                    tokens: vec![node.clone()],
                    providers: vec![],
                    kept: false,
                    until_up: None,
                }
                .into(),
            ),
            _ => None,
        }
    }

    /// The half it takes out of the pool (a swap: half B), for its capacity gate's group.
    pub fn takes_out_group(&self) -> Option<&'static str> {
        match self {
            ActionSpec::Lb(l) => l.takes_out_group(),
            _ => None,
        }
    }

    /// Every node it moves in the pool, with how and the phase it leaves it in: its one node's
    /// [`ActionSpec::pool_move`], or several at once (a swap: A back in, B out).
    pub fn pool_moves(&self) -> Vec<(String, PoolMove, Option<Phase>)> {
        if let ActionSpec::Lb(l) = self {
            let group = l.group_moves();
            if !group.is_empty() {
                return group.into_iter().map(|(n, m, p)| (n, m, Some(p))).collect();
            }
        }
        match (self.node(), self.pool_move()) {
            (Some(n), Some(m)) => vec![(n.to_string(), m, self.phase_after())],
            _ => vec![],
        }
    }

    /// What it may change on its node while in flight (not drift after a crash).
    pub fn touches(&self) -> Touches {
        each!(self, s => s.touches())
    }

    /// It must happen out of the pool (or re-adds): its intent records how old the node's
    /// last load-balancer read is.
    pub fn reads_pool_first(&self) -> bool {
        each!(self, s => s.reads_pool_first())
    }
}

/// The words of the action named `name` (`lb.drain` → short `lb.drain`, verb `draining`), for
/// screens that hold only the name (an intent's `action`, a log line's).
pub fn words(name: &str) -> Option<Action> {
    [
        Lb::ACTIONS,
        Keystone::ACTIONS,
        Keys::ACTIONS,
        Service::ACTIONS,
        Misc::ACTIONS,
    ]
    .into_iter()
    .flatten()
    .find(|a| a.name == name)
    .copied()
}

/// The plan's pieces for one action item, compiled by the item's family.
pub fn compile(
    family: runbook::Family,
    cx: &Cx,
    item: &Item,
) -> Result<Vec<Piece<ActionSpec>>, PlanError> {
    fn by<F: Family + Into<ActionSpec>>(
        cx: &Cx,
        item: &Item,
    ) -> Result<Vec<Piece<ActionSpec>>, PlanError> {
        Ok(F::compile(cx, item)?
            .into_iter()
            .map(|p| p.map(Into::into))
            .collect())
    }
    match family {
        runbook::Family::Lb => by::<Lb>(cx, item),
        runbook::Family::Keystone => by::<Keystone>(cx, item),
        runbook::Family::Keys => by::<Keys>(cx, item),
        runbook::Family::Service => by::<Service>(cx, item),
        runbook::Family::Misc => by::<Misc>(cx, item),
    }
}

impl Serialize for ActionSpec {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        each!(self, s => s.serialize(ser))
    }
}

impl<'de> Deserialize<'de> for ActionSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ActionSpec, D::Error> {
        use serde::de::Error;
        let v = serde_json::Value::deserialize(d)?;
        let Some(tag) = v.get("action").and_then(|t| t.as_str()).map(str::to_string) else {
            return Err(D::Error::custom("an action spec without its `action` tag"));
        };
        fn read<F: Family + Into<ActionSpec>, E: Error>(
            v: serde_json::Value,
        ) -> Result<ActionSpec, E> {
            serde_json::from_value::<F>(v)
                .map(Into::into)
                .map_err(E::custom)
        }
        if Lb::TAGS.contains(&tag.as_str()) {
            read::<Lb, D::Error>(v)
        } else if Keystone::TAGS.contains(&tag.as_str()) {
            read::<Keystone, D::Error>(v)
        } else if Keys::TAGS.contains(&tag.as_str()) {
            read::<Keys, D::Error>(v)
        } else if Service::TAGS.contains(&tag.as_str()) {
            read::<Service, D::Error>(v)
        } else if Misc::TAGS.contains(&tag.as_str()) {
            read::<Misc, D::Error>(v)
        } else {
            Err(D::Error::custom(format!(
                "unknown action `{tag}` (a journal written by a newer cutover?)"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every spec in the journals today's main wrote reads back and writes out byte for byte
    /// (as the journal writes it: canonical JSON, keys sorted): the intents' specs, and any
    /// recorded plan's (`specs` lists).
    #[test]
    fn journal_specs_round_trip_byte_for_byte() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/journals/main-2edb051");
        let mut seen = std::collections::BTreeSet::new();
        let mut count = 0;
        for file in ["done.jsonl", "paused.jsonl"] {
            let text = std::fs::read_to_string(dir.join(file)).unwrap();
            for line in text.lines() {
                for raw in raw_specs(line) {
                    let spec: ActionSpec =
                        serde_json::from_str(raw).unwrap_or_else(|e| panic!("{file}: {e}: {raw}"));
                    // The journal writes an event as canonical JSON (keys sorted): what this
                    // spec writes there is the text it was read from.
                    let canonical = serde_json::to_value(&spec).unwrap().to_string();
                    assert_eq!(canonical, raw, "{file}");
                    seen.insert(spec.name());
                    count += 1;
                }
            }
        }
        assert!(count > 20, "only {count} specs in the fixtures");
        for name in [
            "probe",
            "lb.drain",
            "lb.ready",
            "keystone.set_provider",
            "service.restart",
            "keystone.create_jws_keypair",
            "keystone.install_jws_keys",
        ] {
            assert!(seen.contains(name), "no {name} in the fixtures: {seen:?}");
        }
    }

    /// The exact text of every object under a `"spec":` key or in a `"specs":[…]` list.
    fn raw_specs(line: &str) -> Vec<&str> {
        // One JSON value from `at`: its text.
        let one = |at: usize| -> &str {
            let mut it =
                serde_json::Deserializer::from_str(&line[at..]).into_iter::<serde_json::Value>();
            it.next().unwrap().unwrap();
            &line[at..at + it.byte_offset()]
        };
        let mut out = Vec::new();
        for (at, _) in line.match_indices("\"spec\":{") {
            out.push(one(at + "\"spec\":".len()));
        }
        for (at, _) in line.match_indices("\"specs\":[") {
            let mut i = at + "\"specs\":[".len();
            while line[i..].starts_with('{') {
                let raw = one(i);
                out.push(raw);
                i += raw.len();
                if line[i..].starts_with(',') {
                    i += 1;
                }
            }
        }
        out
    }

    #[test]
    fn an_unknown_or_missing_tag_says_so() {
        let e = serde_json::from_str::<ActionSpec>(r#"{"action":"lb_teleport","node":"ks1"}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown action `lb_teleport`"), "{e}");
        let e = serde_json::from_str::<ActionSpec>(r#"{"node":"ks1"}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("without its `action` tag"), "{e}");
        let e = serde_json::from_str::<ActionSpec>(r#"{"action":"lb_drain","node":"ks1"}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("timeout_secs"), "{e}");
    }

    #[test]
    fn every_name_has_its_words_once() {
        let all: Vec<Action> = [
            Lb::ACTIONS,
            Keystone::ACTIONS,
            Keys::ACTIONS,
            Service::ACTIONS,
            Misc::ACTIONS,
        ]
        .concat();
        for a in &all {
            assert_eq!(words(a.name), Some(*a));
            assert_eq!(
                all.iter().filter(|b| b.name == a.name).count(),
                1,
                "{}",
                a.name
            );
        }
        let tags: Vec<&str> = [
            Lb::TAGS,
            Keystone::TAGS,
            Keys::TAGS,
            Service::TAGS,
            Misc::TAGS,
        ]
        .concat();
        let mut dedup = tags.clone();
        dedup.sort();
        dedup.dedup();
        assert_eq!(dedup.len(), tags.len(), "a journal tag in two families");
        assert_eq!(words("gate out-of-pool"), None);
    }
}
