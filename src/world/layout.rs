//! Laying out a new world directory: configs, key repositories, scripts, clouds.yaml, trusts,
//! the inventory and world.json.

use super::info::{
    WORLD_VERSION, WorldInfo, WorldLb, WorldNode, WorldOptions, WorldServer, WorldSpec,
};
use crate::inventory::{Credentials, Inventory, KeyGen, LoadBalancer, Node, Reach};
use anyhow::{Context as _, bail};
use rand::Rng as _;
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

/// The backend (a `listen` proxy) every load balancer defines.
pub const BACKEND: &str = "keystone_api";
/// The cloud name in clouds.yaml.
pub const CLOUD: &str = "demo";

/// The longest token-cache lifetime a world takes (a day; OpenStack-Ansible uses an hour).
pub const MAX_TOKEN_CACHE_SECS: u64 = 86_400;

pub fn create(dir: &Path, spec: &WorldSpec, opts: &WorldOptions) -> anyhow::Result<WorldInfo> {
    if spec.nodes == 0 {
        bail!("a world needs at least one node");
    }
    if let Some(secs) = opts.token_cache
        && !(1..=MAX_TOKEN_CACHE_SECS).contains(&secs)
    {
        bail!(
            "--token-cache {secs}: the cache lifetime is 1 to {MAX_TOKEN_CACHE_SECS} seconds (Keystone's default is 600)"
        );
    }
    if spec.nodes > 64 || spec.lbs > 16 {
        bail!("a demo world holds at most 64 nodes and 16 load balancers");
    }
    let dir = if dir.is_absolute() {
        dir.to_path_buf()
    } else {
        std::env::current_dir()?.join(dir)
    };
    if dir.exists() {
        let mut entries =
            fs::read_dir(&dir).with_context(|| format!("cannot read {}", dir.display()))?;
        if entries.next().is_some() {
            bail!(
                "{} is not empty: a new world needs an absent or empty directory",
                dir.display()
            );
        }
    }
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let dir = fs::canonicalize(&dir)?;

    let ports = pick_ports(spec.nodes + spec.lbs)?;
    let (node_ports, lb_ports) = ports.split_at(spec.nodes);

    let password: String = rand::thread_rng()
        .sample_iter(&rand::distributions::Alphanumeric)
        .take(20)
        .map(char::from)
        .collect();
    let admin_user_id = uuid::Uuid::new_v4().simple().to_string();
    let admin_project_id = uuid::Uuid::new_v4().simple().to_string();
    // One Fernet repository for the whole cluster, copied to every node (as fernet_setup once
    // and rsync would). Never logged.
    let fernet_keys: Vec<String> = (0..3).map(|_| fernet::Fernet::generate_key()).collect();

    let mut nodes = Vec::new();
    for (i, &port) in node_ports.iter().enumerate() {
        let node = lay_out_node(&dir, i + 1, port, &fernet_keys, opts.token_cache)?;
        nodes.push(node);
    }
    let lbs: Vec<WorldLb> = lb_ports
        .iter()
        .enumerate()
        .map(|(i, &port)| WorldLb {
            name: format!("haproxy-{}", i + 1),
            socket: dir.join(format!("haproxy-{}.sock", i + 1)),
            state_file: dir.join(format!("haproxy-{}.state", i + 1)),
            config: Some(dir.join(format!("haproxy-{}.cfg", i + 1))),
            frontend_port: port,
            frontend_url: format!("http://127.0.0.1:{port}"),
            backend: BACKEND.into(),
            servers: nodes
                .iter()
                .enumerate()
                .map(|(k, n)| WorldServer {
                    name: format!("ks{}", k + 1),
                    node: n.name.clone(),
                    port: n.port,
                })
                .collect(),
        })
        .collect();

    let info = WorldInfo {
        version: WORLD_VERSION,
        dir: dir.clone(),
        cluster: "demo".into(),
        created_at: chrono::Utc::now(),
        nodes,
        lbs,
        inventory_path: dir.join("inventory.yaml"),
        clouds_path: dir.join("clouds.yaml"),
        trusts_path: dir.join("trusts.json"),
        cloud: CLOUD.into(),
        admin_user_id,
        admin_project_id,
        token_cache: opts.token_cache,
    };

    write_mode(
        &info.clouds_path,
        &clouds_yaml(&info.public_url(), &password),
        0o600,
    )?;
    write_mode(&info.trusts_path, &trusts_json(&info), 0o644)?;
    write_haproxy_configs(&info)?;
    write_mode(&info.inventory_path, &inventory_yaml(&info)?, 0o644)?;
    write_mode(
        &dir.join("world.json"),
        &serde_json::to_string_pretty(&info)?,
        0o644,
    )?;
    Ok(info)
}

