//! The fleet lock: one run per fleet, like Terraform's state lock.
//!
//! When a run starts (and when it resumes) cutover creates a lock file on every node, over the
//! node's own transport, before anything on the fleet changes. The file is made atomically: the
//! holder's JSON is written to a temporary file beside it, then hard-linked to the lock's name
//! (`link(2)` fails if the name exists), so a second run either gets the whole lock or sees the
//! whole holder. It stays while the run is paused or halted (the run is still the fleet's
//! writer), and is removed when the run completes or when an operator breaks it with
//! `cutover unlock`.
//!
//! Where the file is: [`lock_file`]. A node's `keystone_conf` under an `etc` directory
//! (`/etc/keystone/keystone.conf`, `/etc/kolla/keystone/keystone.conf`) puts it at
//! `/var/lib/cutover/fleet.lock` beside that `etc`'s root; so a demo world's or the lab's node
//! (`W/nodes/node1/etc/keystone/keystone.conf`) has its own under its own root
//! (`W/nodes/node1/var/lib/cutover/fleet.lock`). Any other layout: `cutover/fleet.lock` in the
//! directory of `keystone_conf`. Every inventory naming the same node finds the same file.

use crate::drivers::Fleet;
use crate::inventory::{Inventory, Node};
use crate::journal::{Journal, Who};
use crate::transport::{ExecOpts, shell_quote};
use serde::{Deserialize, Serialize};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

/// Journal kinds this module writes that are not engine events: a fold skips them.
pub const JOURNAL_KINDS: &[&str] = &["fleet_unlocked"];

/// The lock file of a node (see the module docs).
pub fn lock_file(node: &Node) -> PathBuf {
    let conf = &node.keystone_conf;
    let comps: Vec<Component> = conf.components().collect();
    match comps
        .iter()
        .rposition(|c| matches!(c, Component::Normal(n) if *n == "etc"))
    {
        Some(i) => {
            let root: PathBuf = comps[..i].iter().collect();
            let root = if root.as_os_str().is_empty() {
                PathBuf::from("/")
            } else {
                root
            };
            root.join("var/lib/cutover/fleet.lock")
        }
        None => conf
            .parent()
            .unwrap_or(Path::new("/"))
            .join("cutover/fleet.lock"),
    }
}

/// What a lock file holds.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    pub run_id: String,
    /// `user@host` (`alice(as root)@bastion1` under sudo).
    pub who: String,
    /// The host cutover runs on.
    pub bastion: String,
    pub pid: u32,
    /// The journal's real path on the bastion.
    pub journal: String,
    /// The journal file's identity on the bastion (`dev:inode`): a copy of the journal differs.
    #[serde(default)]
    pub journal_id: String,
    pub cluster: String,
    /// When the lock was taken (RFC 3339, UTC).
    pub since: String,
}

impl Holder {
    /// The holder of a run about to write `journal`.
    pub fn new(run_id: &str, cluster: &str, journal: &Journal) -> Holder {
        let who = Who::current();
        Holder {
            run_id: run_id.to_string(),
            who: who.actor_label(),
            bastion: who.host,
            pid: std::process::id(),
            journal: journal.real_path().display().to_string(),
            journal_id: journal.identity(),
            cluster: cluster.to_string(),
            since: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        }
    }

    /// One line for a person: who, which run, where, since when.
    pub fn describe(&self) -> String {
        let ago = chrono::DateTime::parse_from_rfc3339(&self.since)
            .ok()
            .and_then(|t| {
                (chrono::Utc::now() - t.with_timezone(&chrono::Utc))
                    .to_std()
                    .ok()
            })
            .map(|d| {
                format!(
                    " ({} ago)",
                    humantime::format_duration(Duration::from_secs(d.as_secs()))
                )
            })
            .unwrap_or_default();
        format!(
            "run {} of {} by {} (pid {} on {}, journal {}) since {}{ago}",
            self.run_id, self.cluster, self.who, self.pid, self.bastion, self.journal, self.since
        )
    }

