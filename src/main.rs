//! cutover's command line: clap subcommands → entry points. Exit codes: 0 completed, 1 any other
//! error, 2 invalid input, 3 paused at a hard stop, 4 halted by a failed gate or action,
//! 5 a node could not be reached: `probe` (over SSH: host key changed or unknown, connection or
//! login refused; the others were read and shown), or `run`/`resume` refused before any change
//! because a node's host key changed (the fleet lock cannot be taken there; the error names the
//! `ssh-keygen -R` that fixes it).

use anyhow::{Context, Result, anyhow};
use clap::{Parser, Subcommand, ValueEnum};
use cutover::engine::plan;
use cutover::inventory::Inventory;
use cutover::runbook::Runbook;
use cutover::runtime::{self, Control, RunEnd, Session};
use cutover::sanitize::{for_terminal, for_terminal_block};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "cutover",
    version,
    about = "Roll a change across load-balanced Keystone nodes without dropping live sessions: gated, journaled, resumable."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
    /// Draw the screen with ASCII only (symbols + x # * ., borders +-|), whatever the locale
    /// says; without it, ASCII is used when LC_ALL/LC_CTYPE/LANG do not say UTF-8.
    #[arg(long, global = true)]
    ascii: bool,
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum PlanFormat {
    Text,
    Markdown,
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum ProbeFormat {
    Table,
    Json,
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum ShowFormat {
    Text,
    Json,
    Markdown,
}

#[derive(clap::Args, Clone)]
struct RunOpts {
    /// The journal to write (default: a new file in the current directory, named and shown).
    #[arg(long)]
    journal: Option<PathBuf>,
    /// A runbook parameter, e.g. --param key_strategy=shared (repeatable).
    #[arg(long = "param", value_name = "KEY=VALUE")]
    params: Vec<String>,
    /// No UI: print one line per event; hard stops are answered only from --answers.
    #[arg(long)]
    headless: bool,
    /// YAML map of hard-stop id → confirm | decline (headless only).
    #[arg(long, value_name = "FILE")]
    answers: Option<PathBuf>,
    /// Sign hard-stop confirmations with this SSH identity file (default: the first key of the
    /// ssh-agent at SSH_AUTH_SOCK; neither: confirmations are recorded unsigned).
    #[arg(long, value_name = "FILE")]
    sign_key: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the flagship runbook against the embedded demo world (created if needed).
    Demo {
        /// Number of Keystone nodes in a new world.
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        /// Number of HAProxy instances in a new world.
        #[arg(long, default_value_t = 1)]
        lbs: usize,
        /// World directory (created if absent, reused if present; default: a new one under
        /// ./cutover-demo/).
        #[arg(long)]
        world: Option<PathBuf>,
        /// Runbook to run: a shipped runbook's name (`cutover runbooks`) or a file (default: the
        /// flagship, fernet-to-jws).
        #[arg(long, value_name = "NAME|FILE")]
        runbook: Option<PathBuf>,
        #[command(flatten)]
        opts: RunOpts,
    },
    /// Run a runbook against an inventory.
    Run {
        /// A shipped runbook's name (`cutover runbooks`) or a runbook file; an existing file wins.
        #[arg(value_name = "NAME|FILE")]
        runbook: PathBuf,
        #[arg(short, long)]
        inventory: PathBuf,
        #[command(flatten)]
        opts: RunOpts,
    },
    /// Continue an interrupted, paused or halted run from its journal.
    Resume {
        journal: PathBuf,
        #[arg(long)]
        headless: bool,
        #[arg(long, value_name = "FILE")]
        answers: Option<PathBuf>,
        /// Sign hard-stop confirmations with this SSH identity file (default: ssh-agent).
        #[arg(long, value_name = "FILE")]
        sign_key: Option<PathBuf>,
    },
    /// Replay a journal in the UI, read-only.
    Replay {
        journal: PathBuf,
        /// Playback speed (2 = twice as fast).
        #[arg(long, default_value_t = 1.0)]
        speed: f64,
        /// Tail a journal another process is writing (watch a live run).
        #[arg(long)]
        follow: bool,
    },
    /// Validate a runbook (and its plan against an inventory).
    Check {
        /// A shipped runbook's name (`cutover runbooks`) or a runbook file; an existing file wins.
        #[arg(value_name = "NAME|FILE")]
        runbook: PathBuf,
        #[arg(short, long)]
        inventory: Option<PathBuf>,
    },
    /// Show every step with the exact actions per node; changes nothing.
    Plan {
        /// A shipped runbook's name (`cutover runbooks`) or a runbook file; an existing file wins.
        #[arg(value_name = "NAME|FILE")]
        runbook: PathBuf,
        #[arg(short, long)]
        inventory: PathBuf,
        #[arg(long = "param", value_name = "KEY=VALUE")]
        params: Vec<String>,
        #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
        format: PlanFormat,
    },
    /// The fleet's state now: every node, every load balancer, a direct token at each node.
    /// A node that cannot be reached over SSH is shown UNREACHABLE with why and what to do;
    /// the exit code is then 5.
    Probe {
        #[arg(short, long)]
        inventory: PathBuf,
        #[arg(long, value_enum, default_value_t = ProbeFormat::Table)]
        format: ProbeFormat,
    },
    /// Break the fleet lock a run left on the nodes (an abandoned run). Deliberate: names who
    /// holds it and asks for --yes-i-checked, or the run id typed on a terminal.
    Unlock {
        #[arg(short, long)]
        inventory: PathBuf,
        /// Break only the locks of this run.
        #[arg(long = "run", value_name = "RUN_ID")]
        run_id: Option<String>,
        /// Record the broken locks in this journal (appended; created if absent).
        #[arg(long, value_name = "J")]
        journal: Option<PathBuf>,
        /// I checked that the holding run is not running anywhere.
        #[arg(long)]
        yes_i_checked: bool,
    },
    /// The runbooks built into cutover: list them, or print one to copy and adapt.
    Runbooks {
        #[command(subcommand)]
        cmd: Option<RunbooksCmd>,
    },
    /// Print a shell completion script: `cutover completions bash > /etc/bash_completion.d/cutover`
    /// (zsh: a file named _cutover in a directory of $fpath; fish:
    /// ~/.config/fish/completions/cutover.fish).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff): `cutover man | man -l -`, or `cutover man run` for
    /// cutover-run(1); install with `cutover man > /usr/local/share/man/man1/cutover.1`.
    Man {
        /// A subcommand's page instead (`run`, `journal`, `journal show`, ...).
        #[arg(value_name = "SUBCOMMAND")]
        sub: Vec<String>,
    },
    /// Journal tools.
    Journal {
        #[command(subcommand)]
        cmd: JournalCmd,
    },
    /// The embedded demo world: create one, or serve one so that other commands (and curl, or
    /// the openstack CLI with its clouds.yaml) can use it.
    World {
        #[command(subcommand)]
        cmd: WorldCmd,
    },
}

#[derive(Subcommand)]
enum RunbooksCmd {
    /// One line per shipped runbook: its name and title (the default).
    List,
    /// Print a shipped runbook verbatim (`cutover runbooks show jws-to-fernet > mine.yaml`), or
    /// the shipped answers file (`demo-answers`).
    Show {
        /// The runbook's name, with or without `.yaml`.
        #[arg(value_parser = shipped_names())]
        name: String,
    },
}

#[derive(Subcommand)]
enum WorldCmd {
    /// Create a world directory (nodes, keys, keystone.conf, inventory.yaml, clouds.yaml).
    Create {
        dir: PathBuf,
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        #[arg(long, default_value_t = 1)]
        lbs: usize,
    },
    /// Serve a world's Keystone and HAProxy stand-ins until Ctrl-C or SIGTERM (a hangup, a
    /// dropped SSH session, does not stop it). While it serves, runs against the world's
    /// inventory use it instead of starting their own.
    Serve { dir: PathBuf },
    /// Break a running world the way real services break: reload HAProxy without its state
    /// file, put a server back as another operator would, make restarts fail or crawl, kill
    /// Keystone or a load balancer. For rehearsals and tests; prints what it did.
    #[command(after_help = cutover::world::fault::HELP)]
    Fault {
        /// The world directory (it must be served: `cutover world serve DIR`, or a run against
        /// DIR/inventory.yaml).
        dir: PathBuf,
        /// The fault (see below).
        fault: String,
        /// The fault's arguments: NODE, LB, SECS.
        args: Vec<String>,
    },
}

#[derive(Subcommand)]
enum JournalCmd {
    /// Check the hash chain: exit 0 intact, 1 naming the first bad seq. With --allowed-signers,
    /// every signed confirmation too (exit 1 naming the seq of a bad or unknown signature).
    Verify {
        journal: PathBuf,
        /// An allowed_signers file (as `ssh-keygen -Y verify` and git use it).
        #[arg(long, value_name = "FILE")]
        allowed_signers: Option<PathBuf>,
    },
    /// Print a journal as text, JSON lines, or a Markdown change-ticket report.
    Show {
        journal: PathBuf,
        #[arg(long, value_enum, default_value_t = ShowFormat::Text)]
        format: ShowFormat,
    },
    /// Record the replay's screens as an asciicast v2 file, to play with `asciinema play FILE`
    /// (or asciinema's web player): the journal's own pace, scaled by --speed, with stillness
    /// longer than --idle-limit cut when played.
    Export {
        journal: PathBuf,
        /// asciicast: asciicast v2 (newline-delimited JSON), as asciinema records.
        #[arg(long, value_enum, default_value_t = ExportFormat::Asciicast)]
        format: ExportFormat,
        /// Playback speed, 1/64 to 64 (2 = twice as fast as the run went).
        #[arg(long, default_value_t = 1.0)]
        speed: f64,
        /// The screen drawn, in columns x rows (40x12 to 400x200).
        #[arg(long, default_value = "120x40", value_name = "COLSxROWS", value_parser = cutover::tui::export::parse_size)]
        size: (u16, u16),
        /// The longest still moment when played, in seconds (0: every wait as it was); written
        /// to the header as idle_time_limit.
        #[arg(long, default_value_t = 2.0, value_name = "SECS")]
        idle_limit: f64,
        /// Write the recording here (created 0600, replaced if it exists); default: standard
        /// output, when it is not a terminal.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum ExportFormat {
    Asciicast,
}

/// An error that means "the input was wrong" (exit 2).
#[derive(Debug)]
struct Invalid(String);
impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for Invalid {}

fn invalid(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Invalid(msg.into()))
}

/// `cutover probe`'s exit code when some node could not be reached.
const PROBE_UNREACHABLE: i32 = 5;

fn main() -> ExitCode {
    // `cutover journal show J | head` must end quietly, as other Unix tools do.
    // SAFETY: setting a signal disposition to its default before any thread starts.
    unsafe {
        let _ = nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGPIPE,
            nix::sys::signal::SigHandler::SigDfl,
        );
    }
    let cli = Cli::parse();
    if cli.ascii {
        cutover::tui::theme::force_ascii();
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cutover: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) => {
            // Errors quote inventories, runbooks, remote output: nothing in them may reach the
            // terminal as a control sequence.
            eprintln!("cutover: {}", for_terminal_block(&format!("{e:#}")));
            ExitCode::from(exit_code_of(&e))
        }
    }
}

