//! The words the screens share: short action names, a node's activity as a verb, an op's label,
//! plurals, replay speeds, load-balancer column headers. The view's panes and the details popup
//! both take them from here (neither imports the other for them).

use super::text::{trunc_left, width};
use crate::engine::State;
use crate::engine::action;
use crate::engine::facts::ReloadVerdict;
use crate::engine::plan::{Op, OpKind};

/// `keystone.set_provider` → `set_provider`: the action's short label from its family's words
/// ([`action::words`]); gates keep their name; short enough for 80 columns. A name no family
/// knows (a journal of a newer cutover) loses only its `keystone.` prefix.
pub(super) fn short_action(a: &str) -> String {
    if let Some(g) = a.strip_prefix("gate ") {
        let g = match g {
            "fernet-keys-everywhere" => "fernet-keys",
            "validated-before-readd" => "validated",
            other => other,
        };
        return format!("gate {g}");
    }
    action::words(a)
        .map(|w| w.short.to_string())
        .unwrap_or_else(|| a.strip_prefix("keystone.").unwrap_or(a).to_string())
}

/// What a node is doing, as a verb (its action's words; an unknown name as it is).
pub(super) fn activity_verb(a: &str) -> &str {
    action::words(a).map(|w| w.verb).unwrap_or(a)
}

pub(super) fn op_label(op: &Op) -> String {
    let node = op
        .node
        .as_deref()
        .map(|n| format!(" {n}"))
        .unwrap_or_default();
    match &op.kind {
        OpKind::Act { action, specs } => {
            if specs.len() > 1 {
                format!("{action} ×{}", specs.len())
            } else {
                let n = specs
                    .first()
                    .and_then(|s| s.node())
                    .map(|n| format!(" {n}"))
                    .unwrap_or(node);
                format!("{action}{n}")
            }
        }
        OpKind::Gate { gate, .. } => format!("gate {}{node}", gate.name()),
        OpKind::Confirm { id, .. } => format!("hard stop {id}"),
        OpKind::Note { .. } => "note".into(),
        OpKind::WaitUntil { .. } => "wait until old tokens expire".into(),
    }
}

pub(super) fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

pub(super) fn speed_label(s: f64) -> String {
    if s >= 1.0 {
        format!("{}", s as u64)
    } else {
        format!("1/{}", (1.0 / s).round() as u64)
    }
}

/// A load balancer's reload marker, from its config as the last full probe read it:
/// `⚠reload` when a reload there puts drained servers back, `?reload` when its config was not
/// read. Nothing when a reload keeps MAINT (if the state is saved first), or when nothing was
/// read yet (a replay of an older journal).
pub(super) fn reload_mark(st: &State, lb: &str) -> Option<&'static str> {
    match st.lb_reload.get(lb)?.verdict() {
        ReloadVerdict::Loses => Some("⚠reload"),
        ReloadVerdict::Unknown => Some("?reload"),
        ReloadVerdict::KeepsIfSaved => None,
    }
}

/// A load-balancer column's header in `cw` cells: `haproxy-1 ⚠reload` when both fit, else
/// `⚠` and the name cut from the left.
pub(super) fn lb_header(
    name: &str,
    mark: Option<&str>,
    cw: usize,
) -> (String, Option<(String, bool)>) {
    match mark {
        None => (trunc_left(name, cw), None),
        Some(m) if width(name) + 1 + width(m) <= cw => {
            (name.to_string(), Some((format!(" {m}"), false)))
        }
        Some(m) => {
            let first: String = m.chars().take(1).collect();
            (trunc_left(name, cw.saturating_sub(1)), Some((first, true)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The labels the screens showed from their own tables before the families had words.
    #[test]
    fn labels_come_from_the_actions_words() {
        for (name, short, verb) in [
            ("lb.drain", "lb.drain", "draining"),
            ("lb.ready", "lb.ready", "re-adding"),
            ("lb.maint", "lb.maint", "back to maint"),
            ("keystone.set_provider", "set_provider", "flipping"),
            ("service.restart", "restart", "restarting"),
            ("keystone.issue_token", "issue_token", "token check"),
            ("keystone.create_jws_keypair", "create_keypair", "keygen"),
            ("keystone.install_jws_keys", "install_keys", "installing"),
            (
                "keystone.distribute_public_keys",
                "copy_pubkeys",
                "copying keys",
            ),
            (
                "keystone.validate_matrix",
                "matrix",
                "keystone.validate_matrix",
            ),
            ("keystone.list_trusts", "list_trusts", "trusts"),
            (
                "keystone.sync_fernet_keys",
                "sync_fernet_keys",
                "keystone.sync_fernet_keys",
            ),
            ("probe", "probe", "probing"),
            ("wait", "wait", "wait"),
            ("shell", "shell", "shell"),
        ] {
            assert_eq!(short_action(name), short, "{name}");
            assert_eq!(activity_verb(name), verb, "{name}");
        }
    }

    #[test]
    fn gates_and_unknown_names_keep_their_words() {
        assert_eq!(
            short_action("gate validated-before-readd"),
            "gate validated"
        );
        assert_eq!(
            short_action("gate fernet-keys-everywhere"),
            "gate fernet-keys"
        );
        assert_eq!(short_action("gate out-of-pool"), "gate out-of-pool");
        assert_eq!(short_action("keystone.teleport"), "teleport");
        assert_eq!(short_action("lb.teleport"), "lb.teleport");
        assert_eq!(activity_verb("keystone.teleport"), "keystone.teleport");
    }
}
