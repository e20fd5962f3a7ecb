//! The runtime: appends what the engine decides to the journal (fsynced before any effect
//! runs), runs effects on tokio tasks through the drivers and feeds their outcomes back. It owns
//! no rules: every decision is `engine::decide`'s.

use crate::drivers::Fleet;
use crate::engine::events::{Command, Event, Outcome, RunStarted};
use crate::engine::state::{RunStatus, State};
use crate::engine::{self, decide};
use crate::journal::{self, Entry, Journal, Who};
use crate::sanitize::for_terminal;
use anyhow::{Context, Result, anyhow};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::{mpsc, watch};

pub mod fleet_lock;

/// What the operator asked for in the UI; the runtime turns these into engine commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Confirm {
        id: String,
    },
    Decline {
        id: String,
    },
    MarkDone {
        id: String,
    },
    Pause,
    Continue,
    Quit,
    /// The operator's terminal went away (SIGHUP, or EOF/EIO on it): the UI has stopped
    /// drawing; the run pauses at the next safe point and the session ends.
    HangUp,
}

/// How a run ended, mapped to the exit codes the README documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEnd {
    Completed,
    Paused,
    Halted,
    Quit,
}

impl RunEnd {
    pub fn exit_code(self) -> i32 {
        match self {
            RunEnd::Completed => 0,
            RunEnd::Paused | RunEnd::Quit => 3,
            RunEnd::Halted => 4,
        }
    }
}

/// Answers for headless runs: hard-stop id → confirm | decline | mark-done.
pub type Answers = BTreeMap<String, String>;

pub fn load_answers(path: &Path) -> Result<Answers> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read answers file {}", path.display()))?;
    let a: Answers = serde_yaml::from_str(&text).map_err(|e| {
        anyhow!(
            "{}: {}",
            crate::inventory::location(&path.display().to_string(), &e),
            e
        )
    })?;
    for (k, v) in &a {
        if !["confirm", "decline", "mark-done"].contains(&v.as_str()) {
            return Err(anyhow!(
                "{}: hard stop `{k}`: answer `{v}` must be confirm, decline or mark-done",
                path.display()
            ));
        }
    }
    Ok(a)
}

pub enum Control {
    Headless { answers: Answers },
    Ui(mpsc::UnboundedReceiver<Request>),
}

pub struct Session {
    pub journal: Journal,
    pub state: State,
    pub run_id: String,
    pub who: Who,
    pub fleet: Arc<Fleet>,
    /// This run's lock on its fleet: kept through pauses and halts, given back on completion.
    pub fleet_lock: Option<fleet_lock::FleetLock>,
    outcomes_tx: mpsc::UnboundedSender<Outcome>,
    outcomes_rx: mpsc::UnboundedReceiver<Outcome>,
    breach_tx: mpsc::UnboundedSender<crate::engine::events::Breach>,
    breach_rx: mpsc::UnboundedReceiver<crate::engine::events::Breach>,
    pub publish: Option<watch::Sender<Arc<State>>>,
    pub print: bool,
    pending_start: Option<RunStarted>,
    /// Signs each hard-stop confirmation as it is journaled; `None`: recorded unsigned.
    pub signer: Option<Arc<journal::sign::Signer>>,
    /// sha256 of the inventory file's text, recorded in `run_started` (`inventory_sha256`).
    pub inventory_sha256: Option<String>,
    /// What a headless session watches (SIGHUP, SIGINT, SIGTERM): taken before a resume's
    /// fresh probe, kept through `drive`.
    signals: Option<Signals>,
    /// A signal came during a headless resume's fresh probe: the session ends before resuming.
    stopped_before_resume: bool,
    _world: Option<crate::world::WorldHandle>,
}

/// A signal a headless session acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// The terminal hung up (a dropped SSH session).
    HangUp,
    /// Ctrl-C, or SIGTERM (`kill`, a service manager): the operator's request to stop.
    Signal(nix::sys::signal::Signal),
}

/// The signals a headless session watches. Once watched, none of them kills cutover by itself:
/// the session decides (pause after the action in flight; a second SIGINT/SIGTERM stops now).
struct Signals {
    hup: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl Signals {
    fn watch() -> Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            hup: signal(SignalKind::hangup()).context("cannot watch for SIGHUP")?,
            int: signal(SignalKind::interrupt()).context("cannot watch for SIGINT")?,
            term: signal(SignalKind::terminate()).context("cannot watch for SIGTERM")?,
        })
    }

    async fn recv(&mut self) -> Stop {
        use nix::sys::signal::Signal as S;
        tokio::select! {
            _ = self.hup.recv() => Stop::HangUp,
            _ = self.int.recv() => Stop::Signal(S::SIGINT),
            _ = self.term.recv() => Stop::Signal(S::SIGTERM),
        }
    }
}