/// 2 for invalid input (a journal named through a symlink too), 4 when another writer holds
/// the fleet or the journal (refused before any change), 5 when a node's host key changed
/// (refused before any change, as `probe` exits for it), 1 for anything else.
fn exit_code_of(e: &anyhow::Error) -> u8 {
    use cutover::journal::JournalError;
    if e.downcast_ref::<Invalid>().is_some() {
        return 2;
    }
    if e.downcast_ref::<runtime::fleet_lock::FleetUnreachable>()
        .is_some()
    {
        return PROBE_UNREACHABLE as u8;
    }
    if e.downcast_ref::<runtime::fleet_lock::FleetLocked>()
        .is_some()
    {
        return 4;
    }
    if let Some(cutover::engine::recorded::PlanRefused::Changed { .. }) = e.downcast_ref() {
        return 4;
    }
    match e.downcast_ref::<JournalError>() {
        Some(JournalError::Symlink { .. }) => 2,
        Some(JournalError::Locked { .. }) => 4,
        _ => 1,
    }
}

fn parse_params(v: &[String]) -> Result<BTreeMap<String, String>> {
    v.iter()
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .ok_or_else(|| invalid(format!("--param `{p}`: expected KEY=VALUE")))
        })
        .collect()
}

/// A runbook named on the command line: an existing file, else a shipped runbook by name.
fn load_runbook(arg: &Path) -> Result<cutover::runbook::Loaded> {
    Runbook::resolve(arg).map_err(|e| invalid(e.to_string()))
}

