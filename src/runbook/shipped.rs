//! The runbooks built into the binary (`runbooks/`), and their names and origins.

/// The runbooks shipped in `runbooks/`, built into the binary: (file name, text).
pub fn shipped() -> &'static [(&'static str, &'static str)] {
    &[
        (
            "fernet-to-jws.yaml",
            include_str!("../../runbooks/fernet-to-jws.yaml"),
        ),
        (
            "jws-to-fernet.yaml",
            include_str!("../../runbooks/jws-to-fernet.yaml"),
        ),
        (
            "jws-rotate.yaml",
            include_str!("../../runbooks/jws-rotate.yaml"),
        ),
        (
            "jws-retire-keys.yaml",
            include_str!("../../runbooks/jws-retire-keys.yaml"),
        ),
        (
            "fernet-rotate.yaml",
            include_str!("../../runbooks/fernet-rotate.yaml"),
        ),
        (
            "rolling-restart.yaml",
            include_str!("../../runbooks/rolling-restart.yaml"),
        ),
    ]
}

/// Text on one line: every run of whitespace, newlines included, as one space (a title written
/// over two lines in the YAML is one line in a listing, a plan, a heading).
pub fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The answers file shipped beside the runbooks (`cutover runbooks show demo-answers`): every
/// hard stop of the flagship and its rollback confirmed, for headless rehearsals.
pub const SHIPPED_ANSWERS: (&str, &str) = (
    "demo-answers.yaml",
    include_str!("../../runbooks/demo-answers.yaml"),
);

/// The name a shipped file is called by: its file name without `.yaml`.
pub fn shipped_name(file: &str) -> &str {
    file.strip_suffix(".yaml").unwrap_or(file)
}

/// A shipped runbook by name, with or without `.yaml`: (file name, text).
pub fn shipped_named(name: &str) -> Option<(&'static str, &'static str)> {
    let name = shipped_name(name);
    shipped()
        .iter()
        .find(|(file, _)| shipped_name(file) == name)
        .copied()
}

/// The origin a run records for a shipped runbook: which one, and that it came from the binary.
pub fn shipped_origin(file: &str) -> String {
    format!("built-in {file} (cutover {})", env!("CARGO_PKG_VERSION"))
}

/// The shipped runbook a recorded origin names (see [`shipped_origin`]), as this cutover ships
/// it: (file name, text). None for a file's origin. For resume's note on the run's inputs: a
/// built-in runbook has no file to compare with, only this binary's copy.
pub fn shipped_by_origin(origin: &str) -> Option<(&'static str, &'static str)> {
    let rest = origin.strip_prefix("built-in ")?;
    let file = rest.split(" (cutover ").next()?;
    shipped_named(file).filter(|(f, _)| *f == file)
}
