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
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ostler_core::backup::repository::{Access, OpenRepository};
use ostler_core::clock::Clock;
use ostler_core::config::{Config, CopyConfig, CopyTarget};
use ostler_core::copy::{
    copy_repository, list_backups, open_backend, plan_prune_copy, prune_copy, Backend,
};
use ostler_core::exec::Runner;
use ostler_core::report::{Interrupt, Reporter, Silent};
use ostler_core::state::State;
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
        let listing = repo
            .write_bytes(&serde_json::to_vec(&files).unwrap())
            .unwrap()
            .0;
        let id = format!("2025010{b}T000000Z-gb-1");
        let manifest = json!({
            "id": id,
            "database": {"tables": [{"spec": {"name": "entry"}, "base": base, "deltas": []}]},
            "stores": [{"name": "uploads", "listing": listing, "files": 3, "bytes": 0}],
        });
        let bytes = serde_json::to_vec(&manifest).unwrap();
        repo.put_file(&format!("backups/{id}.json"), &bytes)
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

/// The chunk paths backup `id` needs: its streams' chunks, and those of the files its
/// store listings name.
fn needed_by(repo: &Repository, id: &str) -> HashSet<String> {
    let stream = |v: &Value| serde_json::from_value::<StreamRef>(v.clone()).unwrap();
    let manifest: Value =
        serde_json::from_slice(&repo.get_file(&format!("backups/{id}.json")).unwrap()).unwrap();
    let mut streams: Vec<StreamRef> = manifest["database"]["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| stream(&t["base"]))
        .collect();
    for store in manifest["stores"].as_array().unwrap() {
        let listing = stream(&store["listing"]);
        let files: Vec<Value> =
            serde_json::from_slice(&repo.read_to_vec(&listing).unwrap()).unwrap();
        streams.extend(files.iter().map(|f| stream(&f["stream"])));
        streams.push(listing);
    }
    let chunks = streams.iter().flat_map(|s| &s.chunks);
    chunks
        .map(|c| format!("chunks/{}/{}", &c.id[..2], c.id))
        .collect()
}

fn backup_ids(repo: &Repository) -> Vec<String> {
    let names = repo.list_files("backups").unwrap();
    let id = |n: &String| n["backups/".len()..n.len() - ".json".len()].to_string();
    names.iter().map(id).collect()
}

// ---------------------------------------------------------------- checks

/// The copy holds exactly `expected`, byte for byte.
fn assert_copy_is(backend: &dyn Backend, expected: &BTreeMap<String, Vec<u8>>) {
    let (listed, at) = (backend.list("").unwrap(), backend.describe());
    assert_eq!(listed, expected.keys().cloned().collect::<Vec<_>>(), "{at}");
    for (path, bytes) in expected {
        assert!(
            backend.get(path).unwrap() == *bytes,
            "{path} differs at {at}"
        );
    }
}

/// Every backup listed at the destination has all its chunks there.
fn assert_only_complete_backups(backend: &dyn Backend, repo: &Repository) {
    let present: HashSet<String> = backend.list("").unwrap().into_iter().collect();
    for id in list_backups(backend).unwrap() {
        let mut missing = needed_by(repo, &id)
            .into_iter()
            .filter(|c| !present.contains(c));
        assert_eq!(
            missing.next(),
            None,
            "backup {id} arrived before this chunk"
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

/// The repository as ostler reads it: through a handle holding the shared lock.
fn shared(repo: &Repository) -> OpenRepository {
    OpenRepository::at(repo.path(), Access::Shared).unwrap()
}

fn copy(repo: &Repository, backend: &dyn Backend) -> Result<ostler_core::copy::CopyStats> {
    copy_repository(&shared(repo), backend, &Silent, &Interrupt::new())
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
    let bytes: u64 = expected.values().map(|b| b.len() as u64).sum();
    assert_eq!(
        (stats.files_sent, stats.bytes_sent, stats.files_present),
        (total, bytes, 0)
    );
    let puts = watch.puts();
    assert_eq!(puts[0], "config.json");
    let first_file = puts.iter().position(|p| p.starts_with("files/")).unwrap();
    let manifests_last = puts[first_file..].iter().all(|p| p.starts_with("files/"));
    assert!(manifests_last, "{puts:?}");
    assert_eq!(list_backups(dest.as_ref()).unwrap(), backup_ids(&repo));
    // A put over an existing file succeeds and leaves no upload behind.
    dest.put("config.json", &repo.path().join("config.json"))
        .unwrap();
    assert_copy_is(dest.as_ref(), &expected);

    // A second copy sends nothing.
    let s = copy(&repo, dest.as_ref()).unwrap();
    assert_eq!((s.files_sent, s.bytes_sent, s.files_present), (0, 0, total));

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
        let s = copy(&repo, cut.as_ref()).unwrap();
        assert_eq!(
            (s.files_sent as i64, s.files_present as i64),
            (total as i64 - n, n)
        );
        assert_copy_is(cut.as_ref(), &expected);
    }

    // An interrupt stops the copy before it sends anything more.
    let stopped = make("interrupted");
    let interrupt = Interrupt::new();
    interrupt.set();
    let err = copy_repository(&shared(&repo), stopped.as_ref(), &Silent, &interrupt).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Interrupted);
    assert!(stopped.list("").unwrap().is_empty());

    // Retention removed the first backup locally and gc its chunks: prune follows,
    // removing the manifest, the chunks nothing needs, and a stale upload.
    let gone = backup_ids(&repo)[0].clone();
    repo.remove_file(&format!("backups/{gone}.json")).unwrap();
    let needed = backup_ids(&repo)
        .iter()
        .flat_map(|id| needed_by(&repo, id))
        .collect::<Vec<_>>();
    let live: HashSet<String> = needed.iter().map(|p| p[10..].to_string()).collect();
    let gc = {
        let _lock = repo.lock_exclusive().unwrap();
        repo.gc(&live).unwrap()
    };
    assert!(gc.removed_chunks > 0);
    let stale = tmp.path().join("stale");
    std::fs::write(&stale, b"half an upload").unwrap();
    dest.put("chunks/00/.ostler-tmp-1-2-3", &stale).unwrap();

    let plan = plan_prune_copy(&shared(&repo), dest.as_ref()).unwrap();
    assert_eq!(plan.files, vec![format!("files/backups/{gone}.json")]);
    assert_eq!(plan.chunks.len() as u64, gc.removed_chunks);
    assert_eq!(plan.temporaries, ["chunks/00/.ostler-tmp-1-2-3"]);
    let s = prune_copy(&shared(&repo), dest.as_ref()).unwrap();
    let removed = (s.files_removed, s.chunks_removed, s.temporaries_removed);
    assert_eq!(removed, (1, gc.removed_chunks, 1));
    assert_copy_is(dest.as_ref(), &repo_files(&repo));
    assert_eq!(list_backups(dest.as_ref()).unwrap(), backup_ids(&repo));
    let again = prune_copy(&shared(&repo), dest.as_ref()).unwrap();
    assert_eq!(again, Default::default());
    assert_eq!(copy(&repo, dest.as_ref()).unwrap().files_sent, 0);
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
    backend_with(
        dir,
        target,
        &Runner::new(Arc::new(Silent), Interrupt::new()),
    )
}

fn backend_with(dir: &Path, target: CopyTarget, runner: &Runner) -> Result<Box<dyn Backend>> {
    let config = config_with(dir, target);
    let copy = &config.repository.as_ref().unwrap().copies[0];
    open_backend(&config, copy, runner)
}

fn dir_target(path: &str) -> CopyTarget {
    CopyTarget::Dir { path: path.into() }
}

#[test]
fn copies_parse_from_toml() {
    let text = "[service]\nname = \"gb\"\n\n[repository]\npath = \"repo\"\n\n\
                [[repository.copies]]\nname = \"offsite\"\nkind = \"sftp\"\nhost = \"nas\"\n\
                port = 2222\npath = \"/srv/ostler\"\n\n\
                [[repository.copies]]\nname = \"cloud\"\nkind = \"s3\"\n\
                endpoint = \"http://127.0.0.1:9000\"\nbucket = \"b\"\n";
    let config = Config::parse(text, Path::new("/etc/ostler/ostler.toml")).unwrap();
    let copies = &config.repository.unwrap().copies;
    let CopyTarget::Sftp { port, .. } = &copies[0].target else {
        panic!("{copies:?}")
    };
    assert_eq!(*port, Some(2222));
    assert!(matches!(&copies[1].target, CopyTarget::S3 { region, .. } if region == "us-east-1"));
    // An unknown key in a copy is still refused, pointing at it.
    let bad = text.replace("port = 2222", "prot = 2222");
    let err = Config::parse(&bad, Path::new("ostler.toml"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("prot"), "{err}");
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
    let err = prune_copy(&shared(&two), dest.as_ref()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::User);
}

// ---------------------------------------------------------------- servers

/// A server process started by a test, in its own temp dir; killed when dropped.
struct Server {
    child: Child,
    dir: TempDir,
    port: u16,
}

impl Server {
    /// Starts `command` (with a log file in `dir`) and waits until it listens on `port`.
    fn start(mut command: Command, dir: TempDir, port: u16, within: Duration) -> Server {
        let log_path = dir.path().join("server.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let mut child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                panic!("{command:?} exited with {status}: {log}");
            }
            assert!(
                start.elapsed() < within,
                "{command:?}: no listener on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Server { child, dir, port }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `program args`, failing the test with its stderr if it fails; its stdout.
fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{program} {args:?}: {stderr}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Makes an ed25519 key pair at `path`; returns the public key as `type base64`.
fn keygen(path: &Path) -> String {
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
    let public = std::fs::read_to_string(path.with_extension("pub")).unwrap();
    public
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

// ---------------------------------------------------------------- SFTP

/// A throwaway sshd on a free port of 127.0.0.1 that lets the current user in with a
/// key made for the test, with a known_hosts file naming its host key.
struct Sshd {
    server: Server,
    user: String,
}

impl Sshd {
    fn start() -> Sshd {
        let sshd = ["/usr/sbin/sshd", "/usr/bin/sshd"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("sshd is not installed: run scripts/install-test-deps.sh");
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        let host_key = keygen(&dir.path().join("host_key"));
        keygen(&dir.path().join("client_key"));
        std::fs::copy(
            dir.path().join("client_key.pub"),
            dir.path().join("authorized_keys"),
        )
        .unwrap();
        if run("id", &["-u"]) == "0" {
            // sshd's privilege separation directory, which a service start would make.
            std::fs::create_dir_all("/run/sshd").unwrap();
        }
        let port = ostler_testsupport::free_port();
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\n\
             AuthorizedKeysFile {d}/authorized_keys\nStrictModes no\n\
             PermitRootLogin prohibit-password\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nUsePAM no\nSubsystem sftp internal-sftp\n"
        );
        std::fs::write(dir.path().join("sshd_config"), config).unwrap();
        let known = format!("[127.0.0.1]:{port} {host_key}\n");
        std::fs::write(dir.path().join("known_hosts"), known).unwrap();
        let mut command = Command::new(sshd);
        command
            .args(["-D", "-e", "-f"])
            .arg(dir.path().join("sshd_config"));
        let server = Server::start(command, dir, port, Duration::from_secs(20));
        Sshd {
            server,
            user: run("id", &["-un"]),
        }
    }

    /// A copy at `path` on this server.
    fn target(&self, path: &str) -> CopyTarget {
        CopyTarget::Sftp {
            host: "127.0.0.1".into(),
            user: Some(self.user.clone()),
            port: Some(self.server.port),
            path: path.into(),
            identity_file: Some(self.server.dir.path().join("client_key")),
            known_hosts: Some(self.server.dir.path().join("known_hosts")),
        }
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

    // A server whose host key is not the known one is refused, and ssh's words say why.
    let other_key = keygen(&remote.path().join("other_key"));
    let known = format!("[127.0.0.1]:{} {other_key}\n", sshd.server.port);
    std::fs::write(sshd.server.dir.path().join("known_hosts"), known).unwrap();
    let err = backend_for(base.path(), sshd.target("/tmp/never"))
        .err()
        .expect("refused");
    let text = err.to_string();
    assert_eq!(err.kind(), ErrorKind::Failed, "{text}");
    let start = format!("copy `offsite`: sftp {}@127.0.0.1:/tmp/never", sshd.user);
    assert!(text.starts_with(&start), "{text}");
    assert!(text.contains("Host key verification failed"), "{text}");
    assert!(err.hint().is_some());
}

/// Keeps the commands a runner announces, as `-v` would print them.
#[derive(Default)]
struct Commands(Mutex<Vec<String>>);

impl Reporter for Commands {
    fn command(&self, line: &str) {
        self.0.lock().unwrap().push(line.to_string());
    }
}

#[test]
fn the_ssh_of_an_sftp_copy_is_echoed_and_journaled_with_its_end() {
    let sshd = Sshd::start();
    let remote = tempfile::tempdir().unwrap();
    let base = tempfile::tempdir().unwrap();
    let state_dir = base.path().join("state");
    let state = State::open(&state_dir, Clock::system()).unwrap();
    let id = state
        .journal_begin("copy", None, Some("to offsite"))
        .unwrap();
    let echoed = Arc::new(Commands::default());
    let runner = Runner::new(echoed.clone(), Interrupt::new()).journaled(&state, id);
    let path = remote.path().join("copy").display().to_string();
    let backend = backend_with(base.path(), sshd.target(&path), &runner).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let repo = build_repo(&tmp.path().join("repo"), 1);
    copy(&repo, backend.as_ref()).unwrap();
    let started = Instant::now();
    drop(backend);

    let echoed = echoed.0.lock().unwrap().clone();
    assert_eq!(echoed.len(), 1, "{echoed:?}");
    assert!(
        echoed[0].starts_with("ssh -o BatchMode=yes -p "),
        "{echoed:?}"
    );
    assert!(echoed[0].ends_with(" -s -- 127.0.0.1 sftp"), "{echoed:?}");
    let entry = state.journal(None, 1).unwrap().pop().unwrap();
    assert_eq!(entry.commands.len(), 1, "{entry:?}");
    let ssh = &entry.commands[0];
    assert_eq!(ssh.command, echoed[0]);
    // It ran the whole copy and ended when the backend closed the session.
    assert_eq!(ssh.exit_status, Some(0), "{ssh:?}");
    let ran = Duration::from_millis(ssh.duration_ms.unwrap() as u64);
    assert!(ran > Duration::ZERO && ran < started.elapsed() + Duration::from_secs(60));
    assert!(ssh.pid.is_some_and(|p| p > 0), "{ssh:?}");

    // A refused connection is journaled too, with ssh's exit status.
    let id = state
        .journal_begin("copy", None, Some("to nowhere"))
        .unwrap();
    let runner = Runner::new(Arc::new(Silent), Interrupt::new()).journaled(&state, id);
    let mut refused = sshd.target(&path);
    if let CopyTarget::Sftp { identity_file, .. } = &mut refused {
        *identity_file = Some(remote.path().join("no-such-key"));
    }
    assert!(backend_with(base.path(), refused, &runner).is_err());
    let entry = state.journal(None, 1).unwrap().pop().unwrap();
    assert_eq!(entry.commands.len(), 1, "{entry:?}");
    assert_eq!(entry.commands[0].exit_status, Some(255), "{entry:?}");
}

// ---------------------------------------------------------------- S3

/// A throwaway moto S3 server with one bucket, or `None` (with the reason printed)
/// when moto is not installed.
fn start_moto() -> Option<Server> {
    let found = |program: &str, args: &[&str]| {
        let mut command = Command::new(program);
        command
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        command.status().is_ok_and(|s| s.success())
    };
    let mut command = if found("moto_server", &["--help"]) {
        Command::new("moto_server")
    } else if found("python3", &["-c", "import moto.server"]) {
        let mut command = Command::new("python3");
        command.args(["-m", "moto.server"]);
        command
    } else {
        println!(
            "SKIPPED: neither moto_server nor `python3 -m moto.server` exists \
             (scripts/install-test-deps.sh installs it)"
        );
        return None;
    };
    let port = ostler_testsupport::free_port();
    command.args(["-p", &port.to_string(), "-H", "127.0.0.1"]);
    let server = Server::start(
        command,
        tempfile::tempdir().unwrap(),
        port,
        Duration::from_secs(60),
    );
    ureq::put(&format!("http://127.0.0.1:{port}/{BUCKET}"))
        .call()
        .unwrap();
    Some(server)
}

const BUCKET: &str = "ostler-copies";

/// A copy under `prefix` in `bucket` on the moto server, keys from the env vars named.
fn s3_target(moto: &Server, bucket: &str, prefix: &str, secret_env: &str) -> CopyTarget {
    // Only this binary's S3 tests read these names.
    std::env::set_var("OSTLER_TEST_S3_KEY", "testing-key");
    std::env::set_var("OSTLER_TEST_S3_SECRET", "testing-secret");
    CopyTarget::S3 {
        endpoint: format!("http://127.0.0.1:{}", moto.port),
        bucket: bucket.into(),
        region: "us-east-1".into(),
        prefix: Some(prefix.into()),
        access_key_env: "OSTLER_TEST_S3_KEY".into(),
        secret_key_env: secret_env.into(),
    }
}

#[test]
fn copy_to_s3_on_a_real_moto_server() {
    let Some(moto) = start_moto() else { return };
    let base = tempfile::tempdir().unwrap();
    let secret = "OSTLER_TEST_S3_SECRET";
    exercise(&|name| {
        let target = s3_target(&moto, BUCKET, &format!("ostler/{name}"), secret);
        backend_for(base.path(), target).unwrap()
    });
    let unset = s3_target(&moto, BUCKET, "x", "OSTLER_TEST_S3_UNSET");
    let err = backend_for(base.path(), unset).err().expect("refused");
    assert_eq!(err.kind(), ErrorKind::User);
    let expected = "copy `offsite`: environment variable OSTLER_TEST_S3_UNSET is not set";
    assert_eq!(err.to_string(), expected);
    let missing = s3_target(&moto, "no-such-bucket", "x", secret);
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
    let measure = |label: &str, target: CopyTarget| {
        let backend = backend_for(tmp.path(), target).unwrap();
        let start = Instant::now();
        let stats = copy(&repo, backend.as_ref()).unwrap();
        let (seconds, mb) = (start.elapsed().as_secs_f64(), stats.bytes_sent as f64 / 1e6);
        let files = stats.files_sent;
        println!(
            "{label}: {files} files, {mb:.1} MB in {seconds:.2} s = {:.1} MB/s",
            mb / seconds
        );
    };
    measure("dir", dir_target("dircopy"));
    let sshd = Sshd::start();
    let remote = tempfile::tempdir().unwrap();
    measure(
        "sftp",
        sshd.target(remote.path().join("copy").to_str().unwrap()),
    );
    if let Some(moto) = start_moto() {
        measure(
            "s3 (moto)",
            s3_target(&moto, BUCKET, "bench", "OSTLER_TEST_S3_SECRET"),
        );
    }
}
