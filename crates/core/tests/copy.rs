//! Copies of the repository against the real things: a directory, a real `sshd`
//! started here on a free port (own host key, own client key, own known_hosts), and a
//! real S3 API (`moto_server`, installed by scripts/install-test-deps.sh). Each backend
//! goes through the same scenario: full copy, idempotent second copy, resending what
//! was deleted at the destination, copies cut short after every few files (no
//! manifest may arrive before its chunks; the next run finishes), and pruning.
//!
//! Throughput, by hand: `cargo test --release -p ostler-core --test copy -- --ignored --nocapture`.

use std::collections::{BTreeMap, HashSet};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ostler_core::config::{Config, CopyConfig, CopyTarget};
use ostler_core::copy::{
    copy_repository, list_backups, open_backend, plan_prune_copy, prune_copy, Backend,
};
use ostler_core::report::{Interrupt, Silent};
use ostler_core::{Error, ErrorKind, Result};
use ostler_repo::{Repository, StreamRef};
use serde_json::{json, Value};
use tempfile::TempDir;

// ---------------------------------------------------------------- test data

/// `len` incompressible bytes from `seed` (SplitMix64).
fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A repository with `backups` backups shaped like ostler's: a table stream sharing
/// most of its chunks with the other backups, and a store whose listing names three
/// file streams.
fn build_repo(path: &Path, backups: u64) -> Repository {
    let repo = Repository::init(path).unwrap();
    let shared = random_bytes(1, 600_000);
    for b in 0..backups {
        let mut table = shared.clone();
        table.extend(random_bytes(1000 + b, 100_000));
        let (base, _) = repo.write_bytes(&table).unwrap();
        let files: Vec<Value> = (0..3)
            .map(|f| {
                let data = random_bytes(b * 10 + f, 90_000 + 1000 * f as usize);
                let (stream, _) = repo.write_bytes(&data).unwrap();
                json!({"path": format!("f{f}"), "size": data.len(), "stream": stream})
            })
            .collect();
        let (listing, _) = repo
            .write_bytes(&serde_json::to_vec(&files).unwrap())
            .unwrap();
        let id = format!("2025010{b}T000000Z-gb-1");
        let manifest = json!({
            "id": id,
            "database": {"tables": [{"spec": {"name": "entry"}, "base": base, "deltas": []}]},
            "stores": [{"name": "uploads", "listing": listing, "files": 3, "bytes": 0}],
        });
        repo.put_file(
            &format!("backups/{id}.json"),
            &serde_json::to_vec(&manifest).unwrap(),
        )
        .unwrap();
    }
    repo
}

/// Every file a copy of the repository must hold: relative path → content.
fn repo_files(repo: &Repository) -> BTreeMap<String, Vec<u8>> {
    let root = repo.path();
    let mut out = BTreeMap::new();
    out.insert(
        "config.json".into(),
        std::fs::read(root.join("config.json")).unwrap(),
    );
    for id in repo.chunk_ids().unwrap() {
        let bytes = std::fs::read(repo.chunk_path(&id).unwrap()).unwrap();
        out.insert(format!("chunks/{}/{id}", &id[..2]), bytes);
    }
    for name in repo.list_files("").unwrap() {
        out.insert(format!("files/{name}"), repo.get_file(&name).unwrap());
    }
    out
}

fn chunk_paths(stream: &StreamRef, out: &mut HashSet<String>) {
    for c in &stream.chunks {
        out.insert(format!("chunks/{}/{}", &c.id[..2], c.id));
    }
}

/// The chunk paths backup `id` needs, read from the local repository.
fn needed_by(repo: &Repository, id: &str) -> HashSet<String> {
    let manifest: Value =
        serde_json::from_slice(&repo.get_file(&format!("backups/{id}.json")).unwrap()).unwrap();
    let mut out = HashSet::new();
    for table in manifest["database"]["tables"].as_array().unwrap() {
        chunk_paths(
            &serde_json::from_value(table["base"].clone()).unwrap(),
            &mut out,
        );
    }
    for store in manifest["stores"].as_array().unwrap() {
        let listing: StreamRef = serde_json::from_value(store["listing"].clone()).unwrap();
        chunk_paths(&listing, &mut out);
        let files: Vec<Value> =
            serde_json::from_slice(&repo.read_to_vec(&listing).unwrap()).unwrap();
        for f in files {
            chunk_paths(
                &serde_json::from_value(f["stream"].clone()).unwrap(),
                &mut out,
            );
        }
    }
    out
}

