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
use chrono::Utc;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::{mpsc, watch};

mod drive;
mod error;
pub mod fleet_lock;
mod fold;
mod meter;
mod print;
mod prompt;
mod signals;

pub use error::{CommandError, JournalFailed};
pub use fold::{event_of, event_of_line, events_of, fold, is_event_kind};
pub use meter::{MeterMode, MeterOpts, plan as plan_meter};
pub use print::{event_text, print_event};
pub use prompt::{close_prompts, passphrase_failures, tty_passphrase_prompt, unlock_keys};
pub use signals::detach_from_terminal;
use signals::{Signals, Stop, signal_name};

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
    /// What runs beside the session (the demo world's stand-ins), dropped with it.
    _stand_ins: Option<KeepAlive>,
    /// The client-impact meter's options (`--meter`, `--meter-rate`).
    pub meter_opts: MeterOpts,
    /// The client-impact meter while the session drives the run.
    meter: Option<meter::RunMeter>,
    /// The session drives the run: a run continued after its end (a resume in the UI) starts
    /// a new meter.
    metering_wanted: bool,
}

/// Something a session keeps alive as long as it runs (the demo world's stand-ins).
pub type KeepAlive = Box<dyn std::any::Any + Send>;

/// What the command line starts beside a run once its fleet lock is held (the demo world's
/// stand-ins, when the inventory names one): kept alive as long as the session, and the
/// inventory to use instead when the stand-ins moved to other ports.
#[derive(Default)]
pub struct StandIns {
    pub keep_alive: Option<KeepAlive>,
    pub moved: Option<crate::inventory::Inventory>,
}

impl Session {
    fn new(
        journal: Journal,
        state: State,
        run_id: String,
        mut fleet: Fleet,
        stand_ins: Option<KeepAlive>,
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
            _stand_ins: stand_ins,
            meter_opts: MeterOpts::default(),
            meter: None,
            metering_wanted: false,
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
        stand_ins: impl AsyncFnOnce(&crate::inventory::Inventory) -> Result<StandIns>,
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
        let StandIns { keep_alive, moved } = match stand_ins(&inv).await {
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
        let mut s = Session::new(journal, State::default(), run_id.clone(), fleet, keep_alive);
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
    pub async fn resume(
        journal_path: &Path,
        stand_ins: impl AsyncFnOnce(&crate::inventory::Inventory) -> Result<StandIns>,
    ) -> Result<(Session, Vec<String>)> {
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
        let StandIns { keep_alive, moved } = stand_ins(&run.inventory).await?;
        // A demo world that moved to other ports is reached where it is now.
        let fleet = match moved {
            Some(moved) => Fleet::new(moved)?,
            None => lock_fleet,
        };
        let mut s = Session::new(journal, state, run.run_id.clone(), fleet, keep_alive);
        s.fleet_lock = Some(lock);
        Ok((s, notes))
    }

    /// Append a decision's events (one fsync) before starting its effects.
    fn record(&mut self, events: Vec<Event>) -> Result<(), JournalFailed> {
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
            })
            .map_err(|e| JournalFailed::new(self.journal.path().to_path_buf(), e))?;
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
    pub fn command(&mut self, cmd: Command) -> Result<(), CommandError> {
        let d = decide(&self.state, cmd, Utc::now())?;
        // The meter stops as the run does: its final summary just before the run's end.
        let (ends, resumes) = meter::ends_or_resumes(&d.events);
        if ends {
            self.stop_meter()?;
        }
        self.record(d.events)?;
        if resumes {
            self.restart_meter()?;
        }
        for eff in d.effects {
            let fleet = self.fleet.clone();
            let tx = self.outcomes_tx.clone();
            tokio::spawn(async move {
                let o = fleet.execute(eff.id, eff.op, &eff.spec).await;
                let _ = tx.send(o);
            });
        }
        // A new phase (step, mixed pool): the meter's summary of the one that ended.
        self.meter_follow()?;
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
        let probe = crate::drivers::probe::full_probe(&fleet, false);
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
        Ok(self.command(Command::Resume {
            who: self.who.clone(),
            drift,
            observed: fresh,
        })?)
    }

    /// Open every SSH connection now, while the terminal is still a plain terminal, so that a
    /// passphrase prompt (an encrypted identity not in ssh-agent) happens before the UI starts.
    /// A key whose passphrase was wrong three times is an error (the UI does not start); other
    /// failures are left for the run's probes to report (an unknown host key is a hard stop).
    pub async fn connect_all(&self) -> Result<()> {
        self.fleet.connect_all().await;
        passphrase_failures()
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
