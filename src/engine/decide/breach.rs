//! The pool guard's hard stop: what was seen, what the guard did, what Y does.

use super::Scratch;
use crate::engine::events::*;
use crate::inventory::GuardMode;
use std::collections::BTreeSet;

/// The hard stop for every open breach: what was seen, what the guard did, what Y does.
pub(super) fn raise_breach(s: &mut Scratch) {
    let breaches = s.state.open_breaches.clone();
    if breaches.is_empty() {
        return;
    }
    let nodes: BTreeSet<String> = breaches.iter().map(|b| b.node.clone()).collect();
    let names = nodes.iter().cloned().collect::<Vec<_>>().join(", ");
    let enforce = s.state.guard_mode() == GuardMode::Enforce;
    let open: Vec<&Breach> = breaches
        .iter()
        .filter(|b| b.reverted_ms.is_none())
        .collect();
    let longest = breaches.iter().filter_map(Breach::exposed_ms).max();
    let instances: BTreeSet<&str> = breaches.iter().map(|b| b.lb.as_str()).collect();
    let hazard = format!(
        "cutover had taken {names} out of the pool, and {} put {} back without cutover asking. HAProxy does this on a reload without a server-state file (config management reloads it), and so does another operator's `set server ... state ready`. While it is in, clients reach a node cutover is changing.",
        instances.iter().copied().collect::<Vec<_>>().join(", "),
        if nodes.len() == 1 { "it" } else { "them" }
    );
    let consequence = if open.is_empty() {
        format!(
            "The pool guard set it back to maint at once: it was in the pool for at most {} ms (from the last read that showed it out to the revert), and clients may have reached it then. Y makes sure {names} is in maint on every instance, reads the load balancers again and goes on only once it is out everywhere. n pauses the run.",
            longest.unwrap_or(0)
        )
    } else if enforce {
        format!(
            "cutover is setting {names} back to maint now. Y makes sure it is in maint on every instance, reads the load balancers again and goes on only once it is out everywhere. n pauses the run."
        )
    } else {
        format!(
            "guard: alert — {names} is still in the pool on {}. Y sets it to maint there, reads again and goes on only once it is out everywhere. n pauses the run: then set it to maint by hand (set server BACKEND/SERVER state maint) on every instance.",
            open.iter()
                .map(|b| b.lb.as_str())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    s.emit(Event::HardStopRaised(HardStop {
        op: s.state.cursor,
        id: "pool-breach".into(),
        node: (nodes.len() == 1).then(|| names.clone()),
        title: format!("{names} was put back into the pool"),
        hazard,
        consequence,
        facts: breaches.iter().map(Breach::line).collect(),
        proceed: "drain again and re-check before going on".into(),
        in_doubt: None,
        host_key: None,
        drift: vec![],
        breach: breaches,
    }));
}
