//! The token matrix: a token issued at each node, validated at every node.

use super::{View, span};
use crate::engine::facts::TokenFormat;
use crate::tui::text::{pad, width};
use ratatui::text::{Line, Span};

impl View<'_> {
    pub(super) fn matrix_title(&self) -> String {
        let m = self.state.matrix.as_ref();
        let g = self.t.g;
        match m {
            Some(m) if m.all_ok() => {
                format!("Matrix {} issued{} checked{}", g.done, g.down, g.arrow)
            }
            Some(_) => format!("Matrix {} issued{} checked{}", g.failed, g.down, g.arrow),
            None => "Matrix".into(),
        }
    }

    pub(super) fn matrix_label_w(&self) -> usize {
        let Some(m) = &self.state.matrix else {
            return 0;
        };
        m.nodes
            .iter()
            .zip(
                m.formats
                    .iter()
                    .chain(std::iter::repeat(&TokenFormat::None)),
            )
            .map(|(n, f)| width(n) + 1 + f.as_str().len())
            .max()
            .unwrap_or(4)
            + 2
    }

    pub(super) fn matrix_cell_w(&self) -> usize {
        let Some(m) = &self.state.matrix else {
            return 0;
        };
        m.nodes.iter().map(|n| width(n)).max().unwrap_or(3).max(4) + 1
    }

    pub(super) fn matrix_width(&self) -> usize {
        let Some(m) = &self.state.matrix else {
            return 0;
        };
        (self.matrix_label_w() + self.matrix_cell_w() * m.nodes.len() + 1).max(26)
    }

    /// The N×N grid: a token issued at each row's node, validated at each column's node.
    pub(super) fn matrix_lines(&self) -> Vec<Line<'static>> {
        let t = &self.t;
        let Some(m) = &self.state.matrix else {
            return Vec::new();
        };
        let lw = self.matrix_label_w();
        let cw = self.matrix_cell_w();
        let mut out = Vec::new();
        let mut head = vec![Span::raw(" ".repeat(lw + 1))];
        for n in &m.nodes {
            head.push(span(pad(n, cw), t.bold()));
        }
        out.push(Line::from(head));
        for (i, n) in m.nodes.iter().enumerate() {
            let f = m.formats.get(i).copied().unwrap_or_default();
            let mut row = vec![span(
                pad(&format!(" {n} {}", f.as_str()), lw + 1),
                t.plain(),
            )];
            for j in 0..m.nodes.len() {
                let c = m.cells.get(i).and_then(|r| r.get(j)).copied().flatten();
                let (s, style) = match c {
                    Some(200) => (format!("{}200", t.g.done), t.ok()),
                    Some(code) => (format!("{}{code}", t.g.failed), t.fail()),
                    None => (t.g.pending.to_string(), t.dim()),
                };
                row.push(span(pad(&s, cw), style));
            }
            out.push(Line::from(row));
        }
        out
    }
}
