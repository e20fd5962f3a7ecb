//! The questions the UI and the runtime ask of a run's state, answered once here: what is
//! running, whether the run may pause or continue now (and why not), which provider the fleet
//! leaves, how many public keys a node holds.

use super::{InFlight, NodeView, RunStatus, State};
use crate::engine::facts::{FleetCache, NodeCache, host_of};
use crate::engine::plan::OpKind;
use crate::meter::MOVING_SUFFIX;
use crate::provider::Provider;

/// Why the run cannot pause or continue now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotNow {
    #[error("the run has not started")]
    NotStarted,
    #[error("the run is already paused")]
    Paused,
    #[error("the run is halted")]
    Halted,
    #[error("the run is complete")]
    Completed,
    #[error("the run is waiting at a hard stop: answer it first")]
    AwaitingConfirm,
    #[error("the run is running: pause it first")]
    Running,
    #[error("a pause is already asked for: it comes after the action in flight")]
    PauseRequested,
    #[error(
        "{} of this session {} still running: continue once {} finished",
        actions(*.0),
        if *.0 == 1 { "is" } else { "are" },
        if *.0 == 1 { "it has" } else { "they have" }
    )]
    StillRunning(usize),
}

impl State {
    /// Whether the pool is mixed now: pooled nodes disagree on the provider they run (what a
    /// client crossing nodes sees as refused tokens).
    pub fn pool_mixed(&self) -> bool {
        matches!(self.pool(), super::PoolView::Mixed(_))
    }

    /// If `node` joined the pool running `provider`: how many pooled nodes would then run
    /// `provider`, of how many pooled in all. With the rest on another provider, roughly that
    /// share of validations fails while the pool is mixed (a token validated on a node of the
    /// other provider than the one that issued it). None while a pooled node's provider is
    /// unread.
    pub fn share_if_added(&self, node: &str, provider: &str) -> Option<(usize, usize)> {
        let (mut same, mut all) = (1, 1);
        for (name, n) in &self.nodes {
            if name != node && n.pooled() {
                all += 1;
                if n.running_provider()? == provider {
                    same += 1;
                }
            }
        }
        Some((same, all))
    }

    /// Whether clients meet a mixed pool now: as [`State::pool_mixed`], with a node that one
    /// load-balancer action is moving (an `lb.ready`, `lb.drain` or `lb.maint` in flight) counted
    /// in: the load balancer sends it requests from the re-add's write on, and until the drain's
    /// write lands, before either outcome is journaled. A swap in flight moves nothing here: it
    /// swaps each instance in one write, so no instance holds both halves. The mixed windows and
    /// the meter's `mixed` label follow this.
    pub fn clients_meet_mixed_pool(&self) -> bool {
        let moving = |name: &str| {
            self.running_intents().any(|f| {
                let moves = f.intent.spec.pool_moves();
                moves.len() == 1 && moves[0].0 == name
            })
        };
        let mut providers = std::collections::BTreeSet::new();
        for (name, n) in &self.nodes {
            if (n.pooled() || moving(name))
                && let Some(p) = n.running_provider()
            {
                providers.insert(p);
            }
        }
        providers.len() > 1
    }

    /// The meter's phase label now: `mixed` while clients meet a mixed pool
    /// ([`State::clients_meet_mixed_pool`]), else the current step's id (`start` before the
    /// first, `end` after the last). While an action that moves several nodes in the pool at
    /// once runs (the halves swap, from its intent to its outcome), `ID` +
    /// [`MOVING_SUFFIX`]: the meter counts a fresh token refused then as crossed (issued before
    /// the move's write, validated after it), not as a failure.
    pub fn meter_phase(&self) -> String {
        if self.clients_meet_mixed_pool() {
            return "mixed".into();
        }
        let Some(op) = self.current_op() else {
            return if self.plan.is_empty() { "start" } else { "end" }.into();
        };
        let moving = self.running() > 0
            && matches!(&op.kind, OpKind::Act { specs, .. }
                if specs.iter().any(|s| s.pool_moves().len() > 1));
        if moving {
            format!("{}{MOVING_SUFFIX}", op.step)
        } else {
            op.step.clone()
        }
    }

    /// Actions running now: in flight and not in doubt (an in-doubt intent is only a record that
    /// the last run stopped mid-action; nothing runs it until the operator decides).
    pub fn running(&self) -> usize {
        self.running_intents().count()
    }

    /// The intents running now (see [`State::running`]), oldest first.
    pub fn running_intents(&self) -> impl Iterator<Item = &InFlight> {
        self.in_flight
            .iter()
            .filter(|(id, _)| !self.in_doubt.contains(id))
            .map(|(_, f)| f)
    }

