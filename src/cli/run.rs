//! `cutover demo`, `run` and `resume`: a session started or reopened, then driven headless or
//! with the UI.

use super::{
    RunOpts, absolute, invalid, load_answers, load_inventory, load_runbook, need_terminal,
    parse_params,
};
use anyhow::{Context, Result, anyhow};
use cutover::engine::plan;
use cutover::inventory::Inventory;
use cutover::runbook::Runbook;
use cutover::runtime::{self, Control, RunEnd, Session};
use cutover::sanitize::for_terminal;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// `--meter`, as given.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum MeterArg {
    On,
    Off,
    Auto,
}

/// The client-impact meter's flags (run, demo, resume).
#[derive(clap::Args, Clone, Debug)]
pub struct MeterArgs {
    /// The client-impact meter: synthetic clients issue and validate tokens through every load
    /// balancer's frontend_url during the run. auto: on when every load balancer names a
    /// frontend_url and credentials exist (clouds.yaml / OS_*), else off with a line saying why.
    #[arg(long, value_enum, default_value = "auto")]
    pub meter: MeterArg,
    /// The meter's requests per second per frontend (0.1 to 20).
    #[arg(long, value_name = "N", default_value_t = cutover::meter::DEFAULT_RATE, value_parser = meter_rate)]
    pub meter_rate: f64,
}

impl MeterArgs {
    pub fn opts(&self) -> runtime::MeterOpts {
        runtime::MeterOpts {
            mode: match self.meter {
                MeterArg::On => runtime::MeterMode::On,
                MeterArg::Off => runtime::MeterMode::Off,
                MeterArg::Auto => runtime::MeterMode::Auto,
            },
            rate: self.meter_rate,
        }
    }
}

fn meter_rate(s: &str) -> Result<f64, String> {
    let (min, max) = (cutover::meter::MIN_RATE, cutover::meter::MAX_RATE);
    match s.parse::<f64>() {
        Ok(r) if (min..=max).contains(&r) => Ok(r),
        _ => Err(format!(
            "`{s}` is not a rate from {min} to {max} requests per second per frontend"
        )),
    }
}

/// `cutover demo`.
pub async fn demo(
    nodes: usize,
    lbs: usize,
    world: Option<PathBuf>,
    runbook: Option<PathBuf>,
    opts: RunOpts,
) -> Result<i32> {
    // Everything given is checked before the world is created: bad input changes nothing.
    if nodes == 0 || nodes > 64 || lbs > 16 {
        return Err(invalid(format!(
            "--nodes {nodes} --lbs {lbs}: a demo world has 1 to 64 nodes and 0 to 16 load balancers"
        )));
    }
    // Run from anywhere: the flagship ships inside the binary.
    let runbook = runbook.unwrap_or_else(|| PathBuf::from("fernet-to-jws"));
    let loaded = load_runbook(&runbook)?;
    // Without --world, a fresh world each time (a reused one may already be migrated),
    // named apart from any other started in the same second.
    let dir = world.unwrap_or_else(|| {
        PathBuf::from(format!(
            "cutover-demo/world-{}-{}",
            chrono::Utc::now().format("%Y%m%dT%H%M%SZ"),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        ))
    });
    let dir = absolute(&dir)?;
    // The world's node names, before the world exists: those of a world being reused,
    // else the ones a new world gets (node1..nodeN, world::layout).
    let world_nodes = if dir.join("world.json").exists() {
        cutover::world::load(&dir)
            .and_then(|w| w.inventory())
            .map(|inv| inv.node_names())
            .map_err(|e| invalid(format!("{e:#}")))?
    } else {
        (1..=nodes).map(|k| format!("node{k}")).collect()
    };
    loaded
        .runbook
        .resolve_params(&parse_params(&opts.params)?)
        .map_err(invalid)?;
    load_answers(opts.answers.as_deref(), &loaded.runbook, &world_nodes)?;
    need_terminal(opts.headless)?;
    let info = cutover::world::create_or_load(&dir, &cutover::world::WorldSpec { nodes, lbs })
        .with_context(|| format!("cannot create the demo world in {}", dir.display()))?;
    let inv = load_inventory(&info.inventory_path)?;
    let journal = opts.journal.clone().unwrap_or_else(|| {
        dir.join(format!(
            "journal-{}.jsonl",
            chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
        ))
    });
    if !opts.headless {
        eprintln!(
            "demo world: {} (inventory {})",
            dir.display(),
            info.inventory_path.display()
        );
    }
    start_run(loaded, inv, &info.inventory_path, &opts, journal).await
}

/// `cutover run`.
pub async fn run(runbook: PathBuf, inventory: PathBuf, opts: RunOpts) -> Result<i32> {
    let loaded = load_runbook(&runbook)?;
    let inv = load_inventory(&inventory)?;
    let journal = opts
        .journal
        .clone()
        .unwrap_or_else(|| default_journal(&loaded.runbook.name));
    start_run(loaded, inv, &inventory, &opts, journal).await
}

