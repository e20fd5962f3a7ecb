//! Keystone credentials for direct token issue: a cloud from clouds.yaml (found where the
//! openstack CLI looks), or OS_* environment variables. Held in memory only.
//!
//! Only the credentials are taken: a cloud's `auth_url` (and OS_AUTH_URL) names the load
//! balancer's VIP, usually with `/v3`, and cutover never goes through the VIP. Tokens are issued
//! at each node's own `keystone_url` from the inventory (normalised to the API root by
//! `inventory::keystone_root`, so `.../v3` copied from a clouds.yaml works there too).

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What a token asked for with [`AuthCredentials::password_auth_body`] is scoped to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// The credentials' project: the token clients hold (a node's token check before its
    /// re-add, the validation matrix, the client meter).
    Project,
    /// Explicitly unscoped (`"scope": {"unscoped": {}}`, so a user's default project is not
    /// used either). The provider signs or encrypts it and validates it as it does any token,
    /// which is all a probe's token read judges, without the role and project lookups a
    /// project token costs Keystone (on the lab: an issue 25-40 ms against 55-95 ms, a
    /// validation 17-27 ms against 80 ms).
    Unscoped,
}

/// Password credentials for POST /v3/auth/tokens. `Debug` hides the password.
#[derive(Clone, PartialEq)]
pub struct AuthCredentials {
    pub username: String,
    pub password: String,
    pub user_domain: String,
    pub project_name: String,
    pub project_domain: String,
    pub cacert: Option<PathBuf>,
    pub insecure: bool,
    /// Where these came from, for messages ("clouds.yaml cloud `demo`", "OS_* variables").
    pub source: String,
}

impl AuthCredentials {
    /// The body of `POST /v3/auth/tokens` for these credentials (password method, `scope`).
    /// It holds the password: it goes into a request, never to a log or the journal.
    pub fn password_auth_body(&self, scope: Scope) -> serde_json::Value {
        fn domain(v: &str) -> serde_json::Value {
            if v == "default" {
                serde_json::json!({ "id": v })
            } else {
                serde_json::json!({ "name": v })
            }
        }
        serde_json::json!({
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": { "user": {
                        "name": self.username,
                        "domain": domain(&self.user_domain),
                        "password": self.password
                    } }
                },
                "scope": match scope {
                    Scope::Project => serde_json::json!({ "project": {
                        "name": self.project_name,
                        "domain": domain(&self.project_domain)
                    } }),
                    Scope::Unscoped => serde_json::json!({ "unscoped": {} }),
                }
            }
        })
    }
}

impl std::fmt::Debug for AuthCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthCredentials")
            .field("username", &self.username)
            .field("password", &"<hidden>")
            .field("project_name", &self.project_name)
            .field("source", &self.source)
            .finish()
    }
}

#[derive(Debug, Deserialize)]
struct CloudsFile {
    clouds: BTreeMap<String, Cloud>,
}

#[derive(Debug, Deserialize, Default)]
struct Cloud {
    #[serde(default)]
    auth: CloudAuth,
    #[serde(default)]
    cacert: Option<PathBuf>,
    #[serde(default)]
    verify: Option<bool>,
    #[serde(default)]
    insecure: Option<bool>,
}

#[derive(Debug, Deserialize, Default)]
struct CloudAuth {
    username: Option<String>,
    password: Option<String>,
    user_domain_name: Option<String>,
    user_domain_id: Option<String>,
    project_name: Option<String>,
    project_domain_name: Option<String>,
    project_domain_id: Option<String>,
}

/// Where the openstack CLI looks for clouds.yaml, in its order.
pub fn clouds_search_path() -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Ok(p) = std::env::var("OS_CLIENT_CONFIG_FILE") {
        v.push(PathBuf::from(p));
    }
    v.push(PathBuf::from("clouds.yaml"));
    if let Ok(home) = std::env::var("HOME") {
        v.push(Path::new(&home).join(".config/openstack/clouds.yaml"));
    }
    v.push(PathBuf::from("/etc/openstack/clouds.yaml"));
    v
}