    /// Whether a pause may be asked for now: only while the run is running and no pause is
    /// pending. It takes effect at once when nothing runs, else after the actions in flight.
    pub fn can_pause(&self) -> Result<(), NotNow> {
        match &self.status {
            RunStatus::Running if self.pause_requested => Err(NotNow::PauseRequested),
            RunStatus::Running => Ok(()),
            other => Err(NotNow::from_status(other)),
        }
    }

    /// Whether this session may continue the run now: it is paused or halted, and nothing it
    /// started is still running (continuing then would count those actions in doubt and start
    /// them twice).
    pub fn can_continue(&self) -> Result<(), NotNow> {
        match &self.status {
            RunStatus::Paused { .. } | RunStatus::Halted { .. } => match self.running() {
                0 => Ok(()),
                n => Err(NotNow::StillRunning(n)),
            },
            other => Err(NotNow::from_status(other)),
        }
    }

    /// The provider the fleet moves away from: the one that is not the target (jws before a
    /// run has named its target).
    pub fn old_provider(&self) -> Provider {
        self.target_provider.map_or(Provider::Jws, Provider::other)
    }

    /// Whether `provider` (a name as Keystone's config or a token shows it) is the run's target.
    pub fn is_target(&self, provider: &str) -> bool {
        self.target_provider.is_some_and(|t| t == *provider)
    }

    /// How many nodes' public keys `n` holds, of all nodes. Before any private key's
    /// fingerprint is known, the count of public keys it holds (at most the number of nodes).
    pub fn public_coverage(&self, n: &NodeView) -> (usize, usize) {
        self.public_coverage_of(n, &self.private_prints())
    }

    /// Every node's private key fingerprint, as last read (for [`State::public_coverage_of`]:
    /// the node table asks about every node on every frame, and finding these once per frame
    /// keeps the frame linear in the fleet's size).
    pub fn private_prints(&self) -> Vec<&str> {
        self.node_order
            .iter()
            .filter_map(|m| {
                self.nodes
                    .get(m)
                    .and_then(|v| v.facts.as_ref())
                    .and_then(|f| f.jws.private_fingerprint.as_deref())
            })
            .collect()
    }

    /// [`State::public_coverage`] given [`State::private_prints`].
    pub fn public_coverage_of(&self, n: &NodeView, prints: &[&str]) -> (usize, usize) {
        let total = self.node_order.len();
        let Some(f) = &n.facts else { return (0, total) };
        if prints.is_empty() {
            return (f.jws.public.len().min(total), total);
        }
        // What `n` holds, as a set: a scan of its public keys per fingerprint made a frame
        // cubic in the fleet's size.
        let held: std::collections::HashSet<&str> = f
            .jws
            .public
            .iter()
            .map(|p| p.fingerprint.as_str())
            .collect();
        let have = prints.iter().filter(|fp| held.contains(**fp)).count();
        (have, total)
    }
}

fn actions(n: usize) -> String {
    if n == 1 {
        "1 action".into()
    } else {
        format!("{n} actions")
    }
}

impl NotNow {
    fn from_status(status: &RunStatus) -> NotNow {
        match status {
            RunStatus::NotStarted => NotNow::NotStarted,
            RunStatus::Running => NotNow::Running,
            RunStatus::AwaitingConfirm => NotNow::AwaitingConfirm,
            RunStatus::Paused { .. } => NotNow::Paused,
            RunStatus::Halted { .. } => NotNow::Halted,
            RunStatus::Completed => NotNow::Completed,
        }
    }
}

/// The fleet's token cache: read from each node's keystone.conf by the probes.
impl State {
    /// Whether tokens are cached, in one store every node shares, for how long, and where the
    /// nodes disagree (see [`FleetCache`]): from each node's last facts, and the host of its
    /// keystone_url (a loopback memcached is shared only by nodes on one host).
    pub fn token_cache(&self) -> FleetCache {
        let hosts: std::collections::BTreeMap<&str, String> = self
            .inventory()
            .map(|inv| {
                inv.nodes
                    .iter()
                    .map(|n| (n.name.as_str(), host_of(&n.keystone_url)))
                    .collect()
            })
            .unwrap_or_default();
        let nodes: Vec<NodeCache> = self
            .node_order
            .iter()
            .map(|name| NodeCache {
                name,
                cache: self
                    .nodes
                    .get(name)
                    .and_then(|n| n.facts.as_ref())
                    .and_then(|f| f.cache.as_ref()),
                host: hosts.get(name.as_str()).cloned().unwrap_or_default(),
            })
            .collect();
        FleetCache::of(&nodes)
    }

