//! The engine under test, two ways:
//!
//! - **given / when / then**, after cqrs-es's `TestFramework`: events already in the journal
//!   (folded with `State::apply`), one command (`decide`), and the events or refusal expected:
//!   `given(events).when(command).then_expect(events)`, `.then_expect_kinds(..)`,
//!   `.then_expect_error(..)`, `.then_expect_nothing()`.
//! - **[`Run`]**: a run driven end to end against the fake [`Fleet`], with a clock that moves a
//!   second per command: start, settle one effect, run until something holds, to a gate, to an
//!   effect.
//!
//! Both use only the engine's public interface; nothing here decides what the engine does.

use super::fleet::{self, Fleet};
use chrono::{DateTime, Duration, TimeZone, Utc};
use cutover::engine::action::probe_covers;
use cutover::engine::decide::gate_probe;
use cutover::engine::events::*;
use cutover::engine::plan::OpKind;
use cutover::engine::state::State;
use cutover::engine::{Decision, Effect, Refused, Who, decide};
use cutover::inventory::Inventory;
use cutover::runbook::{Gate, Runbook};

/// The engine tests' clock at the start of a run.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 29, 1, 0, 0).unwrap()
}

/// The operator of the engine tests.
pub fn who() -> Who {
    Who::named("alice", "bastion1")
}

/// A `run_started` for the flagship runbook on the three-node inventory, with parameter
/// overrides. The plan is left for `decide` to compile and record.
pub fn run_started(params: &[(&str, &str)]) -> RunStarted {
    let source = std::fs::read_to_string("runbooks/fernet-to-jws.yaml").unwrap();
    run_started_of(&source, "runbooks/fernet-to-jws.yaml", params)
}

/// A `run_started` for the runbook `source` (read from `origin`) on the three-node inventory.
pub fn run_started_of(source: &str, origin: &str, params: &[(&str, &str)]) -> RunStarted {
    let source = source.to_string();
    let rb = Runbook::parse(&source, origin).unwrap();
    let inv = Inventory::load("tests/fixtures/inventory-3.yaml".as_ref()).unwrap();
    let overrides = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    RunStarted {
        schema: SCHEMA,
        run_id: "run-1".into(),
        runbook_name: rb.name.clone(),
        runbook_title: rb.title.clone(),
        runbook_sha256: "x".into(),
        runbook_source: source,
        runbook_origin: origin.into(),
        cluster: inv.cluster.clone(),
        params: rb.resolve_params(&overrides).unwrap(),
        inventory: inv,
        who: who(),
        plan: Vec::new(),
        plan_sha256: String::new(),
        compiled_by: String::new(),
    }
}

/// The fold of `events`, each at its time: what a process reading the journal starts from.
pub fn fold<'a>(events: impl IntoIterator<Item = &'a (DateTime<Utc>, Event)>) -> State {
    let mut state = State::default();
    for (t, e) in events {
        state.apply(e, *t);
    }
    state
}

/// The kinds of a decision's events, in order.
pub fn kinds(d: &Decision) -> Vec<&'static str> {
    d.events.iter().map(|e| e.kind()).collect()
}

/// The action names of a decision's effects, in order.
pub fn actions(d: &Decision) -> Vec<&'static str> {
    d.effects.iter().map(|e| e.spec.name()).collect()
}

// ------------------------------------------------------------------------ given / when / then

/// Given: the state the journal so far folds to, and the time the next command comes at.
#[derive(Clone)]
pub struct Given {
    state: State,
    now: DateTime<Utc>,
}

/// Given these events (each at `t0()`), folded.
pub fn given(events: impl IntoIterator<Item = Event>) -> Given {
    let mut state = State::default();
    for e in events {
        state.apply(&e, t0());
    }
    Given { state, now: t0() }
}

/// Given a state as it is (say, a live run's, or one forged to test a refusal), at `now`.
pub fn given_state(state: State, now: DateTime<Utc>) -> Given {
    Given { state, now }
}

impl Given {
    /// And then this event, folded at the given time.
    pub fn and(mut self, e: Event) -> Given {
        self.state.apply(&e, self.now);
        self
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    /// When: the engine decides on `cmd` (a second after the last event).
    pub fn when(self, cmd: Command) -> Then {
        let now = self.now + Duration::seconds(1);
        let label = format!("{cmd:?}");
        Then {
            result: decide(&self.state, cmd, now),
            label,
        }
    }
}

/// Then: what the engine decided, to be checked.
pub struct Then {
    result: Result<Decision, Refused>,
    /// The command, for the messages.
    label: String,
}

impl Then {
    fn accepted(self) -> Decision {
        match self.result {
            Ok(d) => d,
            Err(e) => panic!("refused ({e}): {}", self.label),
        }
    }

    /// The command is accepted and records exactly these events; returns the decision for
    /// checks of its effects.
    #[track_caller]
    pub fn then_expect(self, events: Vec<Event>) -> Decision {
        let d = self.accepted();
        assert_eq!(d.events, events);
        d
    }

    /// The command is accepted and records events of these kinds, in this order.
    #[track_caller]
    pub fn then_expect_kinds(self, want: &[&str]) -> Decision {
        let d = self.accepted();
        assert_eq!(kinds(&d), want, "{:#?}", d.events);
        d
    }

    /// The command is accepted and changes nothing: no event, no effect.
    #[track_caller]
    pub fn then_expect_nothing(self) {
        let d = self.accepted();
        assert!(
            d.events.is_empty() && d.effects.is_empty(),
            "expected nothing, got {:?} and {:?}",
            kinds(&d),
            actions(&d)
        );
    }

