//! What every transport speaks: a command's options and output, the errors of reaching a host,
//! and the shell quoting and redaction that go with commands and their output.

use std::time::Duration;

/// What a command did on a host. stdout/stderr are bounded by the transport (see `MAX_OUTPUT`).
#[derive(Debug, Clone, Default)]
pub struct ExecOutput {
    /// The exit status; for a command killed by a signal, 128 + the signal's number (as a shell
    /// reports it), with the signal in `signal`.
    pub status: i32,
    /// The signal that killed the command, if one did (its number, e.g. 9 for SIGKILL).
    pub signal: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub duration: Duration,
}

impl ExecOutput {
    /// How the command ended, for messages: `exited 3`, or `killed by SIGHUP` for a signal
    /// death (never the shell's 128 + N, which reads like an exit code the command chose).
    pub fn exit_text(&self) -> String {
        match self.signal {
            Some(sig) => format!("killed by {}", signal_name(sig)),
            None => format!("exited {}", self.status),
        }
    }

    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    pub fn stderr_str(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
    /// The last non-empty line of stderr, for one-line error messages. Never stdout: stdout of
    /// some commands carries key material (a Fernet dump, a config file). Credentials in URLs
    /// are masked.
    pub fn last_line(&self) -> String {
        let err = self.stderr_str();
        let line = err
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim();
        if line.is_empty() {
            format!("{}, no error output", self.exit_text())
        } else {
            redact(line)
        }
    }
}

/// A signal's name (`SIGKILL`) from its number; `signal 77` for a number this system does not name.
pub fn signal_name(sig: i32) -> String {
    match nix::sys::signal::Signal::try_from(sig) {
        Ok(s) => s.as_str().to_string(),
        Err(_) => format!("signal {sig}"),
    }
}

/// Output beyond this many bytes per stream is dropped (the head is kept).
pub const MAX_OUTPUT: usize = 1 << 20;

#[derive(Debug, Clone)]
pub struct ExecOpts {
    pub stdin: Option<Vec<u8>>,
    pub timeout: Duration,
    /// Run through `sudo -n` (never prompts; a missing sudoers rule fails fast and says so).
    pub sudo: bool,
}

impl Default for ExecOpts {
    fn default() -> Self {
        ExecOpts {
            stdin: None,
            timeout: Duration::from_secs(60),
            sudo: false,
        }
    }
}

#[derive(Debug, thiserror::Error, Clone)]
pub enum TransportError {
    #[error("cannot connect to {host}: {msg}")]
    Connect { host: String, msg: String },
    #[error(
        "host key for {host} has CHANGED (now {fingerprint}); refusing to continue. If the change is expected, remove the old entry from {known_hosts} (ssh-keygen -R) and re-run"
    )]
    HostKeyChanged {
        host: String,
        fingerprint: String,
        known_hosts: String,
    },
    #[error("host {host} is not in known_hosts (key {fingerprint})")]
    HostKeyUnknown {
        host: String,
        port: u16,
        fingerprint: String,
        key_openssh: String,
    },
    #[error("authentication to {host} failed: {msg}")]
    Auth { host: String, msg: String },
    #[error("{what} on {host} timed out after {secs}s")]
    Timeout {
        host: String,
        what: String,
        secs: u64,
    },
    #[error("{host}: {msg}")]
    Io { host: String, msg: String },
}

