//! Waking the stand-ins when one of their control files comes or goes.
//!
//! The stand-ins are driven through files (a restart request, a fault's file, a flush request:
//! see the module doc of `world`). Each task used to look for its files every 100 ms, which kept
//! an idle world (a demo paused at a hard stop) waking ~50 times a second. With inotify, a task
//! sleeps until the kernel says one of its files was created, removed or renamed, and looks
//! again at most every [`WATCHED_POLL`] anyway: a directory replaced under the world, or events
//! lost to a full queue, cost at most that much delay, never a missed request. Where inotify
//! cannot be had (no instance left for this user), the tasks poll every [`POLL`] as before.

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use std::collections::HashMap;
use std::ffi::OsString;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::unix::AsyncFd;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// How often a task looks at its files when nothing tells it they changed.
pub(crate) const POLL: Duration = Duration::from_millis(100);
/// How often a task looks at its files anyway when inotify watches them.
pub(crate) const WATCHED_POLL: Duration = Duration::from_secs(1);

/// What makes a file's existence change: created, removed, renamed in or out (and the
/// directory itself going, which ends its watch).
fn mask() -> AddWatchFlags {
    AddWatchFlags::IN_CREATE
        | AddWatchFlags::IN_DELETE
        | AddWatchFlags::IN_MOVED_TO
        | AddWatchFlags::IN_MOVED_FROM
        | AddWatchFlags::IN_DELETE_SELF
        | AddWatchFlags::IN_MOVE_SELF
        | AddWatchFlags::IN_ONLYDIR
}

/// The inotify instance, readable by tokio.
struct Fd(Inotify);

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

/// Who waits for which file: (directory's watch, file name) → its waiters.
#[derive(Default)]
struct Subscribers {
    dirs: HashMap<PathBuf, WatchDescriptor>,
    files: HashMap<(WatchDescriptor, OsString), Vec<Arc<Notify>>>,
}

impl Subscribers {
    fn all(&self) -> impl Iterator<Item = &Arc<Notify>> {
        self.files.values().flatten()
    }
}

struct Inner {
    fd: AsyncFd<Fd>,
    subs: Mutex<Subscribers>,
}

/// One world's watch over its control files. Cheap to clone.
#[derive(Clone, Default)]
pub(crate) struct Watch {
    inner: Option<Arc<Inner>>,
}

/// A task's wake-up: [`Wake::wait`] returns when one of its files may have changed, or after a
/// poll interval.
pub(crate) struct Wake {
    notify: Arc<Notify>,
    every: Duration,
}

impl Wake {
    /// Until one of the files may have changed (an event since the last wait counts), or the
    /// poll interval passed.
    pub(crate) async fn wait(&self) {
        let _ = tokio::time::timeout(self.every, self.notify.notified()).await;
    }
}

impl Watch {
    /// A watch on the current tokio runtime, and the task that reads its events (to stop with
    /// the world). Without inotify, a watch whose wakes poll every [`POLL`].
    pub(crate) fn start() -> (Watch, Option<JoinHandle<()>>) {
        let fd = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
            .ok()
            .and_then(|i| {
                // SAFETY: `Fd` owns the inotify descriptor and is never taken out of the
                // AsyncFd, so the descriptor stays open, and is the same one, for the AsyncFd's
                // whole life.
                unsafe { AsyncFd::register_with_interest(Fd(i), tokio::io::Interest::READABLE) }
                    .ok()
            });
        let Some(fd) = fd else {
            return (Watch::default(), None);
        };
        let inner = Arc::new(Inner {
            fd,
            subs: Mutex::new(Subscribers::default()),
        });
        let task = tokio::spawn(read_events(inner.clone()));
        (Watch { inner: Some(inner) }, Some(task))
    }

