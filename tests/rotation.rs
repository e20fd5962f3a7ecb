//! Key rotations on the demo world, end to end through the binary, with a world served by
//! `cutover world serve` so tokens issued before a rotation can be checked after it.

use std::path::{Path, PathBuf};

mod support;
use support::bin::cutover;
use support::world::{Served, serve};

fn ok(args: &[&str]) -> String {
    let o = cutover(args);
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(o.status.code(), Some(0), "cutover {args:?} failed:\n{out}");
    out
}

fn world(dir: &Path) -> (cutover::world::WorldInfo, Served) {
    let info =
        cutover::world::create(dir, &cutover::world::WorldSpec { nodes: 3, lbs: 1 }).unwrap();
    let served = serve(dir, || {
        info.nodes
            .iter()
            .all(|n| reqwest::blocking_get(&format!("{}/v3", n.keystone_url)))
    });
    (info, served)
}

mod reqwest {
    //! Tiny blocking helpers over reqwest's async client (the crate has no blocking feature).
    pub fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }
    pub fn blocking_get(url: &str) -> bool {
        rt().block_on(async {
            ::reqwest::get(url)
                .await
                .map(|r| r.status().is_success())
                .unwrap_or(false)
        })
    }
}

fn password(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join("clouds.yaml")).unwrap();
    let v: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    v["clouds"]["demo"]["auth"]["password"]
        .as_str()
        .unwrap()
        .to_string()
}

fn issue(url: &str, password: &str) -> String {
    let body = serde_json::json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "admin", "domain": {"name": "Default"}, "password": password}}}, "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}});
    reqwest::rt().block_on(async {
        let r = ::reqwest::Client::new()
            .post(format!("{url}/v3/auth/tokens"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 201);
        r.headers()["X-Subject-Token"].to_str().unwrap().to_string()
    })
}

fn validate(url: &str, auth: &str, subject: &str) -> u16 {
    reqwest::rt().block_on(async {
        ::reqwest::Client::new()
            .get(format!("{url}/v3/auth/tokens"))
            .header("X-Auth-Token", auth)
            .header("X-Subject-Token", subject)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    })
}

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

fn private_fingerprints(dir: &Path) -> Vec<String> {
    let out = ok(&[
        "probe",
        "-i",
        dir.join("inventory.yaml").to_str().unwrap(),
        "--format",
        "json",
    ]);
    let json = &out[out.find('{').unwrap()..];
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    ["node1", "node2", "node3"]
        .iter()
        .map(|n| {
            v["nodes"][n]["jws"]["private_fingerprint"]
                .as_str()
                .unwrap_or("none")
                .to_string()
        })
        .collect()
}

/// One runtime-API command to the world's HAProxy stand-in.
fn lb_command(w: &Path, cmd: &str) {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(w.join("haproxy-1.sock")).unwrap();
    s.write_all(format!("{cmd}\n").as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.trim().is_empty(), "{cmd}: {out}");
}

fn journal(tmp: &Path, name: &str) -> PathBuf {
    tmp.join(format!("{name}.jsonl"))
}