    /// Is the holder's process alive? Only knowable on its own bastion: `None` elsewhere.
    pub fn alive(&self) -> Option<bool> {
        if self.bastion != Who::current().host {
            return None;
        }
        let pid = nix::unistd::Pid::from_raw(self.pid as i32);
        Some(matches!(
            nix::sys::signal::kill(pid, None),
            Ok(()) | Err(nix::errno::Errno::EPERM)
        ))
    }

    /// Is this lock the same run's, left by a process that is gone (or this one), and for the
    /// same journal file? Then a resume takes it back. A copy of the journal (same run id, other
    /// file) does not: two copies would be two writers.
    fn is_mine_to_take_back(&self, me: &Holder) -> bool {
        let same_journal = if self.journal_id.is_empty() || me.journal_id.is_empty() {
            self.journal == me.journal
        } else {
            self.journal_id == me.journal_id
        };
        self.run_id == me.run_id
            && self.bastion == me.bastion
            && same_journal
            && (self.pid == me.pid || self.alive() == Some(false))
    }
}

/// What a node's lock file says.
#[derive(Clone, Debug)]
pub struct Found {
    pub node: String,
    pub file: PathBuf,
    /// The text as read (kept to break exactly what was shown).
    pub text: String,
    pub holder: Option<Holder>,
}

impl Found {
    pub fn describe(&self) -> String {
        match &self.holder {
            Some(h) => h.describe(),
            None => format!(
                "an unreadable lock ({:?})",
                self.text.chars().take(200).collect::<String>()
            ),
        }
    }
}

/// The fleet lock refused a run: another run holds some node. Nothing was changed.
#[derive(Debug)]
pub struct FleetLocked(pub String);

impl std::fmt::Display for FleetLocked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for FleetLocked {}

/// The fleet lock could not be taken because a node cannot be reached in a way no run may go
/// past (its host key changed): refused before any change, exit 5 as `probe` for the same cause.
#[derive(Debug)]
pub struct FleetUnreachable(pub String);

impl std::fmt::Display for FleetUnreachable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for FleetUnreachable {}

/// The lock a run holds on its fleet.
#[derive(Debug, Clone)]
pub struct FleetLock {
    pub holder: Holder,
    /// The nodes this run holds.
    pub nodes: Vec<String>,
    /// Nodes that could not be reached to be locked, one line each for the operator.
    pub unreachable: Vec<String>,
}

const TIMEOUT: Duration = Duration::from_secs(30);

/// Why a lock command did not run: the host could not be reached (its lock is left for the
/// run's own probes to report), its host key changed (the lock is refused, saying how to fix
/// it), or it ran and failed (the lock is refused). Removing a lock may also find it changed
/// hands since it was read (it is left alone).
#[derive(Debug, thiserror::Error)]
pub enum ShError {
    #[error("{0}")]
    Unreachable(String),
    #[error("{}", .0.line())]
    HostKey(Box<crate::engine::facts::Unreachable>),
    #[error("{0}")]
    Failed(String),
    #[error("the lock changed hands while being removed; left alone")]
    Changed,
}

/// A changed host key is never "unreachable": it refuses everything, this lock too. It is
/// classified as `probe` does (where, why, the `ssh-keygen -R` that fixes it).
fn classify(fleet: &Fleet, node: &Node, e: &crate::transport::TransportError) -> ShError {
    use crate::transport::TransportError as T;
    match e {
        T::HostKeyChanged { .. } => match fleet.unreachable(node, e) {
            Some(u) => ShError::HostKey(Box::new(u)),
            None => ShError::Failed(e.to_string()),
        },
        _ => ShError::Unreachable(e.to_string()),
    }
}

async fn sh_raw(
    fleet: &Fleet,
    node: &Node,
    cmd: &str,
    stdin: Option<Vec<u8>>,
) -> Result<(i32, String), ShError> {
    let t = fleet
        .node_transport(&node.name)
        .await
        .map_err(|e| match e.transport.as_deref() {
            Some(te) => classify(fleet, node, te),
            None => ShError::Failed(e.msg),
        })?;
    let out = t
        .exec(
            cmd,
            ExecOpts {
                stdin,
                timeout: TIMEOUT,
                sudo: node.sudo,
            },
        )
        .await
        .map_err(|e| classify(fleet, node, &e))?;
    if out.status != 0 && out.status != 3 {
        return Err(ShError::Failed(out.last_line()));
    }
    Ok((out.status, out.stdout_str()))
}

