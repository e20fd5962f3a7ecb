//! keystone.conf: reading the few options cutover needs and editing `[token] provider` in place,
//! keeping comments, order and every other line. Pure text functions; I/O is the caller's.

/// The options cutover reads, with Keystone 30's defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenSettings {
    pub provider: String,
    pub expiration: u64,
    pub allow_expired_window: u64,
    pub fernet_repo: String,
    pub receipts_repo: String,
    pub jws_private_repo: String,
    pub jws_public_repo: String,
}

/// The value of `key` in `[section]` (last assignment wins, as in oslo.config), ignoring comments.
pub fn get(text: &str, section: &str, key: &str) -> Option<String> {
    let mut current = String::new();
    let mut found = None;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('#') || t.starts_with(';') || t.is_empty() {
            continue;
        }
        if t.starts_with('[') && t.ends_with(']') {
            current = t[1..t.len() - 1].trim().to_string();
            continue;
        }
        if current.eq_ignore_ascii_case(section)
            && let Some((k, v)) = t.split_once('=')
            && k.trim() == key
        {
            found = Some(v.trim().to_string());
        }
    }
    found
}

pub fn token_settings(text: &str) -> TokenSettings {
    let num = |s: &str, k: &str, d: u64| get(text, s, k).and_then(|v| v.parse().ok()).unwrap_or(d);
    let fernet = get(text, "fernet_tokens", "key_repository")
        .unwrap_or_else(|| "/etc/keystone/fernet-keys/".into());
    TokenSettings {
        provider: get(text, "token", "provider")
            .unwrap_or_else(|| crate::provider::Provider::keystone_default().to_string()),
        expiration: num("token", "expiration", 3600),
        allow_expired_window: num("token", "allow_expired_window", 172_800),
        receipts_repo: get(text, "fernet_receipts", "key_repository")
            .unwrap_or_else(|| "/etc/keystone/fernet-keys/".into()),
        fernet_repo: fernet,
        jws_private_repo: get(text, "jwt_tokens", "jws_private_key_repository")
            .unwrap_or_else(|| "/etc/keystone/jws-keys/private".into()),
        jws_public_repo: get(text, "jwt_tokens", "jws_public_key_repository")
            .unwrap_or_else(|| "/etc/keystone/jws-keys/public".into()),
    }
}

/// Set `[token] provider = value`. An active assignment is replaced where it stands; otherwise
/// the line goes after a commented-out `#provider =` in `[token]`, or right after the `[token]`
/// header, or in a new `[token]` section at the end. Every other byte is kept.
pub fn set_provider(text: &str, value: &str) -> String {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut section = String::new();
    let mut header: Option<usize> = None;
    let mut commented: Option<usize> = None;
    let mut active: Vec<usize> = Vec::new();
    for (i, raw) in lines.iter().enumerate() {
        let t = raw.trim();
        if t.starts_with('[') && t.ends_with(']') {
            section = t[1..t.len() - 1].trim().to_lowercase();
            if section == "token" && header.is_none() {
                header = Some(i);
            }
            continue;
        }
        if section != "token" {
            continue;
        }
        let uncommented = t.trim_start_matches(['#', ';']).trim_start();
        if let Some((k, _)) = uncommented.split_once('=')
            && k.trim() == "provider"
        {
            if t.starts_with('#') || t.starts_with(';') {
                commented.get_or_insert(i);
            } else {
                active.push(i);
            }
        }
    }
    let eol = if text.contains("\r\n") { "\r\n" } else { "\n" };
    let new_line = format!("provider = {value}{eol}");
    let mut out: Vec<String> = lines.iter().map(|s| s.to_string()).collect();
    if let Some(&last) = active.last() {
        // oslo.config takes the last assignment: replace it, keep the rest as they are.
        let keep_eol = out[last].ends_with('\n');
        out[last] = if keep_eol {
            new_line
        } else {
            new_line.trim_end().to_string()
        };
    } else if let Some(after) = commented.or(header) {
        // After the commented-out line, else after the header. A file whose last line that is
        // gets its line end first (and the new line none, as the file had none).
        if out[after].ends_with('\n') {
            out.insert(after + 1, new_line);
        } else {
            out[after].push_str(eol);
            out.insert(after + 1, new_line.trim_end().to_string());
        }
    } else {
        let mut tail = String::new();
        if !text.is_empty() && !text.ends_with('\n') {
            tail.push_str(eol);
        }
        tail.push_str(&format!("{eol}[token]{eol}{new_line}"));
        out.push(tail);
    }
    out.concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONF: &str = "[DEFAULT]\n# provider = nothing here\ndebug = false\n\n[token]\n# The provider.\n#provider = fernet\nexpiration = 7200\n\n[fernet_tokens]\nkey_repository = /k/\n";

    #[test]
    fn a_last_line_without_its_newline_stays_a_line() {
        // Found by tests/fuzz.rs: the new line was glued to `[token]`.
        assert_eq!(set_provider("[token]", "jws"), "[token]\nprovider = jws");
        assert_eq!(
            set_provider("[token]\r\n#provider = fernet", "jws"),
            "[token]\r\n#provider = fernet\r\nprovider = jws"
        );
        assert_eq!(
            get(&set_provider("[token]", "jws"), "token", "provider").as_deref(),
            Some("jws")
        );
    }

    #[test]
    fn reads_with_defaults() {
        let s = token_settings(CONF);
        assert_eq!(s.provider, "fernet");
        assert_eq!(s.expiration, 7200);
        assert_eq!(s.allow_expired_window, 172_800);
        assert_eq!(s.fernet_repo, "/k/");
        assert_eq!(s.receipts_repo, "/etc/keystone/fernet-keys/");
    }

    #[test]
    fn inserts_after_commented_default_keeping_everything_else() {
        let out = set_provider(CONF, "jws");
        assert_eq!(
            out,
            CONF.replace(
                "#provider = fernet\n",
                "#provider = fernet\nprovider = jws\n"
            )
        );
        assert_eq!(get(&out, "token", "provider").as_deref(), Some("jws"));
        assert_eq!(get(&out, "DEFAULT", "provider"), None);
    }

    #[test]
    fn replaces_active_line_and_is_idempotent() {
        let once = set_provider(CONF, "jws");
        let back = set_provider(&once, "fernet");
        assert_eq!(get(&back, "token", "provider").as_deref(), Some("fernet"));
        assert_eq!(back.lines().count(), once.lines().count());
        assert_eq!(set_provider(&back, "fernet"), back);
    }

    #[test]
    fn adds_section_when_missing() {
        let out = set_provider("[DEFAULT]\ndebug = true", "jws");
        assert_eq!(out, "[DEFAULT]\ndebug = true\n\n[token]\nprovider = jws\n");
        let out = set_provider("[database]\nx = 1\n[token]\nexpiration = 1\n", "jws");
        assert_eq!(
            out,
            "[database]\nx = 1\n[token]\nprovider = jws\nexpiration = 1\n"
        );
    }
}
