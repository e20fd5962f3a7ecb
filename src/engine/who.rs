//! Who did it: the operator's identity, as events carry it (`run_started`, hard-stop answers,
//! pauses, resumes, in-doubt choices) and as the journal stores it.
//!
//! The engine only holds and labels a `Who`; reading one from the process (uid, `SUDO_USER`,
//! `SSH_CONNECTION`, the tty, the host name) is IO and lives above, in `journal::actor`
//! (`Who::current`).
//!
//! In a journal a `Who` is the object `{"host", "ssh_client", "sudo_user", "tty", "user"}`
//! (absent values as `null`), or, when cutover itself decided (an idempotent action redone after
//! a crash), a plain string ([`Who::cutover`]). Events read it with [`lenient`], which also takes
//! what older or hand-made journals may hold (an object missing fields, `null`) and labels it as
//! cutover always has; `Who`'s own `Deserialize` stays strict (objects only) for callers that
//! must tell a real `Who` from anything else.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The operator behind an action, as far as the process could tell.
#[derive(Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct Who {
    /// The effective user (root under sudo).
    pub user: String,
    /// The user who ran sudo, if any: the person, when `user` is only the account.
    pub sudo_user: Option<String>,
    /// The SSH client address, from the first field of `SSH_CONNECTION`.
    pub ssh_client: Option<String>,
    /// The terminal on stdin, if it is one.
    pub tty: Option<String>,
    pub host: String,
    /// Not a person: `user` is the whole label, journaled as a plain string.
    #[serde(skip)]
    plain: bool,
}

/// The journal's object form, fields in declaration order (the journal sorts them anyway).
#[derive(Serialize)]
struct WhoObject<'a> {
    user: &'a str,
    sudo_user: &'a Option<String>,
    ssh_client: &'a Option<String>,
    tty: &'a Option<String>,
    host: &'a str,
}

impl Serialize for Who {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.plain {
            return s.serialize_str(&self.user);
        }
        WhoObject {
            user: &self.user,
            sudo_user: &self.sudo_user,
            ssh_client: &self.ssh_client,
            tty: &self.tty,
            host: &self.host,
        }
        .serialize(s)
    }
}

impl Who {
    /// Cutover itself, not a person (`cutover (idempotent action)`): journaled as the string.
    pub fn cutover(label: &str) -> Who {
        Who {
            user: label.to_string(),
            plain: true,
            ..Who::default()
        }
    }

    /// Whether this is a plain label rather than a person's identity: cutover itself
    /// ([`Who::cutover`]), or a string a journal held.
    pub fn is_plain(&self) -> bool {
        self.plain
    }

    /// Builds a `Who` from explicit inputs (tests, or a caller that knows better).
    ///
    /// `uid_user` is the effective user's name; when empty, `$USER` is used. Empty environment
    /// values count as absent.
    pub fn from_env(
        getenv: impl Fn(&str) -> Option<String>,
        uid_user: String,
        tty: Option<String>,
        host: String,
    ) -> Who {
        let var = |k: &str| getenv(k).filter(|v| !v.trim().is_empty());
        let user = if uid_user.is_empty() {
            var("USER").unwrap_or_default()
        } else {
            uid_user
        };
        let ssh_client = var("SSH_CONNECTION")
            .or_else(|| var("SSH_CLIENT"))
            .and_then(|v| v.split_whitespace().next().map(str::to_string));
        Who {
            user,
            sudo_user: var("SUDO_USER"),
            ssh_client,
            tty: tty.filter(|t| !t.is_empty()),
            host,
            plain: false,
        }
    }

    /// A plain user and host (tests, fixtures): `Who::named("alice", "bastion1")`.
    pub fn named(user: &str, host: &str) -> Who {
        Who {
            user: user.to_string(),
            host: host.to_string(),
            ..Who::default()
        }
    }

    /// `user@host`, or `sudo_user(as user)@host` under sudo (`alice(as root)@bastion1`): the
    /// person first, because "root did it" names nobody.
    pub fn actor_label(&self) -> String {
        if self.plain {
            return self.user.clone();
        }
        let who = match &self.sudo_user {
            Some(person) if *person != self.user => format!("{person}(as {})", self.user),
            _ => self.user.clone(),
        };
        if self.host.is_empty() {
            who
        } else {
            format!("{who}@{}", self.host)
        }
    }

