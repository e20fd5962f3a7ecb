//! Who did it: the identity journaled with every record and with every hard-stop decision.
//!
//! The type lives in the engine ([`crate::engine::who`]), which carries it in its events; reading
//! it from the process is IO, so that part is here.

pub use crate::engine::who::Who;

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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_never_empty() {
        let who = Who::current();
        assert!(!who.user.is_empty());
        assert!(!who.actor_label().is_empty());
    }
}