/// Resolve credentials: explicit clouds file and/or cloud name, else OS_CLOUD, else OS_* vars.
pub fn resolve(
    cloud: Option<&str>,
    clouds_file: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<AuthCredentials, String> {
    let cloud_name = cloud.map(str::to_string).or_else(|| env("OS_CLOUD"));
    if let Some(name) = cloud_name {
        let files: Vec<PathBuf> = match clouds_file {
            Some(f) => vec![f.to_path_buf()],
            None => clouds_search_path(),
        };
        for f in &files {
            let Ok(text) = std::fs::read_to_string(f) else {
                continue;
            };
            let parsed: CloudsFile = serde_yaml::from_str(&text).map_err(|e| {
                format!(
                    "{}: {e}",
                    crate::inventory::location(&f.display().to_string(), &e)
                )
            })?;
            let Some(c) = parsed.clouds.get(&name) else {
                continue;
            };
            let a = &c.auth;
            let need = |v: &Option<String>, what: &str| {
                v.clone().ok_or_else(|| {
                    format!(
                        "cloud `{name}` in {} has no auth.{what}; add it (or use OS_* variables)",
                        f.display()
                    )
                })
            };
            return Ok(AuthCredentials {
                username: need(&a.username, "username")?,
                password: a
                    .password
                    .clone()
                    .or_else(|| env("OS_PASSWORD"))
                    .ok_or_else(|| {
                        format!(
                            "cloud `{name}` in {} has no auth.password and OS_PASSWORD is not set",
                            f.display()
                        )
                    })?,
                user_domain: a
                    .user_domain_name
                    .clone()
                    .or(a.user_domain_id.clone())
                    .unwrap_or_else(|| "Default".into()),
                project_name: need(&a.project_name, "project_name")?,
                project_domain: a
                    .project_domain_name
                    .clone()
                    .or(a.project_domain_id.clone())
                    .unwrap_or_else(|| "Default".into()),
                cacert: c.cacert.clone(),
                insecure: c.insecure.unwrap_or(false) || c.verify == Some(false),
                source: format!("clouds.yaml cloud `{name}` ({})", f.display()),
            });
        }
        return Err(format!(
            "cloud `{name}` not found in {}",
            files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let get = |k: &str| env(k).filter(|v| !v.is_empty());
    match (get("OS_USERNAME"), get("OS_PASSWORD"), get("OS_PROJECT_NAME")) {
        (Some(username), Some(password), Some(project_name)) => Ok(AuthCredentials {
            username,
            password,
            user_domain: get("OS_USER_DOMAIN_NAME")
                .or(get("OS_USER_DOMAIN_ID"))
                .unwrap_or_else(|| "Default".into()),
            project_name,
            project_domain: get("OS_PROJECT_DOMAIN_NAME")
                .or(get("OS_PROJECT_DOMAIN_ID"))
                .unwrap_or_else(|| "Default".into()),
            cacert: get("OS_CACERT").map(PathBuf::from),
            insecure: get("OS_INSECURE").is_some_and(|v| v == "true" || v == "1"),
            source: "OS_* variables".into(),
        }),
        _ => Err(
            "no Keystone credentials: set `credentials.cloud` in the inventory, OS_CLOUD, or OS_USERNAME/OS_PASSWORD/OS_PROJECT_NAME"
                .into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cloud_with_a_versioned_auth_url_resolves() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("clouds.yaml");
        std::fs::write(
            &file,
            "clouds:\n  prod:\n    auth:\n      auth_url: https://vip.example:5000/v3\n      username: admin\n      password: pw\n      project_name: admin\n      user_domain_name: Default\n    identity_api_version: 3\n",
        )
        .unwrap();
        let c = resolve(Some("prod"), Some(&file), &|_| None).unwrap();
        assert_eq!(c.username, "admin");
        assert_eq!(c.project_domain, "Default");
        assert!(c.source.contains("`prod`"), "{}", c.source);
    }
}