#[test]
fn fernet_rotation_keeps_old_tokens_valid_and_leaves_identical_repositories() {
    let tmp = tempfile::tempdir().unwrap();
    let w = tmp.path().join("w");
    let (info, _served) = world(&w);
    let pw = password(&w);
    let before = files(&info.nodes[0].fernet_repo);
    let old = issue(&info.nodes[0].keystone_url, &pw);
    let j = journal(tmp.path(), "rotate");
    ok(&[
        "run",
        "runbooks/fernet-rotate.yaml",
        "-i",
        w.join("inventory.yaml").to_str().unwrap(),
        "--headless",
        "--journal",
        j.to_str().unwrap(),
    ]);
    let after = files(&info.nodes[0].fernet_repo);
    assert_ne!(before, after, "the repository must have rotated");
    assert_eq!(
        after.len(),
        3,
        "max_active_keys = 3: {:?}",
        after.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    for n in &info.nodes[1..] {
        assert_eq!(
            files(&n.fernet_repo),
            after,
            "{} must hold the same keys as node1",
            n.name
        );
    }
    // A token from before the rotation still validates everywhere; a new one too.
    let new = issue(&info.nodes[0].keystone_url, &pw);
    assert_ne!(old, new);
    for n in &info.nodes {
        assert_eq!(
            validate(&n.keystone_url, &new, &old),
            200,
            "old token at {}",
            n.name
        );
        assert_eq!(
            validate(&n.keystone_url, &new, &new),
            200,
            "new token at {}",
            n.name
        );
    }
    ok(&["journal", "verify", j.to_str().unwrap()]);
}

#[test]
fn jws_rotation_swaps_every_signing_key_and_retiring_removes_only_old_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let w = tmp.path().join("w");
    let (info, _served) = world(&w);
    let inv = w.join("inventory.yaml");
    let inv = inv.to_str().unwrap();
    let pw = password(&w);
    ok(&[
        "run",
        "runbooks/fernet-to-jws.yaml",
        "-i",
        inv,
        "--headless",
        "--answers",
        "runbooks/demo-answers.yaml",
        "--journal",
        journal(tmp.path(), "migrate").to_str().unwrap(),
    ]);
    let before = private_fingerprints(&w);
    let old = issue(&info.nodes[0].keystone_url, &pw);
    assert!(old.starts_with("eyJ"));

    // Without publishing the new public keys first, the engine refuses to swap any private key.
    let src = std::fs::read_to_string("runbooks/jws-rotate.yaml").unwrap();
    let unsafe_rb = tmp.path().join("unsafe.yaml");
    std::fs::write(
        &unsafe_rb,
        src.replace("      - keystone.publish_staged_public_keys: {}\n", ""),
    )
    .unwrap();
    let o = cutover(&[
        "run",
        unsafe_rb.to_str().unwrap(),
        "-i",
        inv,
        "--headless",
        "--journal",
        journal(tmp.path(), "unsafe").to_str().unwrap(),
    ]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(4), "{out}");
    assert!(out.contains("staged-keys-everywhere"), "{out}");
    assert_eq!(
        private_fingerprints(&w),
        before,
        "no private key may change"
    );
    // The refused run left node1 drained, as a halted run should; the operator puts it back,
    // and abandons the run: a halted run keeps its fleet lock until it is broken.
    lb_command(&w, "set server keystone_api/ks1 state ready");
    ok(&["unlock", "-i", inv, "--yes-i-checked"]);

    ok(&[
        "run",
        "runbooks/jws-rotate.yaml",
        "-i",
        inv,
        "--headless",
        "--journal",
        journal(tmp.path(), "rotate").to_str().unwrap(),
    ]);
    let after = private_fingerprints(&w);
    for (b, a) in before.iter().zip(&after) {
        assert_ne!(b, a, "every node signs with a new key");
    }
    for n in &info.nodes {
        assert_eq!(
            files(&n.jws_public_repo).len(),
            6,
            "{}: old and new public keys",
            n.name
        );
    }
    let new = issue(&info.nodes[0].keystone_url, &pw);
    for n in &info.nodes {
        assert_eq!(
            validate(&n.keystone_url, &new, &old),
            200,
            "a token signed with the old key still validates at {}",
            n.name
        );
        assert_eq!(
            validate(&n.keystone_url, &new, &new),
            200,
            "a new token validates at {}",
            n.name
        );
    }

    ok(&[
        "run",
        "runbooks/jws-retire-keys.yaml",
        "-i",
        inv,
        "--headless",
        "--answers",
        "runbooks/demo-answers.yaml",
        "--journal",
        journal(tmp.path(), "retire").to_str().unwrap(),
    ]);
    for n in &info.nodes {
        assert_eq!(
            files(&n.jws_public_repo).len(),
            3,
            "{}: only current keys remain",
            n.name
        );
        assert_eq!(validate(&n.keystone_url, &new, &new), 200);
        assert_eq!(
            validate(&n.keystone_url, &new, &old),
            404,
            "the old key is retired at {}",
            n.name
        );
    }
    assert_eq!(private_fingerprints(&w), after);
}

/// A paused demo run whose world's port was taken while it was stopped (ports are picked when
/// the world is made): the world moves to a free port and the run resumes against it.
#[test]
fn a_paused_world_whose_port_was_taken_moves_and_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let w = tmp.path().join("w");
    let info = cutover::world::create(&w, &cutover::world::WorldSpec { nodes: 3, lbs: 1 }).unwrap();
    let j = journal(tmp.path(), "paused");
    let o = cutover(&[
        "demo",
        "--headless",
        "--world",
        w.to_str().unwrap(),
        "--journal",
        j.to_str().unwrap(),
    ]);
    assert_eq!(
        o.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    // Someone else takes node2's port.
    let squatter = std::net::TcpListener::bind(("127.0.0.1", info.nodes[1].port)).unwrap();
    let out = ok(&[
        "resume",
        j.to_str().unwrap(),
        "--headless",
        "--answers",
        "runbooks/demo-answers.yaml",
    ]);
    assert!(out.contains("node2: port"), "{out}");
    let moved = cutover::world::load(&w).unwrap();
    assert_ne!(moved.nodes[1].port, info.nodes[1].port);
    assert_eq!(
        moved.nodes[0].port, info.nodes[0].port,
        "only the taken port moves"
    );
    drop(squatter);
    for n in &moved.nodes {
        let conf = std::fs::read_to_string(&n.keystone_conf).unwrap();
        assert!(conf.contains("\nprovider = jws"), "{}", n.name);
    }
    ok(&["journal", "verify", j.to_str().unwrap()]);
}
