//! Power-loss test of `auditlog standalone`: the data directory sits on a FUSE filesystem
//! (`tests/power_loss/lossyfs.py`) that keeps only what fsync made durable, and that cuts the
//! power on command during concurrent ingest. A restart on what survived must serve every
//! acknowledged event exactly once and repair the torn tail the cut left in the event log.
//!
//! Unlike a kill -9, which leaves the page cache to the kernel, this fails if an event is
//! acknowledged before its fsync. Needs /dev/fuse, fusermount and python3-fusepy
//! (`scripts/install-deps.sh`); without them the test fails, it never skips.

mod standalone_support;

use std::collections::HashSet;
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;
use standalone_support::{Server, list_all, load};

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
    let (base, key) = (server.url.clone(), server.key());
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..4).map(|w| tokio::spawn(load(base.clone(), key.clone(), "power", w, Arc::clone(&stop)))).collect();
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
