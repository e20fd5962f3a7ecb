//! `cutover probe`: the fleet's state now.

use super::{PROBE_UNREACHABLE, ProbeFormat, load_inventory};
use anyhow::{Result, anyhow};
use cutover::runtime;
use cutover::sanitize::{for_terminal, for_terminal_block};
use std::path::PathBuf;

/// `cutover probe`.
pub async fn probe(inventory: PathBuf, format: ProbeFormat) -> Result<i32> {
    let inv = load_inventory(&inventory)?;
    let (_world, moved) = super::world::world_for(&inv).await?;
    let inv = moved.unwrap_or(inv);
    let mut fleet = cutover::drivers::Fleet::new(inv.clone())?;
    fleet.passphrase = Some(runtime::tty_passphrase_prompt());
    runtime::unlock_keys(&fleet).await?;
    let obs = cutover::drivers::probe::full_probe(&fleet, true)
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
