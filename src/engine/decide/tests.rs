use super::*;
use chrono::TimeZone;

fn who() -> crate::engine::who::Who {
    crate::engine::who::Who::named("alice", "bastion1")
}

/// A run of the flagship on the three-node fixture, its first effect (the preflight's)
/// in flight.
fn started() -> (State, Effect, DateTime<Utc>) {
    let rs = RunStarted::flagship_fixture();
    let now = Utc.with_ymd_and_hms(2026, 11, 29, 1, 0, 0).unwrap();
    let mut state = State::default();
    let d = decide(&state, Command::Start(Box::new(rs)), now).unwrap();
    apply(&mut state, &d, now);
    let eff = d.effects.first().cloned().expect("a first effect");
    (state, eff, now)
}

fn apply(state: &mut State, d: &Decision, now: DateTime<Utc>) {
    for e in &d.events {
        state.apply(e, now);
    }
}

fn kinds(d: &Decision) -> Vec<&'static str> {
    d.events.iter().map(|e| e.kind()).collect()
}

fn failed(eff: &Effect) -> Outcome {
    Outcome {
        id: eff.id,
        op: eff.op,
        node: eff.spec.node().map(str::to_string),
        ok: false,
        summary: "ks1: `systemctl restart keystone` killed by SIGHUP".into(),
        duration_ms: 5,
        observed: Default::default(),
        failure: None,
    }
}

#[test]
fn a_pause_request_ends_with_the_halt_it_came_before() {
    for hangup in [false, true] {
        let (mut state, eff, now) = started();
        let cmd = if hangup {
            Command::HangUp { who: who() }
        } else {
            Command::Pause { who: who() }
        };
        let d = decide(&state, cmd, now).unwrap();
        assert_eq!(kinds(&d), vec!["pause_requested"], "an action is in flight");
        apply(&mut state, &d, now);
        assert!(state.pause_requested);
        // The action in flight fails: the run halts, and the request with it.
        let d = decide(&state, Command::Completed(failed(&eff)), now).unwrap();
        apply(&mut state, &d, now);
        assert!(
            matches!(state.status, RunStatus::Halted { .. }),
            "{:?}",
            state.status
        );
        assert!(!state.pause_requested, "the halt ended the pause request");
        // The next resume is not paused by it.
        let d = decide(
            &state,
            Command::Resume {
                who: who(),
                drift: vec![],
                observed: Default::default(),
            },
            now,
        )
        .unwrap();
        assert!(!kinds(&d).contains(&"run_paused"), "{:?}", kinds(&d));
        apply(&mut state, &d, now);
        assert_eq!(state.status, RunStatus::Running);
    }
}

#[test]
fn a_request_from_an_earlier_session_does_not_pause_the_resume() {
    // The session that asked crashed before the action's outcome: its request is not the
    // resumed session's.
    let (mut state, _eff, now) = started();
    let d = decide(&state, Command::Pause { who: who() }, now).unwrap();
    apply(&mut state, &d, now);
    let d = decide(
        &state,
        Command::Resume {
            who: who(),
            drift: vec![],
            observed: Default::default(),
        },
        now,
    )
    .unwrap();
    apply(&mut state, &d, now);
    assert!(!state.pause_requested);
    assert!(!kinds(&d).contains(&"run_paused"), "{:?}", kinds(&d));
}

#[test]
fn a_hangup_pauses_after_the_action_in_flight_saying_why() {
    let (mut state, eff, now) = started();
    let d = decide(&state, Command::HangUp { who: who() }, now).unwrap();
    let Event::PauseRequested { cause, .. } = &d.events[0] else {
        panic!("{:?}", kinds(&d));
    };
    assert_eq!(*cause, PauseCause::TerminalHangup);
    assert_eq!(d.events[0].data()["cause"], "terminal_hangup");
    apply(&mut state, &d, now);
    // A second hangup (SIGHUP and EOF both seen) asks nothing more.
    assert!(
        decide(&state, Command::HangUp { who: who() }, now)
            .unwrap()
            .events
            .is_empty()
    );
    // The probe in flight comes back: the run pauses before anything new starts, and
    // says the terminal hung up.
    let mut ok = failed(&eff);
    ok.ok = true;
    ok.summary = "ok".into();
    let d = decide(&state, Command::Completed(ok), now).unwrap();
    assert_eq!(kinds(&d), vec!["outcome", "run_paused"]);
    assert!(d.effects.is_empty());
    apply(&mut state, &d, now);
    assert_eq!(
        state.status,
        RunStatus::Paused {
            reason: "the terminal hung up".into()
        }
    );
    assert!(!state.pause_requested);
    // An operator's pause still reads as one (no cause in the journal).
    let (state, _, now) = started();
    let d = decide(&state, Command::Pause { who: who() }, now).unwrap();
    assert!(d.events[0].data().get("cause").is_none());
}

#[test]
fn a_hangup_at_a_hard_stop_pauses_there() {
    let (mut state, eff, now) = started();
    // Forge the wait: the probe is back, a hard stop is up.
    let mut ok = failed(&eff);
    ok.ok = true;
    state.apply(&Event::Outcome(ok), now);
    let hs = HardStop {
        op: state.cursor,
        id: "jws-payload-readable".into(),
        node: None,
        title: "t".into(),
        hazard: "h".into(),
        consequence: "c".into(),
        facts: vec![],
        proceed: "p".into(),
        in_doubt: None,
        host_key: None,
        drift: vec![],
        breach: vec![],
    };
    state.apply(&Event::HardStopRaised(hs), now);
    let d = decide(&state, Command::HangUp { who: who() }, now).unwrap();
    assert_eq!(kinds(&d), vec!["pause_requested", "run_paused"]);
    apply(&mut state, &d, now);
    assert!(state.hard_stop.is_none() && !state.pause_requested);
    assert!(matches!(state.status, RunStatus::Paused { .. }));
}

#[test]
fn a_side_effect_keeps_its_wire_op() {
    assert_eq!(OpRef::from_wire(usize::MAX), OpRef::Side);
    assert_eq!(OpRef::Side.wire(), usize::MAX);
    assert_eq!(OpRef::from_wire(3), OpRef::Plan(3));
    assert_eq!(OpRef::Plan(3).wire(), 3);
    // An intent for a side effect, as journals written before OpRef carry it.
    let json = r#"{"id":7,"op":18446744073709551615,"step":"","node":"ks1","action":"lb.maint","detail":"d","idempotent":true,"spec":{"action":"lb_maint","node":"ks1"}}"#;
    let intent: Intent = serde_json::from_str(json).expect("an intent");
    assert_eq!(intent.op_ref(), OpRef::Side);
    assert_eq!(serde_json::to_string(&intent).unwrap(), json);
}