/// How a signal is named to the operator.
fn signal_name(sig: nix::sys::signal::Signal) -> &'static str {
    match sig {
        nix::sys::signal::Signal::SIGINT => "Ctrl-C (SIGINT)",
        other => other.as_str(),
    }
}

/// A second SIGINT/SIGTERM: stop now, as the signal would have without a handler. The action
/// in flight (a local child runs in a process group of its own) is left to finish or not; its
/// intent is in the journal without an outcome, and the resume asks about it (in doubt).
fn die_of(sig: nix::sys::signal::Signal, journal: &Path) -> ! {
    eprintln!(
        "cutover: {} again: stopping now; an action in flight is left in doubt (`cutover resume {}` asks about it)",
        signal_name(sig),
        journal.display()
    );
    // SAFETY: restoring a signal's default disposition; no handler code of ours runs.
    unsafe {
        let _ = nix::sys::signal::signal(sig, nix::sys::signal::SigHandler::SigDfl);
    }
    let _ = nix::sys::signal::kill(nix::unistd::Pid::this(), sig);
    // Not reached unless the signal is blocked: exit as a shell reports a signal death.
    std::process::exit(128 + sig as i32)
}

/// A mark that a `cutover world serve` process serves a world: `DIR/serve.pid`, removed on drop.
pub struct ServeMark(PathBuf);

impl ServeMark {
    pub fn create(dir: &Path) -> Result<ServeMark> {
        let p = dir.join("serve.pid");
        std::fs::write(&p, std::process::id().to_string())?;
        Ok(ServeMark(p))
    }

    /// Another live process serves this world.
    pub fn served_elsewhere(dir: &Path) -> bool {
        std::fs::read_to_string(dir.join("serve.pid"))
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
            .is_some_and(|pid| {
                pid != std::process::id() as i32
                    && nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
            })
    }
}

impl Drop for ServeMark {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Start the embedded world's stand-ins when an inventory names one (unless `cutover world
/// serve` already serves it). A stopped world whose ports were taken meanwhile moves to free
/// ones; the world's inventory, which then differs from `inv`, is returned to be used instead.
pub async fn world_for(
    inv: &crate::inventory::Inventory,
) -> Result<(
    Option<crate::world::WorldHandle>,
    Option<crate::inventory::Inventory>,
)> {
    match &inv.demo_world {
        Some(dir) if ServeMark::served_elsewhere(dir) => Ok((None, None)),
        Some(dir) => {
            let mut info = crate::world::load(dir)
                .with_context(|| format!("the inventory names demo world {}", dir.display()))?;
            let moved = crate::world::relocate_busy_ports(&mut info)?;
            for m in &moved {
                eprintln!("demo world: {}", for_terminal(m));
            }
            let handle = crate::world::start(&info).await?;
            let current = if moved.is_empty() {
                None
            } else {
                Some(info.inventory()?)
            };
            Ok((Some(handle), current))
        }
        None => Ok((None, None)),
    }
}

impl Session {
    fn new(
        journal: Journal,
        state: State,
        run_id: String,
        mut fleet: Fleet,
        world: Option<crate::world::WorldHandle>,
    ) -> Session {
        let (tx, rx) = mpsc::unbounded_channel();
        let (breach_tx, breach_rx) = mpsc::unbounded_channel();
        fleet.passphrase = Some(tty_passphrase_prompt());
        fleet.set_guarded(&state.guarded);
        Session {
            breach_tx,
            breach_rx,
            journal,
            state,
            run_id,
            who: Who::current(),
            fleet: Arc::new(fleet),
            fleet_lock: None,
            outcomes_tx: tx,
            outcomes_rx: rx,
            publish: None,
            print: false,
            pending_start: None,
            signer: None,
            inventory_sha256: None,
            signals: None,
            stopped_before_resume: false,
            _world: world,
        }
    }