fn dir_and_file(node: &Node) -> (String, String) {
    let f = lock_file(node);
    let dir = f.parent().unwrap_or(Path::new("/")).display().to_string();
    (shell_quote(&dir), shell_quote(&f.display().to_string()))
}

enum Took {
    New,
    Back,
    Held(Box<Found>),
}

async fn take(fleet: &Fleet, node: &Node, me: &Holder) -> Result<Took, ShError> {
    let (dir, file) = dir_and_file(node);
    let json = serde_json::to_vec(me).map_err(|e| ShError::Failed(e.to_string()))?;
    // Atomic: the whole holder goes to a temporary file, then link(2) gives it the lock's name
    // only if nothing has it. Exit 3 and the current holder when something does.
    let create = format!(
        "umask 077; mkdir -p {dir} || exit 1; t={dir}/.fleet.lock.$$; {receive}; \
         if ln \"$t\" {file} 2>/dev/null; then rm -f \"$t\"; exit 0; fi; rm -f \"$t\"; cat {file} 2>/dev/null; exit 3",
        receive = crate::transport::receive_stdin("\"$t\"", &json),
    );
    let (status, text) = sh_raw(fleet, node, &create, Some(json.clone())).await?;
    if status == 0 {
        return Ok(Took::New);
    }
    let holder: Option<Holder> = serde_json::from_str(text.trim()).ok();
    if let Some(h) = &holder
        && h.is_mine_to_take_back(me)
    {
        // The same run resumed on the same journal: the lock becomes this process's.
        let replace = format!(
            "umask 077; t={dir}/.fleet.lock.$$; {}; mv -f \"$t\" {file}",
            crate::transport::receive_stdin("\"$t\"", &json)
        );
        sh_raw(fleet, node, &replace, Some(json)).await?;
        return Ok(Took::Back);
    }
    Ok(Took::Held(Box::new(Found {
        node: node.name.clone(),
        file: lock_file(node),
        text,
        holder,
    })))
}

impl FleetLock {
    /// Take the lock on every node of `fleet` for `me`, before any change. If any node is held
    /// by another run (or cannot be locked), the locks just taken are released and the run is
    /// refused with [`FleetLocked`] naming the holder and since when.
    pub async fn acquire(fleet: &Fleet, me: Holder) -> anyhow::Result<FleetLock> {
        let nodes: Vec<&Node> = fleet.inv.nodes.iter().collect();
        let mut taken = Vec::new();
        let mut held: Vec<Found> = Vec::new();
        let mut failed = Vec::new();
        let mut unreachable = Vec::new();
        let mut host_keys: Vec<(String, crate::engine::facts::Unreachable)> = Vec::new();
        // One node after the other, always in inventory order, stopping at the first that is
        // held: two runs racing for the same nodes meet at the first one, so one of them gets
        // the whole fleet (taking them all at once could leave each holding a part).
        for n in &nodes {
            match take(fleet, n, &me).await {
                Ok(Took::New) => taken.push(n.name.clone()),
                Ok(Took::Back) => {}
                Ok(Took::Held(f)) => held.push(*f),
                // Not reachable now (down, an unknown host key the run will ask about): the
                // run's probes report it; this run does not hold that node.
                Err(ShError::Unreachable(e)) => unreachable.push((n.name.clone(), e)),
                Err(ShError::HostKey(u)) => host_keys.push((n.name.clone(), *u)),
                Err(e @ (ShError::Failed(_) | ShError::Changed)) => {
                    failed.push(format!("{}: {e}", n.name))
                }
            }
            if !held.is_empty() || !failed.is_empty() || !host_keys.is_empty() {
                break;
            }
        }
        if held.is_empty() && failed.is_empty() && host_keys.is_empty() {
            return Ok(FleetLock {
                holder: me,
                nodes: nodes
                    .iter()
                    .map(|n| n.name.clone())
                    .filter(|n| !unreachable.iter().any(|(u, _)| u == n))
                    .collect(),
                unreachable: unreachable
                    .into_iter()
                    .map(|(n, e)| {
                        format!(
                            "{n}: not locked, it cannot be reached now ({e}); a resume locks it"
                        )
                    })
                    .collect(),
            });
        }
        // Give back only what this call created; a lock taken back stays this run's.
        let partial = FleetLock {
            holder: me.clone(),
            nodes: taken,
            unreachable: Vec::new(),
        };
        partial.release(fleet).await;
        if let Some((node, u)) = host_keys.first() {
            return Err(anyhow::Error::new(FleetUnreachable(format!(
                "cannot reach {node} to take the fleet lock: {}; nothing was changed\nnext: {}; then run the same command again",
                u.line(),
                u.next
            ))));
        }
        if held.is_empty() {
            return Err(anyhow::anyhow!(
                "cannot take the fleet lock on every node, so nothing was changed: {}",
                failed.join("; ")
            ));
        }
        Err(anyhow::Error::new(FleetLocked(refusal(&held, &me))))
    }

