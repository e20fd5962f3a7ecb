//! Wiring between the runtime and the terminal UI: the runtime publishes its state on a watch
//! channel, the UI sends the operator's requests back. Neither knows the other's insides.

use anyhow::{Result, anyhow};
use cutover::runtime::{Control, RunEnd, Session};
use cutover::tui::{Header, Mode};
use std::path::Path;
use std::sync::Arc;
use tokio::sync::{mpsc, watch};

/// Drive a session with the UI attached until the operator quits.
pub async fn drive_with_ui(s: &mut Session, resumed: bool) -> Result<RunEnd> {
    s.connect_all().await?;
    let (state_tx, state_rx) = watch::channel(Arc::new(s.state.clone()));
    let (req_tx, req_rx) = mpsc::unbounded_channel();
    s.publish = Some(state_tx);
    s.print = false;
    let header = Header {
        journal: s.journal_path(),
        mode: if resumed { Mode::Resumed } else { Mode::Live },
        operator: s.who.actor_label(),
    };
    let ui = tokio::spawn(cutover::tui::run_live(state_rx, req_tx, header));
    if resumed {
        s.continue_run().await?;
    }
    let mut control = Control::Ui(req_rx);
    let end = s.drive(&mut control).await;
    // Dropping the publisher tells the UI the runtime is done; it restores the terminal.
    s.publish = None;
    let ui_result = ui.await.map_err(|e| anyhow!("the UI task failed: {e}"))?;
    ui_result?;
    end
}

/// Replay a journal in the UI, read-only; with `follow`, tail it while another process writes.
pub async fn replay(journal: &Path, speed: f64, follow: bool) -> Result<()> {
    use cutover::tui::replay::Damage;
    // With --follow, one follower reads the journal from the start and keeps tailing it, so no
    // record written between a first read and the tail is lost. A damaged journal is replayed
    // up to its damage, under a banner naming it; a followed one stops being followed there.
    let (events, follower, banner) = if follow {
        let mut f = cutover::journal::Follower::open(journal)?;
        match f.poll().map_err(anyhow::Error::from) {
            Ok(records) => {
                let events = cutover::runtime::events_of(&records)?;
                let poll: cutover::tui::Follow =
                    Box::new(move || cutover::runtime::events_of(&f.poll()?));
                (events, Some(poll), None)
            }
            // The follower hands out the good records first, so this is damage at seq 1.
            Err(e) => match Damage::of_error(&e) {
                Some(d) => (Vec::new(), None, Some(d.banner(true))),
                None => return Err(e),
            },
        }
    } else {
        // Indexed, not loaded: the events are read from the journal as they are folded.
        let (player, damage) = cutover::tui::replay::Player::open(journal, speed)?;
        let header = Header {
            journal: journal.to_path_buf(),
            mode: Mode::Replay,
            operator: cutover::journal::Who::current().actor_label(),
        };
        let banner = damage.map(|d| d.banner(false));
        return cutover::tui::run_player(player, None, header, banner).await;
    };
    let header = Header {
        journal: journal.to_path_buf(),
        mode: if follower.is_some() {
            Mode::Follow
        } else {
            Mode::Replay
        },
        operator: cutover::journal::Who::current().actor_label(),
    };
    cutover::tui::run_replay(events, follower, speed, header, banner).await
}