    /// A new run: create the journal, append `run_started`.
    ///
    /// `headless`: SIGHUP, SIGINT and SIGTERM are watched from here on (after the passphrase
    /// prompts, before the journal and the fleet lock), so a signal while the locks are being
    /// taken cannot kill cutover between the lock and `run_started`: the session starts, and its
    /// first turn pauses as the signal asks (exit 3, the run resumable and holding its fleet).
    pub async fn start(
        loaded: &crate::runbook::Loaded,
        inv: crate::inventory::Inventory,
        params: BTreeMap<String, String>,
        journal_path: &Path,
        headless: bool,
    ) -> Result<Session> {
        // Passphrases are asked for before anything is written: a key that cannot be unlocked
        // leaves nothing behind, not even an empty journal.
        let mut lock_fleet = Fleet::new(inv.clone())?;
        lock_fleet.passphrase = Some(tty_passphrase_prompt());
        unlock_keys(&lock_fleet).await?;
        let signals = if headless {
            Some(Signals::watch()?)
        } else {
            None
        };
        let journal = Journal::create(journal_path)
            .with_context(|| format!("cannot create journal {}", journal_path.display()))?;
        if let Some(stale) = journal.stale_lock() {
            eprintln!("cutover: {}", for_terminal(stale));
        }
        let run_id = format!(
            "{}-{}",
            Utc::now().format("%Y%m%dT%H%M%SZ"),
            &uuid::Uuid::new_v4().simple().to_string()[..6]
        );
        // The fleet lock comes before anything on the fleet (or the demo world) changes; a run
        // refused by it leaves nothing behind, not even its empty journal.
        let holder = fleet_lock::Holder::new(&run_id, &inv.cluster, &journal);
        let lock = match fleet_lock::FleetLock::acquire(&lock_fleet, holder).await {
            Ok(lock) => lock,
            Err(e) => {
                let _ = std::fs::remove_file(journal_path);
                return Err(e);
            }
        };
        for u in &lock.unreachable {
            eprintln!("cutover: fleet lock: {}", for_terminal(u));
        }
        let (world, moved) = match world_for(&inv).await {
            Ok(w) => w,
            Err(e) => {
                lock.release(&lock_fleet).await;
                let _ = std::fs::remove_file(journal_path);
                return Err(e);
            }
        };
        let (inv, fleet) = match moved {
            Some(moved) => (moved.clone(), Fleet::new(moved)?),
            None => (inv, lock_fleet),
        };
        let mut s = Session::new(journal, State::default(), run_id.clone(), fleet, world);
        s.fleet_lock = Some(lock);
        s.signals = signals;
        use sha2::Digest;
        let rs = RunStarted {
            schema: engine::events::SCHEMA,
            run_id,
            runbook_name: loaded.runbook.name.clone(),
            runbook_title: loaded.runbook.title.clone(),
            runbook_sha256: hex::encode(sha2::Sha256::digest(loaded.source.as_bytes())),
            runbook_source: loaded.source.clone(),
            runbook_origin: loaded.origin.clone(),
            cluster: inv.cluster.clone(),
            inventory: inv,
            params,
            who: s.who.clone(),
            // Compiled and recorded by the engine when the run starts.
            plan: Vec::new(),
            plan_sha256: String::new(),
            compiled_by: String::new(),
        };
        s.pending_start = Some(rs);
        Ok(s)
    }

    /// Reopen a journal: fold it, re-probe the fleet, record drift, continue.
    pub async fn resume(journal_path: &Path) -> Result<(Session, Vec<String>)> {
        let (journal, read) = Journal::open_for_append(journal_path)
            .with_context(|| format!("cannot open journal {}", journal_path.display()))?;
        let mut notes = Vec::new();
        if let Some(t) = &read.torn_tail {
            notes.push(format!(
                "the journal's last line (line {}) was torn by a crash and has been trimmed",
                t.line_no
            ));
        }
        let state = fold(&read.records)?;
        // This cutover must plan the run as the journal recorded it (else refused, exit 4).
        if let Some(run) = &state.run {
            engine::recorded::check_resumable(run)
                .with_context(|| journal_path.display().to_string())?;
        }
        let run = state
            .run
            .clone()
            .ok_or_else(|| anyhow!("{} has no run_started record", journal_path.display()))?;
        if state.status == RunStatus::Completed {
            return Err(anyhow!(
                "the run in {} has completed; nothing to resume (replay it with `cutover replay`)",
                journal_path.display()
            ));
        }
        if let Some(stale) = journal.stale_lock() {
            notes.push(stale.to_string());
        }
        // The fleet lock before the world starts or anything is probed: the same run's own lock
        // is taken back; another run's (or a copy of this journal's) refuses the resume.
        let mut lock_fleet = Fleet::new(run.inventory.clone())?;
        lock_fleet.passphrase = Some(tty_passphrase_prompt());
        unlock_keys(&lock_fleet).await?;
        let holder = fleet_lock::Holder::new(&run.run_id, &run.cluster, &journal);
        let lock = fleet_lock::FleetLock::acquire(&lock_fleet, holder).await?;
        notes.extend(lock.unreachable.iter().map(|u| format!("fleet lock: {u}")));
        let (world, moved) = world_for(&run.inventory).await?;
        // A demo world that moved to other ports is reached where it is now.
        let fleet = match moved {
            Some(moved) => Fleet::new(moved)?,
            None => lock_fleet,
        };
        let mut s = Session::new(journal, state, run.run_id.clone(), fleet, world);
        s.fleet_lock = Some(lock);
        Ok((s, notes))
    }