    /// Remove this run's lock file from every node that still holds it (best effort: a node
    /// that cannot be reached keeps its file, and is named).
    pub async fn release(&self, fleet: &Fleet) -> Vec<String> {
        let mut problems = Vec::new();
        for name in &self.nodes {
            let Some(node) = fleet.inv.node(name) else {
                continue;
            };
            match read(fleet, node).await {
                Ok(Some(f)) if f.holder.as_ref().is_some_and(|h| same_run(h, &self.holder)) => {
                    if let Err(e) = remove(fleet, node, &f).await {
                        problems.push(format!("{name}: {e}"));
                    }
                }
                Ok(_) => {}
                Err(e) => problems.push(format!("{name}: {e}")),
            }
        }
        problems
    }
}

fn same_run(a: &Holder, b: &Holder) -> bool {
    a.run_id == b.run_id && a.journal_id == b.journal_id && a.bastion == b.bastion
}

fn refusal(held: &[Found], me: &Holder) -> String {
    let mut by: Vec<(String, Vec<&Found>)> = Vec::new();
    for f in held {
        let d = f.describe();
        match by.iter_mut().find(|(k, _)| *k == d) {
            Some((_, v)) => v.push(f),
            None => by.push((d, vec![f])),
        }
    }
    let mut lines = vec![format!(
        "the fleet is locked by another run; nothing was changed (this run: {})",
        me.run_id
    )];
    for (d, fs) in &by {
        let nodes: Vec<String> = fs
            .iter()
            .map(|f| format!("{} ({})", f.node, f.file.display()))
            .collect();
        lines.push(format!("  held by {d}: {}", nodes.join(", ")));
        if let Some(h) = &fs[0].holder {
            let state = match h.alive() {
                Some(true) => format!("pid {} is running on this host", h.pid),
                Some(false) => format!("pid {} is not running on this host", h.pid),
                None => format!("pid {} runs on {}, check it there", h.pid, h.bastion),
            };
            let copy = if h.run_id == me.run_id {
                "; it is this run's lock, taken through another journal file (a copy?): resume the journal that holds it"
            } else {
                ""
            };
            lines.push(format!(
                "  ({state}{copy}; a paused or halted run keeps its lock: resume it with `cutover resume {}`, or, if it is abandoned, break the lock with `cutover unlock -i INVENTORY --run {}`)",
                h.journal, h.run_id
            ));
        }
    }
    lines.join("\n")
}

/// Read a node's lock file (`None`: no lock).
pub async fn read(fleet: &Fleet, node: &Node) -> Result<Option<Found>, ShError> {
    let (_, file) = dir_and_file(node);
    let (status, text) = sh_raw(
        fleet,
        node,
        &format!("[ -e {file} ] || exit 3; cat {file}"),
        None,
    )
    .await?;
    if status == 3 {
        return Ok(None);
    }
    Ok(Some(Found {
        node: node.name.clone(),
        file: lock_file(node),
        holder: serde_json::from_str(text.trim()).ok(),
        text,
    }))
}