fn load_inventory(path: &Path) -> Result<Inventory> {
    Inventory::load(path).map_err(|e| invalid(e.to_string()))
}

/// An answers file read and checked: every key a hard stop of `rb` (or of a shipped runbook),
/// alone or `ID@NODE` with one of `nodes`.
fn load_answers(path: Option<&Path>, rb: &Runbook, nodes: &[String]) -> Result<runtime::Answers> {
    let Some(path) = path else {
        return Ok(BTreeMap::new());
    };
    let answers = runtime::load_answers(path).map_err(|e| invalid(e.to_string()))?;
    cutover::runbook::check_answer_ids(answers.keys(), rb, nodes)
        .map_err(|e| invalid(format!("{}: {e}", path.display())))?;
    Ok(answers)
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

async fn run(cli: Cli) -> Result<i32> {
    match cli.cmd {
        Cmd::Demo {
            nodes,
            lbs,
            world,
            runbook,
            opts,
        } => {
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
            let info =
                cutover::world::create_or_load(&dir, &cutover::world::WorldSpec { nodes, lbs })
                    .with_context(|| {
                        format!("cannot create the demo world in {}", dir.display())
                    })?;
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
        Cmd::Run {
            runbook,
            inventory,
            opts,
        } => {
            let loaded = load_runbook(&runbook)?;
            let inv = load_inventory(&inventory)?;
            let journal = opts
                .journal
                .clone()
                .unwrap_or_else(|| default_journal(&loaded.runbook.name));
            start_run(loaded, inv, &inventory, &opts, journal).await
        }
        Cmd::Resume {
            journal,
            headless,
            answers,
            sign_key,
        } => {
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
            let (mut s, mut notes) = Session::resume(&journal).await?;
            s.signer = signer;
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
        Cmd::Replay {
            journal,
            speed,
            follow,
        } => {
            cutover::journal::trust::check_permissions(&journal).map_err(|e| anyhow!(e))?;
            replay(&journal, speed, follow).await
        }
        Cmd::Unlock {
            inventory,
            run_id,
            journal,
            yes_i_checked,
        } => {
            let inv = load_inventory(&inventory)?;
            unlock(inv, run_id, journal, yes_i_checked).await
        }
        Cmd::Runbooks { cmd } => runbooks(cmd.unwrap_or(RunbooksCmd::List)),
        Cmd::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "cutover",
                &mut std::io::stdout(),
            );
            Ok(0)
        }
        Cmd::Man { sub } => man_page(&sub),
        Cmd::Check { runbook, inventory } => {
            let loaded = load_runbook(&runbook)?;
            let rb = &loaded.runbook;
            if let Some(inv) = inventory {
                let inv = load_inventory(&inv)?;
                let params = rb.resolve_params(&BTreeMap::new()).map_err(invalid)?;
                let ops = plan::compile(rb, &inv, &params)
                    .map_err(|e| invalid(format!("{}: {e}", runbook.display())))?;
                println!(
                    "{}: ok: {} steps, {} operations over {} nodes",
                    runbook.display(),
                    rb.steps.len(),
                    ops.len(),
                    inv.nodes.len()
                );
            } else {
                println!("{}: ok: {} steps", runbook.display(), rb.steps.len());
            }
            Ok(0)
        }
        Cmd::Plan {
            runbook,
            inventory,
            params,
            format,
        } => {
            let loaded = load_runbook(&runbook)?;
            let inv = load_inventory(&inventory)?;
            let params = loaded
                .runbook
                .resolve_params(&parse_params(&params)?)
                .map_err(invalid)?;
            let ops = plan::compile(&loaded.runbook, &inv, &params)
                .map_err(|e| invalid(e.to_string()))?;
            let text = cutover::engine::report::render_plan(
                &loaded.runbook,
                &inv,
                &params,
                &ops,
                format == PlanFormat::Markdown,
            );
            print!("{}", for_terminal_block(&text));
            Ok(0)
        }
        Cmd::Probe { inventory, format } => {
            let inv = load_inventory(&inventory)?;
            let (_world, moved) = runtime::world_for(&inv).await?;
            let inv = moved.unwrap_or(inv);
            let mut fleet = cutover::drivers::Fleet::new(inv.clone())?;
            fleet.passphrase = Some(runtime::tty_passphrase_prompt());
            runtime::unlock_keys(&fleet).await?;
            let obs = cutover::drivers::full_probe(&fleet, true)
                .await
                .map_err(|e| anyhow!("{} — {}", e.msg, e.next))?;
            let unreachable: Vec<String> = inv
                .node_names()
                .into_iter()
                .filter_map(|n| {
                    let u = obs.nodes.get(&n)?.unreachable.as_ref()?;
                    Some(u.headline(&n))
                })
                .collect();
            match format {
                ProbeFormat::Json => println!("{}", serde_json::to_string_pretty(&obs)?),
                ProbeFormat::Table => {
                    // Each field is one cell: a newline or escape from a remote host must not
                    // break the table (nor reach the terminal), so every string is made one line.
                    let shown = serde_json::to_value(&obs)
                        .ok()
                        .and_then(|mut v| {
                            cutover::sanitize::json_one_line(&mut v);
                            serde_json::from_value(v).ok()
                        })
                        .unwrap_or(obs);
                    let table = cutover::engine::report::probe_table(&inv, &shown);
                    print!("{}", for_terminal_block(&table))
                }
            }
            if unreachable.is_empty() {
                Ok(0)
            } else {
                eprintln!(
                    "cutover: {} of {} nodes could not be reached ({}); exit 5",
                    unreachable.len(),
                    inv.nodes.len(),
                    for_terminal(&unreachable.join("; "))
                );
                Ok(PROBE_UNREACHABLE)
            }
        }
        Cmd::World {
            cmd: WorldCmd::Create { dir, nodes, lbs },
        } => {
            let dir = absolute(&dir)?;
            let info = cutover::world::create(&dir, &cutover::world::WorldSpec { nodes, lbs })?;
            println!(
                "created {} (inventory {})",
                dir.display(),
                info.inventory_path.display()
            );
            Ok(0)
        }
        Cmd::World {
            cmd: WorldCmd::Serve { dir },
        } => {
            let dir = absolute(&dir)?;
            let info = cutover::world::load(&dir)?;
            let handle = cutover::world::start(&info).await?;
            let _mark = runtime::ServeMark::create(&dir)?;
            for n in &info.nodes {
                println!("{}: {}", n.name, n.keystone_url);
            }
            for lb in &info.lbs {
                println!(
                    "{}: frontend {}, admin socket {}",
                    lb.name,
                    lb.frontend_url,
                    lb.socket.display()
                );
            }
            println!(
                "serving {} — Ctrl-C or SIGTERM to stop (a hangup does not stop it)",
                dir.display()
            );
            // The world stands in for a fleet, which does not go down with the operator's SSH
            // session: on a hangup it keeps serving, so that the run paused by the same hangup
            // resumes against the world as it left it (a restart in flight completes there).
            use tokio::signal::unix::{SignalKind, signal};
            let mut term = signal(SignalKind::terminate())?;
            let mut hup = signal(SignalKind::hangup())?;
            loop {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => break,
                    _ = term.recv() => break,
                    // Nothing more goes to a terminal that is gone.
                    _ = hup.recv() => runtime::detach_from_terminal(),
                }
            }
            handle.shutdown().await;
            Ok(0)
        }
        Cmd::World {
            cmd: WorldCmd::Fault { dir, fault, args },
        } => {
            use cutover::world::fault::{self, Fault, FaultError};
            let as_exit = |e: anyhow::Error| match e.downcast_ref::<FaultError>() {
                Some(FaultError::Invalid(msg)) => invalid(msg.clone()),
                _ => e,
            };
            let fault = Fault::parse(&fault, &args).map_err(as_exit)?;
            let dir = absolute(&dir)?;
            // Blocking std I/O with waits: off the async workers.
            let line = tokio::task::spawn_blocking(move || fault::inject(&dir, &fault))
                .await
                .context("the fault injection task failed")?
                .map_err(as_exit)?;
            println!("{line}");
            Ok(0)
        }
        Cmd::Journal {
            cmd:
                JournalCmd::Verify {
                    journal,
                    allowed_signers,
                },
        } => {
            let allowed = match &allowed_signers {
                Some(f) => Some(
                    std::fs::read_to_string(f)
                        .map_err(|e| e.to_string())
                        .and_then(|t| cutover::journal::sign::parse_allowed_signers(&t))
                        .map_err(|e| invalid(format!("{}: {e}", f.display())))?,
                ),
                None => None,
            };
            if let Err(e) = cutover::journal::trust::check_permissions(&journal) {
                println!("warning: {}", for_terminal(&e));
            }
            let r = cutover::journal::verify(&journal);
            if let Some(e) = &r.io_error {
                eprintln!("{}: {e}", journal.display());
                return Ok(1);
            }
            if let Some(t) = &r.torn_tail {
                println!(
                    "{}: the last line (line {}, {} bytes) is torn (a crash mid-write); tolerated",
                    journal.display(),
                    t.line_no,
                    t.bytes
                );
            }
            match &r.first_bad {
                None => {
                    println!(
                        "{}: intact, {} records, hash chain verified",
                        journal.display(),
                        r.records
                    );
                    let records = cutover::journal::read(&journal)?.records;
                    Ok(report_signatures(
                        &records,
                        allowed.as_deref(),
                        allowed_signers.as_deref(),
                    ))
                }
                Some(b) => {
                    println!(
                        "{}: BROKEN at seq {} (line {}): {}",
                        journal.display(),
                        b.seq,
                        b.line_no,
                        b.reason
                    );
                    Ok(1)
                }
            }
        }
        Cmd::Journal {
            cmd: JournalCmd::Show { journal, format },
        } => {
            use cutover::journal::render::{Options, damage_banner, render_with};
            use std::io::IsTerminal;
            cutover::journal::trust::check_permissions(&journal).map_err(|e| anyhow!(e))?;
            // A damaged journal is shown up to its damage, under a banner naming it (verify
            // still fails it).
            let read = cutover::journal::read_prefix(&journal)?;
            let f = match format {
                ShowFormat::Text => cutover::journal::Format::Text,
                ShowFormat::Json => cutover::journal::Format::Json,
                ShowFormat::Markdown => cutover::journal::Format::Markdown,
            };
            // Lines are cut to a terminal's width, never in a pipe or a file.
            let width = std::io::stdout().is_terminal().then(|| {
                crossterm::terminal::size()
                    .map(|(cols, _)| usize::from(cols).max(40))
                    .unwrap_or(100)
            });
            let opts = Options {
                width,
                damage: read.damage.clone(),
                torn_tail: read.torn_tail.clone(),
            };
            let text = render_with(&read.records, f, &opts);
            print!("{}", for_terminal_block(&text));
            if let Some(w) = width
                && f == cutover::journal::Format::Text
            {
                let whole = Options {
                    width: None,
                    ..opts.clone()
                };
                if render_with(&read.records, f, &whole) != text {
                    let j = cutover::transport::shell_quote(&journal.display().to_string());
                    eprintln!(
                        "(lines cut at {w} columns: `cutover journal show {} | less -S` shows them whole)",
                        for_terminal(&j)
                    );
                }
            }
            if let Some(d) = &read.damage {
                use std::io::Write;
                let _ = std::io::stdout().flush();
                eprintln!(
                    "{}: {}",
                    journal.display(),
                    for_terminal(&damage_banner(d, read.records.len()))
                );
            }
            Ok(0)
        }
        Cmd::Journal {
            cmd:
                JournalCmd::Export {
                    journal,
                    format: ExportFormat::Asciicast,
                    speed,
                    size: (cols, rows),
                    idle_limit,
                    output,
                },
        } => {
            use cutover::tui::export::{Options, SPEEDS, write_asciicast};
            use std::io::IsTerminal;
            if !(speed.is_finite() && (SPEEDS.0..=SPEEDS.1).contains(&speed)) {
                return Err(invalid(format!(
                    "--speed {speed}: it must be between 1/64 (0.015625) and 64 (2 = twice as fast)"
                )));
            }
            if !(idle_limit.is_finite() && idle_limit >= 0.0) {
                return Err(invalid(format!(
                    "--idle-limit {idle_limit}: seconds, 0 or more (0: every wait as it was)"
                )));
            }
            if output.is_none() && std::io::stdout().is_terminal() {
                return Err(invalid(
                    "the recording would be written to the terminal: give -o FILE (e.g. -o run.cast), or redirect standard output",
                ));
            }
            cutover::journal::trust::check_permissions(&journal).map_err(|e| anyhow!(e))?;
            // A damaged journal is exported up to its damage, every screen under the replay's
            // banner naming it (verify still fails it).
            let read = cutover::journal::read_prefix(&journal)?;
            let opts = Options {
                cols,
                rows,
                speed,
                idle_time_limit: (idle_limit > 0.0).then_some(idle_limit),
                journal: journal.clone(),
                color: cutover::tui::theme::Theme::from_env().color,
                // Unicode unless --ascii: the recording is played elsewhere (asciinema plays
                // only on UTF-8 terminals), whatever this shell's locale says.
                ascii: cli.ascii,
                damage: read.damage.clone(),
            };
            if let Some(d) = &read.damage {
                eprintln!(
                    "{}: {}",
                    for_terminal(&journal.display().to_string()),
                    for_terminal(&cutover::journal::render::damage_banner(
                        d,
                        read.records.len()
                    ))
                );
            }
            let mut cast = Vec::new();
            let summary = write_asciicast(&read.records, &opts, &mut cast)?;
            match &output {
                Some(file) => {
                    use std::io::Write;
                    use std::os::unix::fs::OpenOptionsExt;
                    std::fs::OpenOptions::new()
                        .write(true)
                        .create(true)
                        .truncate(true)
                        .mode(0o600)
                        .open(file)
                        .and_then(|mut f| f.write_all(&cast).and_then(|_| f.sync_all()))
                        .with_context(|| format!("cannot write {}", file.display()))?;
                    let limit = match opts.idle_time_limit {
                        Some(l) => format!(
                            ", plays in {:.1} s (stillness over {l} s cut)",
                            summary.played
                        ),
                        None => String::new(),
                    };
                    let name = file.display().to_string();
                    eprintln!(
                        "wrote {}: {} events in {} frames, {:.1} s at ×{speed}{limit}, {cols}x{rows}; play it: asciinema play {}",
                        for_terminal(&name),
                        summary.events,
                        summary.frames,
                        summary.duration,
                        for_terminal(&cutover::transport::shell_quote(&name)),
                    );
                }
                None => {
                    use std::io::Write;
                    std::io::stdout()
                        .write_all(&cast)
                        .context("cannot write the recording to standard output")?;
                }
            }
            Ok(0)
        }
    }
}

