//! Templates in runbooks: `{{ node.name }}`, `{{ params.key_strategy }}`, `{{ target_provider }}`
//! (minijinja, strict: an undefined variable is an error, found when the runbook is checked).
//!
//! Variables: `runbook.name`, `target_provider`, `params.<name>`; in the items of a step (not in
//! step titles) `inventory.path` (the inventory file of the run, absolute; `INVENTORY` when the
//! run's inventory was not read from a file) and `inventory.cluster`; and for node-scoped items
//! `node.name`, `node.keystone_conf`, `node.keystone_url`, `node.keystone_user`,
//! `node.keystone_group`, `node.restart`, `node.fernet_repo`, `node.jws_private_repo`,
//! `node.jws_public_repo`.
//!
//! Filter: `shell_quote` makes a value one POSIX shell word (`-i {{ inventory.path | shell_quote }}`
//! in a command an operator is told to run).

use super::Runbook;
use crate::inventory::Inventory;
use minijinja::{Environment, UndefinedBehavior, Value};
use std::collections::BTreeMap;

pub const NODE_FIELDS: &[&str] = &[
    "name",
    "keystone_conf",
    "keystone_url",
    "keystone_user",
    "keystone_group",
    "restart",
    "fernet_repo",
    "jws_private_repo",
    "jws_public_repo",
];

/// The fields of `inventory` in templates.
pub const INVENTORY_FIELDS: &[&str] = &["path", "cluster"];

/// `inventory.path` of an inventory that was not read from a file.
pub const NO_INVENTORY_PATH: &str = "INVENTORY";

fn env() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.add_filter("shell_quote", |s: String| crate::transport::shell_quote(&s));
    env
}

/// A template that does not render, and where: the undefined variable as written
/// (`params.nope`) and the template's line holding it (1-based), when known.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateError {
    pub msg: String,
    pub at: Option<(String, usize)>,
}

/// The variables a template may use.
struct Vars<'a> {
    runbook_name: &'a str,
    target_provider: &'a str,
    params: &'a BTreeMap<String, String>,
    node: Option<&'a BTreeMap<&'a str, String>>,
    inventory: Option<BTreeMap<&'static str, String>>,
}

impl Vars<'_> {
    fn context(&self) -> Value {
        let mut ctx = BTreeMap::new();
        ctx.insert(
            "runbook",
            Value::from_serialize(BTreeMap::from([("name", self.runbook_name)])),
        );
        ctx.insert("target_provider", Value::from(self.target_provider));
        ctx.insert("params", Value::from_serialize(self.params));
        if let Some(n) = self.node {
            ctx.insert("node", Value::from_serialize(n));
        }
        if let Some(i) = &self.inventory {
            ctx.insert("inventory", Value::from_serialize(i));
        }
        Value::from_serialize(ctx)
    }

    /// Why `name` (dotted, as written) is undefined here, in the runbook's words.
    fn why(&self, name: &str) -> String {
        let mut parts = name.splitn(2, '.');
        let head = parts.next().unwrap_or_default();
        let field = parts
            .next()
            .map(|f| f.split('.').next().unwrap_or(f))
            .unwrap_or_default();
        let list = |v: &mut dyn Iterator<Item = String>| {
            let v: Vec<String> = v.collect();
            if v.is_empty() {
                "none".to_string()
            } else {
                v.join(", ")
            }
        };
        match head {
            "params" => format!(
                "runbook `{}` has no parameter `{field}` (it has: {})",
                self.runbook_name,
                list(&mut self.params.keys().cloned())
            ),
            "node" if self.node.is_none() => {
                "node.* exists only in the items of each-node and all-nodes steps, not in a once step nor in a step title".to_string()
            }
            "node" => format!(
                "a node has no field `{field}` (node.<{}>)",
                NODE_FIELDS.join("|")
            ),
            "inventory" if self.inventory.is_none() => {
                "inventory.* exists only in the items of a step, not in a step title".to_string()
            }
            "inventory" => format!(
                "the inventory has no field `{field}` (inventory.<{}>)",
                INVENTORY_FIELDS.join("|")
            ),
            "runbook" => format!("runbook has no field `{field}` (runbook.name)"),
            _ => format!("`{head}` is not a template variable"),
        }
    }

    fn defined(&self) -> String {
        format!(
            "defined: runbook.name, target_provider, params.<name>, in the items of a step inventory.<{}>, and in each-node and all-nodes steps node.<{}>",
            INVENTORY_FIELDS.join("|"),
            NODE_FIELDS.join("|")
        )
    }
}

