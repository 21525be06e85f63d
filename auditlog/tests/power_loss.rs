//! Power-loss test of `auditlog standalone`: the data directory sits on a FUSE filesystem
//! (`tests/power_loss/lossyfs.py`) that keeps only what fsync made durable, and that cuts the
//! power on command during concurrent ingest. A restart on what survived must serve every
//! acknowledged event exactly once and repair the torn tail the cut left in the event log.
//!
//! Unlike a kill -9, which leaves the page cache to the kernel, this fails if an event is
//! acknowledged before its fsync. Needs /dev/fuse, fusermount and python3-fusepy
//! (`scripts/install-deps.sh`); without them the test fails, it never skips.

use std::collections::HashSet;
use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_auditlog");
/// Longest wait for the acknowledged events to reach both views after the restart.
const CONVERGE: Duration = Duration::from_secs(30);
/// How long each fsync of the lossy filesystem takes: long enough that a batch's bytes sit
/// unsynced for a while (so the cut finds a torn tail), short enough for a few hundred batches.
const FSYNC_DELAY_MS: &str = "5";
const INSTALL: &str = "install it with scripts/install-deps.sh (apt-get install python3-fusepy fuse3)";

/// The Python interpreter that has fusepy (Debian's `/usr/bin/python3` first).
fn python() -> String {
    for candidate in ["/usr/bin/python3", "python3"] {
        let ok = Command::new(candidate)
            .args(["-c", "try:\n import fusepy\nexcept ImportError:\n import fuse; fuse.FUSE"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return candidate.to_owned();
        }
    }
    panic!("no python3 with fusepy: {INSTALL}");
}

/// A mounted lossy filesystem; unmounted (and its process reaped) when dropped.
struct LossyFs {
    child: Child,
    stdin: ChildStdin,
    answers: mpsc::Receiver<Value>,
    mountpoint: PathBuf,
}

impl LossyFs {
    fn mount(mountpoint: &Path, workdir: &Path) -> Self {
        assert!(Path::new("/dev/fuse").exists(), "/dev/fuse is missing: the power-loss test needs FUSE");
        assert!(Command::new("fusermount").arg("-V").output().is_ok(), "fusermount is missing: {INSTALL}");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/power_loss/lossyfs.py");
        let mut child = Command::new(python())
            .arg(script)
            .args([mountpoint, workdir])
            .args(["--fsync-delay-ms", FSYNC_DELAY_MS])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("lossyfs starts");
        let stdin = child.stdin.take().expect("stdin");
        let answers = read_answers(child.stdout.take().expect("stdout"));
        let fs = Self { child, stdin, answers, mountpoint: mountpoint.to_path_buf() };
        let mounted = fs.answers.recv_timeout(Duration::from_secs(20)).expect("lossyfs mounts");
        assert_eq!(mounted["mounted"], true, "{mounted}");
        fs
    }

    /// Cuts the power (see lossyfs.py `crash`): answers the report.
    fn crash(&mut self) -> Value {
        writeln!(self.stdin, "crash .seg 3000").expect("crash command");
        self.answers.recv_timeout(Duration::from_secs(60)).expect("the crash is reported")
    }
}

fn read_answers(stdout: ChildStdout) -> mpsc::Receiver<Value> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(serde_json::from_str(&line).unwrap_or(Value::String(line)));
        }
    });
    rx
}

