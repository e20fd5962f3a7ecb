//! `keygen: keystone-manage` on the demo world (reach: local), with a stand-in keystone-manage
//! that writes a real ES256 keypair: found on the PATH or named by `keystone_manage:`; a missing
//! or failing one halts the run saying where it looked (or what it said) and naming
//! `keygen: native`; no staging leftovers either way. Where keystone-manage is searched (login
//! shell, /usr/bin, venvs under /opt, kolla, OpenStack-Ansible) is tested in `drivers::keys`.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

mod support;
use support::bin::{BIN, Captured as Run, run_captured};
use support::journal::existing_records as records;

const ANSWERS: &str = "runbooks/demo-answers.yaml";
const DEADLINE: Duration = Duration::from_secs(120);

/// The flagship, headless, on the world of `inv`, with `path` first on the PATH.
fn flagship(scratch: &Path, inv: &Path, journal: &Path, path: &Path) -> Run {
    let out = scratch.join("run.stdout");
    let err = scratch.join("run.stderr");
    let run = run_captured(
        Command::new(BIN)
            .args(["run", "runbooks/fernet-to-jws.yaml", "-i"])
            .arg(inv)
            .args(["--headless", "--answers", ANSWERS, "--journal"])
            .arg(journal)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("NO_COLOR", "1")
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    path.display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            ),
        "cutover run",
        &out,
        &err,
        DEADLINE,
        Duration::from_millis(50),
    );
    assert!(run.status.is_some(), "the run hung:\n{}", run.all());
    run
}

/// A stand-in keystone-manage in `dir`: `create_jws_keypair` copies a real keypair made for
/// this test into the current directory (as the real one writes private.pem and public.pem
/// there), after the deprecation warning Keystone 30 prints; `fail` makes it die instead.
fn fake_keystone_manage(dir: &Path, keys: &Path, fail: Option<&str>) -> PathBuf {
    fs::create_dir_all(dir).unwrap();
    let p = dir.join("keystone-manage");
    let body = match fail {
        Some(msg) => format!("echo '{msg}' >&2\nexit 1"),
        None => format!(
            "case \" $* \" in *' create_jws_keypair '*) ;; *) echo \"unexpected: $*\" >&2; exit 2 ;; esac\ncp '{k}/private.pem' '{k}/public.pem' .",
            k = keys.display()
        ),
    };
    fs::write(
        &p,
        format!(
            "#!/bin/sh\necho '/usr/lib/python3/dist-packages/oslo_service/backend/_eventlet/loopingcall.py:19: EventletDeprecationWarning: Eventlet is deprecated.' >&2\necho '  from eventlet import event' >&2\n{body}\n"
        ),
    )
    .unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    p
}

/// A world whose inventory says `keygen: keystone-manage`, node1 with `keystone_manage:` set to
/// `node1_km` if given; and a real ES256 keypair in `keys/` for the stand-ins to hand out.
fn world(tmp: &Path, node1_km: Option<&Path>) -> (cutover::world::WorldInfo, PathBuf) {
    let info = cutover::world::create(
        &tmp.join("w"),
        &cutover::world::WorldSpec { nodes: 3, lbs: 1 },
    )
    .unwrap();
    let mut inv: serde_yaml::Value =
        serde_yaml::from_str(&fs::read_to_string(&info.inventory_path).unwrap()).unwrap();
    for n in inv["nodes"].as_sequence_mut().unwrap() {
        n["keygen"] = "keystone-manage".into();
        if n["name"] == "node1"
            && let Some(km) = node1_km
        {
            n["keystone_manage"] = km.display().to_string().into();
        }
    }
    fs::write(&info.inventory_path, serde_yaml::to_string(&inv).unwrap()).unwrap();
    let keys = tmp.join("keys");
    fs::create_dir_all(&keys).unwrap();
    let (private, public) = cutover::drivers::keys::generate_es256().unwrap();
    fs::write(keys.join("private.pem"), &private.0).unwrap();
    fs::write(keys.join("public.pem"), public).unwrap();
    (info, keys)
}

/// Every node's `.cutover-staging` beside its private key repository, if it exists.
fn staging_leftovers(info: &cutover::world::WorldInfo) -> Vec<PathBuf> {
    info.nodes
        .iter()
        .map(|n| {
            n.jws_private_repo
                .parent()
                .unwrap()
                .join(".cutover-staging")
        })
        .filter(|p| p.exists())
        .collect()
}

fn failed_summary(journal: &Path, run: &Run) -> (String, String) {
    let recs = records(journal);
    let halt = recs
        .iter()
        .find(|r| r["kind"] == "run_halted")
        .unwrap_or_else(|| panic!("the run did not halt:\n{}", run.all()));
    (
        halt["data"]["reason"].as_str().unwrap().to_string(),
        halt["data"]["next"].as_str().unwrap().to_string(),
    )
}