/// Mask `scheme://user:password@` credentials in a line of output (a database URL in a log).
pub fn redact(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c.is_whitespace() || c == '/' || c == '"' || c == '\'')
            .unwrap_or(tail.len());
        match tail[..end].rfind('@') {
            Some(at) => {
                out.push_str("***");
                out.push_str(&tail[at..end]);
            }
            None => out.push_str(&tail[..end]),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// Shell that writes the command's stdin to `file` (a shell word, e.g. `"$t"`) and fails
/// unless it received all of `content`: when the sender dies or the connection drops
/// mid-write, the remote `cat` sees an ordinary end of input, and the truncated file must not
/// be renamed over anything. (The length is the check: the transport itself, SSH's MAC or a
/// local pipe, does not alter bytes; it can only stop early.) On a short or long input it
/// removes `file`, says so on stderr and exits 1 (the script's next command never runs).
pub fn receive_stdin(file: &str, content: &[u8]) -> String {
    let want = content.len();
    format!(
        "{{ cat > {file} && [ $(($(wc -c < {file}))) -eq {want} ]; }} || \
         {{ rm -f -- {file}; echo 'cutover: the input was incomplete ({want} bytes were sent; did the sender stop mid-write?): nothing was replaced' >&2; exit 1; }}"
    )
}

/// Quote a string for a POSIX shell: single quotes, with embedded single quotes closed and escaped.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-:=@%+,".contains(c))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::shell_quote;

    #[test]
    fn redacts_url_credentials_and_reads_only_stderr() {
        assert_eq!(
            super::redact("ERROR Could not parse mysql+pymysql://keystone:s3cret@db/keystone now"),
            "ERROR Could not parse mysql+pymysql://***@db/keystone now"
        );
        assert_eq!(
            super::redact("GET http://10.0.0.1:5000/v3"),
            "GET http://10.0.0.1:5000/v3"
        );
        let out = super::ExecOutput {
            status: 3,
            stdout: b"==key 0\nc2VjcmV0a2V5\n".to_vec(),
            stderr: vec![],
            ..Default::default()
        };
        assert_eq!(out.last_line(), "exited 3, no error output");
    }

    #[test]
    fn a_signal_death_is_named_not_a_128_plus_n_exit() {
        let killed = |sig: i32| super::ExecOutput {
            status: 128 + sig,
            signal: Some(sig),
            ..Default::default()
        };
        assert_eq!(killed(9).exit_text(), "killed by SIGKILL");
        assert_eq!(killed(1).exit_text(), "killed by SIGHUP");
        assert_eq!(killed(15).exit_text(), "killed by SIGTERM");
        assert_eq!(killed(9).last_line(), "killed by SIGKILL, no error output");
        // A command that chose to exit 137 exited 137: only a signal is named as one.
        let chose = super::ExecOutput {
            status: 137,
            ..Default::default()
        };
        assert_eq!(chose.exit_text(), "exited 137");
        assert_eq!(super::signal_name(200), "signal 200");
    }

    #[test]
    fn quotes_only_when_needed() {
        assert_eq!(
            shell_quote("/etc/keystone/keystone.conf"),
            "/etc/keystone/keystone.conf"
        );
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    /// What a killed sender or a dropped connection leaves the remote side: an ordinary end of
    /// input after part of the content. Nothing may be renamed over the target then.
    #[test]
    fn a_cut_input_is_refused_and_removed() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("keystone.conf");
        std::fs::write(&target, "old\n").unwrap();
        let content = b"[token]\nprovider = jws\n".repeat(100);
        let script = format!(
            "set -e; t={}.new; {}; mv -f \"$t\" {}",
            shell_quote(&target.to_string_lossy()),
            super::receive_stdin("\"$t\"", &content),
            shell_quote(&target.to_string_lossy())
        );
        let run = |input: &[u8]| {
            let mut child = std::process::Command::new("sh")
                .args(["-c", &script])
                .stdin(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            child.stdin.take().unwrap().write_all(input).unwrap();
            child.wait_with_output().unwrap()
        };
        for cut in [0, 1, content.len() / 2, content.len() - 1] {
            let out = run(&content[..cut]);
            assert_eq!(out.status.code(), Some(1), "cut at {cut}");
            assert!(String::from_utf8_lossy(&out.stderr).contains("incomplete"));
            assert_eq!(std::fs::read(&target).unwrap(), b"old\n", "cut at {cut}");
            assert!(!dir.path().join("keystone.conf.new").exists());
        }
        let mut longer = content.clone();
        longer.push(b'x');
        assert_eq!(run(&longer).status.code(), Some(1));
        assert!(run(&content).status.success());
        assert_eq!(std::fs::read(&target).unwrap(), content);
    }
}
