//! Keystone over HTTP (directly at a node, never through the load balancer) and the shell
//! snippets that read and install key material on a node.

use crate::drivers::keys;
use crate::engine::facts::*;
use crate::inventory::credentials::{AuthCredentials, Scope};
use crate::transport::shell_quote;
use base64::Engine;
use std::time::{Duration, Instant};

/// `<root>/v3<path>` for a node's `keystone_url`: the one place a Keystone URL is joined. The
/// inventory keeps the API root already (see `inventory::keystone_root`); an inventory read
/// back from an older journal may still end in `/v3`, which is taken off here too.
pub fn v3_url(keystone_url: &str, path: &str) -> String {
    let root = crate::inventory::keystone_root(keystone_url)
        .unwrap_or_else(|_| keystone_url.trim().trim_end_matches('/').to_string());
    format!("{root}/v3{path}")
}

/// What an answer of 404 means at a node's own URL: not a Keystone that is down, but a URL
/// under which no Keystone v3 API lives.
fn not_keystone(url: &str) -> String {
    format!(
        "no Keystone v3 API at {url}: keystone_url looks wrong (it must be the node's API root, e.g. http://10.0.0.11:5000 or https://host/identity)"
    )
}

/// What GET /v3 at a node's own URL found.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceCheck {
    pub up: bool,
    /// The HTTP status, when anything answered.
    pub status: Option<u16>,
    pub detail: String,
}

/// GET /v3 at the node's own URL.
pub async fn service_check(http: &reqwest::Client, url: &str) -> ServiceCheck {
    let u = v3_url(url, "");
    match http.get(&u).timeout(Duration::from_secs(5)).send().await {
        Ok(r) if r.status().is_success() => ServiceCheck {
            up: true,
            status: Some(r.status().as_u16()),
            detail: format!("GET /v3 {}", r.status().as_u16()),
        },
        Ok(r) if r.status().as_u16() == 404 => ServiceCheck {
            up: false,
            status: Some(404),
            detail: format!("GET {u} answered 404: {}", not_keystone(url)),
        },
        Ok(r) => ServiceCheck {
            up: false,
            status: Some(r.status().as_u16()),
            detail: format!("GET /v3 answered {}", r.status().as_u16()),
        },
        Err(e) => ServiceCheck {
            up: false,
            status: None,
            detail: format!("GET {u}: {}", short_err(&e)),
        },
    }
}

/// GET /v3 at the node's own URL: whether it answered, and what was seen.
pub async fn service_up(http: &reqwest::Client, url: &str) -> (bool, String) {
    let c = service_check(http, url).await;
    (c.up, c.detail)
}

/// Why a call to Keystone's API failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No answer: connection, TLS or timeout (reqwest's error, shortened).
    #[error("{0}")]
    Unanswered(String),
    /// An answer other than the one asked for (its status).
    #[error("{0}")]
    Refused(String),
    /// An answer whose body could not be read.
    #[error("{0}")]
    Body(String),
}

/// Why a Fernet repository's dump could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    #[error("unexpected bytes in the key dump")]
    NotText,
    #[error("key {0}: not base64")]
    NotBase64(String),
}

fn short_err(e: &reqwest::Error) -> String {
    if e.is_connect() {
        "connection refused".into()
    } else if e.is_timeout() {
        "timed out".into()
    } else {
        e.to_string()
    }
}

/// The token requests' path: `nocatalog` asks Keystone not to build the service catalog into
/// the answer (cutover reads only the token and its status; a real cloud's catalog, every
/// service and endpoint, is most of what an issue or a validation costs Keystone otherwise).
const TOKENS: &str = "/auth/tokens?nocatalog";

/// POST /v3/auth/tokens; the token string is returned to the caller, who must drop it.
async fn issue(
    http: &reqwest::Client,
    url: &str,
    c: &AuthCredentials,
    scope: Scope,
) -> Result<(u16, Option<String>), ApiError> {
    let r = http
        .post(v3_url(url, TOKENS))
        .json(&c.password_auth_body(scope))
        .send()
        .await
        .map_err(|e| ApiError::Unanswered(short_err(&e)))?;
    let status = r.status().as_u16();
    let token = r
        .headers()
        .get("X-Subject-Token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    Ok((status, token))
}

async fn validate(
    http: &reqwest::Client,
    url: &str,
    auth: &str,
    subject: &str,
) -> Result<u16, ApiError> {
    let r = http
        .get(v3_url(url, TOKENS))
        .header("X-Auth-Token", auth)
        .header("X-Subject-Token", subject)
        .send()
        .await
        .map_err(|e| ApiError::Unanswered(short_err(&e)))?;
    Ok(r.status().as_u16())
}

/// The JWS header's `alg`, or None for anything that is not a JWS.
pub fn jws_alg(token: &str) -> Option<String> {
    let header = token.split('.').next()?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header.trim_end_matches('='))
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    v.get("alg").and_then(|a| a.as_str()).map(str::to_string)
}

fn shape(node: &str, token: &str) -> TokenCheck {
    let format = TokenFormat::of(token);
    TokenCheck {
        node: node.into(),
        format,
        alg: if format == TokenFormat::Jws {
            jws_alg(token)
        } else {
            None
        },
        length: token.len(),
        ..Default::default()
    }
}

