//! A small INI reader, enough for the parts of keystone.conf the stand-in looks at.
//!
//! It follows oslo.config where it matters here: `[section]` headers, `key = value` (or
//! `key: value`) lines, whole-line comments starting with `#` or `;`, and the last occurrence of
//! a key winning. Inline comments are not stripped (oslo.config does not strip them either).

use std::collections::BTreeMap;

/// A parsed INI document: section name → key → value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ini {
    sections: BTreeMap<String, BTreeMap<String, String>>,
}

/// A line the parser could not make sense of (1-based line number).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {msg}")]
pub struct IniError {
    pub line: usize,
    pub msg: String,
}

impl Ini {
    /// Parse `text`. Keys before the first section header land in `DEFAULT`.
    pub fn parse(text: &str) -> Result<Ini, IniError> {
        let mut ini = Ini::default();
        let mut section = String::from("DEFAULT");
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if let Some(rest) = line.strip_prefix('[') {
                let Some(name) = rest.strip_suffix(']') else {
                    return Err(IniError {
                        line: i + 1,
                        msg: format!("unterminated section header `{line}`"),
                    });
                };
                section = name.trim().to_string();
                ini.sections.entry(section.clone()).or_default();
                continue;
            }
            let Some(pos) = line.find(['=', ':']) else {
                return Err(IniError {
                    line: i + 1,
                    msg: "expected `key = value`".into(),
                });
            };
            let key = line[..pos].trim();
            if key.is_empty() {
                return Err(IniError {
                    line: i + 1,
                    msg: "empty key".into(),
                });
            }
            let value = line[pos + 1..].trim();
            ini.sections
                .entry(section.clone())
                .or_default()
                .insert(key.to_string(), value.to_string());
        }
        Ok(ini)
    }

    /// The value of `key` in `section`, if set (an empty value counts as set).
    pub fn get(&self, section: &str, key: &str) -> Option<&str> {
        self.sections
            .get(section)
            .and_then(|s| s.get(key))
            .map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_comments_and_last_value_wins() {
        let ini = Ini::parse(
            "# top comment\n[DEFAULT]\ndebug = false\n\n[token]\n#provider = jws\n; other\nprovider = fernet\nexpiration=3600\nprovider = jws\n[empty]\n",
        )
        .unwrap();
        assert_eq!(ini.get("DEFAULT", "debug"), Some("false"));
        assert_eq!(ini.get("token", "provider"), Some("jws"));
        assert_eq!(ini.get("token", "expiration"), Some("3600"));
        assert_eq!(ini.get("token", "allow_expired_window"), None);
    }

    #[test]
    fn paths_with_colons_and_bad_lines() {
        let ini = Ini::parse("[x]\nrepo = /a/b:c/\nurl: http://h:1\n").unwrap();
        assert_eq!(ini.get("x", "repo"), Some("/a/b:c/"));
        assert_eq!(ini.get("x", "url"), Some("http://h:1"));
        assert_eq!(Ini::parse("[x\n").unwrap_err().line, 1);
        assert_eq!(Ini::parse("[x]\njunk\n").unwrap_err().line, 2);
    }
}