/// The lowest port a world picks from: above the registered services most machines run.
const WORLD_PORT_FLOOR: u16 = 20_000;

/// Distinct free loopback ports below the kernel's ephemeral range. A world's ports are picked
/// at `world create` and bound later at `serve`; a port in the ephemeral range can be taken in
/// between as the local end of any outbound connection (the meter opens many), so the world
/// stays out of that range. All listeners are held until every port is picked, then released.
fn pick_ports(n: usize) -> anyhow::Result<Vec<u16>> {
    let span = ports_ceiling() - WORLD_PORT_FLOOR;
    // A random start keeps two worlds made at the same moment apart.
    pick_ports_from(rand::thread_rng().gen_range(0..span), n)
}

/// The ports below which worlds pick theirs.
fn ports_ceiling() -> u16 {
    ephemeral_floor().max(WORLD_PORT_FLOOR + 1_000)
}

/// [`pick_ports`] from the `start`th port of the range on.
fn pick_ports_from(start: u16, n: usize) -> anyhow::Result<Vec<u16>> {
    let ceiling = ports_ceiling();
    let span = ceiling - WORLD_PORT_FLOOR;
    let mut held = Vec::with_capacity(n);
    for k in 0..span {
        if held.len() == n {
            break;
        }
        let port = WORLD_PORT_FLOOR + (start + k) % span;
        if claimed(port) {
            continue;
        }
        if let Ok(l) = std::net::TcpListener::bind(("127.0.0.1", port)) {
            held.push(l);
        }
    }
    if held.len() < n {
        bail!(
            "cannot pick {n} free loopback ports between {WORLD_PORT_FLOOR} and {ceiling} \
             (below the kernel's ephemeral range): only {} are free",
            held.len()
        );
    }
    Ok(held
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<Result<_, _>>()?)
}

/// Where served worlds claim their ports: one lock file per port, locked by the serving process
/// for as long as it serves (see [`claim_ports`]). A node's restart unbinds its port for most of
/// a second; a world created in that moment, in another process, must not pick that port (the
/// fault sweep runs worlds side by side, and a restarting node found its port taken).
fn port_claims() -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "cutover-world-ports-{}",
        nix::unistd::geteuid().as_raw()
    ))
}

/// Whether a serving world claims `port` (its lock is held by a live process).
fn claimed(port: u16) -> bool {
    let Ok(f) = fs::File::open(port_claims().join(port.to_string())) else {
        return false;
    };
    matches!(f.try_lock_shared(), Err(std::fs::TryLockError::WouldBlock))
}

/// Claim `ports` for a world being served: the returned files hold the claims until dropped.
/// Fails naming a port another serving world claims; where claims cannot be written (no temp
/// directory), serving goes on without them.
pub fn claim_ports(ports: impl IntoIterator<Item = u16>) -> anyhow::Result<Vec<fs::File>> {
    let dir = port_claims();
    if fs::create_dir_all(&dir).is_err() {
        return Ok(Vec::new());
    }
    let mut held = Vec::new();
    for port in ports {
        let Ok(f) = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(port.to_string()))
        else {
            continue;
        };
        match f.try_lock() {
            Ok(()) => held.push(f),
            Err(std::fs::TryLockError::WouldBlock) => bail!(
                "port 127.0.0.1:{port} is claimed by another world being served ({})",
                dir.join(port.to_string()).display()
            ),
            Err(_) => {}
        }
    }
    Ok(held)
}

/// The first port of the kernel's ephemeral range (Linux's default when it cannot be read).
fn ephemeral_floor() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

