//! Templates in runbooks: `{{ node.name }}`, `{{ params.key_strategy }}`, `{{ target_provider }}`
//! (minijinja, strict: an undefined variable is an error, found when the runbook is checked).
//!
//! Variables: `runbook.name`, `target_provider`, `params.<name>`, and for node-scoped items
//! `node.name`, `node.keystone_conf`, `node.keystone_url`, `node.keystone_user`,
//! `node.keystone_group`, `node.restart`, `node.fernet_repo`, `node.jws_private_repo`,
//! `node.jws_public_repo`.

use super::Runbook;
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

fn env() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env
}

/// Check a template against the variables a runbook defines: node fields (with placeholders)
/// only where the step acts on nodes.
pub fn check(template: &str, rb: &Runbook, with_node: bool) -> Result<(), String> {
    if !template.contains("{{") && !template.contains("{%") {
        return Ok(());
    }
    let params: BTreeMap<String, String> = rb
        .params
        .iter()
        .map(|(k, p)| (k.clone(), p.default.clone()))
        .collect();
    let node: BTreeMap<&str, String> = NODE_FIELDS.iter().map(|f| (*f, format!("<{f}>"))).collect();
    render(
        template,
        &rb.name,
        &rb.target_provider,
        &params,
        with_node.then_some(&node),
    )
    .map(|_| ())
}

/// Render a template with concrete values.
pub fn render(
    template: &str,
    runbook_name: &str,
    target_provider: &str,
    params: &BTreeMap<String, String>,
    node: Option<&BTreeMap<&str, String>>,
) -> Result<String, String> {
    if !template.contains("{{") && !template.contains("{%") {
        return Ok(template.to_string());
    }
    let env = env();
    let tmpl = env
        .template_from_str(template)
        .map_err(|e| format!("template `{template}`: {}", describe(&e)))?;
    let mut ctx = BTreeMap::new();
    ctx.insert(
        "runbook",
        Value::from_serialize(BTreeMap::from([("name", runbook_name)])),
    );
    ctx.insert("target_provider", Value::from(target_provider));
    ctx.insert("params", Value::from_serialize(params));
    if let Some(n) = node {
        ctx.insert("node", Value::from_serialize(n));
    }
    tmpl.render(ctx)
        .map_err(|e| format!("template `{template}`: {}", describe(&e)))
}

fn describe(e: &minijinja::Error) -> String {
    match e.kind() {
        minijinja::ErrorKind::UndefinedError => format!(
            "names an undefined variable{}; defined: runbook.name, target_provider, params.<name>, and in each-node and all-nodes steps node.<{}>",
            e.detail().map(|d| format!(" ({d})")).unwrap_or_default(),
            NODE_FIELDS.join("|")
        ),
        _ => e.to_string(),
    }
}
