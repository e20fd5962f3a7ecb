//! The safety invariants, each a named gate evaluated on a fresh observation. Pure functions:
//! the runtime fetches what `probe_for` asks, the engine calls `evaluate` with it.

use super::action::Misc;
use super::facts::*;
// Where they were before they moved to the facts they format.
use super::action::ActionSpec;
use super::facts::{humanize, short_fp};
use super::halves::halves;
use crate::inventory::Inventory;
use crate::provider::Provider;
use crate::runbook::Gate;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Pass(String),
    Fail {
        reason: String,
        next: String,
    },
    /// A node cutover drained is taking traffic again on these instances (a reload, another
    /// operator): not a question of whether to proceed, a pool breach to repair.
    Breach {
        rows: Vec<LbServer>,
    },
    /// The gate could not be evaluated: these nodes could not be reached (a changed host key,
    /// sshd refusing the connection or the login). Not a verdict on the fleet: the halt is
    /// named after the reach failure (`cannot reach node2: host key changed ...`), not the gate.
    Unreachable {
        /// The first node that could not be reached.
        node: String,
        reason: String,
        next: String,
    },
    /// Needs a person: the hard stop's title, hazard, consequence and the facts shown.
    Ask {
        title: String,
        hazard: String,
        consequence: String,
        facts: Vec<String>,
    },
}

/// What a gate must look at, fetched fresh right before it is evaluated.
pub fn probe_for(gate: Gate, node: Option<&str>, inv: &Inventory) -> ActionSpec {
    let all = inv.node_names();
    let lb = !inv.load_balancers.is_empty();
    match gate {
        Gate::ProvidersAgree
        | Gate::NotOnTarget
        | Gate::KeysEverywhere
        | Gate::StagedKeysEverywhere
        | Gate::FernetKeysEverywhere => Misc::Probe {
            nodes: all,
            lb: false,
            tokens: vec![],
            providers: vec![],
            kept: false,
            until_up: None,
        }
        .into(),
        Gate::PoolHealthy => Misc::Probe {
            nodes: all,
            lb,
            tokens: vec![],
            providers: vec![],
            kept: false,
            until_up: None,
        }
        .into(),
        Gate::OutOfPool | Gate::PoolCapacity => Misc::Probe {
            nodes: vec![],
            lb,
            tokens: vec![],
            providers: vec![],
            kept: false,
            until_up: None,
        }
        .into(),
        // A passed health check is what in-pool asks for: wait (bounded) for one.
        Gate::InPool => Misc::Probe {
            nodes: vec![],
            lb,
            tokens: vec![],
            providers: vec![],
            kept: false,
            until_up: node.filter(|_| lb).map(str::to_string),
        }
        .into(),
        Gate::ValidatedBeforeReadd => Misc::Probe {
            nodes: vec![],
            lb: false,
            tokens: node.map(|n| vec![n.to_string()]).unwrap_or_default(),
            providers: vec![],
            kept: false,
            until_up: None,
        }
        .into(),
        // Which provider each node serves is all mixed-pool judges: a token issued at each,
        // not validated (the node being re-added proved its own just before), or the node's
        // kept proof while its keystone.conf is unchanged.
        Gate::MixedPool => Misc::Probe {
            nodes: vec![],
            lb,
            tokens: vec![],
            providers: all,
            kept: false,
            until_up: None,
        }
        .into(),
        Gate::AllTarget | Gate::ValidatedBeforeSwap => Misc::Probe {
            nodes: if gate == Gate::AllTarget {
                all.clone()
            } else {
                vec![]
            },
            lb,
            tokens: all,
            providers: vec![],
            // all-target: every node's token since its last restart by cutover will do while
            // its files are unchanged (its liveness is the load balancers' UP, read now);
            // validated-before-swap asks half A now.
            kept: gate == Gate::AllTarget,
            until_up: None,
        }
        .into(),
    }
}