fn backup_ids(repo: &Repository) -> Vec<String> {
    let names = repo.list_files("backups").unwrap();
    names
        .iter()
        .map(|n| n["backups/".len()..n.len() - ".json".len()].to_string())
        .collect()
}

// ---------------------------------------------------------------- checks

/// The copy holds exactly `expected`, byte for byte.
fn assert_copy_is(backend: &dyn Backend, expected: &BTreeMap<String, Vec<u8>>) {
    let listed = backend.list("").unwrap();
    assert_eq!(
        listed,
        expected.keys().cloned().collect::<Vec<_>>(),
        "{}",
        backend.describe()
    );
    for (path, bytes) in expected {
        assert!(
            backend.get(path).unwrap() == *bytes,
            "{path} differs at {}",
            backend.describe()
        );
    }
}

/// Every backup listed at the destination has all its chunks there.
fn assert_only_complete_backups(backend: &dyn Backend, repo: &Repository) {
    let present: HashSet<String> = backend.list("").unwrap().into_iter().collect();
    for id in list_backups(backend).unwrap() {
        let missing: Vec<_> = needed_by(repo, &id)
            .into_iter()
            .filter(|c| !present.contains(c))
            .collect();
        assert!(
            missing.is_empty(),
            "backup {id} arrived before its chunks {missing:?}"
        );
    }
}

/// A backend that records its puts and fails every put after the first `allowed`.
struct Watch<'a> {
    inner: &'a dyn Backend,
    allowed: AtomicI64,
    puts: Mutex<Vec<String>>,
}

impl<'a> Watch<'a> {
    fn new(inner: &'a dyn Backend) -> Self {
        Watch::failing_after(inner, i64::MAX)
    }
    fn failing_after(inner: &'a dyn Backend, allowed: i64) -> Self {
        Watch {
            inner,
            allowed: AtomicI64::new(allowed),
            puts: Mutex::new(Vec::new()),
        }
    }
    fn puts(&self) -> Vec<String> {
        self.puts.lock().unwrap().clone()
    }
}

impl Backend for Watch<'_> {
    fn list(&self, prefix_dir: &str) -> Result<Vec<String>> {
        self.inner.list(prefix_dir)
    }
    fn exists(&self, path: &str) -> Result<bool> {
        self.inner.exists(path)
    }
    fn put(&self, path: &str, local_file: &Path) -> Result<()> {
        if self.allowed.fetch_sub(1, Ordering::SeqCst) <= 0 {
            return Err(Error::failed("simulated: the link dropped"));
        }
        self.inner.put(path, local_file)?;
        self.puts.lock().unwrap().push(path.to_string());
        Ok(())
    }
    fn get(&self, path: &str) -> Result<Vec<u8>> {
        self.inner.get(path)
    }
    fn remove(&self, path: &str) -> Result<()> {
        self.inner.remove(path)
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
}

fn copy(repo: &Repository, backend: &dyn Backend) -> Result<ostler_core::copy::CopyStats> {
    copy_repository(repo.path(), backend, &Silent, &Interrupt::new())
}

// ---------------------------------------------------------------- the scenario

