//! Deserializers for runbook fields: strings that must be strings, durations as humantime.

/// Strings that are strings in the YAML. serde_yaml hands a plain scalar such as `42`, `true`
/// or `~` to a `String` field as its text; a runbook that says `title: 42` most likely meant
/// something else, so a string field takes only a string (quote it: `title: "42"`).
pub(super) mod strict {
    use serde::Deserializer;
    use serde::de::{self, SeqAccess, Unexpected, Visitor};
    use std::fmt;

    struct Str;

    impl<'de> Visitor<'de> for Str {
        type Value = String;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a string (quote a number, true/false or ~ to use it as text)")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
            Ok(v)
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<String, E> {
            Err(E::invalid_type(Unexpected::Bool(v), &self))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
            Err(E::invalid_type(Unexpected::Signed(v), &self))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
            Err(E::invalid_type(Unexpected::Unsigned(v), &self))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
            Err(E::invalid_type(Unexpected::Float(v), &self))
        }
        fn visit_unit<E: de::Error>(self) -> Result<String, E> {
            Err(E::invalid_type(Unexpected::Unit, &self))
        }
        fn visit_none<E: de::Error>(self) -> Result<String, E> {
            Err(E::invalid_type(Unexpected::Option, &self))
        }
    }

    pub fn string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        d.deserialize_any(Str)
    }

    struct Strs;

    impl<'de> Visitor<'de> for Strs {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a list of strings")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<String>, A::Error> {
            struct One(String);
            impl<'de> serde::Deserialize<'de> for One {
                fn deserialize<D: Deserializer<'de>>(d: D) -> Result<One, D::Error> {
                    string(d).map(One)
                }
            }
            let mut out = Vec::new();
            while let Some(One(s)) = seq.next_element()? {
                out.push(s);
            }
            Ok(out)
        }
    }

    pub fn strings<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        d.deserialize_seq(Strs)
    }
}

/// Durations written as humantime strings ("90s", "2m") in YAML.
pub(super) mod humantime_serde_compat {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map_err(|e| {
            serde::de::Error::custom(format!("`{s}` is not a duration like 30s or 2m: {e}"))
        })
    }

    pub mod option {
        use super::*;
        pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => super::serialize(d, s),
                None => s.serialize_none(),
            }
        }
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
            Ok(Some(super::deserialize(d)?))
        }
    }
}
