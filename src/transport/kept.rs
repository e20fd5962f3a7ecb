//! The kept-shell protocol, spoken by both transports: one `sh` kept open runs reads one after
//! another, so a read costs a few bytes on an open pipe or channel instead of a new process or
//! session (`ssh/kept.rs` over an SSH channel, `local.rs` over a child's pipes).
//!
//! Each request is one line the shell reads from its stdin:
//! `( eval 'CMD' ) </dev/null; printf '\nMARK %s\n' "$?"; printf '\nMARK\n' >&2`, with a
//! fresh random MARK. The command runs in a subshell with no stdin (so it cannot read the
//! requests behind it, and nothing it sets or changes outlives it), and the answer is what
//! came on stdout and stderr before MARK. Anything unexpected (the shell gone, a marker cut
//! short, too much output) drops the kept shell; the caller then runs the command the ordinary
//! way, which is safe because only reads come here.

use super::command::{ExecOutput, MAX_OUTPUT, shell_quote};

/// What a request to a kept shell came to.
pub(crate) enum Kept {
    /// The command ran: its exit status, stdout and stderr (each bounded).
    Ran {
        status: i32,
        stdout: Vec<u8>,
        stderr: Vec<u8>,
    },
    /// The deadline passed first; the shell was closed (it may still be running the command).
    TimedOut,
    /// The shell could not be used (gone, refused, output out of frame): run it elsewhere.
    Unusable,
}

impl Kept {
    /// The command's output when it ran (taking `duration`), else what came instead.
    pub(crate) fn output(self, duration: std::time::Duration) -> Result<ExecOutput, Kept> {
        match self {
            Kept::Ran {
                status,
                stdout,
                stderr,
            } => Ok(ExecOutput {
                status,
                signal: None,
                stdout,
                stderr,
                duration,
            }),
            other => Err(other),
        }
    }
}

/// One request: the line to write to the shell, and its answer as it comes.
pub(crate) struct Request {
    /// What to write to the shell's stdin.
    pub line: String,
    out_mark: String,
    err_mark: String,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    /// Where the next look for each marker starts (what was searched stays searched).
    out_from: usize,
    err_from: usize,
    status: Option<(usize, i32)>,
    err_end: Option<usize>,
}

impl Request {
    /// A request to run `cmd` (a shell command line, already wrapped for sudo if asked).
    pub(crate) fn new(cmd: &str) -> Request {
        let mark = format!("__cutover_{}__", uuid::Uuid::new_v4().simple());
        Request {
            line: format!(
                "( eval {} ) </dev/null; printf '\\n%s %s\\n' {mark} \"$?\"; printf '\\n%s\\n' {mark} >&2\n",
                shell_quote(cmd)
            ),
            out_mark: format!("\n{mark} "),
            err_mark: format!("\n{mark}\n"),
            stdout: Vec::new(),
            stderr: Vec::new(),
            out_from: 0,
            err_from: 0,
            status: None,
            err_end: None,
        }
    }

    /// Bytes that came on the shell's stdout.
    pub(crate) fn stdout(&mut self, data: &[u8]) {
        self.stdout.extend_from_slice(data);
        if self.status.is_none() {
            match exit_status(&self.stdout[self.out_from..], &self.out_mark) {
                Ok(Some((at, status))) => self.status = Some((self.out_from + at, status)),
                // The marker came but not its whole line: look there again next time.
                Ok(None) => {}
                Err(at) => self.out_from += at,
            }
        }
    }

    /// Bytes that came on the shell's stderr.
    pub(crate) fn stderr(&mut self, data: &[u8]) {
        self.stderr.extend_from_slice(data);
        if self.err_end.is_none() {
            match find(&self.stderr[self.err_from..], self.err_mark.as_bytes()) {
                Some(at) => self.err_end = Some(self.err_from + at),
                None => {
                    self.err_from = self
                        .stderr
                        .len()
                        .saturating_sub(self.err_mark.len())
                        .max(self.err_from)
                }
            }
        }
    }

    /// Both markers came: the answer is whole.
    pub(crate) fn done(&self) -> bool {
        self.status.is_some() && self.err_end.is_some()
    }