/// The UI reads keys from stdin and draws on stdout: without a terminal on both, say so before
/// anything is created, locked or journaled (exit 2), and name the headless way.
fn need_terminal(headless: bool) -> Result<()> {
    use std::io::IsTerminal;
    if headless || (std::io::stdin().is_terminal() && std::io::stdout().is_terminal()) {
        return Ok(());
    }
    Err(invalid(
        "the UI needs a terminal, and stdin or stdout is not one: run this in a terminal (inside tmux on a bastion), or without a UI with --headless --answers FILE (an example answers file: `cutover runbooks show demo-answers`)",
    ))
}

/// The names `cutover runbooks show` takes (and completes): every shipped runbook and the
/// answers file, each also with `.yaml`.
fn shipped_names() -> clap::builder::PossibleValuesParser {
    use clap::builder::PossibleValue;
    use cutover::runbook::{SHIPPED_ANSWERS, shipped, shipped_name};
    clap::builder::PossibleValuesParser::new(
        shipped()
            .iter()
            .map(|(file, _)| *file)
            .chain([SHIPPED_ANSWERS.0])
            .map(|file| PossibleValue::new(shipped_name(file)).alias(file)),
    )
}

/// `cutover runbooks [list|show NAME]`.
fn runbooks(cmd: RunbooksCmd) -> Result<i32> {
    use cutover::runbook::{SHIPPED_ANSWERS, one_line, shipped, shipped_name, shipped_named};
    match cmd {
        RunbooksCmd::List => {
            let rows: Vec<(&str, String)> = shipped()
                .iter()
                .map(|(file, text)| {
                    let title = Runbook::parse(text, file)
                        .map(|rb| one_line(&rb.title))
                        .unwrap_or_else(|e| format!("(does not parse: {e})"));
                    (shipped_name(file), title)
                })
                .collect();
            // The answers file ships beside them (every file of runbooks/ is here), said for
            // what it is.
            let mut rows = rows;
            rows.push((
                shipped_name(SHIPPED_ANSWERS.0),
                "(answers, not a runbook) every hard stop above, for --headless --answers".into(),
            ));
            let width = rows.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
            for (name, title) in &rows {
                let title = for_terminal(title);
                println!(
                    "{name:<width$}  {}",
                    cutover::glyphs::for_output(&title, cutover::glyphs::ascii())
                );
            }
            use std::io::IsTerminal;
            if std::io::stdout().is_terminal() {
                eprintln!(
                    "\nprint one: cutover runbooks show NAME; run one: cutover run NAME -i INVENTORY\nanswers for --headless rehearsals: cutover runbooks show {} > answers.yaml",
                    shipped_name(SHIPPED_ANSWERS.0)
                );
            }
            Ok(0)
        }
        RunbooksCmd::Show { name } => {
            let text = if shipped_name(&name) == shipped_name(SHIPPED_ANSWERS.0) {
                SHIPPED_ANSWERS.1
            } else {
                shipped_named(&name).map(|(_, t)| t).ok_or_else(|| {
                    invalid(format!(
                        "no shipped runbook is called `{name}`; shipped: {} (and the answers file {})",
                        shipped()
                            .iter()
                            .map(|(f, _)| shipped_name(f))
                            .collect::<Vec<_>>()
                            .join(", "),
                        shipped_name(SHIPPED_ANSWERS.0)
                    ))
                })?
            };
            print!("{text}");
            Ok(0)
        }
    }
}