    /// A wake for `files` (each in a directory that exists now). A file whose directory cannot
    /// be watched makes the wake poll every [`POLL`].
    pub(crate) fn files(&self, files: &[&Path]) -> Wake {
        let notify = Arc::new(Notify::new());
        let watched = self.inner.as_ref().is_some_and(|inner| {
            let mut subs = inner.subs.lock().unwrap_or_else(|e| e.into_inner());
            files
                .iter()
                .all(|f| subscribe(&inner.fd.get_ref().0, &mut subs, f, &notify))
        });
        Wake {
            notify,
            every: if watched { WATCHED_POLL } else { POLL },
        }
    }
}

fn subscribe(ino: &Inotify, subs: &mut Subscribers, file: &Path, notify: &Arc<Notify>) -> bool {
    let (Some(dir), Some(name)) = (file.parent(), file.file_name()) else {
        return false;
    };
    let wd = match subs.dirs.get(dir) {
        Some(wd) => *wd,
        None => match ino.add_watch(dir, mask()) {
            Ok(wd) => {
                subs.dirs.insert(dir.to_path_buf(), wd);
                wd
            }
            Err(_) => return false,
        },
    };
    subs.files
        .entry((wd, name.to_os_string()))
        .or_default()
        .push(notify.clone());
    true
}

async fn read_events(inner: Arc<Inner>) {
    loop {
        let Ok(mut ready) = inner.fd.readable().await else {
            return;
        };
        let events = match ready.get_inner().0.read_events() {
            Ok(events) => events,
            Err(nix::errno::Errno::EAGAIN) => {
                ready.clear_ready();
                continue;
            }
            Err(_) => return,
        };
        let subs = inner.subs.lock().unwrap_or_else(|e| e.into_inner());
        for ev in events {
            // A full queue lost events, or a directory went: whoever may have missed one looks.
            if ev.mask.intersects(
                AddWatchFlags::IN_Q_OVERFLOW
                    | AddWatchFlags::IN_IGNORED
                    | AddWatchFlags::IN_DELETE_SELF
                    | AddWatchFlags::IN_MOVE_SELF,
            ) {
                subs.all().for_each(|n| n.notify_one());
                continue;
            }
            if let Some(name) = ev.name
                && let Some(waiters) = subs.files.get(&(ev.wd, name))
            {
                waiters.iter().for_each(|n| n.notify_one());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// A file created, then removed, each wakes its waiter at once; another file in the same
    /// directory does not.
    #[tokio::test]
    async fn a_control_file_coming_or_going_wakes_its_task() {
        let dir = tempfile::tempdir().unwrap();
        let (watch, task) = Watch::start();
        assert!(task.is_some(), "inotify is available here");
        let req = dir.path().join("restart.req");
        let wake = watch.files(&[&req]);
        assert_eq!(wake.every, WATCHED_POLL);

        let quick = |started: Instant| started.elapsed() < WATCHED_POLL / 2;
        for step in ["create", "remove"] {
            let writer = {
                let req = req.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    if step == "create" {
                        std::fs::write(&req, "").unwrap();
                    } else {
                        std::fs::remove_file(&req).unwrap();
                    }
                })
            };
            let t = Instant::now();
            wake.wait().await;
            assert!(quick(t), "{step}: woken after {:?}", t.elapsed());
            writer.await.unwrap();
        }

        // Another file (the journal, a state file) is not this task's business.
        std::fs::write(dir.path().join("other"), "x").unwrap();
        let t = Instant::now();
        wake.wait().await;
        assert!(!quick(t), "woken by another file after {:?}", t.elapsed());
    }

    /// A directory that cannot be watched (it does not exist) falls back to polling.
    #[tokio::test]
    async fn an_unwatchable_file_is_polled() {
        let (watch, _task) = Watch::start();
        let wake = watch.files(&[Path::new("/nonexistent-cutover-dir/x.req")]);
        assert_eq!(wake.every, POLL);
        assert_eq!(Watch::default().files(&[Path::new("/tmp/x")]).every, POLL);
    }
}
