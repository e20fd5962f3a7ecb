//! `cutover man` and `cutover completions`: generated from the same clap definitions.

use super::{Cli, invalid};
use anyhow::Result;

/// `cutover completions SHELL`.
pub fn completions(shell: clap_complete::Shell) -> Result<i32> {
    use clap::CommandFactory;
    clap_complete::generate(
        shell,
        &mut Cli::command(),
        "cutover",
        &mut std::io::stdout(),
    );
    Ok(0)
}

/// `cutover man [SUBCOMMAND...]`: the manual page, generated from the command definitions.
pub fn man_page(sub: &[String]) -> Result<i32> {
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
