//! `cutover unlock`: break the fleet lock an abandoned run left.

use anyhow::Result;
use cutover::inventory::Inventory;
use cutover::runtime;
use cutover::sanitize::for_terminal;
use std::path::{Path, PathBuf};

/// `cutover unlock -i INVENTORY`.
pub async fn unlock_cmd(
    inventory: PathBuf,
    run_id: Option<String>,
    journal: Option<PathBuf>,
    yes_i_checked: bool,
) -> Result<i32> {
    let inv = super::load_inventory(&inventory)?;
    unlock(inv, run_id, journal, yes_i_checked).await
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