/// Check a template against the variables a runbook defines: node fields (with placeholders)
/// only where the step acts on nodes, the inventory's only in items (not step titles).
pub fn check(
    template: &str,
    rb: &Runbook,
    with_node: bool,
    with_inventory: bool,
) -> Result<(), TemplateError> {
    if !is_template(template) {
        return Ok(());
    }
    let params: BTreeMap<String, String> = rb
        .params
        .iter()
        .map(|(k, p)| (k.clone(), p.default.clone()))
        .collect();
    let node: BTreeMap<&str, String> = NODE_FIELDS.iter().map(|f| (*f, format!("<{f}>"))).collect();
    let vars = Vars {
        runbook_name: &rb.name,
        target_provider: &rb.target_provider,
        params: &params,
        node: with_node.then_some(&node),
        inventory: with_inventory.then(|| {
            INVENTORY_FIELDS
                .iter()
                .map(|f| (*f, format!("<{f}>")))
                .collect()
        }),
    };
    render_vars(template, &vars).map(|_| ())
}

fn is_template(t: &str) -> bool {
    t.contains("{{") || t.contains("{%")
}

/// Render a template with concrete values, without the inventory (step titles).
pub fn render(
    template: &str,
    runbook_name: &str,
    target_provider: &str,
    params: &BTreeMap<String, String>,
    node: Option<&BTreeMap<&str, String>>,
) -> Result<String, String> {
    let vars = Vars {
        runbook_name,
        target_provider,
        params,
        node,
        inventory: None,
    };
    render_vars(template, &vars).map_err(|e| e.msg)
}

/// Render a step item's template with concrete values, the run's inventory included.
pub fn render_item(
    template: &str,
    runbook_name: &str,
    target_provider: &str,
    params: &BTreeMap<String, String>,
    node: Option<&BTreeMap<&str, String>>,
    inventory: &Inventory,
) -> Result<String, String> {
    let path = inventory
        .loaded_from
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| NO_INVENTORY_PATH.to_string());
    let vars = Vars {
        runbook_name,
        target_provider,
        params,
        node,
        inventory: Some(BTreeMap::from([
            ("path", path),
            ("cluster", inventory.cluster.clone()),
        ])),
    };
    render_vars(template, &vars).map_err(|e| e.msg)
}

fn render_vars(template: &str, vars: &Vars) -> Result<String, TemplateError> {
    if !is_template(template) {
        return Ok(template.to_string());
    }
    let env = env();
    let fail = |e: &minijinja::Error| TemplateError {
        msg: format!("template `{template}`: {e}"),
        at: None,
    };
    let tmpl = env.template_from_str(template).map_err(|e| fail(&e))?;
    let ctx = vars.context();
    tmpl.render(&ctx).map_err(|e| {
        if e.kind() != minijinja::ErrorKind::UndefinedError {
            return fail(&e);
        }
        // The variables the template names that the context lacks, as written; else the
        // expression minijinja points at.
        let mut missing: Vec<String> = tmpl
            .undeclared_variables(true)
            .into_iter()
            .filter(|name| !resolves(&ctx, name))
            .collect();
        // In reading order: the first is the one located.
        missing.sort_by_key(|m| (find_name(template, m).unwrap_or(usize::MAX), m.clone()));
        if missing.is_empty()
            && let Some(expr) = e.range().and_then(|r| template.get(r))
        {
            missing.push(expr.trim().to_string());
        }
        let first = missing.first().cloned();
        let named = if missing.is_empty() {
            "an undefined variable".to_string()
        } else {
            format!(
                "{} {}",
                if missing.len() == 1 {
                    "the undefined variable"
                } else {
                    "undefined variables"
                },
                missing
                    .iter()
                    .map(|m| format!("`{m}`: {}", vars.why(m)))
                    .collect::<Vec<_>>()
                    .join("; ")
            )
        };
        TemplateError {
            msg: format!("template names {named}; {}", vars.defined()),
            at: first.map(|name| {
                let line = find_name(template, &name)
                    .map(|off| template[..off].matches('\n').count() + 1)
                    .or(e.line())
                    .unwrap_or(1);
                (name, line)
            }),
        }
    })
}

