//! Which hard stop: one type for every place that names one.
//!
//! A hard stop has an id (a runbook's `confirm` id, a gate's name, or one of cutover's own:
//! `in-doubt`, `drift`, `unknown-host-key`, `pool-breach`), stands at an op of the plan, may be
//! about one node, and may decide one in-doubt intent. It is named three ways, all read and
//! written here:
//!
//! - exactly, `ID#OP` or `ID#OP#INTENT`: what the UI answers with, so a key press can only ever
//!   answer the stop that was on screen (a second press never lands on the next stop with the
//!   same id);
//! - at a node, `ID@NODE`: an answers file's answer for that node only;
//! - by plain `ID`: an answers file's answer for every stop with that id.
//!
//! The journal's events keep their own fields (`id`, `op`, `node`); nothing here changes them.

use std::collections::BTreeMap;
use std::fmt;

/// One hard stop, exactly.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HardStopKey {
    pub id: String,
    pub op: usize,
    pub node: Option<String>,
    pub in_doubt: Option<u64>,
}

/// How an answer names a hard stop (see the module's doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopName<'a> {
    Exact {
        id: &'a str,
        op: usize,
        in_doubt: Option<u64>,
    },
    AtNode {
        id: &'a str,
        node: &'a str,
    },
    Id(&'a str),
}

impl<'a> StopName<'a> {
    /// Read an answer's name: `ID#OP[#INTENT]`, `ID@NODE` or `ID`. A `#` form whose numbers
    /// do not read is taken as a plain id (it then names no stop: ids have no `#`).
    pub fn parse(s: &'a str) -> StopName<'a> {
        if let Some((id, rest)) = s.split_once('#') {
            let (op, doubt) = match rest.split_once('#') {
                Some((op, d)) => (op, Some(d)),
                None => (rest, None),
            };
            let in_doubt = match doubt.map(str::parse::<u64>) {
                None => Some(None),
                Some(Ok(d)) => Some(Some(d)),
                Some(Err(_)) => None,
            };
            return match (op.parse::<usize>(), in_doubt) {
                (Ok(op), Some(in_doubt)) => StopName::Exact { id, op, in_doubt },
                _ => StopName::Id(s),
            };
        }
        match s.split_once('@') {
            Some((id, node)) => StopName::AtNode { id, node },
            None => StopName::Id(s),
        }
    }

    /// The hard-stop id this name gives.
    pub fn id(&self) -> &'a str {
        match *self {
            StopName::Exact { id, .. } | StopName::AtNode { id, .. } | StopName::Id(id) => id,
        }
    }
}

impl HardStopKey {
    /// The exact name, `ID#OP` or `ID#OP#INTENT` (also what `Display` writes).
    pub fn exact(&self) -> String {
        self.to_string()
    }

    /// The name an answers file gives this stop at its node, `ID@NODE`, if it is about one.
    pub fn at_node(&self) -> Option<String> {
        self.node.as_ref().map(|n| format!("{}@{n}", self.id))
    }

    /// Whether `answer` names this stop: exactly, at its node, or by its plain id.
    pub fn answered_by(&self, answer: &str) -> bool {
        match StopName::parse(answer) {
            StopName::Exact { id, op, in_doubt } => {
                id == self.id && op == self.op && in_doubt == self.in_doubt
            }
            StopName::AtNode { id, node } => id == self.id && self.node.as_deref() == Some(node),
            StopName::Id(id) => id == self.id,
        }
    }

    /// This stop's answer in an answers file: the one for its node (`ID@NODE`) first, else the
    /// one for its plain id.
    pub fn lookup<'m, V>(&self, answers: &'m BTreeMap<String, V>) -> Option<&'m V> {
        self.at_node()
            .and_then(|k| answers.get(&k))
            .or_else(|| answers.get(&self.id))
    }
}

impl fmt::Display for HardStopKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.in_doubt {
            Some(i) => write!(f, "{}#{}#{i}", self.id, self.op),
            None => write!(f, "{}#{}", self.id, self.op),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str, op: usize, node: Option<&str>, in_doubt: Option<u64>) -> HardStopKey {
        HardStopKey {
            id: id.into(),
            op,
            node: node.map(Into::into),
            in_doubt,
        }
    }

    #[test]
    fn the_exact_name_round_trips_and_answers_only_that_stop() {
        let k = key("in-doubt", 7, Some("ks2"), Some(41));
        assert_eq!(k.exact(), "in-doubt#7#41");
        assert!(k.answered_by("in-doubt#7#41"));
        assert!(!k.answered_by("in-doubt#7#42"));
        assert!(!k.answered_by("in-doubt#7"));
        assert!(!k.answered_by("in-doubt#8#41"));
        let g = key("mixed-pool", 12, Some("ks1"), None);
        assert_eq!(g.exact(), "mixed-pool#12");
        assert!(g.answered_by("mixed-pool#12"));
        assert!(!g.answered_by("mixed-pool#12#1"));
        assert!(!g.answered_by("out-of-pool#12"));
    }

    #[test]
    fn plain_and_node_names() {
        let k = key("mixed-pool", 12, Some("ks1"), None);
        assert!(k.answered_by("mixed-pool"));
        assert!(k.answered_by("mixed-pool@ks1"));
        assert!(!k.answered_by("mixed-pool@ks2"));
        assert!(!key("drift", 3, None, None).answered_by("drift@ks1"));
        assert_eq!(k.at_node().as_deref(), Some("mixed-pool@ks1"));
        assert_eq!(key("drift", 3, None, None).at_node(), None);
    }

    #[test]
    fn an_answers_file_is_read_node_first() {
        let mut answers = BTreeMap::new();
        answers.insert("mixed-pool".to_string(), "decline");
        answers.insert("mixed-pool@ks2".to_string(), "confirm");
        assert_eq!(
            key("mixed-pool", 1, Some("ks2"), None).lookup(&answers),
            Some(&"confirm")
        );
        assert_eq!(
            key("mixed-pool", 1, Some("ks1"), None).lookup(&answers),
            Some(&"decline")
        );
        assert_eq!(key("drift", 1, None, None).lookup(&answers), None);
    }

    #[test]
    fn names_parse() {
        assert_eq!(StopName::parse("a"), StopName::Id("a"));
        assert_eq!(
            StopName::parse("a@n1"),
            StopName::AtNode {
                id: "a",
                node: "n1"
            }
        );
        assert_eq!(
            StopName::parse("a#3#9"),
            StopName::Exact {
                id: "a",
                op: 3,
                in_doubt: Some(9)
            }
        );
        assert_eq!(StopName::parse("a#x"), StopName::Id("a#x"));
        assert_eq!(StopName::parse("a@n1").id(), "a");
    }
}