    /// Append a decision's events (one fsync) before starting its effects.
    fn record(&mut self, events: Vec<Event>) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let actor = self.who.actor_label();
        let mut entries = Vec::new();
        let mut scratch_step = self.state.current_op().map(|o| o.step.clone());
        for e in &events {
            let step = match e {
                Event::StepStarted { step } | Event::StepCompleted { step } => Some(step.clone()),
                Event::Intent(i) => Some(i.step.clone()),
                _ => scratch_step.clone(),
            };
            if let Event::StepStarted { step } = e {
                scratch_step = Some(step.clone());
            }
            let mut data = e.data();
            if let (Event::RunStarted(_), Some(sha), Some(m)) =
                (e, &self.inventory_sha256, data.as_object_mut())
            {
                m.insert("inventory_sha256".into(), sha.clone().into());
            }
            entries.push(Entry {
                time: Utc::now(),
                run: self.run_id.clone(),
                actor: actor.clone(),
                kind: e.kind().to_string(),
                step,
                node: e.node().map(str::to_string),
                data,
            });
        }
        // A confirmation is signed where its place in the chain (its `prev`) is known.
        let signer = self.signer.clone();
        let records = self
            .journal
            .append_batch_with(entries, |entry, seq, prev| {
                journal::sign::sign_entry(signer.as_deref(), entry, seq, prev)
            })?;
        for (e, r) in events.iter().zip(records.iter()) {
            self.state.apply(e, r.time);
            if self.print {
                print_event(r.time, e, &self.state);
            }
        }
        // Before any effect of this decision starts: a node re-added on purpose is let go, a
        // node just drained is watched.
        self.fleet.set_guarded(&self.state.guarded);
        self.publish_state();
        Ok(())
    }

    pub fn publish_state(&self) {
        if let Some(p) = &self.publish {
            let _ = p.send(Arc::new(self.state.clone()));
        }
    }

    /// Ask the engine, journal its answer, start its effects.
    pub fn command(&mut self, cmd: Command) -> Result<()> {
        let d = decide(&self.state, cmd, Utc::now()).map_err(|e| anyhow!("{e}"))?;
        self.record(d.events)?;
        for eff in d.effects {
            let fleet = self.fleet.clone();
            let tx = self.outcomes_tx.clone();
            tokio::spawn(async move {
                let o = fleet.execute(eff.id, eff.op, &eff.spec).await;
                let _ = tx.send(o);
            });
        }
        Ok(())
    }

    /// Re-probe and continue a paused, halted or interrupted run.
    ///
    /// Headless (`print`): SIGHUP, SIGINT and SIGTERM are watched from before the probe; one
    /// arriving during it ends the session before anything is journaled (the probe only reads;
    /// the run stays as it was, and keeps its fleet lock as a paused run does).
    pub async fn continue_run(&mut self) -> Result<()> {
        if self.print && self.signals.is_none() {
            self.signals = Some(Signals::watch()?);
        }
        let fleet = self.fleet.clone();
        let probe = crate::drivers::full_probe(&fleet, false);
        let probed = match self.signals.as_mut() {
            Some(signals) => tokio::select! {
                p = probe => Ok(p),
                stop = signals.recv() => Err(stop),
            },
            None => Ok(probe.await),
        };
        let probed = match probed {
            Ok(p) => p,
            Err(stop) => {
                if stop == Stop::HangUp {
                    detach_from_terminal();
                }
                let what = match stop {
                    Stop::HangUp => "the terminal hung up",
                    Stop::Signal(sig) => signal_name(sig),
                };
                eprintln!(
                    "cutover: {what} during the fresh probe: stopped before resuming; nothing was changed or journaled"
                );
                self.stopped_before_resume = true;
                return Ok(());
            }
        };
        let (fresh, drift) = match probed {
            Ok(fresh) => {
                let drift = engine::drift::drift(&self.state, &fresh);
                (fresh, drift)
            }
            // A probe that cannot run is itself a difference a person must see.
            Err(e) => (
                Default::default(),
                vec![format!("the fresh probe failed: {} ({})", e.msg, e.next)],
            ),
        };
        self.command(Command::Resume {
            who: self.who.clone(),
            drift,
            observed: fresh,
        })
    }

