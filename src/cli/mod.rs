//! cutover's command line: clap subcommands → entry points. Exit codes: 0 completed, 1 any other
//! error, 2 invalid input, 3 paused at a hard stop, 4 halted by a failed gate or action,
//! 5 a node could not be reached: `probe` (over SSH: host key changed or unknown, connection or
//! login refused; the others were read and shown), or `run`/`resume` refused before any change
//! because a node's host key changed (the fleet lock cannot be taken there; the error names the
//! `ssh-keygen -R` that fixes it).
//!
//! One file per family of subcommands: [`run`] (demo, run, resume), [`journal`] (journal tools
//! and replay), [`world`] (the demo world, and its stand-ins beside a run), [`runbooks`]
//! (runbooks, check, plan), [`probe`], [`unlock`], [`man`] (manual page, completions); [`ui`]
//! wires a session or a replay to the terminal UI.

mod journal;
mod man;
mod probe;
mod run;
mod runbooks;
mod ui;
mod unlock;
mod world;

use anyhow::Result;
use clap::{Parser, Subcommand, ValueEnum};
use cutover::inventory::Inventory;
use cutover::runbook::Runbook;
use cutover::runtime;
use cutover::sanitize::for_terminal_block;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "cutover",
    version,
    about = "Roll a change across load-balanced Keystone nodes without dropping live sessions: gated, journaled, resumable."
)]
pub struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
    /// Draw the screen with ASCII only (symbols + x # * ., borders +-|), whatever the locale
    /// says; without it, ASCII is used when LC_ALL/LC_CTYPE/LANG do not say UTF-8.
    #[arg(long, global = true)]
    ascii: bool,
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
pub enum PlanFormat {
    Text,
    Markdown,
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
pub enum ProbeFormat {
    Table,
    Json,
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
pub enum ShowFormat {
    Text,
    Json,
    Markdown,
}

#[derive(clap::Args, Clone)]
pub struct RunOpts {
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
    #[command(flatten)]
    meter: run::MeterArgs,
}

#[derive(Subcommand)]
pub enum Cmd {
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
        #[command(flatten)]
        meter: run::MeterArgs,
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
pub enum RunbooksCmd {
    /// One line per shipped runbook: its name and title (the default).
    List,
    /// Print a shipped runbook verbatim (`cutover runbooks show jws-to-fernet > mine.yaml`), or
    /// the shipped answers file (`demo-answers`).
    Show {
        /// The runbook's name, with or without `.yaml`.
        #[arg(value_parser = runbooks::shipped_names())]
        name: String,
    },
}

#[derive(Subcommand)]
pub enum WorldCmd {
    /// Create a world directory (nodes, keys, keystone.conf, inventory.yaml, clouds.yaml).
    Create {
        dir: PathBuf,
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        #[arg(long, default_value_t = 1)]
        lbs: usize,
        /// Give the nodes one shared token cache with this lifetime (seconds), as one memcached
        /// shared by the nodes (kolla-ansible: 600): every keystone.conf gets `[cache]
        /// enabled = true`, and a token validates on nodes of the other provider while cached.
        #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=86_400))]
        token_cache: Option<u64>,
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
pub enum JournalCmd {
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
pub enum ExportFormat {
    Asciicast,
}

/// An error that means "the input was wrong" (exit 2).
#[derive(Debug)]
pub struct Invalid(String);
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

/// Parse the command line, run the command, print an error and map it to its exit code.
pub fn main() -> ExitCode {
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
    match rt.block_on(dispatch(cli)) {
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
/// (refused before any change, as `probe` exits for it), 1 for anything else (a journal that
/// cannot be written any more, too).
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

/// `p` from the current directory when relative.
fn absolute(p: &Path) -> Result<PathBuf> {
    Ok(if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()?.join(p)
    })
}

/// One subcommand, to its handler.
async fn dispatch(cli: Cli) -> Result<i32> {
    match cli.cmd {
        Cmd::Demo {
            nodes,
            lbs,
            world,
            runbook,
            opts,
        } => run::demo(nodes, lbs, world, runbook, opts).await,
        Cmd::Run {
            runbook,
            inventory,
            opts,
        } => run::run(runbook, inventory, opts).await,
        Cmd::Resume {
            journal,
            headless,
            answers,
            sign_key,
            meter,
        } => run::resume(journal, headless, answers, sign_key, meter.opts()).await,
        Cmd::Replay {
            journal,
            speed,
            follow,
        } => journal::replay_cmd(journal, speed, follow).await,
        Cmd::Unlock {
            inventory,
            run_id,
            journal,
            yes_i_checked,
        } => unlock::unlock_cmd(inventory, run_id, journal, yes_i_checked).await,
        Cmd::Runbooks { cmd } => runbooks::runbooks(cmd.unwrap_or(RunbooksCmd::List)),
        Cmd::Completions { shell } => man::completions(shell),
        Cmd::Man { sub } => man::man_page(&sub),
        Cmd::Check { runbook, inventory } => runbooks::check(runbook, inventory),
        Cmd::Plan {
            runbook,
            inventory,
            params,
            format,
        } => runbooks::plan(runbook, inventory, params, format),
        Cmd::Probe { inventory, format } => probe::probe(inventory, format).await,
        Cmd::World { cmd } => match cmd {
            WorldCmd::Create {
                dir,
                nodes,
                lbs,
                token_cache,
            } => world::create(dir, nodes, lbs, token_cache),
            WorldCmd::Serve { dir } => world::serve(dir).await,
            WorldCmd::Fault { dir, fault, args } => world::fault(dir, fault, args).await,
        },
        Cmd::Journal { cmd } => match cmd {
            JournalCmd::Verify {
                journal,
                allowed_signers,
            } => journal::verify(journal, allowed_signers),
            JournalCmd::Show { journal, format } => journal::show(journal, format),
            JournalCmd::Export {
                journal,
                format: ExportFormat::Asciicast,
                speed,
                size,
                idle_limit,
                output,
            } => journal::export(journal, speed, size, idle_limit, output, cli.ascii),
        },
    }
}