fn write_mode(path: &Path, text: &str, mode: u32) -> anyhow::Result<()> {
    fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    set_mode(path, mode)
}

fn set_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot set the mode of {}", path.display()))
}

fn mkdir(path: &Path, mode: u32) -> anyhow::Result<()> {
    fs::create_dir_all(path).with_context(|| format!("cannot create {}", path.display()))?;
    set_mode(path, mode)
}

fn lay_out_node(
    dir: &Path,
    k: usize,
    port: u16,
    fernet_keys: &[String],
    token_cache: Option<u64>,
) -> anyhow::Result<WorldNode> {
    let name = format!("node{k}");
    let ndir = crate::inventory::name_path(dir, &name, "")?;
    let etc = ndir.join("etc/keystone");
    let node = WorldNode {
        name: name.clone(),
        port,
        keystone_url: format!("http://127.0.0.1:{port}"),
        dir: ndir.clone(),
        keystone_conf: etc.join("keystone.conf"),
        fernet_repo: etc.join("fernet-keys"),
        jws_private_repo: etc.join("jws-keys/private"),
        jws_public_repo: etc.join("jws-keys/public"),
        log_file: ndir.join("log/keystone.log"),
        run_dir: ndir.join("run"),
        restart: ndir.join("bin/keystone-restart"),
    };
    mkdir(&etc, 0o755)?;
    mkdir(&node.fernet_repo, 0o700)?;
    for (i, key) in fernet_keys.iter().enumerate() {
        write_mode(&node.fernet_repo.join(i.to_string()), key, 0o600)?;
    }
    mkdir(&etc.join("jws-keys"), 0o755)?;
    mkdir(&node.jws_private_repo, 0o700)?;
    mkdir(&node.jws_public_repo, 0o755)?;
    let mut conf = keystone_conf(&node);
    if let Some(secs) = token_cache {
        conf.push_str(&cache_section(secs));
    }
    write_mode(&node.keystone_conf, &conf, 0o640)?;
    mkdir(&ndir.join("log"), 0o755)?;
    write_mode(&node.log_file, "", 0o644)?;
    mkdir(&node.run_dir, 0o755)?;
    mkdir(&ndir.join("bin"), 0o755)?;
    write_mode(&node.restart, &restart_script(&node), 0o755)?;
    Ok(node)
}

/// The `[cache]` section of every node of a world with a shared token cache, as kolla-ansible
/// writes it (one memcached for every node), so that a reader of keystone.conf can tell. The
/// world serves the cache itself (see `world::token_cache`): nothing listens on the address.
fn cache_section(secs: u64) -> String {
    format!(
        r#"
[cache]

# The demo world's shared token cache (`cutover world create --token-cache {secs}`): one cache
# for every node, as one memcached shared by the nodes is. The stand-in serves it in-process;
# `cutover world fault DIR flush-cache` empties it as a memcached flush_all does.

# Global toggle for caching. (boolean value)
enabled = true

# Cache backend module. (string value)
backend = oslo_cache.memcache_pool

# Memcache servers in the format of "host:port". (list value)
memcache_servers = 127.0.0.1:11211

# Default TTL, in seconds, for any cached item in the dogpile.cache region. (integer value)
expiration_time = {secs}
"#
    )
}