    /// Open every SSH connection now, while the terminal is still a plain terminal, so that a
    /// passphrase prompt (an encrypted identity not in ssh-agent) happens before the UI starts.
    /// A key whose passphrase was wrong three times is an error (the UI does not start); other
    /// failures are left for the run's probes to report (an unknown host key is a hard stop).
    pub async fn connect_all(&self) -> Result<()> {
        self.fleet.connect_all().await;
        passphrase_failures()
    }

    /// Drive the run until it completes, pauses, halts, or the operator quits.
    pub async fn drive(&mut self, control: &mut Control) -> Result<RunEnd> {
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
        let _guard = Abort(crate::drivers::guard::spawn(
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
        let mut hung_up = false;
        let mut interrupted = false;
        loop {
            // In-doubt intents are not running: they wait for a person.
            let in_flight = self
                .state
                .in_flight
                .keys()
                .any(|id| !self.state.in_doubt.contains(id));
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
                    let key_node = hs.node.as_ref().map(|n| format!("{}@{n}", hs.id));
                    let answer = key_node
                        .and_then(|k| answers.get(&k).cloned())
                        .or_else(|| answers.get(&hs.id).cloned());
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
                        // Once quitting (or the UI is gone), only outcomes are awaited.
                        req = rx.recv(), if !quitting => {
                            let who = self.who.clone();
                            match req {
                                None | Some(Request::Quit) => {
                                    if !in_flight {
                                        return Ok(match self.state.status { RunStatus::Completed => RunEnd::Completed, RunStatus::Halted { .. } => RunEnd::Halted, _ => RunEnd::Quit });
                                    }
                                    quitting = true;
                                    if self.state.status == RunStatus::Running {
                                        self.command(Command::Pause { who })?;
                                    }
                                }
                                Some(Request::Confirm { id }) => self.try_command(Command::Confirm { id, who }),
                                Some(Request::Decline { id }) => self.try_command(Command::Decline { id, who }),
                                Some(Request::MarkDone { id }) => self.try_command(Command::MarkDone { id, who }),
                                Some(Request::Pause) => self.try_command(Command::Pause { who }),
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
                                    if !in_flight
                                        && matches!(self.state.status, RunStatus::Paused { .. } | RunStatus::Halted { .. })
                                    {
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

    /// A request the engine may refuse (a stale key press): refusals are not errors.
    fn try_command(&mut self, cmd: Command) {
        if let Err(e) = self.command(cmd)
            && self.print
        {
            eprintln!("{}", crate::sanitize::for_terminal_block(&e.to_string()));
        }
    }

    pub fn journal_path(&self) -> PathBuf {
        self.journal.path().to_path_buf()
    }

    /// The run completed: give the fleet back (this run's lock file off every node). Returns
    /// the nodes whose file could not be removed, and why.
    pub async fn release_fleet_lock(&mut self) -> Vec<String> {
        match self.fleet_lock.take() {
            Some(lock) => lock.release(&self.fleet).await,
            None => Vec::new(),
        }
    }
}

/// Fold journal records into a state (the same fold live runs and replays use).
pub fn fold(records: &[journal::Record]) -> Result<State> {
    let mut state = State::default();
    for r in records.iter().filter(|r| is_event(r)) {
        let e = Event::from_parts(&r.kind, &r.data)
            .map_err(|e| anyhow!("journal seq {}: {e}", r.seq))?;
        state.apply(&e, r.time);
    }
    Ok(state)
}

/// (time, event) pairs for replay.
pub fn events_of(records: &[journal::Record]) -> Result<Vec<(DateTime<Utc>, Event)>> {
    records
        .iter()
        .filter(|r| is_event(r))
        .map(|r| {
            Event::from_parts(&r.kind, &r.data)
                .map(|e| (r.time, e))
                .map_err(|e| anyhow!("journal seq {}: {e}", r.seq))
        })
        .collect()
}

/// Records the runtime writes beside the engine's events (a broken fleet lock) are not folded.
fn is_event(r: &journal::Record) -> bool {
    !fleet_lock::JOURNAL_KINDS.contains(&r.kind.as_str())
}

/// One line per event for headless runs; a multi-line text (a failed restart's evidence, a halt's
/// reason and what to do next) as an indented block under it. In ASCII when the locale does not
/// say UTF-8, or with `--ascii` ([`crate::glyphs`]).
pub fn print_event(time: DateTime<Utc>, e: &Event, state: &State) {
    let text = event_text(time, e, state, crate::glyphs::ascii());
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
}

/// What [`print_event`] prints, newline-terminated: `HH:MM:SS  KIND  NODE  TEXT`, then each
/// further line of the text under the text's first character, its own indentation kept. Every
/// line goes through the sanitiser on its own (nothing from outside can move the cursor or break
/// a line), then, when `ascii`, through [`crate::glyphs::to_ascii`].
pub fn event_text(time: DateTime<Utc>, e: &Event, state: &State, ascii: bool) -> String {
    let g = crate::glyphs::table(ascii);
    let t = time.format("%H:%M:%S");
    let node = e.node().unwrap_or("");
    let text = match e {
        Event::RunStarted(rs) => format!(
            "{} on {} ({} nodes), run {}",
            rs.runbook_title,
            rs.cluster,
            rs.inventory.nodes.len(),
            rs.run_id
        ),
        Event::StepStarted { step } => format!(
            "{} {}",
            g.play,
            state
                .steps
                .iter()
                .find(|s| &s.id == step)
                .map(|s| s.title.as_str())
                .unwrap_or(step)
        ),
        Event::StepCompleted { step } => format!("{} {step}", g.done),
        Event::Intent(i) => match i.pool_read_ms {
            Some(ms) => format!("{} {} (pool read {ms} ms before)", g.arrow, i.detail),
            None => format!("{} {}", g.arrow, i.detail),
        },
        // The duration on the first line: a failed restart's evidence follows on lines of its own.
        Event::Outcome(o) => {
            let summary = o.summary.trim_end();
            let (first, rest) = summary.split_once('\n').unwrap_or((summary, ""));
            let rest = if rest.is_empty() {
                String::new()
            } else {
                format!("\n{rest}")
            };
            format!(
                "{} {} ({} ms){rest}",
                if o.ok { "ok" } else { "FAILED" },
                first.trim_end_matches('\r'),
                o.duration_ms
            )
        }
        Event::GatePassed { gate, detail, .. } => format!("gate {gate} passed: {detail}"),
        Event::GateFailed { gate, reason, .. } => format!("gate {gate} FAILED: {reason}"),
        Event::HardStopRaised(h) => {
            format!(
                "HARD STOP `{}`: {} {} {}",
                h.id,
                one_line(&h.title),
                g.dash,
                one_line(&h.hazard)
            )
        }
        Event::HardStopConfirmed { id, who, .. } => format!(
            "hard stop `{id}` confirmed by {}",
            engine::state::who_label(who)
        ),
        Event::HardStopDeclined { id, who, .. } => format!(
            "hard stop `{id}` declined by {}",
            engine::state::who_label(who)
        ),
        Event::PauseRequested { cause, .. } => match cause {
            engine::events::PauseCause::Operator => "pause requested".into(),
            engine::events::PauseCause::TerminalHangup => {
                "the terminal hung up: pausing at the next safe point".into()
            }
        },
        Event::RunPaused { reason } => format!("paused: {reason}"),
        Event::RunResumed {
            drift, in_doubt, ..
        } => format!(
            "resumed; drift: {}; in doubt: {}",
            if drift.is_empty() {
                "none".into()
            } else {
                drift.join("; ")
            },
            in_doubt.len()
        ),
        Event::InDoubtResolved { id, choice, .. } => format!("in-doubt action {id}: {choice}"),
        // What to do next on a line of its own, after the reason and its evidence.
        Event::RunHalted { reason, next, .. } if next.trim().is_empty() => {
            format!("HALTED: {}", reason.trim_end())
        }
        Event::RunHalted { reason, next, .. } => {
            format!("HALTED: {}\nnext: {}", reason.trim_end(), next.trim())
        }
        Event::RunCompleted { summary } => format!("completed: {summary}"),
        Event::Note { message, .. } => format!("note: {message}"),
        Event::PoolBreach(b) => format!("POOL BREACH: {}", b.line()),
    };
    let lead = format!("{t}  {:<19} {:<8} ", e.kind(), for_terminal(node));
    let indent = " ".repeat(crate::tui::text::width(&lead));
    // Everything here may come from outside (runbook titles, remote output, HTTP bodies, a
    // journal): each line is made safe on its own, so no control character reaches the
    // terminal and only the text's own line breaks start a line, always under the first.
    let mut out = String::new();
    for (i, line) in text
        .trim_end()
        .split('\n')
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.trim().is_empty())
        .enumerate()
    {
        let line = format!(
            "{}{}",
            if i == 0 { &lead } else { &indent },
            for_terminal(line)
        );
        out.push_str(&crate::glyphs::for_output(&line, ascii));
        out.push('\n');
    }
    if out.is_empty() {
        out = format!("{}\n", crate::glyphs::for_output(lead.trim_end(), ascii));
    }
    out
}

/// Fold a paragraph onto one line for line-per-event output (control characters made safe).
fn one_line(s: &str) -> String {
    for_terminal(&s.split_whitespace().collect::<Vec<_>>().join(" ")).into_owned()
}

/// The terminal went away: point stdin, stdout and stderr that are terminals at /dev/null, so
/// that what is still written (a progress line, the closing advice) goes nowhere instead of
/// failing with EIO (a failed `println!` panics). Output into a pipe or socket goes the same way:
/// what read it (`| tee run.log`) was in the session that hung up and got the hangup too, and a
/// write into its closed pipe would kill cutover (SIGPIPE) mid-action. Output redirected to a
/// file is left alone. Idempotent.
pub fn detach_from_terminal() {
    use std::os::fd::{AsFd, BorrowedFd};
    let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    else {
        return;
    };
    // A terminal that hung up answers every ioctl, isatty's too, with EIO.
    fn terminal(fd: BorrowedFd) -> bool {
        matches!(
            nix::unistd::isatty(fd),
            Ok(true) | Err(nix::errno::Errno::EIO)
        )
    }
    fn pipe_or_socket(fd: BorrowedFd) -> bool {
        use nix::sys::stat::SFlag;
        nix::sys::stat::fstat(fd).is_ok_and(|st| {
            let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
            kind == SFlag::S_IFIFO || kind == SFlag::S_IFSOCK
        })
    }
    let away = |fd: BorrowedFd| terminal(fd) || pipe_or_socket(fd);
    if terminal(std::io::stdin().as_fd()) {
        let _ = nix::unistd::dup2_stdin(&null);
    }
    if away(std::io::stdout().as_fd()) {
        let _ = nix::unistd::dup2_stdout(&null);
    }
    if away(std::io::stderr().as_fd()) {
        let _ = nix::unistd::dup2_stderr(&null);
    }
}

/// The session's passphrase prompt: one for the whole process, so one keyring (a key file is
/// asked for once whichever hosts use it, one prompt at a time). Asks on the controlling
/// terminal, echo off; the answer is used once to decrypt the key, wiped, never logged.
pub fn tty_passphrase_prompt() -> crate::transport::ssh::PassphrasePrompt {
    static PROMPT: std::sync::LazyLock<crate::transport::ssh::PassphrasePrompt> =
        std::sync::LazyLock::new(|| {
            crate::transport::ssh::PassphrasePrompt::new(|path: &Path| {
                read_secret(&format!(
                    "Passphrase for {}: ",
                    for_terminal(&path.display().to_string())
                ))
            })
        });
    PROMPT.clone()
}

/// The UI is taking the terminal: from now on no passphrase is asked for (a key that would need
/// one fails with advice to load it into ssh-agent).
pub fn close_prompts() {
    tty_passphrase_prompt().close();
}

/// An error naming every identity file whose passphrase was wrong three times, if any: the run
/// must not go on without the hosts it cannot reach.
pub fn passphrase_failures() -> Result<()> {
    let failed = tty_passphrase_prompt().failures();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(anyhow!("{}", failed.join("\n")))
    }
}

/// Open the SSH connections that may need a passphrase now, on a plain terminal and before
/// anything is written, and refuse to go on if a key's passphrase was wrong three times. Other
/// connections are left for later (an unreachable host would only delay this).
pub async fn unlock_keys(fleet: &Fleet) -> Result<()> {
    let defaults = fleet.inv.ssh.as_ref();
    let needs = fleet
        .inv
        .nodes
        .iter()
        .map(|n| &n.reach)
        .chain(
            fleet
                .inv
                .load_balancers
                .iter()
                .filter_map(|l| l.reach.as_ref()),
        )
        .any(|r| match r {
            crate::inventory::Reach::Ssh(t) => {
                crate::transport::ssh::may_ask_passphrase(t, defaults)
            }
            _ => false,
        });
    if needs {
        fleet.connect_all().await;
    }
    passphrase_failures()
}

/// Read a secret from the controlling terminal: echo off (checked), no line editing by the
/// terminal (Enter, Backspace, Ctrl-U handled here, whatever mode the terminal was in), the
/// previous mode restored exactly once, also on error. Ctrl-C restores the terminal and then
/// interrupts as it would have. `None`: no terminal, end of input, or an empty answer.
fn read_secret(prompt: &str) -> Option<zeroize::Zeroizing<String>> {
    use nix::sys::termios::{self, InputFlags, LocalFlags, SetArg, SpecialCharacterIndices};
    use std::io::Read;
    use std::os::fd::AsFd;
    use zeroize::{Zeroize, Zeroizing};
    // Never two prompts on the terminal at once, whoever asks.
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());

    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .ok()?;
    let saved = termios::tcgetattr(tty.as_fd()).ok()?;
    /// Puts the saved mode back when dropped: exactly once, on every path out.
    struct Restore<'a> {
        tty: &'a std::fs::File,
        saved: termios::Termios,
    }
    impl Drop for Restore<'_> {
        fn drop(&mut self) {
            let _ = termios::tcsetattr(self.tty.as_fd(), SetArg::TCSAFLUSH, &self.saved);
        }
    }
    let mut quiet = saved.clone();
    quiet.local_flags.remove(
        LocalFlags::ECHO
            | LocalFlags::ECHOE
            | LocalFlags::ECHOK
            | LocalFlags::ECHONL
            | LocalFlags::ICANON
            | LocalFlags::ISIG
            | LocalFlags::IEXTEN,
    );
    quiet.input_flags.remove(InputFlags::IXON);
    quiet.control_chars[SpecialCharacterIndices::VMIN as usize] = 1;
    quiet.control_chars[SpecialCharacterIndices::VTIME as usize] = 0;
    let restore = Restore {
        tty: &tty,
        saved: saved.clone(),
    };
    termios::tcsetattr(tty.as_fd(), SetArg::TCSAFLUSH, &quiet).ok()?;
    // Echo off for certain, or no question.
    let now = termios::tcgetattr(tty.as_fd()).ok()?;
    if now.local_flags.contains(LocalFlags::ECHO) {
        return None;
    }
    let mut out = &tty;
    let _ = out.write_all(prompt.as_bytes());
    let _ = out.flush();

    // Room enough up front: a growing buffer would leave copies behind.
    let mut secret = Zeroizing::new(Vec::<u8>::with_capacity(1024));
    let mut byte = [0u8; 1];
    let mut interrupted = false;
    let ended = loop {
        match (&tty).read(&mut byte) {
            Ok(0) => break false,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break false,
        }
        match byte[0] {
            b'\r' | b'\n' => break true,
            // Ctrl-C
            0x03 => {
                interrupted = true;
                break false;
            }
            // Ctrl-D on an empty line: end of input.
            0x04 if secret.is_empty() => break false,
            0x04 => break true,
            // Backspace, Delete: one character (not one byte) back.
            0x08 | 0x7f => {
                while let Some(b) = secret.pop() {
                    if b & 0xC0 != 0x80 {
                        break;
                    }
                }
            }
            // Ctrl-U: start again.
            0x15 => secret.zeroize(),
            b if b < 0x20 => {}
            b if secret.len() < secret.capacity() => secret.push(b),
            _ => {}
        }
    };
    byte.zeroize();
    let _ = out.write_all(b"\r\n");
    drop(restore);
    if interrupted {
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGINT);
        return None;
    }
    if !ended || secret.is_empty() {
        return None;
    }
    match String::from_utf8(std::mem::take(&mut *secret)) {
        Ok(s) => Some(Zeroizing::new(s)),
        Err(e) => {
            let mut bytes = e.into_bytes();
            bytes.zeroize();
            None
        }
    }
}
