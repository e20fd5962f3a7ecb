//! Runbooks: YAML files that name the steps of a change, their scope over the fleet, the typed
//! actions each step runs, the gates that guard them and the hard stops where a person decides.
//!
//! Loading is strict: unknown keys, unknown actions or gates, wrong types, missing fields and
//! templates that name undefined variables are errors with `file:line:column`.

mod de;
mod gates;
mod items;
mod position;
mod shipped;
mod stop_key;
pub mod template;

pub use gates::Gate;
pub use items::*;
pub use position::{position, position_from};
pub use shipped::{
    SHIPPED_ANSWERS, one_line, shipped, shipped_by_origin, shipped_name, shipped_named,
    shipped_origin,
};
pub use stop_key::{HardStopKey, StopName};

use de::strict;
use position::{explain, step_offset, template_at};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Runbook {
    #[serde(deserialize_with = "strict::string")]
    pub name: String,
    #[serde(deserialize_with = "strict::string")]
    pub title: String,
    #[serde(default, deserialize_with = "strict::string")]
    pub description: String,
    /// The token provider the runbook moves the fleet to; gates compare against it.
    #[serde(deserialize_with = "strict::string")]
    pub target_provider: String,
    #[serde(default)]
    pub params: BTreeMap<String, Param>,
    /// The pool guard's mode for this runbook (else the inventory's, else enforce).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guard: Option<crate::inventory::GuardMode>,
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Param {
    #[serde(deserialize_with = "strict::string")]
    pub default: String,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "strict::strings"
    )]
    pub choices: Vec<String>,
    #[serde(default, deserialize_with = "strict::string")]
    pub description: String,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Scope {
    /// The step runs once for the whole fleet.
    Once,
    /// Node by node, every item for one node before the next node (a rolling step).
    EachNode,
    /// Every item on all nodes at once, item by item.
    AllNodes,
    /// Like all-nodes, over the nodes of half A of a halves split (the `half_a` parameter, else
    /// the first half of the inventory): drained, flipped, restarted, validated together.
    HalfA,
    /// Like all-nodes, over the nodes of half B (every node not in half A).
    HalfB,
}

impl Scope {
    /// The group of nodes a half scope ranges over (`half-a`, `half-b`), None for the others.
    pub fn group(&self) -> Option<&'static str> {
        match self {
            Scope::HalfA => Some("half-a"),
            Scope::HalfB => Some("half-b"),
            _ => None,
        }
    }

    /// The scope as written in YAML.
    pub fn name(&self) -> &'static str {
        match self {
            Scope::Once => "once",
            Scope::EachNode => "each-node",
            Scope::AllNodes => "all-nodes",
            Scope::HalfA => "half-a",
            Scope::HalfB => "half-b",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Step {
    #[serde(deserialize_with = "strict::string")]
    pub id: String,
    #[serde(deserialize_with = "strict::string")]
    pub title: String,
    #[serde(default, deserialize_with = "strict::string")]
    pub description: String,
    pub scope: Scope,
    /// The step is in the plan only when every named parameter has the value given
    /// (`when: {strategy: halves}`); empty: always.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub when: BTreeMap<String, String>,
    /// Each item is a one-key map (`- lb.drain: {timeout: 60s}`).
    #[serde(rename = "do", with = "serde_yaml::with::singleton_map_recursive")]
    pub items: Vec<Item>,
}

#[derive(Debug, thiserror::Error)]
pub enum RunbookError {
    #[error("{location}: {msg}")]
    Invalid { location: String, msg: String },
    #[error("cannot read {path}: {err}")]
    Io { path: String, err: std::io::Error },
    #[error(
        "runbook `{arg}`: no such file, and no shipped runbook has that name{hint}. Shipped runbooks: {names} (`cutover runbooks` lists them with their titles)"
    )]
    NotFound {
        arg: String,
        names: String,
        hint: String,
    },
}

/// A runbook with the text it came from (kept for the journal and for error positions).
#[derive(Debug, Clone)]
pub struct Loaded {
    pub runbook: Runbook,
    pub source: String,
    pub origin: String,
}

impl Runbook {
    pub fn load(path: &Path) -> Result<Loaded, RunbookError> {
        let source = std::fs::read_to_string(path).map_err(|err| RunbookError::Io {
            path: path.display().to_string(),
            err,
        })?;
        let origin = path.display().to_string();
        let runbook = Self::parse(&source, &origin)?;
        Ok(Loaded {
            runbook,
            source,
            origin,
        })
    }

