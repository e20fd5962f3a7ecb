//! The questions the UI and the runtime ask of a run's state, answered once here: what is
//! running, whether the run may pause or continue now (and why not), which provider the fleet
//! leaves, how many public keys a node holds.

use super::{InFlight, NodeView, RunStatus, State};
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

    /// The meter's phase label now: `mixed` while the pool is mixed, else the current step's
    /// id (`start` before the first, `end` after the last).
    pub fn meter_phase(&self) -> String {
        if self.pool_mixed() {
            return "mixed".into();
        }
        match self.current_op() {
            Some(op) => op.step.clone(),
            None if self.plan.is_empty() => "start".into(),
            None => "end".into(),
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
        let total = self.node_order.len();
        let Some(f) = &n.facts else { return (0, total) };
        let prints: Vec<&String> = self
            .node_order
            .iter()
            .filter_map(|m| {
                self.nodes
                    .get(m)?
                    .facts
                    .as_ref()?
                    .jws
                    .private_fingerprint
                    .as_ref()
            })
            .collect();
        if prints.is_empty() {
            return (f.jws.public.len().min(total), total);
        }
        let have = prints.iter().filter(|fp| f.jws.has_public(fp)).count();
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
}
