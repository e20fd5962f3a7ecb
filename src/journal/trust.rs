//! Whether a journal file can be trusted before it is acted on: its permissions (OpenSSH's
//! StrictModes, applied to the journal) and the inputs it recorded.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::Record;

/// Refuses a journal that someone else could have rewritten: group- or world-writable, or owned
/// by a user other than the one running cutover or root. The error says how to fix it.
pub fn check_permissions(path: &Path) -> Result<(), String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mode = meta.mode() & 0o7777;
    let shown = path.display();
    if mode & 0o022 != 0 {
        return Err(format!(
            "journal {shown} is {}-writable (mode {mode:04o}): someone else could have rewritten \
             the record of this change; refusing it. If its contents are as you expect, fix with \
             `chmod 600 {shown}` (and check it with `cutover journal verify`)",
            if mode & 0o002 != 0 { "world" } else { "group" }
        ));
    }
    let me = nix::unistd::getuid().as_raw();
    let owner = meta.uid();
    if owner != me && owner != 0 {
        let name = |uid: u32| {
            nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
                .ok()
                .flatten()
                .map(|u| u.name)
                .unwrap_or_else(|| uid.to_string())
        };
        return Err(format!(
            "journal {shown} is owned by {} (uid {owner}), not by you ({}) or root: refusing it. \
             If it is yours, fix with `sudo chown {} {shown}`",
            name(owner),
            name(me),
            name(me)
        ));
    }
    Ok(())
}

/// sha256 (hex) of an input's text.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// What resume says about the run's inputs: the runbook's and the inventory's sha256 as recorded
/// at the start, and whether the runbook file at its origin now differs (the run continues from
/// the journal's copy either way). `built_in` gives this cutover's own text of a runbook shipped
/// inside it, by the origin the journal recorded (`built-in NAME.yaml (cutover V)`), so a shipped
/// runbook is compared with the binary's copy rather than looked for as a file.
pub fn input_notes(
    records: &[Record],
    built_in: impl Fn(&str) -> Option<&'static str>,
) -> Vec<String> {
    let Some(rs) = records.iter().find(|r| r.kind == "run_started") else {
        return Vec::new();
    };
    let s = |k: &str| rs.data.get(k).and_then(Value::as_str).unwrap_or("");
    let runbook_sha = s("runbook_sha256");
    let origin = s("runbook_origin");
    let inventory_sha = s("inventory_sha256");
    let mut notes = vec![format!(
        "started with runbook {origin} sha256 {runbook_sha}, inventory sha256 {}",
        if inventory_sha.is_empty() {
            "not recorded (an older journal)"
        } else {
            inventory_sha
        }
    )];
    if let Some(text) = built_in(origin) {
        // A runbook shipped inside cutover: compare with this binary's copy, not a file.
        let now = sha256_hex(text.as_bytes());
        if now != runbook_sha {
            notes.push(format!(
                "this cutover ships {origin} differently now (sha256 {now}); resuming from the journal's copy"
            ));
        }
    } else if !origin.is_empty() {
        match std::fs::read(origin) {
            Ok(now) if sha256_hex(&now) != runbook_sha => notes.push(format!(
                "the runbook file {origin} now differs (sha256 {}); resuming from the journal's copy",
                sha256_hex(&now)
            )),
            Ok(_) => {}
            Err(_) => notes.push(format!(
                "the runbook file {origin} is not there now; resuming from the journal's copy"
            )),
        }
    }
    notes
}