#[test]
fn keystone_manage_on_the_path_or_named_in_the_inventory_makes_the_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let venv = tmp.path().join("venv/bin");
    let (info, keys) = world(tmp.path(), Some(&venv.join("keystone-manage")));
    let named = fake_keystone_manage(&venv, &keys, None);
    let on_path = fake_keystone_manage(&tmp.path().join("bin"), &keys, None);
    let j = tmp.path().join("run.jsonl");
    let run = flagship(
        tmp.path(),
        &info.inventory_path,
        &j,
        &tmp.path().join("bin"),
    );
    assert_eq!(run.code(), Some(0), "{}", run.all());
    let summaries: Vec<String> = records(&j)
        .iter()
        .filter(|r| r["kind"] == "outcome")
        .filter_map(|r| r["data"]["summary"].as_str().map(str::to_string))
        .filter(|s| s.contains("keypair staged"))
        .collect();
    assert_eq!(summaries.len(), 3, "{summaries:?}");
    for s in &summaries {
        let want = if s.starts_with("node1:") {
            &named
        } else {
            &on_path
        };
        assert!(
            s.contains(&format!(" by {}", want.display())),
            "{s} (expected {})",
            want.display()
        );
    }
    for n in &info.nodes {
        assert_eq!(
            fs::read(n.jws_private_repo.join("private.pem")).unwrap(),
            fs::read(keys.join("private.pem")).unwrap(),
            "{}: the stand-in's private key is installed",
            n.name
        );
    }
    assert_eq!(staging_leftovers(&info), Vec::<PathBuf>::new());
}

#[test]
fn a_keystone_manage_named_but_missing_halts_naming_keygen_native() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nowhere/keystone-manage");
    let (info, keys) = world(tmp.path(), Some(&missing));
    let bin = tmp.path().join("bin");
    fake_keystone_manage(&bin, &keys, None);
    let j = tmp.path().join("run.jsonl");
    let run = flagship(tmp.path(), &info.inventory_path, &j, &bin);
    assert_eq!(run.code(), Some(4), "{}", run.all());
    let (reason, next) = failed_summary(&j, &run);
    assert!(
        reason.contains(&format!(
            "{} (keystone_manage: in the inventory) is not an executable file",
            missing.display()
        )),
        "{reason}"
    );
    assert!(
        next.contains("keystone_manage: for node1") && next.contains("keygen: native for node1"),
        "{next}"
    );
    // Nothing on node1; the other nodes' keypairs wait in their staging directories for the
    // resumed run (and nothing else does).
    let left = staging_leftovers(&info);
    assert!(
        !left.iter().any(|p| p.starts_with(&info.nodes[0].dir)),
        "{left:?}"
    );
    for dir in &left {
        let mut files: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        assert_eq!(files, ["private.pem", "public.pem"], "{}", dir.display());
    }
}

#[test]
fn a_failing_keystone_manage_halts_with_its_error_and_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (info, keys) = world(tmp.path(), None);
    let bin = tmp.path().join("bin");
    fake_keystone_manage(
        &bin,
        &keys,
        Some(
            "CRITICAL keystone [-] Unhandled error: PermissionError: [Errno 13] Permission denied: '/etc/keystone/jws-keys'",
        ),
    );
    let j = tmp.path().join("run.jsonl");
    let run = flagship(tmp.path(), &info.inventory_path, &j, &bin);
    assert_eq!(run.code(), Some(4), "{}", run.all());
    let (reason, next) = failed_summary(&j, &run);
    assert!(
        reason.contains(&format!(
            "`{} create_jws_keypair` exited 1",
            bin.join("keystone-manage").display()
        )) && reason.ends_with(
            "Unhandled error: PermissionError: [Errno 13] Permission denied: /etc/keystone/jws-keys"
        ),
        "the error, not the warning: {reason}"
    );
    assert!(next.contains("keygen: native"), "{next}");
    assert_eq!(staging_leftovers(&info), Vec::<PathBuf>::new());
    // Nothing of keystone-manage's is left anywhere on the nodes: no error file (what it said
    // went to the journal), no half keypair outside the key repositories.
    for n in &info.nodes {
        let stray = files_under(&n.dir)
            .into_iter()
            .filter(|p| {
                let name = p.file_name().unwrap().to_string_lossy();
                name == "keystone-manage.err"
                    || ((name == "private.pem" || name == "public.pem")
                        && !p.starts_with(&n.jws_private_repo))
            })
            .collect::<Vec<_>>();
        assert!(stray.is_empty(), "{}: left behind {stray:?}", n.name);
    }
    // What keystone-manage said is still reported where the operator reads the run.
    assert!(
        run.stdout.contains("Permission denied"),
        "the error is reported: {}",
        run.all()
    );
}

/// Every file under `dir` (not following symbolic links).
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let t = e.file_type().unwrap();
            if t.is_dir() {
                todo.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out
}
