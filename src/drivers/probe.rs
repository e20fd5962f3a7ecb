//! Probes: what every node, load balancer and direct token shows right now.

use super::{DResult, Done, DriverError, Fleet, keys};
use crate::drivers::keystone::api;
use crate::drivers::keystone::conf;
use crate::drivers::keystone::known::{self, RepoPaths};
use crate::engine::facts::*;
use crate::inventory::Reach;
use crate::transport::shell_quote;
use std::path::Path;
use std::time::Duration;

impl Fleet {
    /// Read nodes, load balancers and direct tokens, concurrently. A node with an unknown SSH
    /// host key makes this an error (the run turns it into hard stop `unknown-host-key`);
    /// every other unreachable node is a fact (`NodeFacts::unreachable`), for the gates.
    pub async fn probe(
        &self,
        nodes: &[String],
        lb: bool,
        tokens: &[String],
        providers: &[String],
        kept: bool,
    ) -> DResult<Done> {
        let (done, unknown_host) = self.observe(nodes, lb, tokens, providers, kept).await;
        // An unknown host key must reach the operator as a hard stop, not as a fact.
        match unknown_host {
            Some(e) => Err(e),
            None => Ok(done),
        }
    }

    /// What `probe` reads (the nodes' files, the load balancers, a token issued and validated
    /// at each of `tokens`, a token only issued at each other node of `providers`; a node's
    /// kept proof stands for its provider token, and for its validated one with `kept`: see
    /// `known::Proof`), never failing as a whole: each node that cannot be reached is
    /// reported as unreachable (with why, where and what to do), and its Keystone is still
    /// asked over HTTP. Also returns the unknown-host-key error of the first such node (in the
    /// order given), for `probe` to raise.
    pub async fn observe(
        &self,
        nodes: &[String],
        lb: bool,
        tokens: &[String],
        providers: &[String],
        kept: bool,
    ) -> (Done, Option<DriverError>) {
        // Which tokens are asked for: at each of `tokens` issued and validated, at each other
        // node of `providers` issued only.
        let asked: Vec<(&String, bool)> = tokens
            .iter()
            .map(|n| (n, true))
            .chain(crate::engine::action::issued_only(tokens, providers).map(|n| (n, false)))
            .collect();
        // The stamps first, of every node read and every node asked for a token: a node whose
        // files are as last read is not read again, and a node whose last token still holds
        // (see `known::Proof`) is not asked again. The load balancers meanwhile.
        let lbs = async {
            if lb {
                let read = self.read_lbs().await;
                Some((read, chrono::Utc::now()))
            } else {
                None
            }
        };
        // Every file's stamp where the node is read or asked for a validated token; where only
        // its provider is asked, keystone.conf's stat line is all its proof stands on.
        let stamped: Vec<String> = nodes
            .iter()
            .chain(asked.iter().map(|(n, _)| *n))
            .cloned()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let whole: Vec<String> = stamped
            .iter()
            .filter(|n| nodes.contains(n) || asked.iter().any(|(m, v)| m == n && *v))
            .cloned()
            .collect();
        let conf_only: Vec<String> = stamped
            .iter()
            .filter(|n| !whole.contains(n))
            .cloned()
            .collect();
        let rest = async {
            let (mut stamps, lines) = tokio::join!(
                Box::pin(self.stamps_now(&whole)),
                Box::pin(self.conf_lines_now(&conf_only))
            );
            stamps.extend(lines);
            let stamps = &stamps;
            let asked = &asked;
            // Each node's read boxed: a node's facts read and token together are a large
            // future, and dozens of them inline would not fit a thread's stack.
            let each = futures::future::join_all(stamped.iter().map(|n| {
                Box::pin(async move {
                    let facts = async {
                        if nodes.contains(n) {
                            Some(self.facts_of(n, stamps.get(n).map(String::as_str)).await)
                        } else {
                            None
                        }
                    };
                    let Some(&(_, validate)) = asked.iter().find(|(m, _)| *m == n) else {
                        return (n, facts.await, None);
                    };
                    if let Some(stamp) = stamps.get(n) {
                        let token = self.token_or_proof(n, validate, kept, Some(stamp));
                        let (f, t) = tokio::join!(facts, token);
                        return (n, f, Some(t));
                    }
                    // A node not read before: its files first, so that its token, read after
                    // them, can be its proof for the probes that follow.
                    let f = facts.await;
                    let stamp = f.as_ref().and_then(|_| self.known.stamp(n));
                    let t = self
                        .token_or_proof(n, validate, kept, stamp.as_deref())
                        .await;
                    (n, f, Some(t))
                })
            }));
            let mut read = std::collections::HashMap::new();
            let mut toks = Vec::new();
            for (n, f, t) in each.await {
                if let Some(f) = f {
                    read.insert(n, f);
                }
                if let Some(t) = t {
                    toks.push((n.clone(), t));
                }
            }
            // In the order given (the first unknown host key is the one raised).
            let facts: Vec<_> = nodes
                .iter()
                .filter_map(|n| read.remove(n).map(|(f, unknown)| (n.clone(), f, unknown)))
                .collect();
            (facts, toks)
        };
        // How each instance would come through a reload: read by full probes only (the load
        // balancers and nodes: preflight, verify), not by the lean pool reads before each
        // guarded action, and concurrently with the rest, so it never delays a pool read.
        let reload = async {
            if lb && !nodes.is_empty() {
                self.read_reload_facts().await
            } else {
                Default::default()
            }
        };
        let (lbs, (facts, toks), reload) = tokio::join!(Box::pin(lbs), Box::pin(rest), reload);
        let mut obs = Observation {
            lb_reload: reload,
            ..Default::default()
        };
        let mut unknown_host: Option<DriverError> = None;
        for (n, f, unknown) in facts {
            obs.nodes.insert(n, f);
            if unknown_host.is_none() {
                unknown_host = unknown;
            }
        }
        if let Some(((rows, errors), at)) = lbs {
            obs.lb = Some(rows);
            obs.lb_errors = errors;
            obs.lb_read_at = Some(at);
        }
        for (n, t) in toks {
            obs.tokens.insert(n, t);
        }
        let errors: Vec<String> = obs
            .nodes
            .iter()
            .filter_map(|(n, f)| f.error.as_ref().map(|e| format!("{n}: {e}")))
            .collect();
        let mut parts = Vec::new();
        if !nodes.is_empty() {
            parts.push(format!("{} nodes read", nodes.len() - errors.len()));
        }
        if let Some(rows) = &obs.lb {
            parts.push(format!("{} lb rows", rows.len()));
        }
        parts.extend(reload_summary(&obs.lb_reload));
        if !obs.tokens.is_empty() {
            parts.push(format!(
                "tokens: {}",
                obs.tokens
                    .iter()
                    .map(|(n, t)| {
                        let kept = if t.kept_since.is_some() {
                            " (kept)"
                        } else {
                            ""
                        };
                        format!("{n} {}{kept}", t.format.as_str())
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if !errors.is_empty() || !obs.lb_errors.is_empty() {
            parts.push(format!(
                "problems: {}",
                errors
                    .iter()
                    .chain(obs.lb_errors.iter())
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("; ")
            ));
        }
        (Done::ok(parts.join("; "), obs), unknown_host)
    }

    /// A node's facts when reading it failed: unreachable (and why) when the failure was
    /// reaching it, else the error; its Keystone is asked over HTTP either way, so a node that
    /// cannot be read is never shown as a service that is down. The error comes back when it
    /// is an unknown host key.
    pub(in crate::drivers) async fn facts_after_error(
        &self,
        name: &str,
        e: DriverError,
    ) -> (NodeFacts, Option<DriverError>) {
        let Ok(n) = self.node(name) else {
            return (
                NodeFacts {
                    error: Some(e.msg),
                    ..Default::default()
                },
                None,
            );
        };
        let reach = e.transport.as_deref().and_then(|t| self.unreachable(n, t));
        let unknown = reach
            .as_ref()
            .is_some_and(|u| u.kind == ReachFailure::HostKeyUnknown);
        let mut f = match reach {
            Some(u) => NodeFacts::unreachable(u),
            None => NodeFacts {
                error: Some(e.msg.clone()),
                ..Default::default()
            },
        };
        let svc = api::service_check(&self.http, &n.keystone_url).await;
        f.service_up = svc.up;
        f.service_status = svc.status;
        f.service_detail = svc.detail;
        (f, unknown.then_some(e))
    }

    pub async fn node_facts(&self, name: &str) -> DResult<NodeFacts> {
        Ok(self.node_facts_after(name, None).await?.1)
    }

    /// Where a node's key repositories are: as last read, else as its keystone.conf says (one
    /// read of the node).
    pub(in crate::drivers) async fn repo_paths(&self, name: &str) -> DResult<RepoPaths> {
        if let Some(k) = self.known.get(name) {
            return Ok(k.paths);
        }
        let f = self.node_facts(name).await?;
        Ok(RepoPaths {
            fernet: f.fernet.repo,
            private: f.jws.private_repo,
            public: f.jws.public_repo,
        })
    }

    /// Read a node in one exec: keystone.conf, then its key repositories at the paths they had
    /// last time (or the inventory's and Keystone's defaults), checked against the conf just read:
    /// only when they moved is there a second exec. With `pre`, that script runs first in the
    /// same exec (in a subshell; an action's change) and its exit status and stdout come back
    /// with the facts as they are after it; its stderr is the exec's.
    pub(in crate::drivers) async fn node_facts_after(
        &self,
        name: &str,
        pre: Option<&str>,
    ) -> DResult<(Option<crate::transport::ExecOutput>, NodeFacts)> {
        self.node_facts_read(name, pre, None).await
    }

    /// A node's facts for a probe (`stamp`: its stamp, just read), or, where it cannot be read,
    /// the facts that say so and the unknown-host-key error, if that is why.
    async fn facts_of(&self, n: &str, stamp: Option<&str>) -> (NodeFacts, Option<DriverError>) {
        match self.node_facts_read(n, None, stamp).await {
            Ok((_, f)) => (f, None),
            Err(e) => self.facts_after_error(n, e).await,
        }
    }

    /// A probe's token at `n`: its kept proof where one holds for `stamp` (read on the node
    /// before this), for a provider read always and for a validated one with `kept`; else a
    /// token asked for now, kept as the node's proof when it is one.
    async fn token_or_proof(
        &self,
        n: &str,
        validate: bool,
        kept: bool,
        stamp: Option<&str>,
    ) -> TokenCheck {
        let keep = !validate || kept;
        if let Some(t) = stamp
            .filter(|_| keep)
            .and_then(|s| self.known.proof(n, s, validate))
        {
            return t;
        }
        self.proving(n, stamp, self.token_read(n, validate)).await
    }

    /// `token`, asked for now at `n`, kept as `n`'s proof when it is one (`stamp`: read on `n`
    /// before the token is asked for; none, no proof).
    pub(in crate::drivers) async fn proving(
        &self,
        n: &str,
        stamp: Option<&str>,
        token: impl std::future::Future<Output = TokenCheck>,
    ) -> TokenCheck {
        let at = chrono::Utc::now();
        let t = token.await;
        if let Some(s) = stamp {
            self.known.prove(n, s, &t, at);
        }
        t
    }

    /// keystone.conf's `stat` line on each node of `nodes` read before, read now: all that a
    /// provider read needs to keep a node's proof (the nodes on this machine in one `stat`,
    /// every other node with one exec of its own, all at once).
    pub(in crate::drivers) async fn conf_lines_now(
        &self,
        nodes: &[String],
    ) -> std::collections::HashMap<String, String> {
        let (here, apart) = self.by_machine(nodes, |conf, _| Some(conf));
        let read = |group: Vec<(String, String)>| async move {
            let Some(first) = group.first().map(|(n, _)| n.clone()) else {
                return Vec::new();
            };
            let confs: Vec<&str> = group.iter().map(|(_, c)| c.as_str()).collect();
            let script = api::conf_lines_script(&confs);
            let out = match self
                .exec_as(&first, &script, Duration::from_secs(30), true)
                .await
            {
                Ok(o) if o.status <= 1 => o.stdout_str(),
                _ => return Vec::new(),
            };
            api::conf_lines_of(&out, &confs)
                .into_iter()
                .zip(&group)
                .filter_map(|(line, (n, _))| Some((n.clone(), line?)))
                .collect::<Vec<_>>()
        };
        let (batch, each) = tokio::join!(
            read(here),
            futures::future::join_all(apart.into_iter().map(|x| read(vec![x])))
        );
        batch
            .into_iter()
            .chain(each.into_iter().flatten())
            .collect()
    }

    /// The stamp of each node of `nodes` read before (where its key repositories are is known),
    /// read now, all at once: the nodes on this machine (reached locally, without sudo or as
    /// root) in one `stat` for all of them, so nodes that share a machine (the demo world's)
    /// cost one process per read, not one each; every other node with one exec of its own, in
    /// its kept shell. A node whose stamp could not be read is left out (its read reads whole).
    pub(in crate::drivers) async fn stamps_now(
        &self,
        nodes: &[String],
    ) -> std::collections::HashMap<String, String> {
        let (here, apart) = self.by_machine(nodes, |conf, k| {
            k.stamp().is_some().then_some((conf, k.paths))
        });
        let flat = |v: Vec<(String, (String, RepoPaths))>| -> Vec<_> {
            v.into_iter().map(|(n, (c, p))| (n, c, p)).collect()
        };
        let (mut here, mut apart) = (flat(here), flat(apart));
        if here.len() == 1 {
            apart.append(&mut here);
        }
        let batch = async {
            if here.is_empty() {
                return Vec::new();
            }
            let args: Vec<(&str, &str, &str, &str)> = here
                .iter()
                .map(|(_, c, p)| {
                    (
                        c.as_str(),
                        p.fernet.as_str(),
                        p.private.as_str(),
                        p.public.as_str(),
                    )
                })
                .collect();
            let script = api::stamps_script(&args);
            let out = match self
                .exec_as(&here[0].0, &script, Duration::from_secs(30), true)
                .await
            {
                Ok(o) if o.status <= 1 => o.stdout_str(),
                _ => return Vec::new(),
            };
            let confs: Vec<&str> = here.iter().map(|(_, c, _)| c.as_str()).collect();
            api::stamps_of(&out, &confs)
                .into_iter()
                .zip(&here)
                .filter_map(|(stamp, (name, _, _))| Some((name.clone(), stamp?)))
                .collect()
        };
        let each = futures::future::join_all(apart.iter().map(|(name, conf, p)| async move {
            let script = api::stamp_script(conf, &p.fernet, &p.private, &p.public);
            match self
                .exec_as(name, &script, Duration::from_secs(30), true)
                .await
            {
                Ok(o) if o.status <= 1 => {
                    Some((name.clone(), o.stdout_str().trim_end().to_string()))
                }
                _ => None,
            }
        }));
        let (batch, each) = tokio::join!(batch, each);
        batch
            .into_iter()
            .chain(each.into_iter().flatten())
            .collect()
    }

    /// [`Fleet::node_facts_after`]; `stamp_now`: the node's stamp, just read
    /// ([`Fleet::stamps_now`]), so it is not read again here: the same as the last read's, and
    /// nothing more is read.
    async fn node_facts_read(
        &self,
        name: &str,
        pre: Option<&str>,
        stamp_now: Option<&str>,
    ) -> DResult<(Option<crate::transport::ExecOutput>, NodeFacts)> {
        let n = self.node(name)?;
        let conf_path = n.keystone_conf.display().to_string();
        let path_or = |o: &Option<std::path::PathBuf>, d: &str| {
            o.as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| d.to_string())
        };
        let paths_of = |s: &conf::TokenSettings| RepoPaths {
            fernet: path_or(&n.fernet_repo, &s.fernet_repo),
            private: path_or(&n.jws_private_repo, &s.jws_private_repo),
            public: path_or(&n.jws_public_repo, &s.jws_public_repo),
        };
        let (guess, last, last_conf) = match self.known.get(name) {
            Some(k) => (k.paths, k.keys, k.conf),
            None => (paths_of(&conf::token_settings("")), None, String::new()),
        };
        let conf_mark = known::marker("conf");
        let read = api::read_script(
            &conf_path,
            &conf_mark,
            &guess.fernet,
            &guess.private,
            &guess.public,
            last.as_ref().map(|(stamp, _)| stamp.as_str()),
        );
        let pre_mark = known::marker("pre");
        let (script, timeout) = match pre {
            Some(p) => (
                format!(
                    "(\n{p}\n)\nprintf '\\n%s %s\\n' {} $?\n{read}",
                    shell_quote(&pre_mark)
                ),
                Duration::from_secs(90),
            ),
            None => (read, Duration::from_secs(30)),
        };
        // A plain read runs in the node's kept shell; an action's change on a channel of its own.
        // A plain read of a node read before asks for the stamp alone first (one stat): the
        // same stamp, and the whole read would only have said `==unchanged`.
        let read_whole = async || self.exec_as(name, &script, timeout, pre.is_none()).await;
        let (svc, out) = tokio::join!(api::service_check(&self.http, &n.keystone_url), async {
            let Some((stamp, facts)) = last.as_ref().filter(|_| pre.is_none()) else {
                return read_whole().await;
            };
            let same = || crate::transport::ExecOutput {
                status: 0,
                signal: None,
                stdout: b"==unchanged\n".to_vec(),
                stderr: Vec::new(),
                duration: Duration::ZERO,
            };
            let now = match stamp_now {
                Some(now) => now.to_string(),
                None => {
                    let alone =
                        api::stamp_script(&conf_path, &guess.fernet, &guess.private, &guess.public);
                    match self.exec_as(name, &alone, timeout, true).await {
                        Ok(o) if o.status <= 1 => o.stdout_str().trim_end().to_string(),
                        _ => return read_whole().await,
                    }
                }
            };
            if now == *stamp {
                return Ok(same());
            }
            if !api::only_conf_changed(&now, stamp) {
                return read_whole().await;
            }
            // keystone.conf written (a provider flipped), the key files as they were: the conf
            // alone is read, and the stamp it came with stands for the key files' facts.
            let conf = self
                .exec_as(
                    name,
                    &format!("cat -- {}", shell_quote(&conf_path)),
                    timeout,
                    true,
                )
                .await?;
            if conf.status != 0 {
                return read_whole().await;
            }
            let mut stdout = conf.stdout;
            stdout.extend_from_slice(
                format!("\n{conf_mark}\n==stamp\n{now}\n{conf_mark}-stamp-end\n{facts}").as_bytes(),
            );
            Ok(crate::transport::ExecOutput { stdout, ..conf })
        });
        let mut out = out?;
        let text = out.stdout_str();
        let mut rest = text.as_str();
        let mut pre_run = None;
        if pre.is_some() {
            let Some((before, after)) = known::split_at_marker(rest, &pre_mark) else {
                return Err(DriverError::new(
                    format!(
                        "{name}: the change did not run to its end: {}",
                        out.last_line()
                    ),
                    "check the node (its disk, its shell), then resume",
                ));
            };
            // The marker's line is `MARK STATUS`.
            let status = text[text.find(&pre_mark).unwrap_or(0) + pre_mark.len()..]
                .split_whitespace()
                .next()
                .and_then(|s| s.parse().ok())
                .unwrap_or(1);
            let mut ran = out.clone();
            ran.status = status;
            ran.stdout = before.as_bytes().to_vec();
            pre_run = Some(ran);
            rest = after;
        }
        if out.status == 66 {
            return Err(DriverError::new(
                format!("{name}: cannot read {conf_path}: {}", out.last_line()),
                format!(
                    "check keystone_conf for {name} in the inventory (and sudo: true if it needs root)"
                ),
            ));
        }
        let failed = |out: &crate::transport::ExecOutput| {
            DriverError::new(
                format!(
                    "{name}: reading key repositories failed: {}",
                    out.last_line()
                ),
                "check permissions on the key repositories (sudo: true in the inventory if needed)",
            )
        };
        if out.status != 0 {
            return Err(failed(&out));
        }
        // `==unchanged` alone: keystone.conf and the key files are as last read (their stamp).
        let unchanged = last.is_some() && rest.trim_end() == "==unchanged";
        let (conf, facts_out) = if unchanged {
            (last_conf, "==unchanged")
        } else {
            let Some((conf, facts_out)) = known::split_at_marker(rest, &conf_mark) else {
                return Err(failed(&out));
            };
            (conf.to_string(), facts_out)
        };
        let s = conf::token_settings(&conf);
        let paths = paths_of(&s);
        // The key files' stamp and what reading them printed; unchanged since the last read
        // (same paths, same stamp), that read's output stands for this one.
        let stamp_end = format!("{conf_mark}-stamp-end");
        let mut keys = match (facts_out.strip_prefix("==unchanged"), &last) {
            (Some(_), Some(last)) => Some(last.clone()),
            _ => known::split_at_marker(facts_out, &stamp_end).and_then(|(stamp, facts)| {
                Some((
                    stamp.strip_prefix("==stamp\n")?.to_string(),
                    facts.to_string(),
                ))
            }),
        };
        if paths != guess || keys.is_none() {
            // The repositories are not where they were (or where Keystone keeps them by
            // default): read them where the conf says, with their stamp and the conf again.
            let script = api::read_script(
                &conf_path,
                &conf_mark,
                &paths.fernet,
                &paths.private,
                &paths.public,
                None,
            );
            out = self
                .read_exec(name, &script, Duration::from_secs(30))
                .await?;
            if out.status != 0 {
                return Err(failed(&out));
            }
            let text = out.stdout_str();
            let again = known::split_at_marker(&text, &conf_mark).and_then(|(c, rest)| {
                let (stamp, facts) = known::split_at_marker(rest, &stamp_end)?;
                Some((
                    c.to_string(),
                    stamp.strip_prefix("==stamp\n")?.to_string(),
                    facts.to_string(),
                ))
            });
            match again {
                // The conf as the first read had it: the stamp covers what was read.
                Some((c, stamp, facts)) if c == conf => {
                    keys = Some((stamp, facts));
                    self.known
                        .put(name, paths.clone(), conf.clone(), keys.clone());
                }
                Some((_, _, facts)) => {
                    // Changed between the two reads: no stamp, the next read reads it whole.
                    keys = Some((String::new(), facts));
                    self.known.put(name, paths.clone(), conf.clone(), None);
                }
                None => return Err(failed(&out)),
            }
        } else {
            self.known
                .put(name, paths.clone(), conf.clone(), keys.clone());
        }
        let facts_out = keys.map(|(_, facts)| facts).unwrap_or_default();
        let RepoPaths {
            fernet,
            private,
            public,
        } = paths;
        let mut f = api::parse_facts(&facts_out, &fernet, &private, &public);
        if f.jws.no_openssl && f.jws.private_present {
            f.jws.private_fingerprint = self
                .private_fingerprint_without_openssl(name, &private)
                .await;
        }
        f.provider = Some(s.provider);
        f.cache = Some(conf::cache_settings(&conf));
        f.expiration = s.expiration;
        f.allow_expired_window = s.allow_expired_window;
        f.receipts_repo = s.receipts_repo;
        f.service_up = svc.up;
        f.service_status = svc.status;
        f.service_detail = svc.detail;
        Ok((pre_run, f))
    }

    /// Without `openssl` on the node, private.pem's public half can only be derived by reading
    /// the key. That is done only on this machine (the local transport), where nothing travels;
    /// over SSH the key stays on its node and the gate says what to install.
    pub(in crate::drivers) async fn private_fingerprint_without_openssl(
        &self,
        node: &str,
        private_repo: &str,
    ) -> Option<String> {
        let n = self.node(node).ok()?;
        if !matches!(n.reach, Reach::Local) {
            return None;
        }
        let t = self.node_transport(node).await.ok()?;
        let bytes = keys::Secret::from(
            t.read_file(&Path::new(private_repo).join("private.pem"), n.sudo)
                .await
                .ok()?,
        );
        keys::private_fingerprint(std::str::from_utf8(&bytes.0).ok()?).ok()
    }
}

impl Fleet {
    /// The nodes of `nodes` read before, split into those read on this machine
    /// ([`read_here`]) and the others, each with what `pick` takes from its keystone.conf's
    /// path and its last read (None: the node is left out).
    fn by_machine<T>(
        &self,
        nodes: &[String],
        pick: impl Fn(String, known::NodeConf) -> Option<T>,
    ) -> (Named<T>, Named<T>) {
        let (mut here, mut apart) = (Vec::new(), Vec::new());
        for name in nodes {
            let (Ok(n), Some(k)) = (self.node(name), self.known.get(name)) else {
                continue;
            };
            let Some(x) = pick(n.keystone_conf.display().to_string(), k) else {
                continue;
            };
            if read_here(n) {
                here.push((name.clone(), x));
            } else {
                apart.push((name.clone(), x));
            }
        }
        (here, apart)
    }
}

/// Nodes by name, each with what was picked for it.
type Named<T> = Vec<(String, T)>;

/// Whether a node's files are read on this machine (reached locally, without sudo or as
/// root): such nodes' stamps are read in one `stat` for all of them.
fn read_here(n: &crate::inventory::Node) -> bool {
    matches!(n.reach, Reach::Local) && (!n.sudo || nix::unistd::geteuid().is_root())
}

/// The probe every `probe` subcommand and resume uses: every node, every LB, every direct token.
/// A node that cannot be reached (an unknown or changed host key included) is in the
/// observation as unreachable, with where and why; the others are read as usual.
pub async fn full_probe(fleet: &Fleet, tokens: bool) -> DResult<Observation> {
    let nodes = fleet.inv.node_names();
    let toks = if tokens { nodes.clone() } else { vec![] };
    let lb = !fleet.inv.load_balancers.is_empty();
    Ok(fleet
        .observe(&nodes, lb, &toks, &[], false)
        .await
        .0
        .observed)
}
