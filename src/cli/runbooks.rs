//! `cutover runbooks`, `check` and `plan`: runbooks read, listed, validated and planned; nothing
//! changes.

use super::{PlanFormat, RunbooksCmd, invalid, load_inventory, load_runbook, parse_params};
use anyhow::Result;
use cutover::engine::plan;
use cutover::runbook::Runbook;
use cutover::sanitize::{for_terminal, for_terminal_block};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The names `cutover runbooks show` takes (and completes): every shipped runbook and the
/// answers file, each also with `.yaml`.
pub fn shipped_names() -> clap::builder::PossibleValuesParser {
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
pub fn runbooks(cmd: RunbooksCmd) -> Result<i32> {
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

/// `cutover check`.
pub fn check(runbook: PathBuf, inventory: Option<PathBuf>) -> Result<i32> {
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

/// `cutover plan`.
pub fn plan(
    runbook: PathBuf,
    inventory: PathBuf,
    params: Vec<String>,
    format: PlanFormat,
) -> Result<i32> {
    let loaded = load_runbook(&runbook)?;
    let inv = load_inventory(&inventory)?;
    let params = loaded
        .runbook
        .resolve_params(&parse_params(&params)?)
        .map_err(invalid)?;
    let ops = plan::compile(&loaded.runbook, &inv, &params).map_err(|e| invalid(e.to_string()))?;
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