/// `cutover man [SUBCOMMAND...]`: the manual page, generated from the command definitions.
fn man_page(sub: &[String]) -> Result<i32> {
    use clap::CommandFactory;
    // Built, each subcommand knows its page's name (cutover-journal-show).
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    for s in sub {
        let Some(found) = cmd.find_subcommand(s).cloned() else {
            let names: Vec<&str> = cmd.get_subcommands().map(|c| c.get_name()).collect();
            return Err(invalid(format!(
                "`{}` has no subcommand `{s}`; it has: {}",
                cmd.get_display_name().unwrap_or(cmd.get_name()),
                names.join(", ")
            )));
        };
        cmd = found;
    }
    let top = cmd.get_name() == "cutover";
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd).render(&mut out)?;
    let mut page = String::from_utf8_lossy(&out).into_owned();
    if top {
        // EXIT STATUS before VERSION, as manual pages order them.
        let mut r = roff::Roff::new();
        r.control("SH", ["EXIT STATUS"]);
        for (code, what) in EXIT_STATUS {
            r.control("TP", [])
                .text([roff::bold(*code)])
                .text([roff::roman(*what)]);
        }
        let section = r.to_roff();
        match page.find("\n.SH VERSION") {
            Some(i) => page.insert_str(i + 1, &section),
            None => page.push_str(&section),
        }
    }
    use std::io::Write;
    std::io::stdout().write_all(page.as_bytes())?;
    Ok(0)
}

