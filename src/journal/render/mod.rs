//! Rendering journal records for people: a terminal listing, the raw JSON Lines, and a Markdown
//! change-ticket report.
//!
//! A record's words come from the engine's narrator ([`crate::engine::narrate`]): each record is
//! read back into the typed event it was written from. The journal is evidence, and a report
//! generated from a damaged or unexpected journal is still wanted, so a record that does not read
//! back (a kind this version does not know, data damaged or made by hand) is rendered from its
//! raw data, defensively ([`raw`]): every field is optional, any JSON shape is accepted, and
//! nothing here panics. A damaged journal is rendered up to its damage, with a banner naming
//! where it breaks ([`Options::damage`]).
//!
//! Layout: this file holds the formats; `text.rs` the listing; `markdown.rs` the change report;
//! `common.rs` what both share (reading a record back, the choice between the narrator and the
//! raw rendering, making text safe); `raw.rs` the defensive rendering.

mod common;
mod markdown;
mod raw;
mod text;

use super::Record;
pub use common::{Options, damage_banner};

/// Output format of [`render`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// One aligned line per record, each record's data told in words.
    Text,
    /// The records as JSON Lines, exactly as stored.
    Json,
    /// A change-ticket report.
    Markdown,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Format, String> {
        match s.to_ascii_lowercase().as_str() {
            "text" | "txt" => Ok(Format::Text),
            "json" | "jsonl" => Ok(Format::Json),
            "markdown" | "md" => Ok(Format::Markdown),
            other => Err(format!(
                "unknown format {other:?} (expected text, json or markdown)"
            )),
        }
    }
}

/// Renders `records` in `format`, the text listing cut to 100 columns.
pub fn render(records: &[Record], format: Format) -> String {
    render_with(
        records,
        format,
        &Options {
            width: Some(TEXT_WIDTH),
            ..Options::default()
        },
    )
}

/// Renders `records` in `format` as `opts` says. JSON stays exactly the stored lines (no banner:
/// the caller says on stderr that a journal is damaged).
pub fn render_with(records: &[Record], format: Format, opts: &Options) -> String {
    match format {
        Format::Json => records.iter().map(|r| r.to_line() + "\n").collect(),
        Format::Text => text::text(records, opts),
        Format::Markdown => markdown::markdown(records, opts),
    }
}

/// Width the default text listing fits in.
const TEXT_WIDTH: usize = 100;
