//! `cutover world create|serve|fault`, and the demo world's stand-ins started beside a run,
//! a resume or a probe whose inventory names a world.

use super::{absolute, invalid};
use anyhow::{Context, Result};
use cutover::inventory::Inventory;
use cutover::runtime;
use cutover::sanitize::for_terminal;
use std::path::{Path, PathBuf};

/// `cutover world create`.
pub fn create(dir: PathBuf, nodes: usize, lbs: usize, token_cache: Option<u64>) -> Result<i32> {
    let dir = absolute(&dir)?;
    let info = cutover::world::create_with(
        &dir,
        &cutover::world::WorldSpec { nodes, lbs },
        &cutover::world::WorldOptions { token_cache },
    )?;
    println!(
        "created {} (inventory {})",
        dir.display(),
        info.inventory_path.display()
    );
    Ok(0)
}

/// `cutover world serve`.
pub async fn serve(dir: PathBuf) -> Result<i32> {
    let dir = absolute(&dir)?;
    let info = cutover::world::load(&dir)?;
    let handle = cutover::world::start(&info).await?;
    let _mark = ServeMark::create(&dir)?;
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

/// `cutover world fault`.
pub async fn fault(dir: PathBuf, fault: String, args: Vec<String>) -> Result<i32> {
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

/// A mark that a `cutover world serve` process serves a world: `DIR/serve.pid`, removed on drop.
pub struct ServeMark(PathBuf);

impl ServeMark {
    pub fn create(dir: &Path) -> Result<ServeMark> {
        let p = dir.join("serve.pid");
        std::fs::write(&p, std::process::id().to_string())?;
        Ok(ServeMark(p))
    }

    /// Another live process serves this world.
    pub fn served_elsewhere(dir: &Path) -> bool {
        std::fs::read_to_string(dir.join("serve.pid"))
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
            .is_some_and(|pid| {
                pid != std::process::id() as i32
                    && nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
            })
    }
}

impl Drop for ServeMark {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Start the embedded world's stand-ins when an inventory names one (unless `cutover world
/// serve` already serves it). A stopped world whose ports were taken meanwhile moves to free
/// ones; the world's inventory, which then differs from `inv`, is returned to be used instead.
pub async fn world_for(
    inv: &Inventory,
) -> Result<(Option<cutover::world::WorldHandle>, Option<Inventory>)> {
    match &inv.demo_world {
        Some(dir) if ServeMark::served_elsewhere(dir) => Ok((None, None)),
        Some(dir) => {
            let mut info = cutover::world::load(dir)
                .with_context(|| format!("the inventory names demo world {}", dir.display()))?;
            let moved = cutover::world::relocate_busy_ports(&mut info)?;
            for m in &moved {
                eprintln!("demo world: {}", for_terminal(m));
            }
            let handle = cutover::world::start(&info).await?;
            let current = if moved.is_empty() {
                None
            } else {
                Some(info.inventory()?)
            };
            Ok((Some(handle), current))
        }
        None => Ok((None, None)),
    }
}

/// [`world_for`] as the runtime takes it: the stand-ins kept alive as long as the session.
pub async fn stand_ins(inv: &Inventory) -> Result<runtime::StandIns> {
    let (handle, moved) = world_for(inv).await?;
    Ok(runtime::StandIns {
        keep_alive: handle.map(|h| Box::new(h) as runtime::KeepAlive),
        moved,
    })
}