/// The exit codes, for the manual page (the module's doc says the same).
const EXIT_STATUS: &[(&str, &str)] = &[
    (
        "0",
        "Completed: the run, resume or command did what it was asked.",
    ),
    (
        "1",
        "Any other error; `journal verify`: the hash chain or a signature is broken.",
    ),
    (
        "2",
        "Invalid input (a runbook, inventory, answers file, parameter or argument), or the UI without a terminal; nothing was changed.",
    ),
    (
        "3",
        "Paused: a hard stop without an answer, declined, or quit; `cutover resume J` continues.",
    ),
    (
        "4",
        "Halted by a failed gate or action (fix the cause, then resume), or refused because another run holds the fleet or the journal.",
    ),
    (
        "5",
        "A node could not be reached: `probe` (the others were read and shown), or `run`/`resume` refused before any change because a node's host key changed (fix it as the error says, then run the command again).",
    ),
];

fn absolute(p: &Path) -> Result<PathBuf> {
    Ok(if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()?.join(p)
    })
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
    // Read again for its hash: the text the inventory was loaded from a moment ago.
    let inventory_sha256 = std::fs::read(inventory_path)
        .map(|t| cutover::journal::trust::sha256_hex(&t))
        .ok();
    let signer = signer_for(opts.sign_key.as_deref())?;
    let mut s = Session::start(&loaded, inv, params, &journal, opts.headless).await?;
    s.inventory_sha256 = inventory_sha256;
    s.signer = signer;
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
        cutover::tui_bridge::drive_with_ui(s, resumed).await?
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