/// Issue a token directly at the node and validate it there (with itself as the caller's
/// token). Only its shape survives.
pub async fn issue_and_validate(
    http: &reqwest::Client,
    node: &str,
    url: &str,
    c: &AuthCredentials,
    scope: Scope,
) -> TokenCheck {
    let (mut t, token) = issue_checked(http, node, url, c, scope).await;
    if let Some(token) = token {
        match validate(http, url, &token, &token).await {
            Ok(s) => t.validate_status = Some(s),
            Err(e) => t.error = Some(format!("validate: {e}")),
        }
    }
    t
}

/// Issue a token directly at the node, not validated: its format says which provider the
/// running Keystone serves (what the mixed-pool gate asks of each pooled node), at the cost of
/// one request. Only its shape survives.
pub async fn issue_only(
    http: &reqwest::Client,
    node: &str,
    url: &str,
    c: &AuthCredentials,
    scope: Scope,
) -> TokenCheck {
    issue_checked(http, node, url, c, scope).await.0
}

/// POST /v3/auth/tokens at the node: the token's shape, and the token itself when one was
/// issued (201), for the caller to validate and drop.
async fn issue_checked(
    http: &reqwest::Client,
    node: &str,
    url: &str,
    c: &AuthCredentials,
    scope: Scope,
) -> (TokenCheck, Option<String>) {
    let start = Instant::now();
    let unscoped = scope == Scope::Unscoped;
    let (status, token) = match issue(http, url, c, scope).await {
        Ok(x) => x,
        Err(e) => {
            let t = TokenCheck {
                node: node.into(),
                unscoped,
                latency_ms: start.elapsed().as_millis() as u64,
                error: Some(format!("POST /v3/auth/tokens at {url}: {e}")),
                ..Default::default()
            };
            return (t, None);
        }
    };
    let latency_ms = start.elapsed().as_millis() as u64;
    let Some(token) = token.filter(|_| status == 201) else {
        let t = TokenCheck {
            node: node.into(),
            unscoped,
            issue_status: status,
            latency_ms,
            error: Some(match status {
                401 => "POST /v3/auth/tokens answered 401 (credentials refused: check the cloud's user and password)".to_string(),
                404 => format!(
                    "POST /v3/auth/tokens answered 404: keystone_url looks wrong (no Keystone v3 API at {url})"
                ),
                _ => format!("POST /v3/auth/tokens answered {status}"),
            }),
            ..Default::default()
        };
        return (t, None);
    };
    let mut t = shape(node, &token);
    t.unscoped = unscoped;
    t.issue_status = status;
    t.latency_ms = latency_ms;
    (t, Some(token))
}

/// How many nodes validate their batch of the matrix at once.
pub const MATRIX_NODES_AT_ONCE: usize = 8;

/// Issue at every node, validate each token at every node (with that node's own token as auth):
/// every node validates every node's token in one batch of requests (on one kept connection),
/// [`MATRIX_NODES_AT_ONCE`] nodes at a time, so the N×N requests take N×N/8 round trips.
pub async fn matrix(
    http: &reqwest::Client,
    nodes: &[String],
    urls: &[String],
    c: &AuthCredentials,
) -> Matrix {
    use futures::StreamExt;
    // Futures collected first: a stream over a closure borrowing `urls` is not `Send` for
    // every lifetime, as the runtime's spawned task needs.
    let issues: Vec<_> = urls
        .iter()
        .map(|u| issue(http, u, c, Scope::Project))
        .collect();
    let issued = futures::stream::iter(issues)
        .buffered(MATRIX_NODES_AT_ONCE * 2)
        .collect::<Vec<_>>()
        .await;
    let tokens: Vec<Option<String>> = issued
        .into_iter()
        .map(|r| r.ok().and_then(|(s, t)| t.filter(|_| s == 201)))
        .collect();
    let formats = tokens
        .iter()
        .map(|t| {
            t.as_deref()
                .map(TokenFormat::of)
                .unwrap_or(TokenFormat::None)
        })
        .collect();
    // Column j: node j validates every subject with its own token as auth.
    let tokens = &tokens;
    let batches: Vec<_> = urls
        .iter()
        .enumerate()
        .map(|(j, url)| async move {
            let mut column = Vec::with_capacity(tokens.len());
            for subject in tokens {
                column.push(match (subject, &tokens[j]) {
                    (Some(s), Some(auth)) => validate(http, url, auth, s).await.ok(),
                    _ => None,
                });
            }
            column
        })
        .collect();
    let columns: Vec<Vec<Option<u16>>> = futures::stream::iter(batches)
        .buffered(MATRIX_NODES_AT_ONCE)
        .collect()
        .await;
    let cells = (0..tokens.len())
        .map(|i| columns.iter().map(|col| col[i]).collect())
        .collect();
    Matrix {
        nodes: nodes.to_vec(),
        formats,
        cells,
    }
}