pub struct Ctx<'a> {
    pub inv: &'a Inventory,
    pub target: &'a str,
    pub params: &'a BTreeMap<String, String>,
    /// Token lifetimes known so far (from probes), for the mixed-pool window.
    pub expiration: u64,
    pub allow_expired_window: u64,
    /// Nodes cutover drained and has not deliberately re-added: a pooled one is a breach.
    pub guarded: &'a BTreeSet<String>,
}

fn provider_of(obs: &Observation, node: &str) -> Option<String> {
    let format = obs.tokens.get(node)?.format;
    format.provider().map(|p| p.as_str().into())
}

/// Every load-balancer row read (none when the load balancers were not read).
fn all_rows(obs: &Observation) -> &[LbServer] {
    obs.lb.as_deref().unwrap_or_default()
}

fn lb_rows<'o>(obs: &'o Observation, node: &str) -> Vec<&'o LbServer> {
    all_rows(obs).iter().filter(|s| s.node == node).collect()
}

/// The node's rows on the instances that do not hold it out of the pool.
fn not_held_out<'o>(obs: &'o Observation, node: &str) -> Vec<&'o LbServer> {
    lb_rows(obs, node)
        .into_iter()
        .filter(|s| !s.out_of_pool())
        .collect()
}

fn lb_read_failed(obs: &Observation, ctx: &Ctx) -> Option<Verdict> {
    if ctx.inv.load_balancers.is_empty() {
        return None;
    }
    if obs.lb.is_none() || !obs.lb_errors.is_empty() {
        return Some(Verdict::Fail {
            reason: format!(
                "could not read every load balancer: {}",
                if obs.lb_errors.is_empty() {
                    "no answer".to_string()
                } else {
                    obs.lb_errors.join("; ")
                }
            ),
            next: "check that each HAProxy admin socket answers (`show stat`), then resume".into(),
        });
    }
    None
}

/// The nodes of the observation that could not be reached, as one verdict (inventory order).
fn unreachable(obs: &Observation, ctx: &Ctx) -> Option<Verdict> {
    let down: Vec<(String, &Unreachable)> = ctx
        .inv
        .node_names()
        .into_iter()
        .filter_map(|n| {
            let u = obs.nodes.get(&n)?.unreachable.as_ref()?;
            Some((n, u))
        })
        .collect();
    let (first, _) = down.first()?;
    let reason = down
        .iter()
        .map(|(n, u)| format!("cannot reach {n}: {}", u.line()))
        .collect::<Vec<_>>()
        .join("; ");
    let next = if down.len() == 1 {
        format!("{}; then resume (cutover resume JOURNAL)", down[0].1.next)
    } else {
        format!(
            "{}; then resume (cutover resume JOURNAL)",
            down.iter()
                .map(|(n, u)| format!("{n}: {}", u.next))
                .collect::<Vec<_>>()
                .join("; ")
        )
    };
    Some(Verdict::Unreachable {
        node: first.clone(),
        reason,
        next,
    })
}