/// Runs the whole scenario against fresh destinations made by `make(name)`.
fn exercise(make: &dyn Fn(&str) -> Box<dyn Backend>) {
    let tmp = tempfile::tempdir().unwrap();
    let repo = build_repo(&tmp.path().join("repo"), 3);
    let expected = repo_files(&repo);
    let total = expected.len() as u64;

    // A full copy: config.json first, every chunk before any manifest.
    let dest = make("main");
    let watch = Watch::new(dest.as_ref());
    let stats = copy(&repo, &watch).unwrap();
    assert_eq!(stats.files_sent, total);
    assert_eq!(
        stats.bytes_sent,
        expected.values().map(|b| b.len() as u64).sum::<u64>()
    );
    assert_eq!(stats.files_present, 0);
    let puts = watch.puts();
    assert_eq!(puts[0], "config.json");
    let first_file = puts.iter().position(|p| p.starts_with("files/")).unwrap();
    assert!(
        puts[first_file..].iter().all(|p| p.starts_with("files/")),
        "{puts:?}"
    );
    assert_copy_is(dest.as_ref(), &expected);
    assert_eq!(list_backups(dest.as_ref()).unwrap(), backup_ids(&repo));

    // A second copy sends nothing.
    let stats = copy(&repo, dest.as_ref()).unwrap();
    assert_eq!(
        (stats.files_sent, stats.bytes_sent, stats.files_present),
        (0, 0, total)
    );

    // What was deleted at the destination is sent again, and only that.
    let chunks: Vec<&String> = expected
        .keys()
        .filter(|p| p.starts_with("chunks/"))
        .collect();
    let mut victims = vec![chunks[0].clone(), chunks[chunks.len() / 2].clone()];
    victims.push(format!("files/backups/{}.json", backup_ids(&repo)[1]));
    for v in &victims {
        dest.remove(v).unwrap();
        assert!(!dest.exists(v).unwrap());
    }
    dest.remove(&victims[0]).unwrap(); // removing a missing file is fine
    let watch = Watch::new(dest.as_ref());
    let stats = copy(&repo, &watch).unwrap();
    let mut resent = watch.puts();
    resent.sort();
    victims.sort();
    assert_eq!(resent, victims);
    assert_eq!(stats.files_present, total - 3);
    assert_copy_is(dest.as_ref(), &expected);

    // Copies cut short after n files hold only complete backups, and the next run
    // sends exactly what is missing.
    let chunk_count = chunks.len() as i64;
    for n in [0, 1, 5, chunk_count, chunk_count + 2, total as i64 - 1] {
        let cut = make(&format!("cut-{n}"));
        let watch = Watch::failing_after(cut.as_ref(), n);
        let err = copy(&repo, &watch).unwrap_err();
        assert!(err.to_string().contains("simulated"), "{err}");
        assert_only_complete_backups(cut.as_ref(), &repo);
        assert_eq!(cut.list("").unwrap().len() as i64, n, "after a cut at {n}");
        let stats = copy(&repo, cut.as_ref()).unwrap();
        assert_eq!(
            (stats.files_sent as i64, stats.files_present as i64),
            (total as i64 - n, n)
        );
        assert_copy_is(cut.as_ref(), &expected);
    }

    // An interrupt stops the copy before it sends anything more.
    let stopped = make("interrupted");
    let interrupt = Interrupt::new();
    interrupt.set();
    let err = copy_repository(repo.path(), stopped.as_ref(), &Silent, &interrupt).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Interrupted);
    assert!(stopped.list("").unwrap().is_empty());

    // Retention removed the first backup locally and gc its chunks: prune follows,
    // removing the manifest, the chunks nothing needs, and a stale upload.
    let gone = backup_ids(&repo)[0].clone();
    repo.remove_file(&format!("backups/{gone}.json")).unwrap();
    let live: HashSet<String> = backup_ids(&repo)
        .iter()
        .flat_map(|id| needed_by(&repo, id))
        .map(|p| p.rsplit('/').next().unwrap().to_string())
        .collect();
    let gc = {
        let _lock = repo.lock_exclusive().unwrap();
        repo.gc(&live).unwrap()
    };
    assert!(gc.removed_chunks > 0);
    let stale = tmp.path().join("stale");
    std::fs::write(&stale, b"half an upload").unwrap();
    dest.put("chunks/00/.ostler-tmp-1-2-3", &stale).unwrap();

    let plan = plan_prune_copy(repo.path(), dest.as_ref()).unwrap();
    assert_eq!(plan.files, vec![format!("files/backups/{gone}.json")]);
    assert_eq!(plan.chunks.len() as u64, gc.removed_chunks);
    assert_eq!(
        plan.temporaries,
        vec!["chunks/00/.ostler-tmp-1-2-3".to_string()]
    );
    let stats = prune_copy(repo.path(), dest.as_ref()).unwrap();
    assert_eq!(
        (
            stats.files_removed,
            stats.chunks_removed,
            stats.temporaries_removed
        ),
        (1, gc.removed_chunks, 1)
    );
    assert_copy_is(dest.as_ref(), &repo_files(&repo));
    assert_eq!(list_backups(dest.as_ref()).unwrap(), backup_ids(&repo));
    assert_eq!(
        prune_copy(repo.path(), dest.as_ref()).unwrap(),
        Default::default()
    );
    let stats = copy(&repo, dest.as_ref()).unwrap();
    assert_eq!(stats.files_sent, 0);
}