    /// Far more than a read prints: out of frame (an ordinary exec bounds it).
    pub(crate) fn out_of_frame(&self) -> bool {
        self.stdout.len() > MAX_OUTPUT + 4096 || self.stderr.len() > MAX_OUTPUT + 4096
    }

    /// The answer, once [`Request::done`]: exit status, stdout and stderr, each bounded.
    pub(crate) fn answer(self) -> Kept {
        let (Some((out_end, status)), Some(err_end)) = (self.status, self.err_end) else {
            return Kept::Unusable;
        };
        let bounded = |b: &[u8]| b[..b.len().min(MAX_OUTPUT)].to_vec();
        Kept::Ran {
            status,
            stdout: bounded(&self.stdout[..out_end]),
            stderr: bounded(&self.stderr[..err_end]),
        }
    }
}

/// Where `needle` starts in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(hay, needle)
}

/// In `stdout` (from where the last look ended): the end of the command's output and its exit
/// status once `\nMARK STATUS\n` has come whole (`Ok(Some)`), `Ok(None)` when the marker came
/// at 0 but not its line's end, `Err(k)` when it has not come: the next look starts at `k`.
fn exit_status(stdout: &[u8], out_mark: &str) -> Result<Option<(usize, i32)>, usize> {
    let Some(at) = find(stdout, out_mark.as_bytes()) else {
        // A marker cut by the chunk's end starts within its length of the end.
        return Err(stdout.len().saturating_sub(out_mark.len()));
    };
    let rest = &stdout[at + out_mark.len()..];
    let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
        return if at == 0 { Ok(None) } else { Err(at) };
    };
    let status = std::str::from_utf8(&rest[..nl])
        .ok()
        .and_then(|s| s.trim().parse().ok());
    match status {
        Some(s) => Ok(Some((at, s))),
        // Not a status: not our line after all; look past it.
        None => Err(at + 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request and its marker's text.
    fn req() -> (Request, String) {
        let r = Request::new("true");
        let mark = r.out_mark.trim().to_string();
        (r, mark)
    }

    #[test]
    fn the_status_line_ends_the_output_and_only_a_whole_one_counts() {
        let m = "\n__cutover_x__ ";
        assert_eq!(
            exit_status(b"hello\n\n__cutover_x__ 3\n", m),
            Ok(Some((6, 3)))
        );
        assert_eq!(exit_status(b"\n__cutover_x__ 0\n", m), Ok(Some((0, 0))));
        // Not yet whole: wait for more, looking again from the marker.
        assert_eq!(exit_status(b"hello\n\n__cutover_x__ 1", m), Err(6));
        assert_eq!(exit_status(b"\n__cutover_x__ 1", m), Ok(None));
        assert!(matches!(exit_status(b"hello\n\n__cutover_", m), Err(k) if k <= 6));
    }

    /// The answer is found however the bytes are cut, and each byte is searched a bounded
    /// number of times (a long output in many chunks is not searched from its start each time).
    #[test]
    fn an_answer_cut_anywhere_comes_whole() {
        for cut in 1..40 {
            let (mut r, mark) = req();
            let out = format!("line one\nline two\n\n{mark} 7\n");
            let err = format!("warn\n\n{mark}\n");
            for chunk in out.as_bytes().chunks(cut) {
                r.stdout(chunk);
            }
            assert!(!r.done(), "stderr's marker has not come");
            for chunk in err.as_bytes().chunks(cut) {
                r.stderr(chunk);
            }
            assert!(r.done(), "cut {cut}");
            match r.answer() {
                Kept::Ran {
                    status,
                    stdout,
                    stderr,
                } => {
                    assert_eq!(status, 7);
                    assert_eq!(stdout, b"line one\nline two\n");
                    assert_eq!(stderr, b"warn\n");
                }
                _ => panic!("cut {cut}: not whole"),
            }
        }
        // A long output in small chunks: the look resumes near the end every time.
        let (mut r, _) = req();
        for _ in 0..10_000 {
            r.stdout(b"0123456789abcdef");
            assert!(r.out_from + r.out_mark.len() + 16 >= r.stdout.len());
        }
    }
}
