//! The admin socket (`stats socket ... mode 600 level admin`): one command line per
//! connection, or many in interactive mode (`prompt`).

use super::instance::Lb;
use anyhow::Context as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::task::JoinSet;

pub(super) fn bind_admin_socket(path: &Path) -> anyhow::Result<UnixListener> {
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            anyhow::bail!(
                "admin socket {} is in use (is this world already running?)",
                path.display()
            );
        }
        // A stale socket from a world that did not shut down cleanly.
        std::fs::remove_file(path)
            .with_context(|| format!("cannot remove stale socket {}", path.display()))?;
    }
    let listener = UnixListener::bind(path)
        .with_context(|| format!("cannot bind admin socket {}", path.display()))?;
    // `stats socket ... mode 600 level admin`
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

pub(super) async fn admin_loop(lb: Arc<Lb>, listener: &UnixListener) {
    let mut conns = JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        while conns.try_join_next().is_some() {}
        conns.spawn(cli_session(lb.clone(), stream));
    }
}

pub(super) async fn cli_session(lb: Arc<Lb>, stream: UnixStream) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut interactive = false;
    loop {
        let mut line = String::new();
        // An idle client is dropped after a while, as `timeout cli` does.
        match tokio::time::timeout(Duration::from_secs(30), reader.read_line(&mut line)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(_)) => {}
        }
        let ex = lb.execute(&line, interactive);
        if write.write_all(ex.output.as_bytes()).await.is_err() || ex.quit {
            break;
        }
        interactive = ex.interactive;
        if !interactive {
            break;
        }
    }
    let _ = write.shutdown().await;
}
