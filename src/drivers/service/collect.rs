//! What is read from a node around a restart: the mark taken just before it, the systemd unit
//! its restart command restarts, and the sections of the script that collects the evidence.

/// The systemd unit `restart` restarts, when it is a `systemctl … restart UNIT` (or
/// `service UNIT restart`) command line, possibly behind `sudo` and after other commands.
pub fn unit_of(restart: &str) -> Option<String> {
    const VERBS: [&str; 6] = [
        "restart",
        "try-restart",
        "reload-or-restart",
        "try-reload-or-restart",
        "condrestart",
        "start",
    ];
    let words: Vec<String> = restart
        .split(|c: char| c.is_whitespace() || c == ';')
        .filter(|w| !w.is_empty())
        .map(|w| w.trim_matches(|c| c == '\'' || c == '"').to_string())
        .collect();
    let base = |w: &str| w.rsplit('/').next().unwrap_or(w).to_string();
    let ends = |w: &str| matches!(w, "&&" | "||" | "|" | "&");
    for (i, w) in words.iter().enumerate() {
        let rest = &words[i + 1..];
        if base(w) == "systemctl" {
            let mut verb = false;
            for a in rest {
                if ends(a) {
                    break;
                }
                if a.starts_with('-') {
                    continue;
                }
                if !verb {
                    if !VERBS.contains(&a.as_str()) {
                        break;
                    }
                    verb = true;
                    continue;
                }
                return Some(a.clone());
            }
        } else if base(w) == "service"
            && let [unit, verb, ..] = rest
            && VERBS.contains(&verb.as_str())
            && !unit.starts_with('-')
        {
            return Some(unit.clone());
        }
    }
    None
}

/// Just before a restart: the node's clock (seconds since the epoch) and its log's size, so
/// that what the service writes after it is known to be what the restart caused.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RestartMark {
    pub epoch: Option<i64>,
    pub log_size: Option<u64>,
}

/// Sections of the evidence script's output: `==cutover-section NAME ARGS` lines start them.
pub const SECTION: &str = "==cutover-section";

/// Split the evidence script's output into (name, args, text) per section.
pub fn sections(out: &str) -> Vec<(String, String, String)> {
    let mut v: Vec<(String, String, String)> = Vec::new();
    for line in out.split_inclusive('\n') {
        if let Some(head) = line.strip_prefix(SECTION) {
            let head = head.trim();
            let (name, args) = head.split_once(' ').unwrap_or((head, ""));
            v.push((name.to_string(), args.to_string(), String::new()));
        } else if let Some(last) = v.last_mut() {
            last.2.push_str(line);
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_of_restart_commands() {
        for (cmd, unit) in [
            ("systemctl restart apache2", Some("apache2")),
            (
                "sudo -n /bin/systemctl --no-block restart keystone.service",
                Some("keystone.service"),
            ),
            (
                "systemctl daemon-reload && systemctl try-restart 'devstack@keystone'",
                Some("devstack@keystone"),
            ),
            ("service apache2 restart", Some("apache2")),
            (
                "systemctl is-active apache2; /usr/local/bin/restart-keystone",
                None,
            ),
            ("docker restart keystone", None),
            ("/w/node1/bin/keystone-restart", None),
            ("systemctl restart", None),
        ] {
            assert_eq!(unit_of(cmd).as_deref(), unit, "{cmd}");
        }
    }

    #[test]
    fn splits_sections() {
        let out = "==cutover-section journal keystone\nline a\n==cutover-section log since\nx\ny\n";
        assert_eq!(
            sections(out),
            vec![
                ("journal".into(), "keystone".into(), "line a\n".into()),
                ("log".into(), "since".into(), "x\ny\n".into()),
            ]
        );
    }
}