    /// What the token cache means while the pool holds both providers (the mixed-pool hard
    /// stop, the halves' swap): which tokens fail, from when, until when.
    pub fn cache_explanation(&self) -> Vec<String> {
        let old = self.old_provider();
        let new = old.other();
        self.token_cache().explanation(old.as_str(), new.as_str())
    }

    /// What the token cache means at the halves' swap: which old-provider tokens survive it,
    /// and for how long.
    pub fn swap_cache_explanation(&self) -> Vec<String> {
        let old = self.old_provider();
        let new = old.other();
        self.token_cache()
            .swap_explanation(old.as_str(), new.as_str())
    }

    /// The token cache's paragraph of the hard stop `id`, if it is one where clients meet the
    /// other provider (the mixed-pool re-add, the halves' swap); else nothing.
    pub fn cache_paragraph_for(&self, id: &str) -> Vec<String> {
        use crate::engine::facts::{MIXED_POOL_STOP, SWAP_STOP};
        match id {
            MIXED_POOL_STOP => self.cache_explanation(),
            SWAP_STOP => self.swap_cache_explanation(),
            _ => vec![],
        }
    }

    /// Until when old-provider tokens may still validate from a shared token cache: one cache
    /// lifetime after the last flip (a node of the old provider may have cached them just
    /// before it flipped). None unless the cache is shared and every node has flipped.
    pub fn old_tokens_cached_until(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        let last = self.last_flip_at?;
        if !self.all_flipped() {
            return None;
        }
        let cache = self.token_cache();
        let secs = cache.lifetime_secs.filter(|_| cache.shared())?;
        Some(last + chrono::Duration::seconds(secs as i64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::events::Intent;
    use crate::engine::state::InFlight;

    fn with_flight(ids: &[u64], doubt: &[u64]) -> State {
        let mut st = State::default();
        for &id in ids {
            let intent: Intent = serde_json::from_value(serde_json::json!({
                "id": id, "op": 0, "step": "s", "node": null, "action": "wait",
                "detail": "wait", "idempotent": true, "spec": {"action": "wait", "secs": 1}
            }))
            .expect("an intent");
            st.in_flight.insert(
                id,
                InFlight {
                    intent,
                    started: Default::default(),
                },
            );
        }
        st.in_doubt = doubt.iter().copied().collect();
        st
    }

    #[test]
    fn running_is_in_flight_minus_in_doubt() {
        assert_eq!(with_flight(&[], &[]).running(), 0);
        assert_eq!(with_flight(&[1, 2, 3], &[2]).running(), 2);
        assert_eq!(with_flight(&[2], &[2]).running(), 0);
    }

    #[test]
    fn pause_only_while_running_and_not_asked_yet() {
        let mut st = State::default();
        assert_eq!(st.can_pause(), Err(NotNow::NotStarted));
        st.status = RunStatus::Running;
        assert_eq!(st.can_pause(), Ok(()));
        st.pause_requested = true;
        assert_eq!(st.can_pause(), Err(NotNow::PauseRequested));
        st.status = RunStatus::AwaitingConfirm;
        assert_eq!(st.can_pause(), Err(NotNow::AwaitingConfirm));
        st.status = RunStatus::Paused { reason: "x".into() };
        assert_eq!(st.can_pause(), Err(NotNow::Paused));
    }

    #[test]
    fn continue_only_when_stopped_and_nothing_of_ours_runs() {
        let mut st = with_flight(&[1, 2], &[2]);
        st.status = RunStatus::Running;
        assert_eq!(st.can_continue(), Err(NotNow::Running));
        st.status = RunStatus::Halted {
            reason: "r".into(),
            next: "n".into(),
        };
        assert_eq!(st.can_continue(), Err(NotNow::StillRunning(1)));
        assert_eq!(
            NotNow::StillRunning(1).to_string(),
            "1 action of this session is still running: continue once it has finished"
        );
        let mut st = with_flight(&[2], &[2]);
        st.status = RunStatus::Paused { reason: "p".into() };
        assert_eq!(st.can_continue(), Ok(()));
        st.status = RunStatus::Completed;
        assert_eq!(st.can_continue(), Err(NotNow::Completed));
    }

    #[test]
    fn the_old_provider_is_the_other_one() {
        let mut st = State {
            target_provider: Some(Provider::Jws),
            ..State::default()
        };
        assert_eq!(st.old_provider(), Provider::Fernet);
        st.target_provider = Some(Provider::Fernet);
        assert_eq!(st.old_provider(), Provider::Jws);
        st.target_provider = None;
        assert_eq!(st.old_provider(), Provider::Jws);
        assert!(!st.is_target("jws"));
        st.target_provider = Some(Provider::Jws);
        assert!(st.is_target("jws") && !st.is_target("fernet") && !st.is_target(""));
    }

    fn cached_node(servers: &str, life: u64) -> crate::engine::facts::NodeFacts {
        crate::engine::facts::NodeFacts {
            provider: Some("fernet".into()),
            cache: Some(crate::engine::facts::TokenCacheFacts {
                enabled: true,
                backend: "oslo_cache.memcache_pool".into(),
                servers: vec![servers.into()],
                expiration_time: life,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn probed(facts: &[(&str, crate::engine::facts::NodeFacts)]) -> crate::engine::events::Event {
        let mut observed = crate::engine::facts::Observation::default();
        for (n, f) in facts {
            observed.nodes.insert(n.to_string(), f.clone());
        }
        crate::engine::events::Event::Outcome(crate::engine::events::Outcome {
            id: 1,
            op: 0,
            node: None,
            ok: true,
            summary: "probe".into(),
            duration_ms: 1,
            observed,
            failure: None,
        })
    }

    #[test]
    fn the_fleet_cache_is_folded_from_the_probes() {
        use crate::engine::events::{Event, RunStarted};
        use crate::engine::facts::CacheVerdict;
        let t = chrono::Utc::now();
        let mut st = State::default();
        st.apply(&Event::RunStarted(RunStarted::flagship_fixture()), t);
        assert_eq!(st.token_cache().verdict, CacheVerdict::Unknown);
        // The fixture's nodes are on 10.0.0.11-13: one memcached elsewhere is shared.
        let shared = cached_node("10.0.0.5:11211", 600);
        st.apply(
            &probed(&[
                ("ks1", shared.clone()),
                ("ks2", shared.clone()),
                ("ks3", shared.clone()),
            ]),
            t,
        );
        let c = st.token_cache();
        assert_eq!(c.verdict, CacheVerdict::Shared, "{c:?}");
        assert_eq!(c.lifetime_secs, Some(600));
        let text = st.cache_explanation().join("\n");
        assert!(
            text.contains("fernet tokens stop validating within 10m after the last flip"),
            "{text}"
        );
        assert!(text.contains("first jws node's re-add"), "{text}");

        // An unreachable node keeps what was last read of its cache.
        let unreachable = crate::engine::facts::NodeFacts {
            error: Some("cannot reach ks2".into()),
            ..Default::default()
        };
        st.apply(&probed(&[("ks2", unreachable)]), t);
        assert_eq!(st.token_cache().verdict, CacheVerdict::Shared);

        // Each node's own memcached on its own host: not shared.
        let local = cached_node("127.0.0.1:11211", 600);
        st.apply(
            &probed(&[
                ("ks1", local.clone()),
                ("ks2", local.clone()),
                ("ks3", local),
            ]),
            t,
        );
        let c = st.token_cache();
        assert_eq!(c.verdict, CacheVerdict::NotShared, "{c:?}");
        assert!(st.cache_explanation()[1].starts_with("Every validation"));

        // Nodes that disagree are named.
        st.apply(
            &probed(&[(
                "ks3",
                crate::engine::facts::NodeFacts {
                    cache: Some(Default::default()),
                    ..Default::default()
                },
            )]),
            t,
        );
        let c = st.token_cache();
        assert_eq!(c.verdict, CacheVerdict::Mixed);
        assert_eq!(
            c.notes[0],
            "nodes disagree: ks1, ks2 cache tokens, ks3 do not"
        );
    }

    #[test]
    fn old_tokens_live_one_cache_lifetime_past_the_last_flip_only_when_shared() {
        let t = chrono::Utc::now();
        let mut st = State {
            target_provider: Some(Provider::Jws),
            ..State::default()
        };
        let mut f = cached_node("10.0.0.5:11211", 600);
        f.provider = Some("jws".into());
        st.nodes.insert(
            "ks1".into(),
            NodeView {
                name: "ks1".into(),
                facts: Some(std::sync::Arc::new(f.clone())),
                ..Default::default()
            },
        );
        st.node_order = vec!["ks1".into()];
        assert_eq!(st.old_tokens_cached_until(), None, "no flip yet");
        st.last_flip_at = Some(t);
        assert_eq!(
            st.old_tokens_cached_until(),
            Some(t + chrono::Duration::seconds(600))
        );
        f.cache.as_mut().unwrap().enabled = false;
        st.nodes.get_mut("ks1").unwrap().facts = Some(std::sync::Arc::new(f));
        assert_eq!(st.old_tokens_cached_until(), None, "no cache, no grace");
    }
}