/// A realistic keystone.conf, commented the way the sample configuration is.
pub fn keystone_conf(node: &WorldNode) -> String {
    let fernet = format!("{}/", node.fernet_repo.display());
    format!(
        r#"# keystone.conf for {name} of the cutover demo world.
# Lines starting with '#' show Keystone's defaults; uncomment and change them to override.

[DEFAULT]

#
# From keystone
#

# If set to true, the logging level will be set to DEBUG instead of the default
# INFO level. (boolean value)
#debug = false

# Maximum number of entities that will be returned in a collection. (integer
# value)
#list_limit = <None>

[database]

# The SQLAlchemy connection string to use to connect to the database. The demo
# world's stand-in keeps its one user, project and trusts in memory and in
# trusts.json. (string value)
#connection = <None>

[fernet_receipts]

# Directory containing Fernet receipt keys. Receipts (multi-factor auth) only
# have a Fernet provider, so this repository outlives a move to JWS tokens.
# (string value)
key_repository = {fernet}

#max_active_keys = 3

[fernet_tokens]

# Directory containing Fernet token keys. This directory must exist before using
# `keystone-manage fernet_setup` for the first time, must be writable by the
# user running `keystone-manage fernet_setup` or `keystone-manage
# fernet_rotate`, and of course must be readable by keystone's server process.
# (string value)
key_repository = {fernet}

# This controls how many keys are held in rotation by `keystone-manage
# fernet_rotate` before they are discarded. The default value of 3 means that
# keystone will maintain one staged key (always index 0), one primary key (the
# highest numerical index), and one secondary key (every other index).
# (integer value)
# Minimum value: 1
max_active_keys = 3

[jwt_tokens]

# Directory containing private keys for signing JWS tokens. This directory must
# exist in order for keystone's server process to start. It must also be
# readable by keystone's server process. It must contain at least one private
# key that corresponds to a public key in `keystone.conf [jwt_tokens]
# jws_public_key_repository`. (string value)
jws_private_key_repository = {private}

# Directory containing public keys for validating JWS token signatures. This
# directory must exist in order for keystone's server process to start. It must
# also be readable by keystone's server process. It must contain at least one
# public key that corresponds to a private key in `keystone.conf [jwt_tokens]
# jws_private_key_repository`. (string value)
jws_public_key_repository = {public}

# The algorithm used to sign JWS tokens. (string value)
#jws_algorithm = ES256

[token]

# The amount of time that a token should remain valid (in seconds). Drastically
# reducing this value may break "long-running" operations that involve multiple
# services to coordinate together, and will force users to authenticate with
# keystone more frequently. (integer value)
# Minimum value: 0
# Maximum value: 9223372036854775807
expiration = 3600

# Entry point for the token provider in the `keystone.token.provider`
# namespace. The token provider controls the token construction, validation,
# and revocation operations. Supported upstream providers are `fernet` and
# `jws`. Neither `fernet` or `jws` tokens require persistence and both require
# additional setup. If using `fernet`, you're required to run `keystone-manage
# fernet_setup`, which creates symmetric keys used to encrypt tokens. If using
# `jws`, you're required to generate an ECDSA keypair using a SHA-256 hash
# algorithm for signing and validating token, which can be done with `keystone-
# manage create_jws_keypair`. Note that `fernet` tokens are encrypted and `jws`
# tokens are only signed. Please be sure to consider this if your deployment
# has security requirements regarding payload contents used to generate token
# IDs. (string value)
provider = fernet

# This controls the number of seconds that a token can be retrieved for beyond
# the built-in expiry time. This allows long running operations to succeed.
# Defaults to two days. (integer value)
#allow_expired_window = 172800
"#,
        name = node.name,
        private = node.jws_private_repo.display(),
        public = node.jws_public_repo.display(),
    )
}

/// Quote `s` for a POSIX shell.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// `s` as one shell word: unchanged when it needs no quoting (the inventory's `restart` is a
/// command line run with `sh -c`).
fn shell_word(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:@%=,".contains(c))
    {
        s.to_string()
    } else {
        sh_quote(s)
    }
}

