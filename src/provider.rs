//! Keystone's token providers cutover moves between. Runbook text names them as text (`jws`,
//! `fernet`); from compile on they are this type, and they serialize to the same strings, so
//! journals read the same.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Fernet,
    Jws,
}

/// A name that is not a provider cutover knows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}`: expected fernet or jws")]
pub struct UnknownProvider(pub String);

impl Provider {
    pub const ALL: [Provider; 2] = [Provider::Fernet, Provider::Jws];

    /// The name Keystone's `[token] provider` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Fernet => "fernet",
            Provider::Jws => "jws",
        }
    }

    /// The other one: what a move to this provider moves away from.
    pub fn other(self) -> Provider {
        match self {
            Provider::Fernet => Provider::Jws,
            Provider::Jws => Provider::Fernet,
        }
    }

    /// What Keystone runs when `[token] provider` is not set.
    pub fn keystone_default() -> Provider {
        Provider::Fernet
    }
}

impl FromStr for Provider {
    type Err = UnknownProvider;

    fn from_str(s: &str) -> Result<Provider, UnknownProvider> {
        Provider::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| UnknownProvider(s.to_string()))
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<str> for Provider {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_json_are_keystones_strings() {
        for p in Provider::ALL {
            assert_eq!(p.as_str().parse::<Provider>(), Ok(p));
            assert_eq!(serde_json::to_string(&p).unwrap(), format!("\"{p}\""));
            assert_eq!(
                serde_json::from_str::<Provider>(&format!("\"{p}\"")).unwrap(),
                p
            );
            assert_eq!(p.other().other(), p);
            assert_ne!(p.other(), p);
        }
        assert_eq!(
            "uuid".parse::<Provider>().unwrap_err().to_string(),
            "`uuid`: expected fernet or jws"
        );
        assert!("JWS".parse::<Provider>().is_err());
        assert!(serde_json::from_str::<Provider>("\"uuid\"").is_err());
    }
}