    pub fn parse(source: &str, origin: &str) -> Result<Runbook, RunbookError> {
        let rb: Runbook = serde_yaml::from_str(source).map_err(|e| RunbookError::Invalid {
            location: crate::inventory::location(origin, &e),
            msg: explain(&e.to_string()),
        })?;
        rb.validate(source, origin)?;
        Ok(rb)
    }

    /// Whether step `step` is in the plan for these parameters (its `when`); a parameter not
    /// given has the runbook's default (a journal, a plan or a test may carry only some).
    pub fn included(&self, step: &Step, params: &BTreeMap<String, String>) -> bool {
        step.when.iter().all(|(k, v)| {
            params
                .get(k)
                .or_else(|| self.params.get(k).map(|p| &p.default))
                .is_some_and(|p| p == v)
        })
    }

    fn validate(&self, source: &str, origin: &str) -> Result<(), RunbookError> {
        let at = |needle: &str| position(source, origin, needle);
        if self
            .target_provider
            .parse::<crate::provider::Provider>()
            .is_err()
        {
            return Err(RunbookError::Invalid {
                location: at("target_provider"),
                msg: format!(
                    "target_provider `{}`: expected fernet or jws",
                    self.target_provider
                ),
            });
        }
        for (name, p) in &self.params {
            if !p.choices.is_empty() && !p.choices.contains(&p.default) {
                return Err(RunbookError::Invalid {
                    location: at(name),
                    msg: format!(
                        "param `{name}`: default `{}` is not one of {:?}",
                        p.default, p.choices
                    ),
                });
            }
        }
        let mut ids = std::collections::BTreeSet::new();
        for step in &self.steps {
            // Errors inside a step point into that step: search from its `id:` onwards.
            let step_at = step_offset(source, &step.id);
            let at = |needle: &str| position_from(source, origin, step_at, needle);
            if !ids.insert(step.id.as_str()) {
                return Err(RunbookError::Invalid {
                    location: at(&step.id),
                    msg: format!("step id `{}` is used twice", step.id),
                });
            }
            for (param, value) in &step.when {
                let Some(p) = self.params.get(param) else {
                    return Err(RunbookError::Invalid {
                        location: at(&format!("{param}:")),
                        msg: format!(
                            "step `{}`: `when` names `{param}`, which is no parameter of this runbook (it has: {}); declare it under `params:` or fix the name",
                            step.id,
                            self.params.keys().cloned().collect::<Vec<_>>().join(", ")
                        ),
                    });
                };
                if !p.choices.is_empty() && !p.choices.contains(value) {
                    return Err(RunbookError::Invalid {
                        location: at(&format!("{param}:")),
                        msg: format!(
                            "step `{}`: `when: {{{param}: {value}}}` can never hold: `{param}` is one of {}",
                            step.id,
                            p.choices.join(", ")
                        ),
                    });
                }
            }
            for item in &step.items {
                if let Item::LbSwap(_) = item {
                    let halves = [Scope::HalfA, Scope::HalfB]
                        .iter()
                        .all(|h| self.steps.iter().any(|s| s.scope == *h));
                    if step.scope != Scope::Once || !halves {
                        return Err(RunbookError::Invalid {
                            location: at("lb.swap"),
                            msg: format!(
                                "lb.swap swaps half A and half B on every load balancer: it belongs in a once step (step `{}` is {}) of a runbook with a half-a and a half-b step{}",
                                step.id,
                                step.scope.name(),
                                if halves {
                                    ""
                                } else {
                                    " (this one has not both)"
                                }
                            ),
                        });
                    }
                }
                if let Item::Gate(g) = item
                    && g.per_node()
                    && step.scope == Scope::Once
                {
                    return Err(RunbookError::Invalid {
                        location: at(&format!("gate: {}", g.name())),
                        msg: format!(
                            "gate `{}` is about one node; use it in an each-node or all-nodes step (step `{}` is once)",
                            g.name(),
                            step.id
                        ),
                    });
                }
                let with_node = step.scope != Scope::Once;
                for t in item.templates() {
                    if let Err(e) = template::check(t, self, with_node, true) {
                        return Err(RunbookError::Invalid {
                            location: template_at(source, origin, step_at, t, &e),
                            msg: e.msg,
                        });
                    }
                }
            }
            if let Err(e) = template::check(&step.title, self, false, false) {
                return Err(RunbookError::Invalid {
                    location: template_at(source, origin, step_at, &step.title, &e),
                    msg: e.msg,
                });
            }
        }
        Ok(())
    }