/// A config in `dir` with one copy, `offsite`, going to `target`. Built in code, not
/// parsed: see `copies_parse_from_toml`.
fn config_with(dir: &Path, target: CopyTarget) -> Config {
    let text = "[service]\nname = \"gb\"\n\n[repository]\npath = \"repo\"\n";
    let mut config = Config::parse(text, &dir.join("ostler.toml")).unwrap();
    let copies = &mut config.repository.as_mut().unwrap().copies;
    copies.push(CopyConfig {
        name: "offsite".into(),
        target,
    });
    config
}

fn backend_for(dir: &Path, target: CopyTarget) -> Result<Box<dyn Backend>> {
    let config = config_with(dir, target);
    let copy = &config.repository.as_ref().unwrap().copies[0];
    open_backend(&config, copy)
}

fn dir_target(path: &str) -> CopyTarget {
    CopyTarget::Dir { path: path.into() }
}

#[test]
#[ignore = "config.rs: `deny_unknown_fields` on CopyConfig, which flattens CopyTarget, \
            rejects every key of the target (\"unknown field `kind`\")"]
fn copies_parse_from_toml() {
    let text = "[service]\nname = \"gb\"\n\n[repository]\npath = \"repo\"\n\n\
                [[repository.copies]]\nname = \"offsite\"\nkind = \"sftp\"\nhost = \"nas\"\n\
                port = 2222\npath = \"/srv/ostler\"\n\n\
                [[repository.copies]]\nname = \"cloud\"\nkind = \"s3\"\n\
                endpoint = \"http://127.0.0.1:9000\"\nbucket = \"b\"\n";
    let config = Config::parse(text, Path::new("/etc/ostler/ostler.toml")).unwrap();
    let copies = &config.repository.unwrap().copies;
    assert!(matches!(
        &copies[0].target,
        CopyTarget::Sftp {
            port: Some(2222),
            ..
        }
    ));
    assert!(matches!(&copies[1].target, CopyTarget::S3 { region, .. } if region == "us-east-1"));
}

// ---------------------------------------------------------------- directory

#[test]
fn copy_to_a_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().to_path_buf();
    exercise(&|name| backend_for(&base, dir_target(&format!("copies/{name}"))).unwrap());
    // Relative paths are relative to the config file, and a directory copy is itself
    // a repository that reads back.
    let copy = Repository::open(&base.join("copies/main")).unwrap();
    assert!(!copy.list_files("backups").unwrap().is_empty());
}

#[test]
fn a_destination_holding_another_repository_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let one = build_repo(&tmp.path().join("one"), 1);
    let two = build_repo(&tmp.path().join("two"), 1);
    let dest = backend_for(tmp.path(), dir_target("copy")).unwrap();
    copy(&one, dest.as_ref()).unwrap();
    let err = copy(&two, dest.as_ref()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::User);
    assert!(
        err.to_string().contains("holds another repository"),
        "{err}"
    );
    let err = prune_copy(two.path(), dest.as_ref()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::User);
}

// ---------------------------------------------------------------- SFTP

