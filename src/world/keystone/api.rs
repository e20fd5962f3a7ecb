//! A node's HTTP API: versions, token issue and validation, trusts, and the request log.

use super::config::{NodeConfig, Provider};
use super::identity::Shared;
use super::log::log_line;
use crate::world::haproxy::HEALTH_CHECK_AGENT;
use crate::world::info::WorldNode;
use crate::world::tokens::{self, TokenData, keystone_time};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use std::sync::Arc;

/// One node's running API: what it read at start.
pub(super) struct NodeApp {
    pub(super) node: WorldNode,
    pub(super) shared: Arc<Shared>,
    pub(super) conf: NodeConfig,
}

type AppState = State<Arc<NodeApp>>;

pub(super) fn router(app: Arc<NodeApp>) -> Router {
    Router::new()
        .route("/", get(versions))
        .route("/v3", get(version))
        .route("/v3/", get(version))
        .route("/v3/auth/tokens", get(validate).post(issue))
        .route("/v3/OS-TRUST/trusts", get(list_trusts))
        .route("/v3/OS-TRUST/trusts/{id}", get(show_trust))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            log_request,
        ))
        .with_state(app)
}

/// Log method, path and status of every request (health checks excepted: a real deployment
/// filters them too, or they drown the start-up lines an operator needs after a failed restart),
/// with the load balancer it came through (`via: lb1`, from its Via header) and the client's
/// user agent, so that a test can tell requests through a frontend from direct ones.
async fn log_request(State(app): AppState, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let (via, agent) = {
        let headers = req.headers();
        let text = |name: header::HeaderName| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(|v| crate::sanitize::for_terminal(v).replace('"', " "))
        };
        let via = text(header::VIA)
            .map(|v| format!(" via: {}", v.rsplit(' ').next().unwrap_or_default()))
            .unwrap_or_default();
        let agent = text(header::USER_AGENT)
            .map(|a| format!(" agent: \"{a}\""))
            .unwrap_or_default();
        (via, agent)
    };
    let is_check = req
        .headers()
        .get(header::USER_AGENT)
        .is_some_and(|v| v == HEALTH_CHECK_AGENT);
    let resp = next.run(req).await;
    if !is_check {
        log_line(
            &app.node.log_file,
            "INFO",
            "keystone.server.flask.request_processing",
            &format!(
                "127.0.0.1 \"{method} {path}\" status: {}{via}{agent}",
                resp.status().as_u16()
            ),
        );
    }
    resp
}

/// Keystone's JSON error body.
fn ks_error(status: StatusCode, message: &str) -> Response {
    let title = status.canonical_reason().unwrap_or("Error");
    let body = json!({"error": {"code": status.as_u16(), "message": message, "title": title}});
    (status, axum::Json(body)).into_response()
}

fn unauthorized(app: &NodeApp) -> Response {
    let mut resp = ks_error(
        StatusCode::UNAUTHORIZED,
        "The request you have made requires authentication.",
    );
    if let Ok(v) = HeaderValue::from_str(&format!("Keystone uri=\"{}/v3\"", app.node.keystone_url))
    {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    resp
}

fn version_doc(base: &str) -> Value {
    json!({
        "id": "v3.14",
        "status": "stable",
        "updated": "2020-04-07T00:00:00Z",
        "links": [{"rel": "self", "href": format!("{base}/v3/")}],
        "media-types": [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}],
    })
}

async fn versions(State(app): AppState) -> Response {
    let body = json!({"versions": {"values": [version_doc(&app.node.keystone_url)]}});
    (StatusCode::MULTIPLE_CHOICES, axum::Json(body)).into_response()
}

async fn version(State(app): AppState) -> Response {
    axum::Json(json!({"version": version_doc(&app.node.keystone_url)})).into_response()
}

async fn not_found() -> Response {
    ks_error(StatusCode::NOT_FOUND, "The resource could not be found.")
}

impl NodeApp {
    /// Validate a token with this node's current provider. Keys are read now: repositories
    /// change during rotation and key distribution.
    fn validate(&self, token: &str) -> Option<TokenData> {
        let now = chrono::Utc::now();
        let cache = self.cache();
        // Read before the provider: an entry answers whichever provider issued the token.
        if let Some(data) = cache.and_then(|c| c.get(token, std::time::Instant::now())) {
            return (data.user_id == self.shared.admin_user_id && data.expires_at > now)
                .then_some(data);
        }
        let data = match &self.conf.provider {
            Provider::Fernet { repo } => {
                let keys = tokens::read_fernet_keys(repo).ok()?;
                tokens::fernet_validate(&keys, token, now).ok()?
            }
            Provider::Jws { public_repo, .. } => {
                let keys = self.shared.public_keys.keys(public_repo);
                tokens::jws_validate(&keys, token, now, Some(&self.shared.signers)).ok()?
            }
        };
        if data.user_id != self.shared.admin_user_id {
            return None;
        }
        if let Some(c) = cache.filter(|_| self.conf.cache.store_on_validate) {
            c.put(
                token,
                &data,
                self.conf.cache.lifetime,
                std::time::Instant::now(),
            );
        }
        Some(data)
    }