/// `bin/keystone-restart`: ask the stand-in to restart, wait for its acknowledgement, then for
/// the outcome of the start, so that a Keystone that does not come back fails the restart as
/// `systemctl restart` of a service that fails to start does, with Keystone's reason on stderr
/// (or, for a bad option value, only the warnings Keystone printed before it died: the reason is
/// in its log, as it was on a real Keystone).
fn restart_script(node: &WorldNode) -> String {
    format!(
        r#"#!/bin/sh
# Restart Keystone on {name} (cutover demo world).
# Asks the in-process stand-in to restart by creating run/restart.req and waits until the
# stand-in acknowledges by deleting it; then waits for the outcome of the start in
# run/start.result. Exits 0 once Keystone listens again, 1 with Keystone's reason when it
# does not start (keystone.conf it cannot start with, or an injected break-restart fault).
run={run}
req="$run/restart.req"
result="$run/start.result"
rm -f "$result"
: > "$req" || {{ echo "cannot write $req" >&2; exit 1; }}
i=0
while [ -e "$req" ]; do
  i=$((i + 1))
  if [ "$i" -gt 200 ]; then
    rm -f "$req"
    echo "keystone on {name} did not acknowledge the restart" >&2
    exit 1
  fi
  sleep 0.05
done
# An injected slow-restart makes the start take that many seconds longer.
slow=$(cat "$run/slow-restart" 2>/dev/null)
case "$slow" in ''|*[!0-9]*) slow=0 ;; esac
limit=$(( (slow + 10) * 20 ))
i=0
while [ ! -s "$result" ]; do
  i=$((i + 1))
  if [ "$i" -gt "$limit" ]; then
    echo "keystone on {name} did not report its start within $((slow + 10)) s" >&2
    exit 1
  fi
  sleep 0.05
done
read -r outcome < "$result"
case "$outcome" in
  ok*) exit 0 ;;
esac
# What the service printed as it died, when it left that (its startup warnings; the reason
# is then in its log), else the reason.
if [ -s "$run/start.stderr" ]; then
  cat "$run/start.stderr" >&2
else
  echo "keystone on {name} failed to start: ${{outcome#failed: }}" >&2
fi
exit 1
"#,
        name = node.name,
        run = sh_quote(&node.run_dir.display().to_string()),
    )
}

fn clouds_yaml(auth_url: &str, password: &str) -> String {
    format!(
        "# clouds.yaml of the cutover demo world. Keep it private (mode 0600): it holds the\n\
         # admin password.\n\
         clouds:\n  {CLOUD}:\n    auth:\n      auth_url: {auth_url}/v3\n      username: admin\n      password: \"{password}\"\n      project_name: admin\n      user_domain_name: Default\n      project_domain_name: Default\n    region_name: RegionOne\n    interface: public\n    identity_api_version: 3\n"
    )
}

fn trusts_json(info: &WorldInfo) -> String {
    let heat = uuid::Uuid::new_v4().simple().to_string();
    let magnum = uuid::Uuid::new_v4().simple().to_string();
    let expires = (chrono::Utc::now() + chrono::Duration::days(365))
        .format("%Y-%m-%dT%H:%M:%S.000000Z")
        .to_string();
    let trust = |id: String, trustee: &str, imp: bool, exp: serde_json::Value, role: &str| {
        serde_json::json!({
            "id": id,
            "trustor_user_id": info.admin_user_id,
            "trustee_user_id": trustee,
            "project_id": info.admin_project_id,
            "impersonation": imp,
            "expires_at": exp,
            "remaining_uses": null,
            "allow_redelegation": false,
            "redelegation_count": 0,
            "roles": [{"name": role}],
        })
    };
    let doc = serde_json::json!({
        "trusts": [
            // Heat's stack-user trust: impersonating, no expiry.
            trust(uuid::Uuid::new_v4().simple().to_string(), &heat, true, serde_json::Value::Null, "member"),
            // Magnum's cluster trust: no impersonation, expires in a year.
            trust(uuid::Uuid::new_v4().simple().to_string(), &magnum, false, serde_json::Value::String(expires), "member"),
        ]
    });
    serde_json::to_string_pretty(&doc).expect("json") + "\n"
}

/// The current user's and primary group's names, so ownership checks pass when not root.
fn current_user_and_group() -> (String, String) {
    let uid = nix::unistd::getuid();
    let gid = nix::unistd::getgid();
    let user = nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map(|u| u.name)
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| uid.to_string());
    let group = nix::unistd::Group::from_gid(gid)
        .ok()
        .flatten()
        .map(|g| g.name)
        .unwrap_or_else(|| gid.to_string());
    (user, group)
}