/// `cutover resume`.
pub async fn resume(
    journal: PathBuf,
    headless: bool,
    answers: Option<PathBuf>,
    sign_key: Option<PathBuf>,
    meter: runtime::MeterOpts,
) -> Result<i32> {
    cutover::journal::trust::check_permissions(&journal).map_err(|e| anyhow!(e))?;
    let signer = signer_for(sign_key.as_deref())?;
    // The answers are checked against the journal's runbook and inventory before the
    // journal is opened for writing (which takes its lock and trims a torn tail).
    let answers = match journal_runbook(&journal) {
        Some((rb, nodes)) => load_answers(answers.as_deref(), &rb, &nodes)?,
        None => match &answers {
            Some(a) => runtime::load_answers(a).map_err(|e| invalid(e.to_string()))?,
            None => BTreeMap::new(),
        },
    };
    need_terminal(headless)?;
    let (mut s, mut notes) = Session::resume(&journal, super::world::stand_ins).await?;
    s.signer = signer;
    s.meter_opts = meter;
    if let Ok(read) = cutover::journal::read(&journal) {
        notes.extend(cutover::journal::trust::input_notes(&read.records, |o| {
            cutover::runbook::shipped_by_origin(o).map(|(_, text)| text)
        }));
    }
    for n in notes {
        eprintln!("cutover: {}", for_terminal(&n));
    }
    drive(&mut s, headless, answers, true).await
}

/// The runbook and node names of the run a journal holds (read-only, without its lock), if it
/// can be read; resume itself reports a journal that cannot.
fn journal_runbook(journal: &Path) -> Option<(Runbook, Vec<String>)> {
    let read = cutover::journal::read(journal).ok()?;
    let events = runtime::events_of(&read.records).ok()?;
    events.into_iter().find_map(|(_, e)| match e {
        cutover::engine::events::Event::RunStarted(rs) => {
            let rb = Runbook::parse(&rs.runbook_source, &rs.runbook_origin).ok()?;
            Some((rb, rs.inventory.node_names()))
        }
        _ => None,
    })
}

fn default_journal(runbook: &str) -> PathBuf {
    PathBuf::from(format!(
        "cutover-{runbook}-{}.journal.jsonl",
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
    ))
}

async fn start_run(
    loaded: cutover::runbook::Loaded,
    inv: Inventory,
    inventory_path: &Path,
    opts: &RunOpts,
    journal: PathBuf,
) -> Result<i32> {
    let params = loaded
        .runbook
        .resolve_params(&parse_params(&opts.params)?)
        .map_err(invalid)?;
    plan::compile(&loaded.runbook, &inv, &params).map_err(|e| invalid(e.to_string()))?;
    need_terminal(opts.headless)?;
    let answers = load_answers(opts.answers.as_deref(), &loaded.runbook, &inv.node_names())?;
    // `--meter on` that cannot be honoured is refused before anything starts.
    let meter = opts.meter.opts();
    let _maybe_off =
        runtime::plan_meter(&inv, &meter, &|k| std::env::var(k).ok()).map_err(invalid)?;
    // Read again for its hash: the text the inventory was loaded from a moment ago.
    let inventory_sha256 = std::fs::read(inventory_path)
        .map(|t| cutover::journal::trust::sha256_hex(&t))
        .ok();
    let signer = signer_for(opts.sign_key.as_deref())?;
    let mut s = Session::start(
        &loaded,
        inv,
        params,
        &journal,
        opts.headless,
        super::world::stand_ins,
    )
    .await?;
    s.inventory_sha256 = inventory_sha256;
    s.signer = signer;
    s.meter_opts = meter;
    if opts.journal.is_none() || opts.headless {
        eprintln!("journal: {}", journal.display());
    }
    drive(&mut s, opts.headless, answers, false).await
}

async fn drive(
    s: &mut Session,
    headless: bool,
    answers: runtime::Answers,
    resumed: bool,
) -> Result<i32> {
    let end = if headless {
        s.print = true;
        if resumed {
            s.continue_run().await?;
        }
        let mut control = Control::Headless { answers };
        s.drive(&mut control).await?
    } else {
        super::ui::drive_with_ui(s, resumed).await?
    };
    let journal = s.journal_path();
    if end == RunEnd::Completed {
        for p in s.release_fleet_lock().await {
            eprintln!(
                "cutover: the fleet lock could not be removed on {}; remove it there by hand",
                for_terminal(&p)
            );
        }
    }
    match end {
        RunEnd::Completed => eprintln!("completed. journal: {}", journal.display()),
        RunEnd::Paused | RunEnd::Quit => eprintln!(
            "paused. continue with: cutover resume {}",
            journal.display()
        ),
        RunEnd::Halted => eprintln!(
            "halted. fix the cause, then: cutover resume {}",
            journal.display()
        ),
    }
    Ok(end.exit_code())
}

/// Who signs hard-stop confirmations, found (and an identity file's passphrase asked for) before
/// any UI starts. No agent and no identity: confirmations are recorded unsigned, as said here.
fn signer_for(
    sign_key: Option<&Path>,
) -> Result<Option<std::sync::Arc<cutover::journal::sign::Signer>>> {
    let prompt = runtime::tty_passphrase_prompt();
    match cutover::journal::sign::Signer::from_options(sign_key, &|p: &Path| prompt.ask(p)) {
        Ok(Some(s)) => {
            eprintln!(
                "hard-stop confirmations will be signed with {}",
                for_terminal(&s.describe())
            );
            Ok(Some(std::sync::Arc::new(s)))
        }
        Ok(None) => {
            eprintln!(
                "hard-stop confirmations will be recorded unsigned (no key in ssh-agent, no --sign-key)"
            );
            Ok(None)
        }
        Err(e) if sign_key.is_some() => Err(invalid(e)),
        Err(e) => {
            eprintln!(
                "hard-stop confirmations will be recorded unsigned: {}",
                for_terminal(&e)
            );
            Ok(None)
        }
    }
}