    /// The shared token cache, if the world has one and this node's `[cache]` is enabled.
    fn cache(&self) -> Option<&crate::world::token_cache::TokenCache> {
        self.shared
            .cache
            .as_deref()
            .filter(|_| self.conf.cache.enabled)
    }

    fn token_body(&self, t: &TokenData) -> Value {
        let s = &self.shared;
        let domain = json!({"id": "default", "name": "Default"});
        let mut token = json!({
            "methods": t.methods,
            "user": {
                "domain": domain,
                "id": t.user_id,
                "name": s.username,
                "password_expires_at": null,
            },
            "audit_ids": t.audit_ids,
            "expires_at": keystone_time(t.expires_at),
            "issued_at": keystone_time(t.issued_at),
        });
        if let Some(project) = &t.project_id {
            token["project"] = json!({"domain": domain, "id": project, "name": s.project_name});
            token["is_domain"] = json!(false);
            token["roles"] = json!(
                ["admin", "member", "reader"]
                    .iter()
                    .map(|r| json!({"id": role_id(project, r), "name": r}))
                    .collect::<Vec<_>>()
            );
        }
        token["catalog"] = json!([]);
        json!({"token": token})
    }

    /// Check a password-auth body. `Ok(project id)` (None when unscoped) or a Keystone error.
    fn authenticate(&self, body: &Value) -> Result<Option<String>, AuthRefusal> {
        let s = &self.shared;
        let identity = body
            .pointer("/auth/identity")
            .ok_or(AuthRefusal::BadRequest(
                "Expecting to find identity in auth.",
            ))?;
        let methods =
            identity
                .get("methods")
                .and_then(Value::as_array)
                .ok_or(AuthRefusal::BadRequest(
                    "Expecting to find methods in identity.",
                ))?;
        if !methods.iter().any(|m| m == "password") {
            return Err(AuthRefusal::Unauthorized);
        }
        let user = identity
            .pointer("/password/user")
            .ok_or(AuthRefusal::BadRequest(
                "Expecting to find user in password.",
            ))?;
        let name_ok = match (user.get("id"), user.get("name")) {
            (Some(id), _) => id == s.admin_user_id.as_str(),
            (None, Some(name)) => {
                name == s.username.as_str()
                    && user
                        .get("domain")
                        .is_some_and(|d| Shared::domain_matches(&s.user_domain, d))
            }
            (None, None) => {
                return Err(AuthRefusal::BadRequest(
                    "Expecting to find id or name in user.",
                ));
            }
        };
        let password_ok = user.get("password").and_then(Value::as_str) == Some(&s.password);
        if !(name_ok && password_ok) {
            return Err(AuthRefusal::Unauthorized);
        }
        let Some(scope) = body.pointer("/auth/scope") else {
            return Ok(None);
        };
        // Keystone takes exactly one kind of scope; `unscoped` asks for none explicitly.
        let kinds = ["project", "domain", "unscoped", "system", "OS-TRUST:trust"];
        if kinds.iter().filter(|k| scope.get(**k).is_some()).count() != 1 {
            return Err(AuthRefusal::BadRequest(
                "Invalid input for field 'scope': expecting system, project, domain, OS-TRUST:trust or unscoped.",
            ));
        }
        if scope.get("unscoped").is_some() {
            return Ok(None);
        }
        let Some(project) = scope.get("project") else {
            return Err(AuthRefusal::Unauthorized);
        };
        let project_ok = match (project.get("id"), project.get("name")) {
            (Some(id), _) => id == s.admin_project_id.as_str(),
            (None, Some(name)) => {
                name == s.project_name.as_str()
                    && project
                        .get("domain")
                        .is_some_and(|d| Shared::domain_matches(&s.project_domain, d))
            }
            (None, None) => {
                return Err(AuthRefusal::BadRequest(
                    "Expecting to find id or name in project.",
                ));
            }
        };
        if !project_ok {
            return Err(AuthRefusal::Unauthorized);
        }
        Ok(Some(s.admin_project_id.clone()))
    }
}

/// Why password authentication failed.
enum AuthRefusal {
    /// 400 with Keystone's message.
    BadRequest(&'static str),
    /// 401.
    Unauthorized,
}

/// A stable id for a role in this world (derived, so every node agrees).
fn role_id(project: &str, role: &str) -> String {
    use sha2::Digest as _;
    hex::encode(&sha2::Sha256::digest(format!("{project}/{role}"))[..16])
}

fn internal_error() -> Response {
    ks_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "An unexpected error prevented the server from fulfilling your request.",
    )
}

