//! The session's loop: outcomes, the pool guard's breaches, the operator's requests (the UI's,
//! or signals and an answers file headless) until the run completes, pauses, halts or quits.

use super::signals::{Signals, Stop, detach_from_terminal, die_of, signal_name};
use super::{CommandError, Control, Request, RunEnd, Session};
use crate::engine::events::Command;
use crate::engine::impact::ImpactReason;
use crate::engine::state::RunStatus;
use crate::sanitize::for_terminal;
use anyhow::{Result, anyhow};

impl Session {
    /// Drive the run until it completes, pauses, halts, or the operator quits. The
    /// client-impact meter runs as long as this does and stops with it, whatever ends it.
    pub async fn drive(&mut self, control: &mut Control) -> Result<RunEnd> {
        let end = self.drive_run(control).await;
        let stopped = self.end_metering();
        let end = end?;
        stopped?;
        Ok(end)
    }

    async fn drive_run(&mut self, control: &mut Control) -> Result<RunEnd> {
        if let Some(rs) = self.pending_start.take() {
            self.command(Command::Start(Box::new(rs)))?;
        }
        // The pool guard runs as long as this session drives the run.
        struct Abort(tokio::task::JoinHandle<()>);
        impl Drop for Abort {
            fn drop(&mut self) {
                self.0.abort();
            }
        }
        let _guard = Abort(crate::drivers::lb::guard::spawn(
            self.fleet.clone(),
            self.state.guard_mode(),
            self.breach_tx.clone(),
        ));
        let mut quitting = false;
        // Headless runs stop at the next safe point when their terminal hangs up, as the UI
        // does (its own loop watches for the hangup and says so with `Request::HangUp`), and on
        // the first SIGINT/SIGTERM as the UI's `q` does; a second SIGINT/SIGTERM stops now.
        let mut signals = match control {
            Control::Headless { .. } => match self.signals.take() {
                Some(s) => Some(s),
                None => Some(Signals::watch()?),
            },
            Control::Ui(_) => None,
        };
        if self.stopped_before_resume {
            return Ok(match self.state.status {
                RunStatus::Halted { .. } => RunEnd::Halted,
                RunStatus::Completed => RunEnd::Completed,
                _ => RunEnd::Paused,
            });
        }
        self.start_meter()?;
        let every = super::meter::SUMMARY_EVERY;
        let mut summary_tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        let mut hung_up = false;
        let mut interrupted = false;
        loop {
            let metering = self.metering();
            // In-doubt intents are not running: they wait for a person.
            let in_flight = self.state.running() > 0;
            match (&self.state.status, &*control) {
                (RunStatus::Completed, Control::Headless { .. }) if !in_flight => {
                    return Ok(RunEnd::Completed);
                }
                (RunStatus::Halted { .. }, Control::Headless { .. }) if !in_flight => {
                    return Ok(RunEnd::Halted);
                }
                (RunStatus::Paused { .. }, Control::Headless { .. }) if !in_flight => {
                    return Ok(RunEnd::Paused);
                }
                (RunStatus::AwaitingConfirm, Control::Headless { answers }) if !in_flight => {
                    let hs = self.state.hard_stop.clone().expect("awaiting a hard stop");
                    let answer = hs.stop_key().lookup(answers).cloned();
                    let who = self.who.clone();
                    match answer.as_deref() {
                        Some("confirm") => self.command(Command::Confirm {
                            id: hs.id.clone(),
                            who,
                        })?,
                        Some("mark-done") if hs.in_doubt.is_some() => {
                            self.command(Command::MarkDone {
                                id: hs.id.clone(),
                                who,
                            })?
                        }
                        Some("decline") => {
                            self.command(Command::Decline {
                                id: hs.id.clone(),
                                who,
                            })?;
                            return Ok(RunEnd::Paused);
                        }
                        _ => {
                            if self.print {
                                println!(
                                    "paused at hard stop `{}`: {} — no answer for it; resume with an answers file or in the UI",
                                    for_terminal(&hs.id),
                                    for_terminal(&hs.title)
                                );
                            }
                            return Ok(RunEnd::Paused);
                        }
                    }
                    continue;
                }
                (status, Control::Ui(_)) if quitting && !in_flight => {
                    // The terminal hung up and what it waited for brought a hard stop nobody
                    // can answer now: the run pauses there, and the journal says why.
                    if hung_up && *status == RunStatus::AwaitingConfirm {
                        let who = self.who.clone();
                        self.command(Command::HangUp { who })?;
                    }
                    // The action waited for may have failed: a halted run says so (exit 4).
                    return Ok(match self.state.status {
                        RunStatus::Completed => RunEnd::Completed,
                        RunStatus::Halted { .. } => RunEnd::Halted,
                        _ => RunEnd::Quit,
                    });
                }
                _ => {}
            }
            // Wait for an outcome or, in the UI, a request.
            match control {
                Control::Headless { .. } => {
                    let stop = async {
                        match signals.as_mut() {
                            Some(s) => s.recv().await,
                            None => std::future::pending().await,
                        }
                    };
                    tokio::select! {
                        o = self.outcomes_rx.recv() => {
                            let Some(o) = o else {
                                return Err(anyhow!("effect channel closed"));
                            };
                            self.command(Command::Completed(o))?;
                        }
                        Some(b) = self.breach_rx.recv() => self.command(Command::Breach(b))?,
                        _ = summary_tick.tick(), if metering => self.meter_summary(ImpactReason::Periodic)?,
                        stop = stop => match stop {
                            Stop::HangUp if hung_up => {}
                            Stop::HangUp => {
                                hung_up = true;
                                // Nothing more reaches a terminal that is gone (a write there
                                // fails, and a failed print would end the run mid-action).
                                detach_from_terminal();
                                let who = self.who.clone();
                                self.command(Command::HangUp { who })?;
                            }
                            Stop::Signal(sig) if interrupted => die_of(sig, self.journal.path()),
                            Stop::Signal(sig) => {
                                // As the UI's `q`: the operator's pause, journaled; the action
                                // in flight finishes (it is not killed with cutover, a local one
                                // runs in a process group of its own), then the session ends.
                                interrupted = true;
                                let again = match sig {
                                    nix::sys::signal::Signal::SIGINT => "Ctrl-C",
                                    _ => "SIGTERM or Ctrl-C",
                                };
                                if in_flight {
                                    eprintln!(
                                        "cutover: {}: pausing after the action in flight ({again} again to stop now)",
                                        signal_name(sig)
                                    );
                                } else {
                                    eprintln!("cutover: {}: pausing", signal_name(sig));
                                }
                                let who = self.who.clone();
                                self.command(Command::Pause { who })?;
                            }
                        },
                    }
                }
                Control::Ui(rx) => {
                    tokio::select! {
                        Some(o) = self.outcomes_rx.recv() => self.command(Command::Completed(o))?,
                        Some(b) = self.breach_rx.recv() => self.command(Command::Breach(b))?,
                        _ = summary_tick.tick(), if metering => self.meter_summary(ImpactReason::Periodic)?,
                        // Once quitting (or the UI is gone), only outcomes are awaited.
                        req = rx.recv(), if !quitting => {
                            let who = self.who.clone();
                            match req {
                                None | Some(Request::Quit) => {
                                    if !in_flight {
                                        return Ok(match self.state.status { RunStatus::Completed => RunEnd::Completed, RunStatus::Halted { .. } => RunEnd::Halted, _ => RunEnd::Quit });
                                    }
                                    quitting = true;
                                    if self.state.can_pause().is_ok() {
                                        self.command(Command::Pause { who })?;
                                    }
                                }
                                Some(Request::Confirm { id }) => self.try_command(Command::Confirm { id, who })?,
                                Some(Request::Decline { id }) => self.try_command(Command::Decline { id, who })?,
                                Some(Request::MarkDone { id }) => self.try_command(Command::MarkDone { id, who })?,
                                Some(Request::Pause) => self.try_command(Command::Pause { who })?,
                                Some(Request::HangUp) => {
                                    // The UI restored what it could and stopped drawing; the
                                    // action in flight finishes, then the session ends paused.
                                    quitting = true;
                                    hung_up = true;
                                    self.command(Command::HangUp { who })?;
                                }
                                Some(Request::Continue) => {
                                    // Effects still running belong to this session: continuing
                                    // now would count them in doubt and start them twice.
                                    if self.state.can_continue().is_ok() {
                                        self.continue_run().await?;
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// A request the engine may refuse (a stale key press: the hard stop was answered, the run
    /// paused meanwhile): a refusal changes nothing and is not an error; the UI shows the state
    /// as it is. A decision that could not be journaled is, and ends the session.
    fn try_command(&mut self, cmd: Command) -> Result<()> {
        match self.command(cmd) {
            Ok(()) => Ok(()),
            Err(CommandError::Refused(e)) => {
                if self.print {
                    eprintln!("{}", crate::sanitize::for_terminal_block(&e.to_string()));
                }
                Ok(())
            }
            Err(e @ CommandError::Journal(_)) => Err(e.into()),
        }
    }
}
