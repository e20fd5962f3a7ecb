//! `cutover journal verify|show|export` and `cutover replay`.

use super::{ShowFormat, invalid};
use anyhow::{Context, Result, anyhow};
use cutover::sanitize::{for_terminal, for_terminal_block};
use std::path::{Path, PathBuf};

/// `cutover journal verify`.
pub fn verify(journal: PathBuf, allowed_signers: Option<PathBuf>) -> Result<i32> {
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
    // The signed confirmations are kept from the one verifying pass.
    let (r, confirmations) = cutover::journal::verify_keeping(&journal, |kind| {
        kind == cutover::journal::sign::SIGNED_KIND
    });
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
            Ok(report_signatures(
                &confirmations,
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

/// `cutover journal show`.
pub fn show(journal: PathBuf, format: ShowFormat) -> Result<i32> {
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

/// `cutover journal export --format asciicast`.
pub fn export(
    journal: PathBuf,
    speed: f64,
    (cols, rows): (u16, u16),
    idle_limit: f64,
    output: Option<PathBuf>,
    ascii: bool,
) -> Result<i32> {
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
        ascii,
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

/// `cutover replay`: the journal's permissions checked, then [`replay`].
pub async fn replay_cmd(journal: PathBuf, speed: f64, follow: bool) -> Result<i32> {
    cutover::journal::trust::check_permissions(&journal).map_err(|e| anyhow!(e))?;
    replay(&journal, speed, follow).await
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
    super::ui::replay(journal, speed, follow).await?;
    Ok(0)
}