fn inventory_yaml(info: &WorldInfo) -> anyhow::Result<String> {
    let (user, group) = current_user_and_group();
    let inv = Inventory {
        cluster: info.cluster.clone(),
        nodes: info
            .nodes
            .iter()
            .map(|n| Node {
                name: n.name.clone(),
                reach: Reach::Local,
                keystone_url: n.keystone_url.clone(),
                keystone_conf: n.keystone_conf.clone(),
                fernet_repo: None,
                jws_private_repo: None,
                jws_public_repo: None,
                keystone_user: user.clone(),
                keystone_group: group.clone(),
                restart: shell_word(&n.restart.display().to_string()),
                log_file: Some(n.log_file.clone()),
                unit: None,
                keystone_manage: None,
                sudo: false,
                keygen: KeyGen::Native,
            })
            .collect(),
        load_balancers: info
            .lbs
            .iter()
            .map(|lb| LoadBalancer {
                name: lb.name.clone(),
                reach: Some(Reach::Local),
                socket: Some(lb.socket.clone()),
                address: None,
                sudo: false,
                backend: lb.backend.clone(),
                config: lb.config.clone(),
                frontend_url: Some(lb.frontend_url.clone()),
                servers: lb
                    .servers
                    .iter()
                    .map(|s| (s.node.clone(), s.name.clone()))
                    .collect::<BTreeMap<_, _>>(),
            })
            .collect(),
        credentials: Credentials {
            cloud: Some(info.cloud.clone()),
            clouds_file: Some(info.clouds_path.clone()),
        },
        ssh: None,
        demo_world: Some(info.dir.clone()),
        guard: None,
        loaded_from: None,
    };
    let body = serde_yaml::to_string(&inv)?;
    let text = format!(
        "# Inventory of the cutover demo world in {}.\n# Its nodes and load balancers are stand-ins served by `cutover demo`.\n{body}",
        info.dir.display()
    );
    // What we write must load: fail here rather than in front of the operator.
    Inventory::parse(&text, &info.inventory_path.display().to_string())?;
    Ok(text)
}

/// Move a stopped world off ports that something else took while it was down (ports are
/// picked when the world is made and released between runs). Rewrites world.json,
/// inventory.yaml and clouds.yaml's auth_url; returns one line per moved port.
pub fn relocate_busy_ports(info: &mut WorldInfo) -> anyhow::Result<Vec<String>> {
    let busy = |p: u16| claimed(p) || std::net::TcpListener::bind(("127.0.0.1", p)).is_err();
    let mut moved = Vec::new();
    let old_public = info.public_url();
    let node_busy: Vec<usize> = (0..info.nodes.len())
        .filter(|&i| busy(info.nodes[i].port))
        .collect();
    let lb_busy: Vec<usize> = (0..info.lbs.len())
        .filter(|&i| busy(info.lbs[i].frontend_port))
        .collect();
    if node_busy.is_empty() && lb_busy.is_empty() {
        return Ok(moved);
    }
    let fresh = pick_ports(node_busy.len() + lb_busy.len())?;
    let mut fresh = fresh.into_iter();
    for i in node_busy {
        let port = fresh.next().expect("enough ports");
        let n = &mut info.nodes[i];
        moved.push(format!("{}: port {} was taken, now {port}", n.name, n.port));
        n.port = port;
        n.keystone_url = format!("http://127.0.0.1:{port}");
        for lb in &mut info.lbs {
            for s in &mut lb.servers {
                if s.node == n.name {
                    s.port = port;
                }
            }
        }
    }
    for i in lb_busy {
        let port = fresh.next().expect("enough ports");
        let lb = &mut info.lbs[i];
        moved.push(format!(
            "{} frontend: port {} was taken, now {port}",
            lb.name, lb.frontend_port
        ));
        lb.frontend_port = port;
        lb.frontend_url = format!("http://127.0.0.1:{port}");
    }
    let clouds = fs::read_to_string(&info.clouds_path)?;
    write_mode(
        &info.clouds_path,
        &clouds.replace(&old_public, &info.public_url()),
        0o600,
    )?;
    write_haproxy_configs(info)?;
    write_mode(&info.inventory_path, &inventory_yaml(info)?, 0o644)?;
    write_mode(
        &info.dir.join("world.json"),
        &serde_json::to_string_pretty(info)?,
        0o644,
    )?;
    Ok(moved)
}