/// Runs `program args` and fails the test with its output if it fails.
fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Waits until something listens on `port`; fails with `log` if `child` exits first.
fn wait_for_port(port: u16, child: &mut Child, log: &Path, within: Duration) {
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "server exited with {status}: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(
            start.elapsed() < within,
            "server not listening on {port} after {within:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A throwaway sshd on a free port of 127.0.0.1 that lets the current user in with a
/// key made for it; gone when dropped.
struct Sshd {
    child: Child,
    dir: TempDir,
    port: u16,
    user: String,
}

impl Sshd {
    fn start() -> Sshd {
        let sshd = ["/usr/sbin/sshd", "/usr/bin/sshd"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("sshd is not installed: run scripts/install-test-deps.sh");
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for key in ["host_key", "client_key"] {
            let path = d.join(key);
            run(
                "ssh-keygen",
                &[
                    "-q",
                    "-t",
                    "ed25519",
                    "-N",
                    "",
                    "-f",
                    path.to_str().unwrap(),
                ],
            );
        }
        std::fs::copy(d.join("client_key.pub"), d.join("authorized_keys")).unwrap();
        let user = run("id", &["-un"]);
        let is_root = run("id", &["-u"]) == "0";
        if is_root {
            // sshd's privilege separation directory, which a service start would make.
            std::fs::create_dir_all("/run/sshd").unwrap();
        }
        let port = ostler_testsupport::free_port();
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\n\
             AuthorizedKeysFile {d}/authorized_keys\nStrictModes no\nPermitRootLogin prohibit-password\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n\
             Subsystem sftp internal-sftp\nLogLevel VERBOSE\n",
            d = d.display()
        );
        std::fs::write(d.join("sshd_config"), config).unwrap();
        let log = d.join("sshd.log");
        let mut child = Command::new(sshd)
            .args(["-D", "-e", "-f"])
            .arg(d.join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        wait_for_port(port, &mut child, &log, Duration::from_secs(20));
        let host_key = std::fs::read_to_string(d.join("host_key.pub")).unwrap();
        let mut fields = host_key.split_whitespace();
        let (kind, key) = (fields.next().unwrap(), fields.next().unwrap());
        std::fs::write(
            d.join("known_hosts"),
            format!("[127.0.0.1]:{port} {kind} {key}\n"),
        )
        .unwrap();
        Sshd {
            child,
            dir,
            port,
            user,
        }
    }

    /// A copy at `path` on this server.
    fn target(&self, path: &str) -> CopyTarget {
        CopyTarget::Sftp {
            host: "127.0.0.1".into(),
            user: Some(self.user.clone()),
            port: Some(self.port),
            path: path.into(),
            identity_file: Some(self.dir.path().join("client_key")),
            known_hosts: Some(self.dir.path().join("known_hosts")),
        }
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn copy_over_sftp_to_a_real_sshd() {
    let sshd = Sshd::start();
    let remote = tempfile::tempdir().unwrap();
    let root = remote.path().join("deep/copies");
    let base = tempfile::tempdir().unwrap();
    exercise(&|name| {
        let path = format!("{}/{name}", root.display());
        backend_for(base.path(), sshd.target(&path)).unwrap()
    });
    // The server's files are the repository's layout.
    assert!(root.join("main/config.json").is_file());
}

#[test]
fn sftp_with_a_wrong_host_key_says_what_ssh_said() {
    let sshd = Sshd::start();
    let other = tempfile::tempdir().unwrap();
    let key = other.path().join("key");
    run(
        "ssh-keygen",
        &["-q", "-t", "ed25519", "-N", "", "-f", key.to_str().unwrap()],
    );
    let public = std::fs::read_to_string(other.path().join("key.pub")).unwrap();
    let mut fields = public.split_whitespace();
    let line = format!(
        "[127.0.0.1]:{} {} {}\n",
        sshd.port,
        fields.next().unwrap(),
        fields.next().unwrap()
    );
    std::fs::write(sshd.dir.path().join("known_hosts"), line).unwrap();
    let base = tempfile::tempdir().unwrap();
    let err = backend_for(base.path(), sshd.target("/tmp/never"))
        .err()
        .expect("connects");
    let text = err.to_string();
    assert_eq!(err.kind(), ErrorKind::Failed, "{text}");
    assert!(text.starts_with("copy `offsite`: sftp "), "{text}");
    assert!(text.contains("Host key verification failed"), "{text}");
    assert!(err.hint().is_some());
}

// ---------------------------------------------------------------- S3

/// A throwaway moto S3 server with one bucket, or `None` (with the reason printed)
/// when moto is not installed.
struct Moto {
    child: Child,
    port: u16,
    _dir: TempDir,
}

const BUCKET: &str = "ostler-copies";

impl Moto {
    fn start() -> Option<Moto> {
        let found = |program: &str, args: &[&str]| {
            Command::new(program)
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        let port = ostler_testsupport::free_port();
        let port_text = port.to_string();
        let mut command = if found("moto_server", &["--help"]) {
            Command::new("moto_server")
        } else if found("python3", &["-c", "import moto.server"]) {
            let mut c = Command::new("python3");
            c.args(["-m", "moto.server"]);
            c
        } else {
            println!("SKIPPED: neither moto_server nor `python3 -m moto.server` exists; run scripts/install-test-deps.sh");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("moto.log");
        let mut child = command
            .args(["-p", &port_text, "-H", "127.0.0.1"])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(dir.path().join("moto.err")).unwrap())
            .spawn()
            .unwrap();
        wait_for_port(
            port,
            &mut child,
            &dir.path().join("moto.err"),
            Duration::from_secs(60),
        );
        ureq::put(&format!("http://127.0.0.1:{port}/{BUCKET}"))
            .call()
            .unwrap();
        Some(Moto {
            child,
            port,
            _dir: dir,
        })
    }

    /// A copy under `prefix` in `bucket` on this server.
    fn target(&self, bucket: &str, prefix: &str, secret_env: &str) -> CopyTarget {
        CopyTarget::S3 {
            endpoint: format!("http://127.0.0.1:{}", self.port),
            bucket: bucket.into(),
            region: "us-east-1".into(),
            prefix: Some(prefix.into()),
            access_key_env: "OSTLER_TEST_S3_KEY".into(),
            secret_key_env: secret_env.into(),
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn set_test_s3_keys() {
    // Only this binary's S3 tests read these two names.
    std::env::set_var("OSTLER_TEST_S3_KEY", "testing-key");
    std::env::set_var("OSTLER_TEST_S3_SECRET", "testing-secret");
}

#[test]
fn copy_to_s3_on_a_real_moto_server() {
    let Some(moto) = Moto::start() else { return };
    set_test_s3_keys();
    let base = tempfile::tempdir().unwrap();
    let secret = "OSTLER_TEST_S3_SECRET";
    exercise(&|name| {
        let target = moto.target(BUCKET, &format!("ostler/{name}"), secret);
        backend_for(base.path(), target).unwrap()
    });
    let unset = moto.target(BUCKET, "x", "OSTLER_TEST_S3_UNSET");
    let err = backend_for(base.path(), unset).err().expect("refuses");
    assert_eq!(err.kind(), ErrorKind::User);
    assert_eq!(
        err.to_string(),
        "copy `offsite`: environment variable OSTLER_TEST_S3_UNSET is not set"
    );
    let missing = moto.target("no-such-bucket", "x", secret);
    let err = backend_for(base.path(), missing)
        .unwrap()
        .list("")
        .unwrap_err();
    assert!(err.to_string().contains("NoSuchBucket"), "{err}");
    assert!(!err.to_string().contains("X-Amz-Signature"), "{err}");
}

// ---------------------------------------------------------------- throughput

#[test]
#[ignore = "prints throughput; run by hand with --release"]
fn copy_throughput_of_100_megabytes_of_chunks() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repository::init(&tmp.path().join("repo")).unwrap();
    repo.write_bytes(&random_bytes(7, 100 * 1024 * 1024))
        .unwrap();
    let measure = |label: &str, backend: Box<dyn Backend>| {
        let start = Instant::now();
        let stats = copy(&repo, backend.as_ref()).unwrap();
        let seconds = start.elapsed().as_secs_f64();
        println!(
            "{label}: {} files, {:.1} MB in {seconds:.2} s = {:.1} MB/s",
            stats.files_sent,
            stats.bytes_sent as f64 / 1e6,
            stats.bytes_sent as f64 / 1e6 / seconds
        );
    };
    measure(
        "dir",
        backend_for(tmp.path(), dir_target("dircopy")).unwrap(),
    );
    let sshd = Sshd::start();
    let remote = tempfile::tempdir().unwrap();
    let path = remote.path().join("copy");
    measure(
        "sftp",
        backend_for(tmp.path(), sshd.target(path.to_str().unwrap())).unwrap(),
    );
    if let Some(moto) = Moto::start() {
        set_test_s3_keys();
        measure(
            "s3 (moto)",
            backend_for(
                tmp.path(),
                moto.target(BUCKET, "bench", "OSTLER_TEST_S3_SECRET"),
            )
            .unwrap(),
        );
    }
}