/// `cutover unlock`: show every node's fleet lock, and break those of an abandoned run after a
/// deliberate confirmation; recorded in `journal` if one is given.
async fn unlock(
    inv: Inventory,
    run_id: Option<String>,
    journal: Option<PathBuf>,
    yes_i_checked: bool,
) -> Result<i32> {
    use runtime::fleet_lock;
    let fleet = cutover::drivers::Fleet::new(inv.clone())?;
    let (found, failed) = fleet_lock::read_all(&fleet).await;
    for f in &failed {
        eprintln!("cutover: cannot read the fleet lock of {}", for_terminal(f));
    }
    let (chosen, others): (Vec<_>, Vec<_>) = found.into_iter().partition(|f| {
        run_id
            .as_deref()
            .is_none_or(|r| f.holder.as_ref().is_some_and(|h| h.run_id == r))
    });
    for f in &others {
        println!(
            "{}: held by {} (not --run, left alone)",
            for_terminal(&f.node),
            for_terminal(&f.describe())
        );
    }
    if chosen.is_empty() {
        println!(
            "no fleet lock{} on any node of {}",
            run_id
                .as_deref()
                .map(|r| format!(" of run {}", for_terminal(r)))
                .unwrap_or_default(),
            for_terminal(&inv.cluster)
        );
        return Ok(if failed.is_empty() { 0 } else { 1 });
    }
    for f in &chosen {
        println!(
            "{}: {} held by {}",
            for_terminal(&f.node),
            f.file.display(),
            for_terminal(&f.describe())
        );
    }
    // A holder running on this very host is a live run, not a stale lock.
    if let Some(h) = chosen
        .iter()
        .filter_map(|f| f.holder.as_ref())
        .find(|h| h.alive() == Some(true) && h.pid != std::process::id())
    {
        eprintln!(
            "cutover: run {} is still running here (pid {}): quit it (q) or let it finish; the lock of a live run is not broken",
            for_terminal(&h.run_id),
            h.pid
        );
        return Ok(4);
    }
    let mut runs: Vec<String> = chosen
        .iter()
        .map(|f| {
            f.holder
                .as_ref()
                .map(|h| h.run_id.clone())
                .unwrap_or_else(|| "?".into())
        })
        .collect();
    runs.sort();
    runs.dedup();
    if !yes_i_checked {
        let word = if runs.len() == 1 {
            runs[0].clone()
        } else {
            "all".into()
        };
        if !confirm_on_tty(
            &format!(
                "Breaking a lock lets another run change these nodes. Check that run {} is not running anywhere, then type {} to break it: ",
                runs.join(", "),
                word
            ),
            &word,
        ) {
            eprintln!(
                "cutover: not confirmed; nothing removed. Breaking a fleet lock is deliberate: check that run {} is not running (its pid on its bastion), then pass --yes-i-checked or confirm on a terminal",
                for_terminal(&runs.join(", "))
            );
            return Ok(2);
        }
    }
    let problems = fleet_lock::break_locks(&fleet, &chosen).await;
    let broken: Vec<_> = chosen
        .iter()
        .filter(|f| {
            !problems
                .iter()
                .any(|p| p.starts_with(&format!("{}:", f.node)))
        })
        .cloned()
        .collect();
    if let Some(j) = &journal {
        record_unlock(j, &inv, &broken, &runs)?;
    }
    for b in &broken {
        println!(
            "{}: broke the lock of {}",
            for_terminal(&b.node),
            for_terminal(&b.describe())
        );
    }
    for p in &problems {
        eprintln!("cutover: {}", for_terminal(p));
    }
    Ok(if problems.is_empty() && failed.is_empty() {
        0
    } else {
        1
    })
}

