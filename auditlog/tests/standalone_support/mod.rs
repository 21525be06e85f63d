//! What the black-box tests of `auditlog standalone` share: the real binary started on a data
//! directory and a free port (killed when dropped), the credentials of its first start, every
//! id a listing yields, and a concurrent ingest load that records what was acknowledged.

#![allow(dead_code)]

use std::io::{BufRead as _, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

pub const BIN: &str = env!("CARGO_BIN_EXE_auditlog");

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// A running `auditlog standalone`, killed (SIGKILL) when dropped.
pub struct Server {
    pub child: Child,
    pub url: String,
    pub dir: PathBuf,
    pub stderr: Arc<Mutex<Vec<String>>>,
}

fn spawn(dir: &Path, port: u16) -> (Child, Arc<Mutex<Vec<String>>>, mpsc::Receiver<()>) {
    let mut child = Command::new(BIN)
        .args(["standalone", "--data-dir"])
        .arg(dir)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("RUST_LOG", "warn")
        // Standalone needs no schema registry: one that cannot answer must not matter, even
        // to /readyz (the real-service suite runs these tests with a registry up).
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
            // Ready once the banner, printed after the credentials exist, has been read
            // ("First start: ..." on a first start, "Credentials: ..." on later ones); the
            // line is stored before readiness is signalled, so the test sees it.
            let ready = line.starts_with("First start") || line.starts_with("Credentials:");
            sink.lock().expect("lines").push(line);
            if ready {
                let _ = ready_tx.send(());
            }
        }
    });
    (child, lines, ready_rx)
}

impl Server {
    pub fn start(dir: &Path) -> Self {
        Self::start_on(dir, free_port())
    }

    pub fn start_on(dir: &Path, port: u16) -> Self {
        let (mut child, stderr, ready) = spawn(dir, port);
        // Generous: a restart after a crash first recovers the log and catches the views up.
        if ready.recv_timeout(Duration::from_secs(60)).is_err() {
            let _ = child.kill();
            panic!("standalone did not start: {:?}", stderr.lock().expect("lines"));
        }
        Self { child, url: format!("http://127.0.0.1:{port}"), dir: dir.to_path_buf(), stderr }
    }

    pub fn credentials(&self) -> Value {
        serde_json::from_slice(&std::fs::read(self.dir.join("credentials.json")).expect("credentials file")).expect("json")
    }

    pub fn key(&self) -> String {
        self.credentials()["api_key"].as_str().expect("api key").to_owned()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().expect("lines").join("\n")
    }

    /// SIGTERM, then the exit status.
    pub fn terminate(mut self) -> ExitStatus {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().expect("kill runs");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "standalone did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every id a listing yields, following cursors; panics on a non-200 page.
pub async fn list_all(http: &reqwest::Client, base: &str, query: &str, token: &str) -> Vec<String> {
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

/// Posts batches of 50 events (action `<name>.load`, description `<name>load event ...`, so
/// a list by action and a full-text search both find them) until `stop`, returning every id
/// answered "accepted" in a 202.
pub async fn load(base: String, key: String, name: &'static str, worker: usize, stop: Arc<AtomicBool>) -> Vec<String> {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().expect("client");
    let (mut acked, mut n) = (Vec::new(), 0);
    while !stop.load(Ordering::Relaxed) {
        let batch: Vec<Value> = (0..50)
            .map(|_| {
                n += 1;
                json!({"id": uuid::Uuid::now_v7().to_string(), "action": format!("{name}.load"), "actor": {"id": format!("w{worker}"), "type": "user"},
                       "outcome": "success", "description": format!("{name}load event {worker} {n}")})
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