impl Drop for LossyFs {
    fn drop(&mut self) {
        let _ = Command::new("fusermount").arg("-u").arg("-z").arg(&self.mountpoint).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// A running `auditlog standalone`, killed (SIGKILL) when dropped.
struct Server {
    child: Child,
    url: String,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn start(dir: &Path) -> Self {
        let port = free_port();
        let mut child = Command::new(BIN)
            .args(["standalone", "--data-dir"])
            .arg(dir)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env("RUST_LOG", "warn")
            .env("AUDITLOG_GATEWAY_REGISTRY_URL", "http://127.0.0.1:9/unreachable")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary starts");
        let stderr = child.stderr.take().expect("piped stderr");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = mpsc::channel();
        let sink = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let ready = line.starts_with("First start") || line.starts_with("Credentials:");
                sink.lock().expect("lines").push(line);
                if ready {
                    let _ = ready_tx.send(());
                }
            }
        });
        if ready_rx.recv_timeout(Duration::from_secs(60)).is_err() {
            let _ = child.kill();
            panic!("standalone did not start: {:?}", lines.lock().expect("lines"));
        }
        Self { child, url: format!("http://127.0.0.1:{port}"), stderr: lines }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().expect("lines").join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn api_key(dir: &Path) -> String {
    let credentials: Value = serde_json::from_slice(&std::fs::read(dir.join("credentials.json")).expect("credentials")).expect("json");
    credentials["api_key"].as_str().expect("api key").to_owned()
}

/// Every id a listing yields, following cursors; panics on a non-200 page.
async fn list_all(http: &reqwest::Client, base: &str, query: &str, token: &str) -> Vec<String> {
    let (mut ids, mut cursor) = (Vec::new(), None::<String>);
    loop {
        let mut url = format!("{base}/v1/events?limit=1000{query}");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let response = http.get(&url).bearer_auth(token).send().await.expect("list");
        assert_eq!(response.status(), StatusCode::OK, "{url}");
        let page: Value = response.json().await.expect("json");
        ids.extend(page["events"].as_array().expect("events").iter().map(|e| e["id"].as_str().expect("id").to_owned()));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return ids,
        }
    }
}

/// Posts batches of 50 until `stop`, returning every id answered "accepted" in a 202.
async fn load(base: String, key: String, worker: usize, stop: Arc<AtomicBool>) -> Vec<String> {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().expect("client");
    let (mut acked, mut n) = (Vec::new(), 0);
    while !stop.load(Ordering::Relaxed) {
        let batch: Vec<Value> = (0..50)
            .map(|_| {
                n += 1;
                json!({"id": uuid::Uuid::now_v7().to_string(), "action": "power.load", "actor": {"id": format!("w{worker}"), "type": "user"},
                       "outcome": "success", "description": format!("powerload event {worker} {n}")})
            })
            .collect();
        let Ok(response) = http.post(format!("{base}/v1/events/batch")).bearer_auth(&key).json(&batch).send().await else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        if response.status() != StatusCode::ACCEPTED {
            continue;
        }
        let Ok(answer) = response.json::<Value>().await else { continue };
        for result in answer["results"].as_array().into_iter().flatten() {
            if result["status"] == "accepted" {
                acked.push(result["id"].as_str().expect("id").to_owned());
            }
        }
    }
    acked
}

