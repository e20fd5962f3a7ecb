//! Drift: what the journal believed against what a fresh probe finds, said in one line each.
//!
//! Only changes cutover did not make count. The possible effects of cutover's own actions that
//! were in flight when it stopped (a `ready` half sent, a restart under way, a provider written),
//! the aftermath of an action the journal records as failed (a restart that left keystone down),
//! and health checks settling (`UP 1/3` → `UP`) are expected, not drift: an operator trained to
//! confirm false drift will confirm a real one. A cause is named only where it can be told.

use super::action::service;
use super::facts::{AdminState, LbServer, Observation};
use super::state::State;

/// What cutover itself may have changed on one node since the journal last saw it.
#[derive(Default)]
struct Expected {
    /// Load-balancer state (a drain, ready or maint in doubt).
    lb: bool,
    /// A ready was sent (or may have been): maint → ready is cutover's, not a reload.
    ready: bool,
    /// The service going down or up (a restart in doubt, or one that failed).
    service: bool,
    /// The provider cutover may have written.
    provider: Option<String>,
    /// JWS key material (a keypair created or installed).
    jws_keys: bool,
    /// The Fernet repository (rotated or synced).
    fernet_keys: bool,
}

fn expected(state: &State, node: &str) -> Expected {
    let mut e = Expected::default();
    for f in state.in_flight.values() {
        if f.intent.node.as_deref() != Some(node) {
            continue;
        }
        let t = f.intent.spec.touches();
        e.lb |= t.lb;
        e.ready |= t.ready;
        e.service |= t.service;
        e.jws_keys |= t.jws_keys;
        e.fernet_keys |= t.fernet_keys;
        if t.provider.is_some() {
            e.provider = t.provider;
        }
    }
    if let Some(n) = state.nodes.get(node)
        && n.last_failed_action.as_deref() == Some(service::RESTART.name)
    {
        // The journal recorded that restart as failed: keystone being down is its result.
        e.service = true;
        e.lb = true;
    }
    e
}

/// `UP 1/3`, `UP 2/3` and `UP` are one state with health checks settling.
fn settled(status: &str) -> &str {
    status.split_whitespace().next().unwrap_or(status)
}

fn lb_changed(old: &LbServer, new: &LbServer) -> bool {
    old.admin != new.admin || settled(&old.status) != settled(&new.status)
}

pub fn drift(state: &State, fresh: &Observation) -> Vec<String> {
    let mut out = Vec::new();
    for name in &state.node_order {
        let Some(was) = state.nodes.get(name) else {
            continue;
        };
        let exp = expected(state, name);
        if let (Some(a), Some(b)) = (was.facts.as_ref(), fresh.nodes.get(name)) {
            if let Some(e) = &b.error {
                out.push(format!("{name}: cannot be read now: {e}"));
                continue;
            }
            let provider_is_ours = exp.provider.is_some() && b.provider == exp.provider;
            if a.provider != b.provider && !provider_is_ours {
                out.push(format!(
                    "{name}: keystone.conf provider was {}, now {}",
                    a.provider.as_deref().unwrap_or("?"),
                    b.provider.as_deref().unwrap_or("?")
                ));
            }
            if a.jws.private_fingerprint != b.jws.private_fingerprint && !exp.jws_keys {
                out.push(format!(
                    "{name}: private.pem {}",
                    match (&a.jws.private_fingerprint, &b.jws.private_fingerprint) {
                        (None, Some(_)) => "appeared".to_string(),
                        (Some(_), None) => "is GONE".to_string(),
                        _ => "changed".to_string(),
                    }
                ));
            }
            if a.fernet.fingerprint != b.fernet.fingerprint && !exp.fernet_keys {
                out.push(format!("{name}: the Fernet repository changed"));
            }
            if a.service_up != b.service_up && !exp.service {
                out.push(format!(
                    "{name}: keystone was {}, now {}",
                    if a.service_up { "up" } else { "down" },
                    if b.service_up { "up" } else { "down" }
                ));
            }
        }
        if let Some(rows) = &fresh.lb {
            for r in rows.iter().filter(|r| &r.node == name) {
                let Some(old) = was.lb.get(&r.lb) else {
                    continue;
                };
                if !lb_changed(old, r) {
                    continue;
                }
                let back_in = old.admin == AdminState::Maint && r.admin == AdminState::Ready;
                // cutover's own drain, maint or restart in flight explains a change, except a
                // node put back to ready that cutover did not send ready for.
                if exp.lb && (!back_in || exp.ready) {
                    continue;
                }
                let hint = if back_in {
                    " (cutover sent no ready: an HAProxy reload without a server-state file, or another operator, put it back)"
                } else {
                    ""
                };
                out.push(format!(
                    "{name}: on {} was {} ({:?}), now {} ({:?}){hint}",
                    r.lb, old.status, old.admin, r.status, r.admin
                ));
            }
        }
    }
    for e in &fresh.lb_errors {
        out.push(format!("load balancer not readable now: {e}"));
    }
    out
}