    /// Parameters with defaults applied and overrides checked against their choices.
    pub fn resolve_params(
        &self,
        overrides: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, String> {
        let mut out = BTreeMap::new();
        for (k, v) in overrides {
            let Some(p) = self.params.get(k) else {
                return Err(format!(
                    "runbook `{}` has no parameter `{k}` (it has: {})",
                    self.name,
                    self.params.keys().cloned().collect::<Vec<_>>().join(", ")
                ));
            };
            if !p.choices.is_empty() && !p.choices.contains(v) {
                return Err(format!(
                    "parameter `{k}` = `{v}`: expected one of {}",
                    p.choices.join(", ")
                ));
            }
        }
        for (k, p) in &self.params {
            out.insert(
                k.clone(),
                overrides
                    .get(k)
                    .cloned()
                    .unwrap_or_else(|| p.default.clone()),
            );
        }
        Ok(out)
    }
}

impl Runbook {
    /// A runbook named on the command line: an existing path wins, else a shipped runbook by
    /// name (`jws-to-fernet`, with or without `.yaml`), else an error listing the shipped names.
    /// A file's origin is its path as given; a shipped one's says `built-in` (see
    /// [`shipped_origin`]).
    pub fn resolve(arg: &Path) -> Result<Loaded, RunbookError> {
        if arg.exists() {
            return Self::load(arg);
        }
        let text = arg.to_string_lossy();
        if let Some((file, source)) = shipped_named(&text) {
            let origin = shipped_origin(file);
            let runbook = Self::parse(source, &origin)?;
            return Ok(Loaded {
                runbook,
                source: source.to_string(),
                origin,
            });
        }
        // `runbooks/jws-to-fernet.yaml` away from a checkout: say which name would do.
        let like = arg
            .file_name()
            .and_then(|f| f.to_str())
            .and_then(shipped_named)
            .map(|(file, _)| {
                format!(
                    "; to use the shipped one, name it: `{}`",
                    shipped_name(file)
                )
            })
            .unwrap_or_default();
        Err(RunbookError::NotFound {
            arg: text.into_owned(),
            names: shipped()
                .iter()
                .map(|(f, _)| shipped_name(f))
                .collect::<Vec<_>>()
                .join(", "),
            hint: like,
        })
    }
}

/// The hard stops the engine raises by itself, whatever the runbook.
pub const ENGINE_HARD_STOPS: &[&str] = &[
    "mixed-pool",
    "pool-capacity",
    "pool-breach",
    "drift",
    "in-doubt",
    "unknown-host-key",
];

impl Runbook {
    /// The ids of the runbook's `confirm` hard stops.
    pub fn confirm_ids(&self) -> Vec<&str> {
        self.steps
            .iter()
            .flat_map(|s| &s.items)
            .filter_map(|i| match i {
                Item::Confirm(c) => Some(c.id.as_str()),
                _ => None,
            })
            .collect()
    }
}

/// The hard-stop ids an answers file may name for `rb`: its confirms, the engine's own, and the
/// confirms of every shipped runbook (one answers file may serve a runbook and its rollback).
pub fn answerable_ids(rb: &Runbook) -> std::collections::BTreeSet<String> {
    let mut ids: std::collections::BTreeSet<String> =
        rb.confirm_ids().into_iter().map(str::to_string).collect();
    ids.extend(ENGINE_HARD_STOPS.iter().map(|s| s.to_string()));
    for (name, text) in shipped() {
        if let Ok(other) = Runbook::parse(text, name) {
            ids.extend(other.confirm_ids().into_iter().map(str::to_string));
        }
    }
    ids
}

/// Every key of an answers file names a hard stop ([`answerable_ids`]), alone or as `ID@NODE`
/// with a node of the inventory: a typo must not leave a hard stop unanswered in silence.
pub fn check_answer_ids<'a>(
    keys: impl IntoIterator<Item = &'a String>,
    rb: &Runbook,
    nodes: &[String],
) -> Result<(), String> {
    let ids = answerable_ids(rb);
    for key in keys {
        let (id, node) = match StopName::parse(key) {
            StopName::AtNode { id, node } => (id, Some(node)),
            // An exact `ID#OP` names a stop of a run, not of a runbook: no answers-file key.
            _ => (key.as_str(), None),
        };
        let known_id = ids.contains(id);
        let known_node = node.is_none_or(|n| nodes.iter().any(|m| m == n));
        if !known_id {
            return Err(format!(
                "`{key}` is not a hard stop of runbook `{}` nor of any shipped runbook; valid ids: {} (or ID@NODE with a node of the inventory: {})",
                rb.name,
                ids.iter().cloned().collect::<Vec<_>>().join(", "),
                nodes.join(", ")
            ));
        }
        if !known_node {
            return Err(format!(
                "`{key}`: the inventory has no node `{}` (its nodes: {})",
                node.unwrap_or_default(),
                nodes.join(", ")
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_runbook_parses_and_the_demo_answers_serve_each() {
        let answers: BTreeMap<String, String> =
            serde_yaml::from_str(include_str!("../../runbooks/demo-answers.yaml")).unwrap();
        let nodes = vec!["node1".to_string(), "node2".to_string()];
        for (name, text) in shipped() {
            let rb = Runbook::parse(text, name).unwrap_or_else(|e| panic!("{name}: {e}"));
            check_answer_ids(answers.keys(), &rb, &nodes).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("runbooks");
        let on_disk = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".yaml") && n != "demo-answers.yaml")
            .count();
        assert_eq!(on_disk, shipped().len(), "runbooks/ and shipped() differ");
    }

    #[test]
    fn a_runbook_is_a_path_else_a_shipped_name() {
        // By name, with or without .yaml, from anywhere: the built-in text, origin saying so.
        for name in ["jws-to-fernet", "jws-to-fernet.yaml"] {
            let l = Runbook::resolve(Path::new(name)).unwrap();
            assert_eq!(l.runbook.name, "jws-to-fernet");
            assert_eq!(l.source, shipped_named("jws-to-fernet").unwrap().1);
            assert!(
                l.origin.starts_with("built-in jws-to-fernet.yaml"),
                "{}",
                l.origin
            );
        }
        // An existing path wins over a shipped name.
        let dir = tempfile_dir();
        let file = dir.join("jws-to-fernet");
        let text = shipped_named("jws-rotate").unwrap().1;
        std::fs::write(&file, text).unwrap();
        let l = Runbook::resolve(&file).unwrap();
        assert_eq!(l.runbook.name, "jws-rotate");
        assert_eq!(l.origin, file.display().to_string());
        // Neither: the error lists every shipped name, and which one a stale path meant.
        let e = Runbook::resolve(Path::new("/nowhere/runbooks/jws-to-fernet.yaml"))
            .unwrap_err()
            .to_string();
        for (f, _) in shipped() {
            assert!(e.contains(shipped_name(f)), "{e}");
        }
        assert!(e.contains("name it: `jws-to-fernet`"), "{e}");
        let l = Runbook::resolve(Path::new("jws-rotate")).unwrap();
        assert_eq!(
            shipped_by_origin(&l.origin),
            Some(("jws-rotate.yaml", l.source.as_str()))
        );
        assert_eq!(shipped_by_origin("runbooks/jws-rotate.yaml"), None);
        assert_eq!(
            shipped_by_origin("built-in nope.yaml (cutover 0.1.0)"),
            None
        );
        let e = Runbook::resolve(Path::new("jws-to-frenet"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no such file") && !e.contains("name it"), "{e}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!(
            "cutover-runbook-test-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// An undefined variable is named, and located at the variable itself: its line inside a
    /// block scalar, its column on that line (not the template's first line, not an earlier
    /// `params.key_strategy` that merely starts the same).
    #[test]
    fn an_undefined_variable_is_located_at_itself() {
        let src = "name: t\ntitle: T\ntarget_provider: jws\nparams:\n  key_strategy: {default: a}\nsteps:\n  - id: one\n    title: One\n    scope: once\n    do:\n      - confirm:\n          id: c\n          title: C\n          message: |\n            Uses {{ params.key_strategy }} here,\n            and {{ params.key_strateg }} there.\n      - note: \"x {{ node.name }}\"\n";
        let e = Runbook::parse(src, "t.yaml").unwrap_err().to_string();
        assert!(e.starts_with("t.yaml:16:20: "), "{e}");
        assert!(e.contains("`params.key_strateg`"), "{e}");
        assert!(e.contains("no parameter `key_strateg`"), "{e}");
        let fixed = src.replace("key_strateg }}", "key_strategy }}");
        let e = Runbook::parse(&fixed, "t.yaml").unwrap_err().to_string();
        assert!(e.starts_with("t.yaml:17:21: "), "{e}");
        assert!(e.contains("`node.name`") && e.contains("each-node"), "{e}");
    }

    /// `when` and the half scopes are checked where they are written.
    #[test]
    fn when_and_half_scopes_are_checked_with_their_position() {
        let src = |when: &str, scope: &str, item: &str| {
            format!(
                "name: t\ntitle: T\ntarget_provider: jws\nparams:\n  strategy: {{default: rolling, choices: [rolling, halves]}}\nsteps:\n  - id: a\n    title: A\n    scope: half-a\n    when: {{strategy: halves}}\n    do:\n      - lb.drain: {{}}\n  - id: b\n    title: B\n    scope: {scope}\n    when: {when}\n    do:\n      - {item}\n"
            )
        };
        let ok = src("{strategy: halves}", "half-b", "lb.ready: {}");
        let rb = Runbook::parse(&ok, "t.yaml").unwrap();
        assert_eq!(rb.steps[1].scope, Scope::HalfB);
        let halves: BTreeMap<String, String> =
            [("strategy".to_string(), "halves".to_string())].into();
        assert!(rb.included(&rb.steps[1], &halves));
        assert!(!rb.included(&rb.steps[1], &BTreeMap::new()));
        // Not given, a parameter has its default: a step for `rolling` is in.
        let rolling = ok
            .replace(
                "when: {strategy: halves}\n    do:\n      - lb.ready",
                "when: {strategy: rolling}\n    do:\n      - lb.ready",
            )
            .replace("scope: half-b", "scope: all-nodes");
        let rb = Runbook::parse(&rolling, "t.yaml").unwrap();
        assert!(rb.included(&rb.steps[1], &BTreeMap::new()));
        assert!(!rb.included(&rb.steps[1], &halves));
        let e = Runbook::parse(&src("{strategy: halvez}", "half-b", "note: x"), "t.yaml")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("t.yaml:16:12: "), "{e}");
        assert!(
            e.contains("can never hold") && e.contains("rolling, halves"),
            "{e}"
        );
        let e = Runbook::parse(&src("{stratgy: halves}", "half-b", "note: x"), "t.yaml")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("t.yaml:16:12: "), "{e}");
        assert!(
            e.contains("`stratgy`, which is no parameter") && e.contains("strategy"),
            "{e}"
        );
        let e = Runbook::parse(&src("{strategy: halves}", "half-c", "note: x"), "t.yaml")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("t.yaml:15:"), "{e}");
        assert!(e.contains("half-c") && e.contains("half-b"), "{e}");
        let e = Runbook::parse(
            &src("{strategy: halves}", "half-b", "lb.swap: {}"),
            "t.yaml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("t.yaml:18:9: "), "{e}");
        assert!(e.contains("once step (step `b` is half-b)"), "{e}");
        let e = Runbook::parse(&src("{strategy: halves}", "once", "lb.swap: {}"), "t.yaml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("has not both"), "{e}");
    }

    #[test]
    fn one_line_joins_a_title_written_over_lines() {
        assert_eq!(
            one_line("Keystone:\n  rotate\tthe keys\n"),
            "Keystone: rotate the keys"
        );
        assert_eq!(one_line("one"), "one");
    }

    #[test]
    fn answer_ids_are_checked() {
        let rb = Runbook::parse(shipped()[0].1, "f").unwrap();
        let nodes = vec!["node1".to_string()];
        let check = |k: &str| check_answer_ids([&k.to_string()], &rb, &nodes);
        for ok in [
            "mixed-pool",
            "drift",
            "in-doubt@node1",
            "rollback-start",
            "jws-payload-readable@node1",
        ] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
        for bad in ["mixed-pol", "mixed-pool@node2", "", "@node1", "mixed-pool@"] {
            assert!(check(bad).is_err(), "{bad}");
        }
    }
}