    /// The command is refused with this error.
    #[track_caller]
    pub fn then_expect_error(self, want: Refused) {
        match self.result {
            Err(e) => assert_eq!(e, want, "{}", self.label),
            Ok(d) => panic!(
                "expected the refusal `{want}`, got {:?} for {}",
                kinds(&d),
                self.label
            ),
        }
    }
}

// ------------------------------------------------------------------------ a run, end to end

/// A run under test: the state, the clock, the simulated fleet, and every event so far.
pub struct Run {
    pub state: State,
    pub now: DateTime<Utc>,
    pub fleet: Fleet,
    pub events: Vec<(DateTime<Utc>, Event)>,
    /// Effects decided and not yet answered by the fleet, oldest first.
    pub pending: Vec<Effect>,
}

impl Run {
    /// The flagship runbook on the three-node inventory, started.
    pub fn start() -> Run {
        Run::start_with(run_started(&[]))
    }

    /// Start `rs` on a healthy fleet of its inventory whose load balancers' configs say a
    /// reload loses MAINT on the first and keeps it (state file) on the others.
    pub fn start_with(rs: RunStarted) -> Run {
        let mut fleet = Fleet::new(&rs.inventory);
        fleet.reload = fleet::debian_and_state_file_reload(&fleet.lbs);
        let mut r = Run {
            state: State::default(),
            now: t0(),
            fleet,
            events: vec![],
            pending: vec![],
        };
        r.when(Command::Start(Box::new(rs)));
        r
    }

    /// Given: this run's journal so far, at this run's clock.
    pub fn given(&self) -> Given {
        given_state(fold(&self.events), self.now)
    }

    /// When: a command. Then: the decision, already applied.
    pub fn when(&mut self, cmd: Command) -> Decision {
        self.now += Duration::seconds(1);
        let d = decide(&self.state, cmd, self.now).expect("command accepted");
        for e in &d.events {
            self.state.apply(e, self.now);
            self.events.push((self.now, e.clone()));
        }
        self.pending.extend(d.effects.iter().cloned());
        d
    }

    /// Let the simulated fleet answer the oldest pending effect.
    pub fn settle_one(&mut self) -> Option<Decision> {
        if self.pending.is_empty() {
            return None;
        }
        let eff = self.pending.remove(0);
        let reply = self.fleet.run(&eff.spec);
        Some(self.when(Command::Completed(Outcome {
            id: eff.id,
            op: eff.op,
            node: eff.spec.node().map(str::to_string),
            ok: reply.ok,
            summary: reply.summary,
            duration_ms: reply.ms,
            observed: reply.observed,
            failure: reply.failure,
        })))
    }

    /// Settle effects one at a time and confirm the hard stops named in `confirm` (all of them
    /// when None) until `reached` holds (true) or the run waits or stops (false).
    pub fn run_until(&mut self, confirm: Option<&[&str]>, reached: impl Fn(&Run) -> bool) -> bool {
        for _ in 0..2000 {
            if reached(self) {
                return true;
            }
            if self.settle_one().is_some() {
                continue;
            }
            if let Some(h) = self.state.hard_stop.clone()
                && confirm.is_none_or(|c| c.contains(&h.id.as_str()))
            {
                self.when(Command::Confirm {
                    id: h.id.clone(),
                    who: who(),
                });
                continue;
            }
            return false;
        }
        panic!("run did not settle");
    }

    /// Run until the engine waits for a person or stops, confirming hard stops in `confirm`.
    pub fn run_until_stopped(&mut self, confirm: &[&str]) {
        self.run_until(Some(confirm), |_| false);
    }

    /// Run until the read the given gate for the given node will be judged on is about to run:
    /// its own probe, or the one probe of the block of gates it belongs to (a block of gates
    /// shares one read when one gate's read holds what the others need), so that a change made
    /// now is what the gate sees.
    #[track_caller]
    pub fn run_to_gate(&mut self, gate: Gate, node: Option<&str>, confirm: &[&str]) {
        let reached = self.run_until(Some(confirm), |r| {
            let is_target = |op: &cutover::engine::plan::Op| {
                matches!(&op.kind, OpKind::Gate { gate: g, .. } if *g == gate)
                    && op.node.as_deref() == node
            };
            let Some(cur) = r.state.current_op() else {
                return false;
            };
            let target = r.state.plan[cur.index..]
                .iter()
                .take_while(|op| op.step == cur.step && matches!(op.kind, OpKind::Gate { .. }))
                .find(|op| is_target(op));
            let Some(target) = target else {
                return false;
            };
            let probing = r.pending.len() == 1 && r.pending[0].spec.name() == "probe";
            (is_target(cur) && r.pending.len() == 1)
                || probing
                    && gate_probe(&r.state, target.index)
                        .is_some_and(|want| probe_covers(&r.pending[0].spec, &want))
        });
        assert!(
            reached,
            "stopped before gate {} for {node:?}: {:?}",
            gate.name(),
            self.state.status
        );
    }

    /// Run, confirming every hard stop, until an effect of `action` is about to run.
    #[track_caller]
    pub fn run_until_effect(&mut self, action: &str) {
        let reached = self.run_until(None, |r| {
            r.pending.first().is_some_and(|e| e.spec.name() == action)
        });
        assert!(
            reached,
            "no `{action}` effect came: {:?}",
            self.state.status
        );
    }

    /// The kinds of a decision's events, in order.
    pub fn kinds(d: &Decision) -> Vec<&'static str> {
        kinds(d)
    }
}