/// Ask on the controlling terminal for `word`; false without a terminal.
fn confirm_on_tty(prompt: &str, word: &str) -> bool {
    use std::io::{BufRead, Write};
    if !nix::unistd::isatty(std::io::stdin()).unwrap_or(false) {
        return false;
    }
    eprint!("{}", for_terminal(prompt));
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).is_ok() && line.trim() == word
}

/// Append a `fleet_unlocked` record to `journal` (created if absent).
fn record_unlock(
    journal: &Path,
    inv: &Inventory,
    broken: &[runtime::fleet_lock::Found],
    runs: &[String],
) -> Result<()> {
    use cutover::journal::{Entry, Journal, Who};
    let mut j = if journal.exists() {
        Journal::open_for_append(journal)?.0
    } else {
        Journal::create(journal)?
    };
    let run = cutover::journal::read(journal)
        .ok()
        .and_then(|r| r.records.last().map(|r| r.run.clone()))
        .unwrap_or_else(|| runs.join(","));
    j.append(Entry {
        time: chrono::Utc::now(),
        run,
        actor: Who::current().actor_label(),
        kind: "fleet_unlocked".into(),
        step: None,
        node: None,
        data: runtime::fleet_lock::unlocked_record(inv, broken),
    })?;
    Ok(())
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

/// `journal verify`'s signature part: how many confirmations are signed and, with allowed
/// signers, whether each verifies. Returns the exit code.
fn report_signatures(
    records: &[cutover::journal::Record],
    allowed: Option<&[cutover::journal::sign::AllowedSigner]>,
    allowed_path: Option<&Path>,
) -> i32 {
    let rep = cutover::journal::sign::check_signatures(records, allowed);
    println!(
        "{} of {} hard-stop confirmations signed",
        rep.signed, rep.confirmations
    );
    let Some(path) = allowed_path else {
        if rep.signed > 0 {
            println!("check the signatures with --allowed-signers FILE");
        }
        return 0;
    };
    for (seq, principals) in &rep.verified {
        println!("seq {seq}: good signature by {}", for_terminal(principals));
    }
    for (seq, why) in &rep.bad {
        println!("seq {seq}: BAD SIGNATURE: {}", for_terminal(why));
    }
    if rep.bad.is_empty() {
        println!("every confirmation verified against {}", path.display());
        0
    } else {
        println!(
            "{} of {} confirmations failed against {}",
            rep.bad.len(),
            rep.confirmations,
            path.display()
        );
        1
    }
}

/// `replay`: the UI over a journal. It needs a terminal on both sides (keys in, screens out);
/// without one it says so and points at the text rendering (exit 2).
async fn replay(journal: &Path, speed: f64, follow: bool) -> Result<i32> {
    use std::io::IsTerminal;
    let missing: Vec<&str> = [
        ("stdin", std::io::stdin().is_terminal()),
        ("stdout", std::io::stdout().is_terminal()),
    ]
    .into_iter()
    .filter(|(_, tty)| !tty)
    .map(|(name, _)| name)
    .collect();
    if !missing.is_empty() {
        let j = cutover::transport::shell_quote(&journal.display().to_string());
        let j = for_terminal(&j);
        let verb = if missing.len() > 1 { "are" } else { "is" };
        eprintln!(
            "cutover: replay needs a terminal: {} {verb} not a terminal (replay draws the run's \
             screens and reads keys).\n  to read the journal as text: cutover journal show {j}\n  \
             to check its hash chain:    cutover journal verify {j}",
            missing.join(" and "),
        );
        return Ok(2);
    }
    cutover::tui_bridge::replay(journal, speed, follow).await?;
    Ok(0)
}