fn bad_request(msg: &str) -> Response {
    ks_error(StatusCode::BAD_REQUEST, msg)
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
}

/// POST /v3/auth/tokens: password authentication.
async fn issue(State(app): AppState, body: Bytes) -> Response {
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return bad_request("Malformed request body: expecting JSON.");
    };
    let project_id = match app.authenticate(&body) {
        Ok(p) => p,
        Err(AuthRefusal::BadRequest(msg)) => return bad_request(msg),
        Err(AuthRefusal::Unauthorized) => return unauthorized(&app),
    };
    let now = chrono::Utc::now();
    let data = TokenData {
        user_id: app.shared.admin_user_id.clone(),
        project_id,
        methods: vec!["password".into()],
        audit_ids: vec![tokens::new_audit_id()],
        issued_at: now,
        expires_at: now + chrono::Duration::seconds(app.conf.expiration),
    };
    let token = match &app.conf.provider {
        Provider::Fernet { repo } => match tokens::read_fernet_keys(repo) {
            Ok(keys) if !keys.is_empty() => tokens::fernet_issue(&keys[0].1, &data),
            _ => return internal_error(),
        },
        Provider::Jws { signing, .. } => {
            let token = tokens::jws_issue(signing, &data);
            app.shared.signers.remember(&token, signing.verifying_key());
            token
        }
    };
    if let Some(c) = app.cache().filter(|_| app.conf.cache.store_on_issue) {
        c.put(
            &token,
            &data,
            app.conf.cache.lifetime,
            std::time::Instant::now(),
        );
    }
    let mut resp = (StatusCode::CREATED, axum::Json(app.token_body(&data))).into_response();
    match HeaderValue::from_str(&token) {
        Ok(v) => {
            resp.headers_mut().insert("x-subject-token", v);
        }
        Err(_) => return internal_error(),
    }
    resp
}

/// GET (and HEAD) /v3/auth/tokens: validate X-Subject-Token, authorised by X-Auth-Token.
async fn validate(State(app): AppState, headers: HeaderMap) -> Response {
    if header_str(&headers, "x-auth-token")
        .and_then(|t| app.validate(t))
        .is_none()
    {
        return unauthorized(&app);
    }
    let Some(subject) = header_str(&headers, "x-subject-token") else {
        return ks_error(StatusCode::NOT_FOUND, "Could not find token.");
    };
    // Keystone names the token in this message; the stand-in does not repeat secrets.
    let Some(data) = app.validate(subject) else {
        return ks_error(StatusCode::NOT_FOUND, "Could not find token.");
    };
    let mut resp = axum::Json(app.token_body(&data)).into_response();
    if let Ok(v) = HeaderValue::from_str(subject) {
        resp.headers_mut().insert("x-subject-token", v);
    }
    resp
}

/// The trusts of trusts.json with their links, or None if the file cannot be read.
fn read_trusts(app: &NodeApp) -> Option<Vec<Value>> {
    let text = std::fs::read_to_string(&app.shared.trusts_path).ok()?;
    let doc: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let base = &app.node.keystone_url;
    Some(
        doc.get("trusts")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|mut t| {
                let id = t
                    .get("id")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                t["links"] = json!({"self": format!("{base}/v3/OS-TRUST/trusts/{id}")});
                t
            })
            .collect(),
    )
}

/// GET /v3/OS-TRUST/trusts.
async fn list_trusts(State(app): AppState, headers: HeaderMap) -> Response {
    if header_str(&headers, "x-auth-token")
        .and_then(|t| app.validate(t))
        .is_none()
    {
        return unauthorized(&app);
    }
    match read_trusts(&app) {
        Some(trusts) => axum::Json(json!({
            "trusts": trusts,
            "links": {
                "self": format!("{}/v3/OS-TRUST/trusts", app.node.keystone_url),
                "previous": null,
                "next": null,
            }
        }))
        .into_response(),
        None => internal_error(),
    }
}

/// GET /v3/OS-TRUST/trusts/{id}.
async fn show_trust(
    State(app): AppState,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    if header_str(&headers, "x-auth-token")
        .and_then(|t| app.validate(t))
        .is_none()
    {
        return unauthorized(&app);
    }
    match read_trusts(&app) {
        Some(trusts) => match trusts.into_iter().find(|t| t["id"] == id.as_str()) {
            Some(t) => axum::Json(json!({"trust": t})).into_response(),
            None => ks_error(
                StatusCode::NOT_FOUND,
                &format!("Could not find trust: {id}."),
            ),
        },
        None => internal_error(),
    }
}