pub fn evaluate(gate: Gate, node: Option<&str>, obs: &Observation, ctx: &Ctx) -> Verdict {
    // A node that could not be reached was not read: no gate can be judged on it.
    if let Some(v) = unreachable(obs, ctx) {
        return v;
    }
    // The gates about the pool cannot be judged on a load balancer that was not read.
    let about_the_pool = matches!(
        gate,
        Gate::PoolHealthy
            | Gate::OutOfPool
            | Gate::PoolCapacity
            | Gate::InPool
            | Gate::MixedPool
            | Gate::AllTarget
    );
    if let Some(v) = lb_read_failed(obs, ctx).filter(|_| about_the_pool) {
        return v;
    }
    let nodes = ctx.inv.node_names();
    match gate {
        Gate::ProvidersAgree => {
            let mut by: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for n in &nodes {
                let p = match obs.nodes.get(n) {
                    Some(f) if f.error.is_none() => f.configured_provider(),
                    Some(f) => {
                        return Verdict::Fail {
                            reason: format!("{n}: {}", f.error.clone().unwrap_or_default()),
                            next: format!(
                                "make {n} reachable and its keystone.conf readable, then resume"
                            ),
                        };
                    }
                    None => {
                        return Verdict::Fail {
                            reason: format!("{n} was not probed"),
                            next: "resume to probe again".into(),
                        };
                    }
                };
                // Where the probe asked the node for a token, what it runs must be what its
                // conf says: otherwise the conf was edited since Keystone last started there,
                // and the fleet is not what its files say.
                if let Some(runs) = provider_of(obs, n).filter(|r| *r != p) {
                    return Verdict::Fail {
                        reason: format!(
                            "{n}'s keystone.conf says {p} but its Keystone issues {runs} tokens: the conf was changed since Keystone last started there"
                        ),
                        next: format!(
                            "put {n}'s keystone.conf back, or restart its Keystone if the conf is what you want (then the fleet disagrees: see the next check); then resume"
                        ),
                    };
                }
                by.entry(p).or_default().push(n.clone());
            }
            if by.len() == 1 {
                Verdict::Pass(format!(
                    "every node is configured for {}",
                    by.keys().next().unwrap_or(&String::new())
                ))
            } else {
                Verdict::Fail {
                    reason: format!(
                        "providers disagree before any change: {}",
                        by.iter().map(|(p, ns)| format!("{p} on {}", ns.join(", "))).collect::<Vec<_>>().join("; ")
                    ),
                    next: "the fleet is already mixed: finish or roll back the earlier change first (resume an earlier journal, or run the rollback runbook)".into(),
                }
            }
        }
        Gate::NotOnTarget => {
            let on: Vec<String> = nodes
                .iter()
                .filter(|n| {
                    obs.nodes
                        .get(*n)
                        .and_then(|f| f.provider.as_deref())
                        .is_some_and(|p| p == ctx.target)
                })
                .cloned()
                .collect();
            if nodes
                .iter()
                .any(|n| obs.nodes.get(n).is_none_or(|f| f.error.is_some()))
            {
                return Verdict::Fail {
                    reason: "not every node could be read".into(),
                    next: "make every node reachable, then resume".into(),
                };
            }
            if on.is_empty() {
                Verdict::Pass(format!("no node runs {} yet", ctx.target))
            } else if on.len() == nodes.len() {
                Verdict::Fail {
                    reason: format!("every node already runs {}: nothing to do", ctx.target),
                    next: "nothing to migrate; to go back, run the rollback runbook".into(),
                }
            } else {
                Verdict::Fail {
                    reason: format!(
                        "{} already run {}: an earlier change is half done",
                        on.join(", "),
                        ctx.target
                    ),
                    next:
                        "resume the earlier run's journal (cutover resume J) or roll it back first"
                            .into(),
                }
            }
        }
        Gate::PoolHealthy => {
            let mut bad = Vec::new();
            for n in &nodes {
                match obs.nodes.get(n) {
                    Some(f) if f.service_up => {}
                    Some(f) => bad.push(format!(
                        "{n}: keystone does not answer ({})",
                        f.service_detail
                    )),
                    None => bad.push(format!("{n}: not probed")),
                }
                for s in lb_rows(obs, n) {
                    if !s.in_pool() {
                        bad.push(format!(
                            "{n}: {} on {} (admin {:?})",
                            s.status, s.lb, s.admin
                        ));
                    }
                }
                if !ctx.inv.load_balancers.is_empty()
                    && lb_rows(obs, n).len() < ctx.inv.load_balancers.len()
                {
                    bad.push(format!("{n}: missing from a load balancer's backend"));
                }
            }
            if bad.is_empty() {
                Verdict::Pass(format!(
                    "{} nodes answer and are UP on every load balancer",
                    nodes.len()
                ))
            } else {
                Verdict::Fail {
                    reason: format!("the pool is not healthy: {}", bad.join("; ")),
                    next: "bring every node back UP and ready before starting (or fix the inventory), then resume".into(),
                }
            }
        }
        Gate::KeysEverywhere => {
            let mut problems = Vec::new();
            let mut prints: BTreeMap<String, String> = BTreeMap::new();
            for n in &nodes {
                let Some(f) = obs.nodes.get(n) else {
                    problems.push(format!("{n}: not probed"));
                    continue;
                };
                if let Some(e) = &f.error {
                    problems.push(format!("{n}: {e}"));
                    continue;
                }
                let j = &f.jws;
                if !j.private_present {
                    problems.push(format!("{n}: no private.pem in {}", j.private_repo));
                    continue;
                }
                match &j.private_fingerprint {
                    Some(fp) => {
                        prints.insert(n.clone(), fp.clone());
                    }
                    None if j.no_openssl => problems.push(format!(
                        "{n}: openssl is not installed, so private.pem's public key cannot be checked without reading the key off the node (apt-get install openssl on {n})"
                    )),
                    None => problems.push(format!("{n}: private.pem is not a readable key")),
                }
                if let Some(mode) = &j.private_mode
                    && mode != "600"
                    && mode != "640"
                {
                    problems.push(format!(
                        "{n}: private.pem has mode {mode} (needs 600 or 640)"
                    ));
                }
                if let (Some(owner), Some(node)) = (&j.private_owner, ctx.inv.node(n)) {
                    let user = owner.split(':').next().unwrap_or("");
                    if user != node.keystone_user {
                        problems.push(format!(
                            "{n}: private.pem is owned by {owner}, not {}",
                            node.keystone_user
                        ));
                    }
                }
            }
            for (owner, fp) in &prints {
                for n in &nodes {
                    if let Some(f) = obs.nodes.get(n)
                        && !f.jws.has_public(fp)
                    {
                        problems.push(format!("{n} lacks {owner}'s public key ({})", short_fp(fp)));
                    }
                }
            }
            if ctx.params.get("key_strategy").map(String::as_str) == Some("shared") {
                let distinct: BTreeSet<&String> = prints.values().collect();
                if distinct.len() > 1 {
                    problems.push(format!(
                        "strategy shared, but the private keys differ: {}",
                        prints
                            .iter()
                            .map(|(n, f)| format!("{n} {}", short_fp(f)))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
            }
            if problems.is_empty() {
                Verdict::Pass(format!(
                    "every node holds private.pem and every node's public key ({} distinct keys)",
                    prints.values().collect::<BTreeSet<_>>().len()
                ))
            } else {
                Verdict::Fail {
                    reason: format!("keys are not everywhere: {}", problems.join("; ")),
                    next: "re-run the keys step (resume re-checks), or install the missing keys by hand, then resume".into(),
                }
            }
        }
        Gate::StagedKeysEverywhere => {
            let mut problems = Vec::new();
            let mut staged = BTreeMap::new();
            for n in &nodes {
                match obs.nodes.get(n) {
                    Some(f) if f.error.is_none() => {
                        if let Some(fp) = &f.jws.staged_fingerprint {
                            staged.insert(n.clone(), fp.clone());
                        }
                    }
                    Some(f) => {
                        problems.push(format!("{n}: {}", f.error.clone().unwrap_or_default()))
                    }
                    None => problems.push(format!("{n}: not probed")),
                }
            }
            for (owner, fp) in &staged {
                for n in &nodes {
                    if let Some(f) = obs.nodes.get(n)
                        && !f.jws.has_public(fp)
                    {
                        problems.push(format!(
                            "{n} lacks {owner}'s next public key ({})",
                            short_fp(fp)
                        ));
                    }
                }
            }
            if problems.is_empty() {
                Verdict::Pass(format!(
                    "{} staged public keys are on every node",
                    staged.len()
                ))
            } else {
                Verdict::Fail {
                    reason: format!("new keys are not published everywhere: {}", problems.join("; ")),
                    next: "publish the staged public keys (keystone.publish_staged_public_keys), then resume".into(),
                }
            }
        }
        Gate::FernetKeysEverywhere => {
            let mut problems = Vec::new();
            let mut prints = BTreeSet::new();
            for n in &nodes {
                match obs.nodes.get(n) {
                    Some(f) if f.error.is_none() => {
                        if !f.fernet.present || f.fernet.keys == 0 {
                            problems.push(format!("{n}: no Fernet keys in {}", f.fernet.repo));
                        } else if let Some(fp) = &f.fernet.fingerprint {
                            prints.insert(fp.clone());
                        }
                    }
                    Some(f) => {
                        problems.push(format!("{n}: {}", f.error.clone().unwrap_or_default()))
                    }
                    None => problems.push(format!("{n}: not probed")),
                }
            }
            if problems.is_empty() && prints.len() > 1 {
                problems.push(format!(
                    "the Fernet repositories differ between nodes ({} distinct)",
                    prints.len()
                ));
            }
            if problems.is_empty() {
                Verdict::Pass("every node holds the same Fernet key repository".into())
            } else {
                Verdict::Fail {
                    reason: format!("Fernet keys are not everywhere: {}", problems.join("; ")),
                    next: "restore the Fernet repository on every node (identical on all, e.g. from a backup or by syncing from a healthy node), then resume".into(),
                }
            }
        }
        Gate::OutOfPool => {
            let n = node.unwrap_or_default();
            let rows = lb_rows(obs, n);
            let in_pool = not_held_out(obs, n);
            let still: Vec<String> = in_pool
                .iter()
                .map(|s| {
                    format!(
                        "{} shows {} {:?} with {} sessions",
                        s.lb, s.status, s.admin, s.sessions
                    )
                })
                .collect();
            if rows.len() < ctx.inv.load_balancers.len() {
                return Verdict::Fail {
                    reason: format!("{n} is missing from a load balancer's backend"),
                    next: "fix the inventory's server names, then resume".into(),
                };
            }
            if still.is_empty() {
                Verdict::Pass(format!(
                    "{n} is in maintenance on all {} load balancers",
                    rows.len()
                ))
            } else if ctx.guarded.contains(n) {
                Verdict::Breach {
                    rows: in_pool.into_iter().cloned().collect(),
                }
            } else {
                Verdict::Fail {
                    reason: format!(
                        "{n} is still in the pool: {} (a reload without a server-state file undoes a drain)",
                        still.join("; ")
                    ),
                    next: format!("resume: cutover drains {n} again before it flips"),
                }
            }
        }
        Gate::PoolCapacity => {
            let n = node.unwrap_or_default();
            let mut empty = Vec::new();
            let mut left = Vec::new();
            for lb in &ctx.inv.load_balancers {
                let others: Vec<String> = all_rows(obs)
                    .iter()
                    .filter(|r| r.lb == lb.name && r.node != n && r.in_pool())
                    .map(|r| r.node.clone())
                    .collect();
                if others.is_empty() {
                    empty.push(lb.name.clone());
                } else {
                    left.push(format!("{}: {}", lb.name, others.join(", ")));
                }
            }
            if empty.is_empty() {
                Verdict::Pass(format!("without {n} the pool keeps {}", left.join("; ")))
            } else {
                Verdict::Ask {
                    title: format!("Draining {n} leaves no server in the pool"),
                    hazard: format!(
                        "No other node is UP and ready on {}: taking {n} out stops the service behind {} until a node rejoins.",
                        empty.join(", "),
                        if empty.len() == 1 { "it" } else { "them" }
                    ),
                    consequence: "Clients get errors from the load balancer (503) until a node is back in the pool. Bring another node back first if you can.".into(),
                    facts: all_rows(obs)
                        .iter()
                        .map(|r| format!("{} on {}: {} {:?}", r.node, r.lb, r.status, r.admin))
                        .collect(),
                }
            }
        }
        Gate::InPool => {
            let n = node.unwrap_or_default();
            let bad: Vec<String> = lb_rows(obs, n)
                .iter()
                .filter(|s| !s.checked_up())
                .map(|s| format!("{} shows {}", s.lb, s.status))
                .collect();
            if bad.is_empty() {
                Verdict::Pass(format!("{n} is UP and ready on every load balancer"))
            } else {
                Verdict::Fail {
                    reason: format!("{n} is not back in the pool: {}", bad.join("; ")),
                    next: format!("check {n}'s health check and keystone log, then resume"),
                }
            }
        }
        Gate::ValidatedBeforeReadd => {
            let n = node.unwrap_or_default();
            match obs.tokens.get(n) {
                Some(t) if t.format.as_str() == ctx.target && t.validated() => {
                    Verdict::Pass(format!(
                        "{n} issued a {} token{} directly and validated it ({} ms)",
                        t.format.as_str(),
                        t.alg
                            .as_deref()
                            .map(|a| format!(" ({a})"))
                            .unwrap_or_default(),
                        t.latency_ms
                    ))
                }
                Some(t) => Verdict::Fail {
                    reason: format!(
                        "{n} is not proven: expected a {} token that validates, got {}",
                        ctx.target,
                        t.short()
                    ),
                    next: format!(
                        "{n} stays out of the pool; read its keystone log, fix, then resume (rollback: set its provider back and restart)"
                    ),
                },
                None => Verdict::Fail {
                    reason: format!("no direct token check for {n}"),
                    next: "resume to check again".into(),
                },
            }
        }
        Gate::ValidatedBeforeSwap => validated_before_swap(ctx.inv, ctx.params, obs, ctx.target),
        Gate::MixedPool => {
            let n = node.unwrap_or_default();
            // The node being re-added must still be out: back in already is a breach, not a
            // question (nobody consented to the pool it is in).
            let back: Vec<LbServer> = not_held_out(obs, n).into_iter().cloned().collect();
            if !back.is_empty() && ctx.guarded.contains(n) {
                return Verdict::Breach { rows: back };
            }
            // The node proved itself just before (its token check); what it answers now must
            // still be a token of the target provider, or it changed since (restarted with
            // an old configuration) and must not rejoin on that proof.
            if let Some(t) = obs.tokens.get(n)
                && t.format.as_str() != ctx.target
            {
                return Verdict::Fail {
                    reason: format!(
                        "{n} answered {} just now, not a {} token: it changed since its token check",
                        t.short(),
                        ctx.target
                    ),
                    next: format!(
                        "{n} stays out of the pool; read its keystone log and its keystone.conf, fix, then resume (the token check runs again)"
                    ),
                };
            }
            let mine = provider_of(obs, n).unwrap_or_else(|| ctx.target.to_string());
            let mut other: BTreeMap<String, Vec<String>> = BTreeMap::new();
            let mut same = Vec::new();
            for m in nodes.iter().filter(|m| m.as_str() != n) {
                // Anything taking traffic (admin ready, or UP) or not in maintenance can take
                // traffic again any second (a flapping health check, a drain): it counts.
                let pooled = lb_rows(obs, m)
                    .iter()
                    .any(|s| s.takes_traffic() || !s.out_of_pool());
                if !pooled {
                    continue;
                }
                let p = provider_of(obs, m).unwrap_or_else(|| "unknown".into());
                if p == mine {
                    same.push(m.clone());
                } else {
                    other.entry(p).or_default().push(m.clone());
                }
            }
            if other.is_empty() {
                return Verdict::Pass(if same.is_empty() {
                    format!("{n} is the first node back in the pool; no other pooled node")
                } else {
                    format!("every pooled node runs {mine} ({})", same.join(", "))
                });
            }
            let others = other
                .iter()
                .map(|(p, ns)| {
                    format!(
                        "{} {}",
                        ns.join(", "),
                        if ns.len() == 1 {
                            format!("runs {p}")
                        } else {
                            format!("run {p}")
                        }
                    )
                })
                .collect::<Vec<_>>()
                .join("; ");
            let remaining: Vec<String> = other.values().flatten().cloned().collect();
            let exp = ctx.expiration;
            let win = ctx.allow_expired_window;
            Verdict::Ask {
                title: format!("Re-adding {n} mixes providers in the pool"),
                hazard: format!(
                    "{n} now runs {mine}, but {others}. The load balancer will send clients to both kinds."
                ),
                consequence: format!(
                    "Until the last node flips, clients get intermittent 401s: a {mine} token is refused by {} and the other way round. Old tokens stop mattering {} after the last flip ({} more for services that validate with allow_expired).",
                    remaining.join(", "),
                    humanize(exp),
                    humanize(win)
                ),
                facts: {
                    let mut f = vec![format!("{n}: {mine}, validated directly")];
                    // Where a provider comes from a token kept (not asked again), say so.
                    let from = |m: &str| match obs.tokens.get(m).and_then(|t| t.kept_since) {
                        Some(at) => format!(
                            " (its token of {}, keystone.conf unchanged since)",
                            at.format("%H:%M:%S")
                        ),
                        None => String::new(),
                    };
                    for (p, ns) in &other {
                        for m in ns {
                            f.push(format!("{m}: {p}, in the pool{}", from(m)));
                        }
                    }
                    for m in &same {
                        f.push(format!("{m}: {mine}, in the pool{}", from(m)));
                    }
                    f
                },
            }
        }
        Gate::AllTarget => {
            let mut bad = Vec::new();
            for n in &nodes {
                let conf = obs
                    .nodes
                    .get(n)
                    .and_then(|f| f.provider.clone())
                    .unwrap_or_else(|| Provider::keystone_default().to_string());
                if conf != ctx.target {
                    bad.push(format!("{n} is configured for {conf}"));
                }
                match obs.tokens.get(n) {
                    Some(t) if t.format.as_str() == ctx.target && t.validated() => {}
                    Some(t) => bad.push(format!("{n} token check: {}", t.short())),
                    None => bad.push(format!("{n}: no token check")),
                }
                // UP counts here (a reload right before shows `UP 1/3` until the next check);
                // each node's own re-add waited for a passed check (lb.ready, in-pool).
                for s in lb_rows(obs, n) {
                    if !s.in_pool() {
                        bad.push(format!("{n} is {} on {}", s.status, s.lb));
                    }
                }
            }
            if bad.is_empty() {
                Verdict::Pass(format!(
                    "every node runs {} and is UP on every load balancer",
                    ctx.target
                ))
            } else {
                Verdict::Fail {
                    reason: bad.join("; "),
                    next: "fix the named nodes (their keystone log says why), then resume to verify again".into(),
                }
            }
        }
    }
}

/// Every node of A issued a token of `target` directly and it validated there. The probe
/// issued it just now, so after the node's last restart.
fn validated_before_swap(
    inv: &Inventory,
    params: &BTreeMap<String, String>,
    obs: &Observation,
    target: &str,
) -> Verdict {
    let (a, _) = match halves(inv, params) {
        Ok(h) => h,
        Err(e) => {
            return Verdict::Fail {
                reason: e.0,
                next: "fix the split, then resume".into(),
            };
        }
    };
    let mut ok = Vec::new();
    let mut bad = Vec::new();
    for n in &a {
        match obs.tokens.get(n) {
            Some(t) if t.format.as_str() == target && t.validated() => {
                ok.push(format!("{n} ({} ms)", t.latency_ms))
            }
            Some(t) => bad.push(format!(
                "{n}: expected a {target} token that validates, got {}",
                t.short()
            )),
            None => bad.push(format!("{n}: no direct token check")),
        }
    }
    if bad.is_empty() {
        Verdict::Pass(format!(
            "every node of half A issued a {target} token directly and validated it: {}",
            ok.join(", ")
        ))
    } else {
        Verdict::Fail {
            reason: format!("half A is not proven: {}", bad.join("; ")),
            next: format!(
                "no swap: half A ({}) stays out of the pool and half B keeps serving; read the named node's keystone log, fix, then resume (rollback: set its provider back and restart)",
                a.join(", ")
            ),
        }
    }
}

#[cfg(test)]
mod tests;