/// Files a program wrote through the mount before the cut: without fsync, with it, and
/// fsynced then extended. Written before standalone starts, cut by the same power loss.
fn write_probes(dir: &Path) {
    use std::fs::{File, create_dir};
    create_dir(dir).expect("probe dir");
    std::fs::write(dir.join("unsynced"), "lost").expect("unsynced");
    let mut synced = File::create(dir.join("synced")).expect("synced");
    synced.write_all(b"durable").expect("write");
    synced.sync_all().expect("fsync");
    let mut partial = File::create(dir.join("partial")).expect("partial");
    partial.write_all(b"kept").expect("write");
    partial.sync_data().expect("fdatasync");
    partial.write_all(b"+lost").expect("write");
    File::open(dir).and_then(|d| d.sync_all()).expect("directory fsync");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn power_loss_during_ingest_keeps_every_acknowledged_event_and_repairs_the_torn_tail() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (mountpoint, workdir) = (tmp.path().join("mnt"), tmp.path().join("fs"));
    std::fs::create_dir_all(&mountpoint).expect("mountpoint");
    let mut fs = LossyFs::mount(&mountpoint, &workdir);
    write_probes(&mountpoint.join("probe"));

    let data = mountpoint.join("data");
    let server = Server::start(&data);
    let (base, key) = (server.url.clone(), api_key(&data));
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..4).map(|w| tokio::spawn(load(base.clone(), key.clone(), w, Arc::clone(&stop)))).collect();
    tokio::time::sleep(Duration::from_secs(3)).await;
    // The power cut: the filesystem freezes on what was durable, then the process dies.
    let report = tokio::task::block_in_place(|| fs.crash());
    drop(server);
    stop.store(true, Ordering::Relaxed);
    let mut acked = Vec::new();
    for worker in workers {
        acked.extend(worker.await.expect("worker"));
    }
    drop(fs);
    assert!(acked.len() >= 200, "the load got going before the cut: {} acknowledged", acked.len());
    assert_eq!(acked.iter().collect::<HashSet<_>>().len(), acked.len(), "the gateway gave out distinct ids");

    // (d) The filesystem really dropped what was not synced, and kept what was.
    let crashed = PathBuf::from(report["crashed"].as_str().unwrap_or_else(|| panic!("crash report: {report}")));
    let crashed = if crashed.is_absolute() { crashed } else { std::env::current_dir().expect("cwd").join(crashed) };
    let probe = |name: &str| std::fs::read_to_string(crashed.join("probe").join(name)).expect("probe file");
    assert_eq!(probe("unsynced"), "", "data never fsynced must be lost (its name was journaled)");
    assert_eq!(probe("synced"), "durable");
    assert_eq!(probe("partial"), "kept", "only the fsynced prefix survives");
    assert!(report["dropped_bytes"].as_u64() > Some(0), "the cut dropped unsynced writes: {report}");
    let torn = report["torn"].as_array().filter(|t| !t.is_empty()).unwrap_or_else(|| panic!("no segment had an unsynced tail: {report}"));

    // Restart on what survived the cut, on the plain disk.
    let data = crashed.join("data");
    let torn_paths: Vec<(PathBuf, u64, u64)> = torn
        .iter()
        .map(|t| (crashed.join(t["path"].as_str().expect("path")), t["durable"].as_u64().expect("durable"), t["kept"].as_u64().expect("kept")))
        .collect();
    let server = Server::start(&data);
    let base = server.url.clone();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("client");

    // (a) Every acknowledged event is readable in both views; (b) nothing twice.
    let deadline = Instant::now() + CONVERGE;
    let (store_ids, index_ids) = loop {
        let store_ids = list_all(&http, &base, "&action=power.load", &key).await;
        let index_ids = list_all(&http, &base, "&q=powerload", &key).await;
        let (s, i): (HashSet<&String>, HashSet<&String>) = (store_ids.iter().collect(), index_ids.iter().collect());
        if acked.iter().all(|id| s.contains(id) && i.contains(id)) && s == i {
            break (store_ids, index_ids);
        }
        let missing = acked.iter().filter(|id| !s.contains(id) || !i.contains(id)).count();
        assert!(
            Instant::now() < deadline,
            "{missing} of {} acknowledged events missing after the power loss (store {}, index {})\n{}",
            acked.len(),
            s.len(),
            i.len(),
            server.stderr()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(store_ids.iter().collect::<HashSet<_>>().len(), store_ids.len(), "no duplicates in the store");
    assert_eq!(index_ids.iter().collect::<HashSet<_>>().len(), index_ids.len(), "no duplicates in the index");
    for id in acked.iter().step_by(25).chain(acked.last()) {
        let response = http.get(format!("{base}/v1/events/{id}")).bearer_auth(&key).send().await.expect("get");
        assert_eq!(response.status(), StatusCode::OK, "{id}");
    }

    // (c) The log's recovery cut each torn tail back to its last whole record, keeping every
    // fsynced byte (the acknowledged records) and nothing of the torn one.
    let stderr = server.stderr();
    for (path, durable, kept) in &torn_paths {
        let name = path.file_name().expect("name").to_string_lossy().into_owned();
        let repaired = std::fs::metadata(path).expect("segment").len();
        assert!(
            repaired >= *durable && repaired < durable + kept,
            "{name}: {repaired} bytes after recovery, {durable} were fsynced, {kept} torn bytes followed"
        );
        assert!(stderr.lines().any(|l| l.contains("truncating a torn") && l.contains(&name)), "no repair of {name} logged:\n{stderr}");
    }
}