    /// A `Who` from whatever a journal's `who` holds: the object cutover writes (fields that
    /// are missing or not strings count as absent, a missing user reads `?`), or a plain string
    /// (taken whole as the label). Anything else is an unknown operator, `?`.
    pub fn from_value(v: &serde_json::Value) -> Who {
        if let Some(s) = v.as_str() {
            return Who::cutover(s);
        }
        let get = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
        Who {
            user: get("user").unwrap_or_else(|| "?".into()),
            sudo_user: get("sudo_user"),
            ssh_client: get("ssh_client"),
            tty: get("tty"),
            host: get("host").unwrap_or_default(),
            plain: false,
        }
    }
}

/// `deserialize_with` for an event's `who`: never fails, see [`Who::from_value`].
pub fn lenient<'de, D: Deserializer<'de>>(d: D) -> Result<Who, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    Ok(Who::from_value(&v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    }

    #[test]
    fn sudo_over_ssh() {
        let who = Who::from_env(
            env(&[
                ("SUDO_USER", "alice"),
                ("SSH_CONNECTION", "10.0.0.7 52144 10.0.0.2 22"),
                ("USER", "root"),
            ]),
            "root".into(),
            Some("/dev/pts/3".into()),
            "bastion1".into(),
        );
        assert_eq!(who.ssh_client.as_deref(), Some("10.0.0.7"));
        assert_eq!(who.actor_label(), "alice(as root)@bastion1");
    }

    #[test]
    fn plain_user_and_user_fallback() {
        let who = Who::from_env(env(&[("USER", "bob")]), String::new(), None, "h".into());
        assert_eq!(who.actor_label(), "bob@h");
        assert_eq!(who.sudo_user, None);
        assert_eq!(who.ssh_client, None);
    }

    /// The journal's shape: every field, absent ones as null, so journals written before `Who`
    /// was typed and after it hold the same bytes.
    #[test]
    fn serializes_as_journals_hold_it() {
        let who = Who {
            user: "root".into(),
            sudo_user: Some("alice".into()),
            ssh_client: None,
            tty: Some("/dev/pts/1".into()),
            host: "vm".into(),
            plain: false,
        };
        assert_eq!(
            serde_json::to_value(&who).unwrap(),
            json!({"host": "vm", "ssh_client": null, "sudo_user": "alice", "tty": "/dev/pts/1", "user": "root"})
        );
        let back: Who = serde_json::from_value(serde_json::to_value(&who).unwrap()).unwrap();
        assert_eq!(back, who);
        assert_eq!(Who::from_value(&serde_json::to_value(&who).unwrap()), who);
    }

    /// Every shape a `who` may hold is read, and labelled as the untyped fold labelled it.
    #[test]
    fn lenient_reads_every_shape() {
        let cases = [
            (
                json!({"host": "vm", "ssh_client": null, "sudo_user": null, "tty": null, "user": "root"}),
                "root@vm",
            ),
            (
                json!({"user": "alice", "host": "bastion1"}),
                "alice@bastion1",
            ),
            (
                json!({"user": "root", "sudo_user": "alice", "host": "b"}),
                "alice(as root)@b",
            ),
            (json!({"user": "root", "sudo_user": "root"}), "root"),
            (json!("alice@bastion1"), "alice@bastion1"),
            (json!({"host": "b"}), "?@b"),
            (json!({"user": 7, "host": ["x"]}), "?"),
            (json!(null), "?"),
            (json!(7), "?"),
        ];
        #[derive(Deserialize)]
        struct Holder {
            #[serde(deserialize_with = "lenient")]
            who: Who,
        }
        for (v, label) in cases {
            let h: Holder = serde_json::from_value(json!({ "who": v })).unwrap();
            assert_eq!(h.who.actor_label(), label, "{v}");
        }
        // Cutover's own string goes back to the journal as the same string.
        let h: Holder =
            serde_json::from_value(json!({"who": "cutover (idempotent action)"})).unwrap();
        assert!(h.who.is_plain());
        assert_eq!(
            serde_json::to_value(&h.who).unwrap(),
            json!("cutover (idempotent action)")
        );
        assert_eq!(h.who, Who::cutover("cutover (idempotent action)"));
        // Strict where asked: a number is no Who.
        assert!(serde_json::from_value::<Who>(json!(7)).is_err());
    }
}