/// Does the dotted `name` resolve in `ctx`?
fn resolves(ctx: &Value, name: &str) -> bool {
    let mut v = ctx.clone();
    for part in name.split('.') {
        match v.get_attr(part) {
            Ok(next) if !next.is_undefined() => v = next,
            _ => return false,
        }
    }
    true
}

/// Byte offset of `name` in `text` as a whole name (`params.a` does not match `params.ab`).
pub fn find_name(text: &str, name: &str) -> Option<usize> {
    let word = |c: char| c.is_alphanumeric() || c == '_' || c == '.';
    text.match_indices(name).map(|(i, _)| i).find(|&i| {
        let before = text[..i].chars().next_back();
        let after = text[i + name.len()..].chars().next();
        !before.is_some_and(word) && !after.is_some_and(|c| c.is_alphanumeric() || c == '_')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rb() -> Runbook {
        Runbook::parse(
            "name: t\ntitle: T\ntarget_provider: jws\nparams:\n  key_strategy:\n    default: per-node\nsteps: []\n",
            "t.yaml",
        )
        .unwrap()
    }

    #[test]
    fn an_undefined_variable_is_named_with_the_reason() {
        let rb = rb();
        let e = check(
            "Key {{ params.key_strategy }}\nthen {{ params.key_strateg }}.",
            &rb,
            false,
            true,
        )
        .unwrap_err();
        assert!(e.msg.contains("`params.key_strateg`"), "{}", e.msg);
        assert!(e.msg.contains("no parameter `key_strateg`"), "{}", e.msg);
        assert!(e.msg.contains("key_strategy"), "{}", e.msg);
        assert_eq!(e.at, Some(("params.key_strateg".into(), 2)));

        let e = check("{{ node.colour | upper }}", &rb, true, true).unwrap_err();
        assert!(e.msg.contains("`node.colour`"), "{}", e.msg);
        assert!(e.msg.contains("no field `colour`"), "{}", e.msg);

        let e = check("Checked {{ node.name }}", &rb, false, true).unwrap_err();
        assert!(e.msg.contains("`node.name`"), "{}", e.msg);
        assert!(e.msg.contains("each-node and all-nodes"), "{}", e.msg);

        let e = check("{{ nodez.name }} and {{ foo }}", &rb, true, true).unwrap_err();
        assert!(
            e.msg.contains("`foo`") && e.msg.contains("`nodez.name`"),
            "{}",
            e.msg
        );
        assert!(
            e.msg.contains("`nodez` is not a template variable"),
            "{}",
            e.msg
        );

        let e = check("-i {{ inventory.path }}", &rb, false, false).unwrap_err();
        assert!(e.msg.contains("`inventory.path`"), "{}", e.msg);
        assert!(check("-i {{ inventory.path }}", &rb, false, true).is_ok());
        let e = check("{{ inventory.file }}", &rb, false, true).unwrap_err();
        assert!(e.msg.contains("no field `file`"), "{}", e.msg);
    }

    #[test]
    fn the_inventory_path_renders_shell_quoted() {
        let mut inv: Inventory = Inventory::parse(
            "cluster: c\nnodes:\n  - {name: node1, reach: local, keystone_url: \"http://127.0.0.1:5001\"}\n",
            "i",
        )
        .unwrap();
        let t = "cutover run x -i {{ inventory.path | shell_quote }} ({{ inventory.cluster }})";
        let p = BTreeMap::new();
        let r = |inv: &Inventory| render_item(t, "r", "jws", &p, None, inv).unwrap();
        assert_eq!(r(&inv), "cutover run x -i INVENTORY (c)");
        inv.loaded_from = Some("/srv/my fleet/inv.yaml".into());
        assert_eq!(r(&inv), "cutover run x -i '/srv/my fleet/inv.yaml' (c)");
        inv.loaded_from = Some("/srv/inv.yaml".into());
        assert_eq!(r(&inv), "cutover run x -i /srv/inv.yaml (c)");
        // Step titles have no inventory.
        assert!(render("{{ inventory.path }}", "r", "jws", &p, None).is_err());
    }

    #[test]
    fn names_are_found_whole() {
        assert_eq!(find_name("params.ab params.a", "params.a"), Some(10));
        assert_eq!(find_name("xparams.a", "params.a"), None);
        assert_eq!(find_name("{{params.a}}", "params.a"), Some(2));
    }
}