pub async fn list_trusts(
    http: &reqwest::Client,
    url: &str,
    c: &AuthCredentials,
) -> Result<TrustSummary, ApiError> {
    let (status, token) = issue(http, url, c, Scope::Project).await?;
    let token = token.filter(|_| status == 201).ok_or_else(|| {
        ApiError::Refused(match status {
            404 => format!("token issue answered 404: {}", not_keystone(url)),
            _ => format!("token issue answered {status}"),
        })
    })?;
    let r = http
        .get(v3_url(url, "/OS-TRUST/trusts"))
        .header("X-Auth-Token", &token)
        .send()
        .await
        .map_err(|e| ApiError::Unanswered(short_err(&e)))?;
    drop(token);
    if !r.status().is_success() {
        return Err(ApiError::Refused(format!(
            "GET /v3/OS-TRUST/trusts answered {}",
            r.status().as_u16()
        )));
    }
    let v: serde_json::Value = r.json().await.map_err(|e| ApiError::Body(e.to_string()))?;
    let s = |x: &serde_json::Value, k: &str| x.get(k).and_then(|v| v.as_str()).map(str::to_string);
    let trusts: Vec<TrustInfo> = v
        .get("trusts")
        .and_then(|t| t.as_array())
        .map(|a| {
            a.iter()
                .map(|t| TrustInfo {
                    id: s(t, "id").unwrap_or_default(),
                    trustor: s(t, "trustor_user_id").unwrap_or_default(),
                    trustee: s(t, "trustee_user_id").unwrap_or_default(),
                    project: s(t, "project_id"),
                    impersonation: t
                        .get("impersonation")
                        .and_then(|b| b.as_bool())
                        .unwrap_or(false),
                    expires_at: s(t, "expires_at"),
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(TrustSummary {
        count: trusts.len(),
        trusts,
    })
}

// ----- shell snippets run on a node -----

/// Where keypairs wait between creation and installation: beside the private repository (same
/// filesystem, so the install is a rename), mode 0700.
pub fn staging_dir(private_repo: &str) -> String {
    let p = std::path::Path::new(private_repo.trim_end_matches('/'));
    let parent = p
        .parent()
        .map(|x| x.display().to_string())
        .unwrap_or_else(|| "/tmp".into());
    format!("{parent}/.cutover-staging")
}

/// One round trip: Fernet key digests, private.pem's mode/owner and public half, public keys.
/// Key material stays on the node: only digests and public keys come back. A fixed number of
/// processes however many keys there are (one sha256sum for the Fernet keys, one awk for every
/// public key), so reading a node costs the same in a fleet of 3 or of 64.
pub fn facts_script(fernet: &str, private: &str, public: &str) -> String {
    format!(
        r#"f={f}; p={p}; u={u}
echo '==fernet'
if [ -d "$f" ]; then set --; for k in "$f"/*; do [ -f "$k" ] && set -- "$@" "$k"; done; [ $# -eq 0 ] || sha256sum -- "$@"; else echo MISSING; fi
echo '==private'
if [ -f "$p/private.pem" ]; then stat -c '%a %U:%G' -- "$p/private.pem"; if command -v openssl >/dev/null 2>&1; then openssl pkey -in "$p/private.pem" -pubout 2>/dev/null || echo UNREADABLE; else echo NO-OPENSSL; fi; else echo MISSING; fi
echo '==staged'
st="${{p%/}}"; st="${{st%/*}}/.cutover-staging"
if [ -f "$st/public.pem" ]; then cat -- "$st/public.pem"; else echo MISSING; fi
echo '==public'
if [ -d "$u" ]; then set --; for k in "$u"/*; do [ -f "$k" ] && set -- "$@" "$k"; done; [ $# -eq 0 ] || awk 'FNR == 1 {{ n = FILENAME; sub(/.*\//, "", n); print "==file " n }} {{ print }}' "$@"; else echo MISSING; fi
echo '==end'
"#,
        f = shell_quote(fernet),
        p = shell_quote(private),
        u = shell_quote(public)
    )
}

/// One exec that reads a node. First the stamp of keystone.conf and the key files (names,
/// inodes, sizes, modes, numeric owners, modification and change times, `/etc/passwd` and
/// `/etc/group` for the owners' names, and whether openssl is there: one `stat`, which reads no
/// file). When the stamp is still `was` (the one printed last time), only `==unchanged`: the conf
/// and the key files hold what they held, and nothing else runs. Otherwise keystone.conf, a line
/// `marker`, the stamp between `==stamp` and `<marker>-stamp-end`, then [`facts_script`]'s output
/// for the repositories at `paths` (where they were last time; the caller checks them against
/// the conf). Exit 66 (and cat's message on stderr) when keystone.conf cannot be read.
pub fn read_script(
    conf: &str,
    marker: &str,
    fernet: &str,
    private: &str,
    public: &str,
    was: Option<&str>,
) -> String {
    let unchanged = match was {
        Some(w) => format!(
            "if [ \"$stamp\" = {} ]; then echo '==unchanged'; exit 0; fi\n",
            shell_quote(w)
        ),
        None => String::new(),
    };
    format!(
        r#"{vars}
stamp=$({stamp})
{unchanged}cat -- "$c" || exit 66
printf '\n%s\n' {m}
printf '==stamp\n%s\n%s\n' "$stamp" {m}-stamp-end
{facts}"#,
        vars = stamp_vars(conf, fernet, private, public),
        stamp = STAMP,
        m = shell_quote(marker),
        facts = facts_script(fernet, private, public)
    )
}

/// What prints a node's stamp (see [`read_script`]), given [`stamp_vars`].
const STAMP: &str = concat!(stat_stamp!(), stamp_files!(), " 2>/dev/null");

/// Whether openssl is there, then `stat` of what follows, as a stamp prints them.
macro_rules! stat_stamp {
    () => {
        concat!(openssl_line!(), "; ", stat_line!())
    };
}
/// Whether openssl is there (a stamp's first line).
macro_rules! openssl_line {
    () => {
        "command -v openssl >/dev/null 2>&1 && echo openssl"
    };
}
/// The `stat` of a stamp, the files to follow.
macro_rules! stat_line {
    () => {
        "stat -c '%n %i %s %a %u:%g %y %z' -- "
    };
}
use openssl_line;
use stat_line;
use stat_stamp;

/// The files a node's stamp covers, as [`stamp_vars`] names them.
macro_rules! stamp_files {
    () => {
        r#""$c" /etc/passwd /etc/group "$f" "$f"/* "$p" "$p/private.pem" "$st" "$st/public.pem" "$u" "$u"/*"#
    };
}
use stamp_files;

/// The shell variables [`STAMP`] reads: the conf and the repositories.
fn stamp_vars(conf: &str, fernet: &str, private: &str, public: &str) -> String {
    format!(
        r#"c={c}; f={f}; p={p}; u={u}; st="${{p%/}}"; st="${{st%/*}}/.cutover-staging""#,
        c = shell_quote(conf),
        f = shell_quote(fernet),
        p = shell_quote(private),
        u = shell_quote(public),
    )
}

/// The stamps of several nodes on one machine in one `stat` (see [`stamps_of`]): for each node,
/// its conf and repositories (as [`stamp_vars`] names them), in order.
pub fn stamps_script(nodes: &[(&str, &str, &str, &str)]) -> String {
    // Each node's files gathered into the arguments with [`stamp_vars`]'s own shell, then one
    // stat as [`STAMP`] runs it, for [`STAMPS_AT_ONCE`] nodes at a time: `set -- "$@" ...`
    // copies every argument gathered so far, so one stat for 64 nodes spent more in the shell
    // than in stat. The stats print one after another, as one stat would.
    let mut script = String::from(concat!(openssl_line!(), "\nset --\n"));
    for (i, (conf, fernet, private, public)) in nodes.iter().enumerate() {
        script.push_str(&stamp_vars(conf, fernet, private, public));
        script.push_str(concat!("\nset -- \"$@\" ", stamp_files!(), "\n"));
        if (i + 1) % STAMPS_AT_ONCE == 0 || i + 1 == nodes.len() {
            script.push_str(concat!(stat_line!(), "\"$@\" 2>/dev/null\nset --\n"));
        }
    }
    script
}

/// The `stat` of keystone.conf alone, one line per file as a stamp's conf line is printed
/// (see `known::conf_line`): what a node's provider proof stands on.
pub fn conf_lines_script(confs: &[&str]) -> String {
    let files: Vec<String> = confs.iter().map(|c| shell_quote(c)).collect();
    format!(concat!(stat_line!(), "{} 2>/dev/null"), files.join(" "))
}

/// Each conf's line out of [`conf_lines_script`]'s output (None where it printed none).
pub fn conf_lines_of(out: &str, confs: &[&str]) -> Vec<Option<String>> {
    confs
        .iter()
        .map(|c| {
            let head = format!("{c} ");
            let mut hits = out.lines().filter(|l| l.starts_with(&head));
            match (hits.next(), hits.next()) {
                (Some(l), None) => Some(l.to_string()),
                _ => None,
            }
        })
        .collect()
}

/// Nodes whose stamps one `stat` prints in [`stamps_script`].
const STAMPS_AT_ONCE: usize = 8;

/// Each node's stamp out of [`stamps_script`]'s output, as [`STAMP`] prints it for that node
/// alone, or None where its part cannot be told apart (its keystone.conf has no line: the
/// caller reads that node by itself). A node's part runs from its keystone.conf's line to the
/// next node's; a part taken wrongly can only differ from the stamp it is compared with.
pub fn stamps_of(out: &str, confs: &[&str]) -> Vec<Option<String>> {
    let mut lines: Vec<&str> = out.lines().collect();
    let openssl = lines.first() == Some(&"openssl");
    if openssl {
        lines.remove(0);
    }
    let starts: Vec<Option<usize>> = {
        let mut from = 0;
        confs
            .iter()
            .map(|c| {
                let head = format!("{c} ");
                let at = lines[from..].iter().position(|l| l.starts_with(&head))? + from;
                from = at + 1;
                Some(at)
            })
            .collect()
    };
    (0..confs.len())
        .map(|i| {
            let start = starts[i]?;
            let end = starts[i + 1..]
                .iter()
                .flatten()
                .next()
                .copied()
                .unwrap_or(lines.len());
            let mut stamp = if openssl { vec!["openssl"] } else { vec![] };
            stamp.extend_from_slice(&lines[start..end]);
            Some(stamp.join("\n"))
        })
        .collect()
}

/// Whether stamp `now` differs from `was` only in keystone.conf's line (the first of the stat,
/// after whether openssl is there): the conf was written, no key file was touched.
pub fn only_conf_changed(now: &str, was: &str) -> bool {
    let split = |s: &str| -> Option<(bool, String, String)> {
        let (openssl, rest) = match s.strip_prefix("openssl\n") {
            Some(r) => (true, r),
            None => (s == "openssl", if s == "openssl" { "" } else { s }),
        };
        let (first, others) = rest.split_once('\n').unwrap_or((rest, ""));
        // The conf's line: its path, a space, then what stat printed.
        let (path, _) = first.split_once(' ')?;
        Some((openssl, path.to_string(), others.to_string()))
    };
    match (split(now), split(was)) {
        (Some(a), Some(b)) => a == b && now != was,
        _ => false,
    }
}

/// The stamp alone, printed as [`read_script`] compares it (one `stat`, no subshell): when it
/// is the one printed last time, nothing changed and nothing more need be read.
pub fn stamp_script(conf: &str, fernet: &str, private: &str, public: &str) -> String {
    format!("{}\n{STAMP}\n", stamp_vars(conf, fernet, private, public))
}

pub fn parse_facts(out: &str, fernet: &str, private: &str, public: &str) -> NodeFacts {
    let mut f = NodeFacts {
        fernet: FernetFacts {
            repo: fernet.into(),
            ..Default::default()
        },
        jws: JwsFacts {
            private_repo: private.into(),
            public_repo: public.into(),
            ..Default::default()
        },
        ..Default::default()
    };
    let mut section = "";
    let mut digests = Vec::new();
    let mut private_lines: Vec<&str> = Vec::new();
    let mut staged_lines: Vec<&str> = Vec::new();
    let mut files: Vec<(String, String)> = Vec::new();
    for line in out.lines() {
        match line {
            "==fernet" | "==private" | "==staged" | "==public" | "==end" => {
                section = line;
                continue;
            }
            _ => {}
        }
        match section {
            "==fernet" => {
                if line == "MISSING" {
                    continue;
                }
                f.fernet.present = true;
                if let Some((digest, path)) = line.split_once("  ") {
                    let name = path.rsplit('/').next().unwrap_or(path).to_string();
                    digests.push((name, digest.to_string()));
                }
            }
            "==private" => private_lines.push(line),
            "==staged" => staged_lines.push(line),
            "==public" => {
                if line == "MISSING" {
                    continue;
                }
                if let Some(name) = line.strip_prefix("==file ") {
                    files.push((name.to_string(), String::new()));
                } else if let Some(last) = files.last_mut() {
                    last.1.push_str(line);
                    last.1.push('\n');
                }
            }
            _ => {}
        }
    }
    if f.fernet.present {
        f.fernet.keys = digests.len();
        if !digests.is_empty() {
            f.fernet.fingerprint = Some(keys::fernet_repo_fingerprint(&digests));
        }
    }
    if let Some(first) = private_lines.first()
        && *first != "MISSING"
    {
        f.jws.private_present = true;
        let mut it = first.split_whitespace();
        f.jws.private_mode = it.next().map(str::to_string);
        f.jws.private_owner = it.next().map(str::to_string);
        f.jws.no_openssl = private_lines.get(1) == Some(&"NO-OPENSSL");
        let pem = private_lines[1..].join("\n");
        f.jws.private_fingerprint = keys::public_fingerprint(&pem).ok();
    }
    if staged_lines.first().is_some_and(|l| *l != "MISSING") {
        f.jws.staged_fingerprint = keys::public_fingerprint(&staged_lines.join("\n")).ok();
    }
    for (name, pem) in files {
        if let Ok(fp) = keys::public_fingerprint(&pem) {
            f.jws.public.push(PublicKeyFact {
                file: name,
                fingerprint: fp,
            });
        }
    }
    f
}

/// The exit status of [`set_provider_script`] when keystone.conf is no longer the text that
/// was edited (what it holds now is on stdout).
pub const CONF_CHANGED: i32 = 75;

/// Lowercase hex sha256, as `sha256sum` prints it.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Replace keystone.conf with stdin, if it still is the text whose sha256 is `was`: a backup
/// first (`cp -p`, beside it), the new text written into a copy (same mode and owner) renamed
/// over it, then printed back. Otherwise the current text on stdout and exit
/// [`CONF_CHANGED`], nothing written.
///
/// `after`, when given, runs once the new text is in place and before it is printed back
/// ([`stamp_then_marker`]: the node's stamp, so that what was written is known with it).
pub fn set_provider_script(
    conf: &str,
    backup: &str,
    was: &str,
    new: &[u8],
    after: Option<&str>,
) -> String {
    format!(
        r#"set -e; c={c}; b={b}; was={w}
have=$(sha256sum < "$c"); have=${{have%% *}}
if [ "$have" != "$was" ]; then cat -- "$c"; exit {changed}; fi
n="$c.cutover-new.$$"
trap 'rm -f -- "$n"' EXIT
cp -p -- "$c" "$b"
cp -p -- "$c" "$n"
{receive}
mv -f -- "$n" "$c"
trap - EXIT
{after}
cat -- "$c"
"#,
        c = shell_quote(conf),
        b = shell_quote(backup),
        w = shell_quote(was),
        changed = CONF_CHANGED,
        receive = crate::transport::receive_stdin("\"$n\"", new),
        after = after.unwrap_or_default(),
    )
}

/// Print the node's stamp (as [`stamp_script`] does) and then the line `marker`: what follows
/// it is read after the stamp, so the stamp cannot be newer than it.
pub fn stamp_then_marker(
    conf: &str,
    fernet: &str,
    private: &str,
    public: &str,
    marker: &str,
) -> String {
    format!(
        "{}\nprintf '%s\\n%s\\n' \"$({STAMP})\" {}",
        stamp_vars(conf, fernet, private, public),
        shell_quote(marker)
    )
}

/// Move the staged keypair into place: private.pem (0600, keystone-owned) into the private
/// repository, the public key into the public repository as `public_file` (`<node>.pem` in
/// `public`, built by `inventory::name_path`). Every path is shell-quoted.
pub fn install_script(
    staging: &str,
    private: &str,
    public: &str,
    public_file: &str,
    user: &str,
    group: &str,
    with_public: bool,
) -> String {
    // When rotating, the new public keys were published beforehand and the old ones stay until
    // they retire: only the private key is swapped.
    let (public_step, done_check) = if with_public {
        (
            r#"install -m 0644 -o "$o" -g "$g" -- "$s/public.pem" "$f""#.to_string(),
            r#"[ -f "$p/private.pem" ] && [ -f "$f" ]"#.to_string(),
        )
    } else {
        ("true".to_string(), r#"[ -f "$p/private.pem" ]"#.to_string())
    };
    format!(
        r#"set -e; s={s}; p={p}; u={u}; f={f}; o={o}; g={g}
if [ ! -f "$s/private.pem" ]; then
  if {done_check}; then echo already installed; exit 0; fi
  echo "no staged keypair in $s" >&2; exit 1
fi
mkdir -p -- "$p" "$u"; chmod 700 -- "$p"; chown -- "$o:$g" "$p"; chmod 755 -- "$u"
install -m 0600 -o "$o" -g "$g" -- "$s/private.pem" "$p/private.pem.cutover-new"
mv -f -- "$p/private.pem.cutover-new" "$p/private.pem"
{public_step}
rm -f -- "$s/private.pem" "$s/public.pem"; rmdir -- "$s" 2>/dev/null || true
"#,
        s = shell_quote(staging),
        p = shell_quote(private),
        u = shell_quote(public),
        f = shell_quote(public_file),
        o = shell_quote(user),
        g = shell_quote(group),
    )
}

/// Fernet rotation as `keystone-manage fernet_rotate` does it: the staged key 0 becomes the new
/// primary (highest index), a fresh staged key 0 appears, the oldest secondaries go beyond
/// `max_active_keys`. Written to temp files and renamed, so no key is ever half-written.
pub fn fernet_rotate_script(repo: &str, max_active: u32, user: &str, group: &str) -> String {
    format!(
        r#"set -e; r={r}; o={o}; g={g}; max={max}
cd -- "$r"
[ -f 0 ] || {{ echo "no staged key 0 in $r" >&2; exit 1; }}
hi=$(ls | grep -E '^[0-9]+$' | sort -n | tail -n 1)
next=$((hi + 1))
mv -- 0 "$next"
umask 077
head -c 32 /dev/urandom | base64 | tr '+/' '-_' > .0.new
chown -- "$o:$g" .0.new; chmod 600 .0.new; mv -- .0.new 0
count=$(ls | grep -E '^[0-9]+$' | wc -l)
for k in $(ls | grep -E '^[0-9]+$' | grep -vx 0 | sort -n); do
  [ "$count" -le "$max" ] && break
  [ "$k" = "$next" ] && break
  rm -f -- "$k"; count=$((count - 1))
done
"#,
        r = shell_quote(repo),
        o = shell_quote(user),
        g = shell_quote(group),
        max = max_active.max(2),
    )
}

/// Every key file of a Fernet repository as `==key NAME` then its base64 on one line.
pub fn fernet_dump_script(repo: &str) -> String {
    format!(
        r#"cd -- {} && for k in *; do [ -f "$k" ] || continue; echo "==key $k"; base64 -w0 -- "$k"; echo; done"#,
        shell_quote(repo)
    )
}

pub fn parse_fernet_dump(out: &[u8]) -> Result<Vec<(String, keys::Secret)>, DumpError> {
    let text = std::str::from_utf8(out).map_err(|_| DumpError::NotText)?;
    let mut v = Vec::new();
    let mut lines = text.lines();
    while let Some(l) = lines.next() {
        let Some(name) = l.strip_prefix("==key ") else {
            continue;
        };
        if !name.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        let body = lines.next().unwrap_or("");
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(body.trim())
            .map_err(|_| DumpError::NotBase64(name.to_string()))?;
        v.push((name.to_string(), keys::Secret::from(bytes)));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_facts_output() {
        let (_, public) = keys::generate_es256().unwrap();
        let fp = keys::public_fingerprint(&public).unwrap();
        let out = format!(
            "==fernet\naaaa  /k/0\nbbbb  /k/1\n==private\n600 keystone:keystone\n{public}==public\n==file ks1.pem\n{public}==file ks2.pem\n{public}==end\n"
        );
        let f = parse_facts(&out, "/k", "/p", "/u");
        assert!(f.fernet.present);
        assert_eq!(f.fernet.keys, 2);
        assert!(f.jws.private_present);
        assert_eq!(f.jws.private_mode.as_deref(), Some("600"));
        assert_eq!(f.jws.private_owner.as_deref(), Some("keystone:keystone"));
        assert_eq!(f.jws.private_fingerprint.as_deref(), Some(fp.as_str()));
        assert_eq!(f.jws.public.len(), 2);
        assert!(f.jws.has_public(&fp));
        let empty = parse_facts(
            "==fernet\nMISSING\n==private\nMISSING\n==public\nMISSING\n==end\n",
            "/k",
            "/p",
            "/u",
        );
        assert!(!empty.fernet.present && !empty.jws.private_present && empty.jws.public.is_empty());
    }

    #[test]
    fn a_read_says_unchanged_only_while_the_key_files_stamp_is_the_same() {
        let d = tempfile::tempdir().unwrap();
        let (f, p, u) = (d.path().join("f"), d.path().join("p"), d.path().join("u"));
        for x in [&f, &p, &u] {
            std::fs::create_dir(x).unwrap();
        }
        std::fs::write(f.join("0"), "k0").unwrap();
        let conf = d.path().join("keystone.conf");
        std::fs::write(&conf, "[token]\nprovider = fernet\n").unwrap();
        let s = |x: &std::path::Path| x.display().to_string();
        // What sh printed running `script`.
        let sh = |script: &str| {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(script)
                .output()
                .unwrap();
            String::from_utf8(out.stdout).unwrap()
        };
        let run = |was: Option<&str>| {
            let script = read_script(&s(&conf), "==m", &s(&f), &s(&p), &s(&u), was);
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(script)
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
            String::from_utf8(out.stdout).unwrap()
        };
        let first = run(None);
        let (conf_text, rest) = first.split_once("\n==m\n").unwrap();
        assert_eq!(conf_text, "[token]\nprovider = fernet\n");
        let (stamp, facts) = rest.split_once("\n==m-stamp-end\n").unwrap();
        let stamp = stamp.strip_prefix("==stamp\n").unwrap();
        assert!(stamp.contains("/f/0 "), "{stamp}");
        assert!(
            stamp.contains("keystone.conf ") && stamp.contains("/etc/passwd "),
            "{stamp}"
        );
        assert!(facts.starts_with("==fernet\n"), "{facts}");
        assert_eq!(run(Some(stamp)), "==unchanged\n");
        let alone = sh(&stamp_script(&s(&conf), &s(&f), &s(&p), &s(&u)));
        assert_eq!(alone.trim_end(), stamp);
        // Several nodes' stamps in one stat: each part is that node's stamp alone (a second
        // node here with its own conf, the same repositories).
        let conf2 = d.path().join("keystone2.conf");
        std::fs::write(&conf2, "[token]\n").unwrap();
        let (c1, c2) = (s(&conf), s(&conf2));
        let (f_, p_, u_) = (s(&f), s(&p), s(&u));
        let both = sh(&stamps_script(&[
            (&c1, &f_, &p_, &u_),
            (&c2, &f_, &p_, &u_),
        ]));
        let parts = stamps_of(&both, &[&c1, &c2]);
        assert_eq!(parts[0].as_deref(), Some(stamp));
        let second = sh(&stamp_script(&c2, &f_, &p_, &u_));
        assert_eq!(parts[1].as_deref(), Some(second.trim_end()));
        // More nodes than one stat takes (several stats, one after another): each part is
        // still that node's stamp alone, in order.
        let many: Vec<String> = (0..STAMPS_AT_ONCE * 2 + 3)
            .map(|i| {
                let c = d.path().join(format!("many{i}.conf"));
                std::fs::write(&c, format!("[token]\n# {i}\n")).unwrap();
                s(&c)
            })
            .collect();
        let args: Vec<(&str, &str, &str, &str)> = many
            .iter()
            .map(|c| (c.as_str(), f_.as_str(), p_.as_str(), u_.as_str()))
            .collect();
        let out = sh(&stamps_script(&args));
        // (openssl's line once at most: where openssl is installed.)
        assert!(out.lines().filter(|l| *l == "openssl").count() <= 1);
        let confs: Vec<&str> = many.iter().map(String::as_str).collect();
        let parts = stamps_of(&out, &confs);
        for (c, part) in many.iter().zip(&parts) {
            let alone = sh(&stamp_script(c, &f_, &p_, &u_));
            assert_eq!(part.as_deref(), Some(alone.trim_end()), "{c}");
        }
        // A node whose keystone.conf is gone has no part of its own: it is read by itself.
        std::fs::remove_file(&conf2).unwrap();
        let out = sh(&stamps_script(&[
            (&c2, &f_, &p_, &u_),
            (&c1, &f_, &p_, &u_),
        ]));
        let parts = stamps_of(&out, &[&c2, &c1]);
        assert_eq!(parts[0], None);
        assert_eq!(parts[1].as_deref(), Some(stamp));
        let first_stamp = stamp.to_string();
        let first_stamp = first_stamp.as_str();
        // keystone.conf written (same size): the stamp differs and the conf is read again.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&conf, "[token]\nprovider = jws___\n").unwrap();
        let again = run(Some(stamp));
        assert!(
            again.starts_with("[token]\nprovider = jws___\n\n==m\n"),
            "{again}"
        );
        let stamp = again
            .split_once("\n==m\n==stamp\n")
            .and_then(|(_, r)| r.split_once("\n==m-stamp-end\n"))
            .unwrap()
            .0
            .to_string();
        let stamp = stamp.as_str();
        assert_eq!(run(Some(stamp)), "==unchanged\n");
        // Only keystone.conf's line moved since the first stamp; a key added is more than that.
        assert!(only_conf_changed(stamp, first_stamp));
        assert!(!only_conf_changed(stamp, stamp));
        let (_, public2) = keys::generate_es256().unwrap();
        std::fs::write(u.join("n2.pem"), &public2).unwrap();
        let with_key = sh(&stamp_script(&s(&conf), &s(&f), &s(&p), &s(&u)));
        assert!(!only_conf_changed(with_key.trim_end(), stamp));
        std::fs::remove_file(u.join("n2.pem")).unwrap();
        // A public key added: the stamp differs and the facts are read whole.
        let (_, public) = keys::generate_es256().unwrap();
        std::fs::write(u.join("n1.pem"), &public).unwrap();
        let third = run(Some(stamp));
        assert!(!third.contains("==unchanged"));
        let facts = third.split_once("\n==m-stamp-end\n").unwrap().1;
        let parsed = parse_facts(facts, &s(&f), &s(&p), &s(&u));
        assert_eq!(parsed.jws.public.len(), 1);
        assert_eq!(parsed.fernet.keys, 1);
    }

    #[test]
    fn keystone_urls_are_joined_once() {
        for (root, want) in [
            (
                "http://10.0.0.11:5000",
                "http://10.0.0.11:5000/v3/auth/tokens",
            ),
            (
                "http://10.0.0.11:5000/",
                "http://10.0.0.11:5000/v3/auth/tokens",
            ),
            // An inventory from an older journal may still hold the versioned URL.
            (
                "http://10.0.0.11:5000/v3",
                "http://10.0.0.11:5000/v3/auth/tokens",
            ),
            (
                "http://10.0.0.11:5000/v3/",
                "http://10.0.0.11:5000/v3/auth/tokens",
            ),
            (
                "https://ctl/identity/v3",
                "https://ctl/identity/v3/auth/tokens",
            ),
        ] {
            assert_eq!(v3_url(root, "/auth/tokens"), want, "{root}");
        }
        assert_eq!(v3_url("http://h:5000/v3", ""), "http://h:5000/v3");
        assert!(not_keystone("http://h:5000/x").contains("keystone_url looks wrong"));
    }

    #[test]
    fn jws_alg_reads_the_header() {
        assert_eq!(
            jws_alg("eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCJ9.e30.sig").as_deref(),
            Some("ES256")
        );
        assert_eq!(jws_alg("gAAAAAB"), None);
        assert_eq!(
            staging_dir("/etc/keystone/jws-keys/private/"),
            "/etc/keystone/jws-keys/.cutover-staging"
        );
    }

    /// kill -9 of cutover (or a dropped SSH connection) while keystone.conf's new text is on its
    /// way leaves keystone.conf as it was, never cut short (the kill-9 sweep found a node whose
    /// key repositories vanished: a truncated keystone.conf no longer named them).
    #[test]
    fn set_provider_script_never_installs_a_cut_text() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("keystone.conf");
        let old = "[token]\nprovider = fernet\n[fernet_tokens]\nkey_repository = /k\n";
        std::fs::write(&conf, old).unwrap();
        let new = old.replace("fernet\n[", "jws\n[");
        let script = set_provider_script(
            &conf.to_string_lossy(),
            &format!("{}.bak", conf.display()),
            &sha256_hex(old.as_bytes()),
            new.as_bytes(),
            None,
        );
        let run = |input: &[u8]| {
            let mut child = std::process::Command::new("sh")
                .args(["-c", &script])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            child.stdin.take().unwrap().write_all(input).unwrap();
            child.wait_with_output().unwrap()
        };
        let out = run(&new.as_bytes()[..20]);
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(std::fs::read_to_string(&conf).unwrap(), old);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("cutover-new"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        let out = run(new.as_bytes());
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(std::fs::read_to_string(&conf).unwrap(), new);
    }

    /// keystone.conf's stat lines, one per node, as a stamp prints the conf's: the same line
    /// for the same file, none for a file missing or named twice.
    #[test]
    fn conf_lines_are_the_stamps_conf_lines() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.conf");
        let b = dir.path().join("b.conf");
        std::fs::write(&a, "[token]\n").unwrap();
        std::fs::write(&b, "[token]\nprovider = jws\n").unwrap();
        let (a, b) = (a.to_string_lossy(), b.to_string_lossy());
        let gone = format!("{}/gone.conf", dir.path().display());
        let confs = [a.as_ref(), b.as_ref(), gone.as_str()];
        let run = |script: &str| {
            let out = std::process::Command::new("sh")
                .args(["-c", script])
                .output()
                .unwrap();
            String::from_utf8(out.stdout).unwrap()
        };
        let lines = conf_lines_of(&run(&conf_lines_script(&confs)), &confs);
        let d = dir.path().display().to_string();
        let stamp = run(&stamp_script(&a, &d, &d, &d));
        assert_eq!(
            lines[0].as_deref(),
            crate::drivers::keystone::known::conf_line(stamp.trim_end())
        );
        assert!(lines[1].as_deref().unwrap().starts_with(&format!("{b} ")));
        assert_eq!(lines[2], None);
        assert_eq!(conf_lines_of("x 1\nx 2\n", &["x"]), vec![None]);
    }
}
