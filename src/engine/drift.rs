//! Drift: what the journal believed against what a fresh probe finds, said in one line each.

use super::facts::Observation;
use super::state::State;

pub fn drift(state: &State, fresh: &Observation) -> Vec<String> {
    let mut out = Vec::new();
    for name in &state.node_order {
        let Some(was) = state.nodes.get(name) else {
            continue;
        };
        if let (Some(a), Some(b)) = (was.facts.as_ref(), fresh.nodes.get(name)) {
            if let Some(e) = &b.error {
                out.push(format!("{name}: cannot be read now: {e}"));
                continue;
            }
            if a.provider != b.provider {
                out.push(format!(
                    "{name}: keystone.conf provider was {}, now {}",
                    a.provider.as_deref().unwrap_or("?"),
                    b.provider.as_deref().unwrap_or("?")
                ));
            }
            if a.jws.private_fingerprint != b.jws.private_fingerprint {
                out.push(format!(
                    "{name}: private.pem {}",
                    match (&a.jws.private_fingerprint, &b.jws.private_fingerprint) {
                        (None, Some(_)) => "appeared".to_string(),
                        (Some(_), None) => "is GONE".to_string(),
                        _ => "changed".to_string(),
                    }
                ));
            }
            if a.fernet.fingerprint != b.fernet.fingerprint {
                out.push(format!("{name}: the Fernet repository changed"));
            }
            if a.service_up != b.service_up {
                out.push(format!(
                    "{name}: keystone was {}, now {}",
                    if a.service_up { "up" } else { "down" },
                    if b.service_up { "up" } else { "down" }
                ));
            }
        }
        if let Some(rows) = &fresh.lb {
            for r in rows.iter().filter(|r| &r.node == name) {
                if let Some(old) = was.lb.get(&r.lb)
                    && (old.admin != r.admin || old.status != r.status)
                {
                    let hint = if old.admin != r.admin && r.admin == super::facts::AdminState::Ready
                    {
                        " (an HAProxy reload without a server-state file puts drained servers back)"
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
    }
    for e in &fresh.lb_errors {
        out.push(format!("load balancer not readable now: {e}"));
    }
    out
}
