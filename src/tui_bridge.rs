//! Wiring between the runtime and the terminal UI.

use crate::runtime::{RunEnd, Session};
use anyhow::Result;
use std::path::Path;

/// Drive a session with the UI attached (until the UI lands: headless without answers).
pub async fn drive_with_ui(s: &mut Session, resumed: bool) -> Result<RunEnd> {
    s.print = true;
    if resumed {
        s.continue_run().await?;
    }
    let mut control = crate::runtime::Control::Headless {
        answers: Default::default(),
    };
    s.drive(&mut control).await
}

pub async fn replay(journal: &Path, _speed: f64, _follow: bool) -> Result<()> {
    let read = crate::journal::read(journal)?;
    print!(
        "{}",
        crate::journal::render(&read.records, crate::journal::Format::Text)
    );
    Ok(())
}