/// Write each instance's configuration file (where the world has one): what it binds, its
/// backend and health checks, as the stand-in runs them.
fn write_haproxy_configs(info: &WorldInfo) -> anyhow::Result<()> {
    for lb in &info.lbs {
        if let Some(path) = &lb.config {
            write_mode(path, &haproxy_cfg(info, lb), 0o644)?;
        }
    }
    Ok(())
}

/// A configuration as Debian's HAProxy 2.6 package would run it for this instance: the
/// packaged global and defaults (no `server-state-file`, so a reload puts drained servers back,
/// as on a stock install), one `listen` proxy (the stand-in's frontend and backend are one proxy,
/// as `show stat` shows), health checks as the stand-in runs them.
pub fn haproxy_cfg(info: &WorldInfo, lb: &WorldLb) -> String {
    let mut s = format!(
        "# {name} of the cutover demo world in {dir}.
# What this instance runs, laid out as Debian's haproxy package ships its configuration:
# the stand-in serving the world binds, balances and checks as written here (it does not
# read this file); cutover reads it (the inventory's `config:`) to tell what a reload
# would do. Like the packaged file it has no server-state-file: a reload
# (`cutover world fault DIR hap-reload`) puts every drained server back into the pool.

global
	log /dev/log	local0
	log /dev/log	local1 notice
	stats socket {socket} mode 600 level admin
	stats timeout 30s
	daemon

defaults
	log	global
	mode	http
	option	httplog
	option	dontlognull
	timeout connect 5000
	timeout client  50000
	timeout server  50000

listen {backend}
	bind 127.0.0.1:{port}
	balance roundrobin
	option httpchk GET /v3
",
        name = lb.name,
        dir = info.dir.display(),
        socket = lb.socket.display(),
        backend = lb.backend,
        port = lb.frontend_port,
    );
    for srv in &lb.servers {
        s.push_str(&format!(
            "	server {} 127.0.0.1:{} check inter 1s rise 2 fall 3
",
            srv.name, srv.port
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_words() {
        assert_eq!(
            shell_word("/w/node1/bin/keystone-restart"),
            "/w/node1/bin/keystone-restart"
        );
        assert_eq!(shell_word("/a b/it's"), r"'/a b/it'\''s'");
    }

    #[test]
    fn world_ports_are_distinct_free_and_below_the_ephemeral_range() {
        let floor = ephemeral_floor();
        let ports = pick_ports(40).unwrap();
        let distinct: std::collections::BTreeSet<_> = ports.iter().collect();
        assert_eq!(distinct.len(), 40, "{ports:?}");
        for p in &ports {
            assert!(*p >= WORLD_PORT_FLOOR, "{p}");
            if floor > WORLD_PORT_FLOOR + 1_000 {
                assert!(*p < floor, "{p} is in the ephemeral range from {floor}");
            }
            std::net::TcpListener::bind(("127.0.0.1", *p)).expect("a picked port is free");
        }
    }

    /// A port a served world claims is not picked, nor kept by a relocation, even while
    /// nothing is bound to it (a node restarting); the claim ends with its holder.
    #[test]
    fn a_port_a_served_world_claims_is_taken_even_while_unbound() {
        let ports = pick_ports(3).unwrap();
        let held = claim_ports(ports.iter().copied()).unwrap();
        assert_eq!(held.len(), 3);
        for p in &ports {
            assert!(claimed(*p), "{p}");
            // Nothing is bound to it, and a second world's claim is refused, naming it.
            std::net::TcpListener::bind(("127.0.0.1", *p)).expect("unbound");
            let err = claim_ports([*p]).unwrap_err().to_string();
            assert!(err.contains(&format!("127.0.0.1:{p}")), "{err}");
        }
        // A pick whose range starts at one of them skips it.
        for p in &ports {
            let more = pick_ports_from(p - WORLD_PORT_FLOOR, 5).unwrap();
            assert!(more.iter().all(|m| !ports.contains(m)), "{p}: {more:?}");
        }
        drop(held);
        for p in &ports {
            assert!(!claimed(*p), "{p}");
        }
        let again = claim_ports(ports.iter().copied()).unwrap();
        assert_eq!(again.len(), 3);
    }
}
