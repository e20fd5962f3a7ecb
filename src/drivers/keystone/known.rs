//! What the drivers last read on each node, kept for the session to save round trips: where its
//! key repositories are and its keystone.conf as last read.
//!
//! Nothing here is trusted blindly. A facts read runs its key-repository reads at the remembered
//! paths in the same exec that reads keystone.conf, and reads again at the right paths when the
//! conf says otherwise; `set_provider` writes only if keystone.conf's digest on the node still
//! matches the text it edited. Remembering saves an exec per read, never a check.

use std::collections::HashMap;

/// A node's key repositories (its keystone.conf's settings, or the inventory's overrides).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoPaths {
    pub fernet: String,
    pub private: String,
    pub public: String,
}

/// What was last read on one node.
#[derive(Debug, Clone)]
pub struct NodeConf {
    pub paths: RepoPaths,
    /// keystone.conf as it was read (the exact text).
    pub conf: String,
    /// The stamp of the key files at `paths` (names, inodes, sizes, modes, owners, times) and
    /// what reading them printed then: while the stamp is the same, so is what they hold.
    pub keys: Option<(String, String)>,
}

/// Per node, what was last read there (see the module's note).
#[derive(Debug, Default)]
pub struct Known {
    nodes: std::sync::Mutex<HashMap<String, NodeConf>>,
}

impl Known {
    pub fn get(&self, node: &str) -> Option<NodeConf> {
        self.nodes.lock().expect("known nodes").get(node).cloned()
    }

    pub fn put(&self, node: &str, paths: RepoPaths, conf: String, keys: Option<(String, String)>) {
        self.nodes
            .lock()
            .expect("known nodes")
            .insert(node.to_string(), NodeConf { paths, conf, keys });
    }

    /// keystone.conf was written: the next read of it comes from the node.
    pub fn forget_conf(&self, node: &str) {
        self.nodes.lock().expect("known nodes").remove(node);
    }

    /// keystone.conf was written and read back as `conf` (its repositories stay where they were).
    pub fn update_conf(&self, node: &str, conf: String) {
        if let Some(k) = self.nodes.lock().expect("known nodes").get_mut(node) {
            k.conf = conf;
        }
    }
}

/// A marker line no file on a node contains: a fixed prefix and a fresh random number.
pub fn marker(what: &str) -> String {
    format!("==cutover-{what}-{:016x}", rand::random::<u64>())
}

/// `out` split at the line `marker` (which the script printed after a newline of its own): what
/// came before (without that added newline) and what came after the marker's line.
pub fn split_at_marker<'a>(out: &'a str, marker: &str) -> Option<(&'a str, &'a str)> {
    let needle = format!("\n{marker}");
    let at = out.find(&needle)?;
    let rest = &out[at + needle.len()..];
    let rest = rest.split_once('\n').map(|(_, r)| r).unwrap_or("");
    Some((&out[..at], rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_splits_at_its_marker_only() {
        let m = marker("conf");
        assert!(m.starts_with("==cutover-conf-"));
        assert_ne!(m, marker("conf"));
        // A conf that ends without a newline, and one that mentions a marker of another run.
        let out = format!("[token]\nprovider = fernet\n==cutover-conf-0\n{m}\n==fernet\n");
        let (conf, rest) = split_at_marker(&out, &m).unwrap();
        assert_eq!(conf, "[token]\nprovider = fernet\n==cutover-conf-0");
        assert_eq!(rest, "==fernet\n");
        let out = format!("a\n\n{m} 3\nb\n");
        assert_eq!(split_at_marker(&out, &m), Some(("a\n", "b\n")));
        assert_eq!(split_at_marker("no marker", &m), None);
    }

    #[test]
    fn forgetting_a_conf_forgets_the_node() {
        let k = Known::default();
        let p = RepoPaths {
            fernet: "/f".into(),
            private: "/p".into(),
            public: "/u".into(),
        };
        k.put("n1", p.clone(), "x".into(), None);
        assert_eq!(k.get("n1").unwrap().paths, p);
        k.update_conf("n1", "y".into());
        assert_eq!(k.get("n1").unwrap().conf, "y");
        k.forget_conf("n1");
        assert!(k.get("n1").is_none());
        k.update_conf("n1", "z".into());
        assert!(k.get("n1").is_none());
    }
}
