//! Who did it: the identity journaled with every record and with every hard-stop decision.

use serde::{Deserialize, Serialize};

/// The operator behind an action, as far as the process can tell.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Who {
    /// The effective user (root under sudo).
    pub user: String,
    /// The user who ran sudo, if any: the person, when `user` is only the account.
    pub sudo_user: Option<String>,
    /// The SSH client address, from the first field of `SSH_CONNECTION`.
    pub ssh_client: Option<String>,
    /// The terminal on stdin, if it is one.
    pub tty: Option<String>,
    pub host: String,
}

impl Who {
    /// The current process's operator: user from the effective uid (getpwuid), falling back to
    /// `$USER`; `SUDO_USER`; `SSH_CONNECTION`'s client address; stdin's tty; the host name.
    pub fn current() -> Who {
        let euid = nix::unistd::geteuid();
        // An empty name makes `from_env` fall back to $USER (e.g. a uid with no passwd entry in
        // a container).
        let uid_user = nix::unistd::User::from_uid(euid)
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_default();
        let stdin = std::io::stdin();
        let tty = match nix::unistd::isatty(&stdin) {
            Ok(true) => nix::unistd::ttyname(&stdin)
                .ok()
                .map(|p| p.display().to_string()),
            _ => None,
        };
        let host = nix::sys::utsname::uname()
            .map(|u| u.nodename().to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut who = Who::from_env(|k| std::env::var(k).ok(), uid_user, tty, host);
        if who.user.is_empty() {
            who.user = format!("uid{euid}");
        }
        who
    }

    /// Builds a `Who` from explicit inputs (tests, or a caller that knows better).
    ///
    /// `uid_user` is the effective user's name; when empty, `$USER` is used. Empty environment
    /// values count as absent.
    pub fn from_env(
        getenv: impl Fn(&str) -> Option<String>,
        uid_user: String,
        tty: Option<String>,
        host: String,
    ) -> Who {
        let var = |k: &str| getenv(k).filter(|v| !v.trim().is_empty());
        let user = if uid_user.is_empty() {
            var("USER").unwrap_or_default()
        } else {
            uid_user
        };
        let ssh_client = var("SSH_CONNECTION")
            .or_else(|| var("SSH_CLIENT"))
            .and_then(|v| v.split_whitespace().next().map(str::to_string));
        Who {
            user,
            sudo_user: var("SUDO_USER"),
            ssh_client,
            tty: tty.filter(|t| !t.is_empty()),
            host,
        }
    }

    /// `user@host`, or `sudo_user(as user)@host` under sudo (`alice(as root)@bastion1`): the
    /// person first, because "root did it" names nobody.
    pub fn actor_label(&self) -> String {
        let who = match &self.sudo_user {
            Some(person) if *person != self.user => format!("{person}(as {})", self.user),
            _ => self.user.clone(),
        };
        if self.host.is_empty() {
            who
        } else {
            format!("{who}@{}", self.host)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    }

    #[test]
    fn sudo_over_ssh() {
        let who = Who::from_env(
            env(&[
                ("SUDO_USER", "alice"),
                ("SSH_CONNECTION", "10.0.0.7 52144 10.0.0.2 22"),
                ("USER", "root"),
            ]),
            "root".into(),
            Some("/dev/pts/3".into()),
            "bastion1".into(),
        );
        assert_eq!(who.ssh_client.as_deref(), Some("10.0.0.7"));
        assert_eq!(who.actor_label(), "alice(as root)@bastion1");
    }

    #[test]
    fn plain_user_and_user_fallback() {
        let who = Who::from_env(env(&[("USER", "bob")]), String::new(), None, "h".into());
        assert_eq!(who.actor_label(), "bob@h");
        assert_eq!(who.sudo_user, None);
        assert_eq!(who.ssh_client, None);
    }

    #[test]
    fn current_never_empty() {
        let who = Who::current();
        assert!(!who.user.is_empty());
        assert!(!who.actor_label().is_empty());
    }
}