/// Remove a node's lock file if it still says what `found` read.
async fn remove(fleet: &Fleet, node: &Node, found: &Found) -> Result<(), ShError> {
    let (dir, file) = dir_and_file(node);
    match read(fleet, node).await? {
        Some(now) if now.text == found.text => {
            sh_raw(
                fleet,
                node,
                &format!("rm -f {file} && {{ rmdir {dir} 2>/dev/null; exit 0; }}"),
                None,
            )
            .await?;
            Ok(())
        }
        Some(_) => Err(ShError::Changed),
        None => Ok(()),
    }
}

/// Every node's lock, for `cutover unlock`.
pub async fn read_all(fleet: &Fleet) -> (Vec<Found>, Vec<String>) {
    let nodes: Vec<&Node> = fleet.inv.nodes.iter().collect();
    let results = futures::future::join_all(nodes.iter().map(|n| read(fleet, n))).await;
    let mut found = Vec::new();
    let mut failed = Vec::new();
    for (n, r) in nodes.iter().zip(results) {
        match r {
            Ok(Some(f)) => found.push(f),
            Ok(None) => {}
            Err(e) => failed.push(format!("{}: {e}", n.name)),
        }
    }
    (found, failed)
}

/// Break the given locks (as read): each is removed only if unchanged since it was read.
pub async fn break_locks(fleet: &Fleet, found: &[Found]) -> Vec<String> {
    let mut problems = Vec::new();
    for f in found {
        if let Some(node) = fleet.inv.node(&f.node)
            && let Err(e) = remove(fleet, node, f).await
        {
            problems.push(format!("{}: {e}", f.node));
        }
    }
    problems
}

/// The data of a `fleet_unlocked` journal record: who broke which locks, and what they said.
pub fn unlocked_record(inv: &Inventory, broken: &[Found]) -> serde_json::Value {
    serde_json::json!({
        "cluster": inv.cluster,
        "who": serde_json::to_value(Who::current()).unwrap_or_default(),
        "locks": broken.iter().map(|f| serde_json::json!({
            "node": f.node,
            "file": f.file.display().to_string(),
            "holder": f.holder.as_ref().map(|h| serde_json::to_value(h).unwrap_or_default())
                .unwrap_or_else(|| serde_json::Value::String(f.text.clone())),
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(conf: &str) -> Node {
        let yaml = format!(
            "cluster: c\nnodes:\n  - name: n1\n    reach: local\n    keystone_url: http://127.0.0.1:1\n    keystone_conf: {conf}\nload_balancers: []\n"
        );
        let inv: Inventory = serde_yaml::from_str(&yaml).unwrap();
        inv.nodes[0].clone()
    }

    #[test]
    fn lock_file_is_under_the_root_of_the_confs_etc() {
        assert_eq!(
            lock_file(&node("/etc/keystone/keystone.conf")),
            PathBuf::from("/var/lib/cutover/fleet.lock")
        );
        assert_eq!(
            lock_file(&node("/etc/kolla/keystone/keystone.conf")),
            PathBuf::from("/var/lib/cutover/fleet.lock")
        );
        assert_eq!(
            lock_file(&node("/tmp/etc/w/nodes/node1/etc/keystone/keystone.conf")),
            PathBuf::from("/tmp/etc/w/nodes/node1/var/lib/cutover/fleet.lock")
        );
        assert_eq!(
            lock_file(&node("/srv/ks/keystone.conf")),
            PathBuf::from("/srv/ks/cutover/fleet.lock")
        );
    }

    #[test]
    fn a_copy_of_the_journal_does_not_take_the_lock_back() {
        let me = Holder {
            run_id: "r1".into(),
            who: "a@h".into(),
            bastion: Who::current().host,
            pid: std::process::id(),
            journal: "/j".into(),
            journal_id: "1:2".into(),
            cluster: "c".into(),
            since: "2026-12-01T00:00:00Z".into(),
        };
        assert!(me.is_mine_to_take_back(&me));
        let copy = Holder {
            journal: "/j2".into(),
            journal_id: "1:3".into(),
            ..me.clone()
        };
        assert!(!me.is_mine_to_take_back(&copy));
        let other = Holder {
            run_id: "r2".into(),
            ..me.clone()
        };
        assert!(!me.is_mine_to_take_back(&other));
    }
}
