//! The container image, built with podman from the top-level `Dockerfile` around this test
//! run's own `auditlog` binary (`--build-arg BINARY=prebuilt`: the host's build is reused,
//! nothing is compiled twice) on a Debian base made by debootstrap, then run for real:
//! its metadata and file system (non-root numeric user, labels, stop signal, health check, no
//! shell), standalone from the image (an event in and back out, read-only root, non-root
//! process, health check, SIGTERM drains and exits 0), every distributed role from the image
//! against the local stack, and roles started with a wrong setting.

use std::collections::BTreeMap;
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::distributed::{BIN, SECRET, Setup, free_port};
use crate::tools::{self, repo, run_ok};

const IMAGE: &str = "localhost/auditlog:test";
/// The image's non-root user.
const UID: u32 = 10001;

/// podman with the project's settings (runc, rlimits the sandbox allows).
fn podman() -> Command {
    let mut command = Command::new(tools::tool("podman"));
    command.env("CONTAINERS_CONF", repo().join("deploy/image/containers.conf")).stdin(Stdio::null());
    command
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Builds the image once per test run; answers its name.
fn image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let base = repo().join("deploy/image/base-image.sh");
        run_ok(Command::new(&base).env("CONTAINERS_CONF", repo().join("deploy/image/containers.conf")));
        // The context: the Dockerfile and the binary of this run, stripped of debug info.
        let context = tempfile::tempdir().expect("a temp dir");
        std::fs::copy(repo().join("Dockerfile"), context.path().join("Dockerfile")).expect("copy the Dockerfile");
        std::fs::copy(repo().join(".dockerignore"), context.path().join(".dockerignore")).expect("copy .dockerignore");
        std::fs::create_dir(context.path().join(".image")).expect("mkdir .image");
        let staged = context.path().join(".image/auditlog");
        let stripped = Command::new("objcopy").arg("--strip-debug").arg(BIN).arg(&staged).status().is_ok_and(|s| s.success());
        if !stripped {
            std::fs::copy(BIN, &staged).expect("copy the binary");
        }
        let revision = Command::new("git").args(["rev-parse", "HEAD"]).current_dir(repo()).output().ok().map(|o| text(&o.stdout).trim().to_owned());
        run_ok(podman().args(["build", "--format", "docker", "--build-arg", "BINARY=prebuilt"]).args([
            "--build-arg".to_owned(),
            format!("VERSION={}", env!("CARGO_PKG_VERSION")),
            "--build-arg".to_owned(),
            format!("REVISION={}", revision.unwrap_or_else(|| "unknown".into())),
            "-t".to_owned(),
            IMAGE.to_owned(),
        ]).arg(context.path()));
        // The previous build's image, untagged now.
        let _ = podman().args(["image", "prune", "-f"]).output();
    });
    IMAGE
}

/// A container removed (force) when dropped, so a failing test leaves none behind.
struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = podman().args(["rm", "-f", "-t", "0", &self.0]).output();
    }
}

impl Container {
    /// `podman run -d` with `args` before the image and `command` after it.
    fn start(name: &str, args: &[String], command: &[&str]) -> Self {
        let name = format!("auditlog-test-{name}-{}", std::process::id());
        let _ = podman().args(["rm", "-f", "-t", "0", &name]).output();
        run_ok(podman().args(["run", "-d", "--name", &name]).args(args).arg(image()).args(command));
        Self(name)
    }

    fn inspect(&self, format: &str) -> String {
        text(&run_ok(podman().args(["inspect", "-f", format, &self.0])).stdout).trim().to_owned()
    }

    fn logs(&self) -> String {
        let out = podman().args(["logs", &self.0]).output().expect("podman logs");
        format!("{}{}", text(&out.stdout), text(&out.stderr))
    }

    /// `podman stop` (SIGTERM, then SIGKILL after 30 s); answers the exit code.
    fn stop(&self) -> i32 {
        run_ok(podman().args(["stop", "-t", "30", &self.0]));
        self.inspect("{{.State.ExitCode}}").parse().expect("an exit code")
    }

    /// The uid the container's main process runs as, read from the host's /proc.
    fn process_uid(&self) -> u32 {
        let pid = self.inspect("{{.State.Pid}}");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the container's process is visible");
        let line = status.lines().find(|l| l.starts_with("Uid:")).expect("a Uid line");
        line.split_whitespace().nth(1).and_then(|u| u.parse().ok()).expect("a numeric uid")
    }
}

async fn wait_ready(container: &Container, url: &str) {
    let client = reqwest::Client::new();
    let started = Instant::now();
    while !client.get(format!("{url}/readyz")).send().await.is_ok_and(|r| r.status().is_success()) {
        assert!(started.elapsed() < Duration::from_secs(90), "{} did not become ready at {url}:\n{}", container.0, container.logs());
        assert_eq!(container.inspect("{{.State.Running}}"), "true", "{} stopped:\n{}", container.0, container.logs());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Polls `url` with `key` until `check` accepts the JSON answer.
async fn until_json(url: &str, key: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let client = reqwest::Client::new();
    let started = Instant::now();
    loop {
        if let Ok(answer) = client.get(url).header("X-API-Key", key).send().await
            && answer.status() == StatusCode::OK
            && let Ok(body) = answer.json::<Value>().await
            && check(&body)
        {
            return body;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "timed out: {what} ({url})");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[test]
fn the_image_runs_as_a_numeric_non_root_user_with_labels_and_holds_no_shell() {
    let image = image();
    let inspect: Value = serde_json::from_slice(&run_ok(podman().args(["image", "inspect", image])).stdout).expect("inspect json");
    let config = &inspect[0]["Config"];
    assert_eq!(config["User"], "10001:10001", "{config}");
    assert_eq!(config["StopSignal"], "SIGTERM", "{config}");
    assert_eq!(config["Entrypoint"], json!(["/usr/local/bin/auditlog"]));
    assert_eq!(config["Cmd"], json!(["standalone"]));
    // podman keeps the Docker-format health check beside the OCI config.
    let health = &inspect[0]["Healthcheck"];
    assert_eq!(health["Test"], json!(["CMD", "/usr/local/bin/auditlog", "healthcheck"]), "{health}");
    assert!(health["StartPeriod"].as_u64().is_some_and(|ns| ns > 0), "{health}");
    let labels = &config["Labels"];
    assert_eq!(labels["org.opencontainers.image.version"], env!("CARGO_PKG_VERSION"));
    assert!(labels["org.opencontainers.image.source"].as_str().is_some_and(|s| s.starts_with("https://")), "{labels}");
    let revision = labels["org.opencontainers.image.revision"].as_str().unwrap_or_default();
    assert!(revision.len() == 40 && revision.bytes().all(|b| b.is_ascii_hexdigit()), "revision label {revision:?}");

    // The file system: the binary, the libraries it links, CA certificates, passwd/group.
    let created = text(&run_ok(podman().args(["create", image])).stdout).trim().to_owned();
    let container = Container(created);
    let tar = run_ok(podman().args(["export", &container.0]));
    let dir = tempfile::tempdir().expect("temp dir");
    let archive = dir.path().join("fs.tar");
    std::fs::write(&archive, &tar.stdout).expect("write the export");
    let names = text(&run_ok(Command::new("tar").arg("-tvf").arg(&archive)).stdout);
    let executables: Vec<&str> = names
        .lines()
        .filter(|l| l.starts_with('-') && l.as_bytes().get(3) == Some(&b'x'))
        .filter_map(|l| l.split_whitespace().last())
        .filter(|path| !path.contains(".so"))
        .collect();
    assert_eq!(executables, ["usr/local/bin/auditlog"], "the image holds other programs:\n{names}");
    for absent in ["bin/sh", "bin/bash", "usr/bin/apt", "usr/bin/gcc", "usr/bin/cc", "usr/bin/curl"] {
        assert!(!names.lines().any(|l| l.ends_with(absent)), "{absent} is in the image");
    }
    assert!(names.contains("etc/ssl/certs/ca-certificates.crt"), "no CA certificates:\n{names}");
    let shell = podman().args(["run", "--rm", "--entrypoint", "/bin/sh", image, "-c", "true"]).output().expect("podman run");
    assert!(!shell.status.success(), "the image has a shell");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_from_the_image_takes_an_event_serves_it_back_and_drains_on_sigterm() {
    let data = tempfile::tempdir().expect("temp dir");
    std::os::unix::fs::chown(data.path(), Some(UID), Some(UID)).expect("chown the data dir");
    let port = free_port();
    let args = [
        "--read-only".to_owned(),
        "-p".to_owned(),
        format!("127.0.0.1:{port}:8080"),
        "-v".to_owned(),
        format!("{}:/data", data.path().display()),
    ];
    let container = Container::start("standalone", &args, &["standalone"]);
    let url = format!("http://127.0.0.1:{port}");
    wait_ready(&container, &url).await;
    assert_eq!(container.inspect("{{.HostConfig.ReadonlyRootfs}}"), "true");
    assert_eq!(container.process_uid(), UID, "the container's process is not the image's user");

    // The first start wrote credentials into the volume, as the image's user.
    let env = std::fs::read_to_string(data.path().join("credentials.env")).expect("credentials.env in the volume");
    let key = env
        .lines()
        .find_map(|l| l.strip_prefix("AUDITLOG_API_KEY="))
        .map(|v| v.trim_matches(|c| c == '"' || c == '\'').to_owned())
        .expect("an API key");
    let client = reqwest::Client::new();
    let accepted = client
        .post(format!("{url}/v1/events"))
        .header("X-API-Key", &key)
        .json(&json!({"action": "image.smoke", "actor": {"id": "container-test", "type": "service"}, "outcome": "success", "description": "from the image"}))
        .send()
        .await
        .expect("ingest answers");
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    let id = accepted.json::<Value>().await.expect("json")["id"].as_str().expect("an id").to_owned();
    let listed = until_json(&format!("{url}/v1/events?actor_id=container-test"), &key, "the event is listed", |b| {
        b["events"].as_array().is_some_and(|e| e.len() == 1)
    })
    .await;
    assert_eq!(listed["events"][0]["id"], id.as_str());
    let found = until_json(&format!("{url}/v1/events?q=image"), &key, "the event is searchable", |b| b["events"].as_array().is_some_and(|e| e.len() == 1)).await;
    assert_eq!(found["events"][0]["action"], "image.smoke");

    let health = podman().args(["healthcheck", "run", &container.0]).output().expect("podman healthcheck");
    assert!(health.status.success(), "healthcheck failed: {}{}", text(&health.stdout), text(&health.stderr));

    assert_eq!(container.stop(), 0, "standalone did not exit 0 on SIGTERM:\n{}", container.logs());
    assert!(container.logs().contains("shutting down"), "no drain on SIGTERM:\n{}", container.logs());
}

/// The environment of one distributed test, as `podman run` arguments.
fn env_args(setup: &Setup, extra: &[(&str, String)]) -> Vec<String> {
    let mut env: BTreeMap<&str, String> = BTreeMap::from([
        ("AUDITLOG_GATEWAY_AUTH_HS256_SECRET", SECRET.to_owned()),
        ("AUDITLOG_QUERY_AUTH_HS256_SECRET", SECRET.to_owned()),
        // The image listens on 0.0.0.0: HS256 there needs development mode.
        ("AUDITLOG_DEV_MODE", "true".to_owned()),
        ("AUDITLOG_GATEWAY_TOPIC_PREFIX", setup.prefix.clone()),
        ("AUDITLOG_QUERY_TOPIC_PREFIX", setup.prefix.clone()),
        ("AUDITLOG_TOPIC", setup.topic()),
        ("AUDITLOG_EVENT_STORE", format!("scylla://127.0.0.1:9042/{}", setup.keyspace)),
        ("AUDITLOG_SEARCH_INDEX", format!("opensearch://127.0.0.1:9200/{}", setup.alias)),
        ("RUST_LOG", "info".to_owned()),
    ]);
    env.extend(extra.iter().map(|(k, v)| (*k, v.clone())));
    let mut args = vec!["--network".to_owned(), "host".to_owned(), "--read-only".to_owned()];
    for (k, v) in env {
        args.push("-e".to_owned());
        args.push(format!("{k}={v}"));
    }
    args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_distributed_role_from_the_image_passes_an_end_to_end_check() {
    let setup = Setup::new("image", "auditlog_image_test").await;
    let ports: Vec<u16> = (0..4).map(|_| free_port()).collect();
    let listen = |i: usize| format!("127.0.0.1:{}", ports[i]);
    let group = |sink: &str| format!("{}-{sink}", setup.prefix);
    let gateway = Container::start("gateway", &env_args(&setup, &[("AUDITLOG_GATEWAY_LISTEN", listen(0))]), &["gateway"]);
    let query = Container::start("query-api", &env_args(&setup, &[("AUDITLOG_QUERY_LISTEN", listen(1))]), &["query-api"]);
    let processors = [("scylla", 2), ("opensearch", 3)].map(|(sink, i)| {
        let env = [("AUDITLOG_PROCESSOR_LISTEN", listen(i)), ("AUDITLOG_PROCESSOR_GROUP", group(sink)), ("AUDITLOG_PROCESSOR_INSTANCE_ID", format!("{sink}-0"))];
        Container::start(&format!("processor-{sink}"), &env_args(&setup, &env), &["processor", "--sink", sink])
    });
    let urls: Vec<String> = (0..4).map(|i| format!("http://{}", listen(i))).collect();
    for (container, url) in [&gateway, &query, &processors[0], &processors[1]].into_iter().zip(&urls) {
        wait_ready(container, url).await;
        assert_eq!(container.process_uid(), UID);
    }
    let (gateway_url, query_url) = (&urls[0], &urls[1]);

    // A tenant and its key through the query API, events through the gateway, read back.
    let http = reqwest::Client::new();
    let admin = setup.token(None, "platform_admin");
    let tenant = format!("img{}", &setup.prefix["image".len()..]);
    let created = http.post(format!("{query_url}/v1/tenants")).bearer_auth(&admin).json(&json!({"id": tenant, "name": "image test"})).send().await.expect("create tenant");
    assert_eq!(created.status(), StatusCode::CREATED, "{}", created.text().await.unwrap_or_default());
    let issued = http
        .post(format!("{query_url}/v1/tenants/{tenant}/api-keys"))
        .bearer_auth(&admin)
        .json(&json!({"name": "image", "roles": ["writer", "reader"]}))
        .send()
        .await
        .expect("create key");
    assert_eq!(issued.status(), StatusCode::CREATED);
    let key = issued.json::<Value>().await.expect("json")["key"].as_str().expect("a key").to_owned();
    let batch: Vec<Value> = (0..3).map(|i| json!({"action": format!("image.e2e.{i}"), "actor": {"id": "image-actor"}, "description": format!("container number {i}")})).collect();
    let accepted = until_accepted(&http, gateway_url, &key, &batch).await;
    assert_eq!(accepted["accepted"], 3, "{accepted}");

    let listed = until_json(&format!("{query_url}/v1/events?actor_id=image-actor"), &key, "3 events in ScyllaDB", |b| {
        b["events"].as_array().is_some_and(|e| e.len() == 3)
    })
    .await;
    let id = listed["events"][0]["id"].as_str().expect("an id").to_owned();
    let one = until_json(&format!("{query_url}/v1/events/{id}"), &key, "the event by id", |b| b["id"] == id.as_str()).await;
    assert_eq!(one["actor"]["id"], "image-actor");
    let searched = until_json(&format!("{query_url}/v1/events?q=container"), &key, "3 events in OpenSearch", |b| {
        b["events"].as_array().is_some_and(|e| e.len() == 3)
    })
    .await;
    assert!(searched["events"].as_array().is_some_and(|e| e.iter().all(|e| e["actor"]["id"] == "image-actor")));

    for container in [&gateway, &query, &processors[0], &processors[1]] {
        assert_eq!(container.stop(), 0, "{} did not exit 0 on SIGTERM:\n{}", container.0, container.logs());
        assert!(container.logs().contains("shutting down"), "{} did not drain:\n{}", container.0, container.logs());
    }
}

/// Posts `batch` until the gateway accepts it (its tenant registry may take a moment to see
/// the new key); answers the batch result.
async fn until_accepted(http: &reqwest::Client, gateway: &str, key: &str, batch: &[Value]) -> Value {
    let started = Instant::now();
    loop {
        let answer = http.post(format!("{gateway}/v1/events/batch")).header("X-API-Key", key).json(&batch).send().await.expect("gateway answers");
        let status = answer.status();
        let body: Value = answer.json().await.unwrap_or(Value::Null);
        if status == StatusCode::ACCEPTED {
            return body;
        }
        assert!(status == StatusCode::UNAUTHORIZED && started.elapsed() < Duration::from_secs(20), "batch refused: {status} {body}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_from_the_image_creates_topics_schema_keyspace_and_index_and_is_idempotent() {
    use auditlog_seams::event_store::scylla::{ScyllaConfig, ScyllaEventStore};
    use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::config::ClientConfig;

    let suffix = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
    let topic = format!("init{suffix}.v1");
    let tenants = format!("init{suffix}.tenants");
    let checkpoints = format!("init{suffix}.checkpoints");
    let keyspace = format!("auditlog_init_{suffix}");
    let alias = format!("init-{suffix}");
    let env = [
        ("AUDITLOG_TOPIC", topic.clone()),
        ("AUDITLOG_TENANT_REGISTRY", format!("kafka://127.0.0.1:9092?topic={tenants}")),
        ("AUDITLOG_CHECKPOINT_TOPIC", checkpoints.clone()),
        ("AUDITLOG_EVENT_STORE", format!("scylla://127.0.0.1:9042/{keyspace}")),
        ("AUDITLOG_SEARCH_INDEX", format!("opensearch://127.0.0.1:9200/{alias}")),
        ("AUDITLOG_INIT_PARTITIONS", "4".to_owned()),
        ("AUDITLOG_INIT_REPLICATION_FACTOR", "1".to_owned()),
        ("AUDITLOG_INIT_MIN_INSYNC_REPLICAS", "1".to_owned()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let first = run_to_exit(&env, &["init"]);
    assert!(first.status.success(), "init failed:\n{}{}", text(&first.stdout), text(&first.stderr));
    let said = text(&first.stdout);
    for line in [
        format!("topic {topic}: created"),
        format!("topic {topic}.dlq: created"),
        format!("topic {tenants}: created"),
        format!("topic {checkpoints}: created"),
        format!("schema {topic}-value: id "),
        format!("ledger store scylla://127.0.0.1:9042/{keyspace}: tables ready"),
    ] {
        assert!(said.contains(&line), "no {line:?} in:\n{said}");
    }
    let again = run_to_exit(&env, &["init"]);
    assert!(again.status.success(), "a second init failed:\n{}", text(&again.stderr));
    assert_eq!(text(&again.stdout).matches("exists, left as it is").count(), 4, "{}", text(&again.stdout));

    // The topics as the broker has them.
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new().set("bootstrap.servers", "127.0.0.1:9092").create().expect("admin client");
    let log = auditlog_seams::resolve::event_log("kafka://127.0.0.1:9092").expect("kafka uri");
    let marks = log.watermarks(&auditlog_seams::TopicSelector::Topics(vec![topic.clone()])).await.expect("watermarks");
    assert_eq!(marks.len(), 4, "partitions of {topic}");
    let resources = [ResourceSpecifier::Topic(&topic), ResourceSpecifier::Topic(&tenants), ResourceSpecifier::Topic(&checkpoints)];
    let configs = admin.describe_configs(&resources, &AdminOptions::new()).await.expect("describe configs");
    let value = |i: usize, name: &str| {
        let resource = configs[i].as_ref().expect("a topic config");
        resource.get(name).and_then(|e| e.value.clone()).unwrap_or_default()
    };
    assert_eq!((value(0, "retention.ms"), value(0, "min.insync.replicas"), value(0, "cleanup.policy")), ("-1".into(), "1".into(), "delete".into()));
    assert_eq!((value(1, "retention.ms"), value(1, "cleanup.policy")), ("-1".into(), "compact".into()));
    assert_eq!((value(2, "retention.ms"), value(2, "cleanup.policy")), ("-1".into(), "compact".into()), "the checkpoint topic");

    // The schema in the registry, the keyspace's tables, the index alias.
    let http = reqwest::Client::new();
    let latest = http.get(format!("http://127.0.0.1:8081/apis/ccompat/v7/subjects/{topic}-value/versions/latest")).send().await.expect("registry");
    assert_eq!(latest.status(), StatusCode::OK);
    let store = ScyllaEventStore::connect(&ScyllaConfig::new(vec!["127.0.0.1:9042".into()], &keyspace)).await.expect("the keyspace opens");
    let ids = crate::distributed::store_ids(&store, "nobody").await;
    assert!(ids.is_empty());
    // Monthly indices are made on first write, from the template init installed.
    let template = http.get(format!("http://127.0.0.1:9200/_index_template/{alias}")).send().await.expect("opensearch");
    assert_eq!(template.status(), StatusCode::OK, "no index template {alias}");
}

/// Runs `command` of the image in the foreground with `env` (host network); answers its
/// output once it exits.
fn run_to_exit(env: &[(&str, &str)], command: &[&str]) -> Output {
    let mut args = vec!["run".to_owned(), "--rm".to_owned(), "--network".to_owned(), "host".to_owned(), "--read-only".to_owned()];
    for (k, v) in env {
        args.push("-e".to_owned());
        args.push(format!("{k}={v}"));
    }
    podman().args(&args).arg(image()).args(command).output().expect("podman run")
}

/// The one line a role that cannot start must print: it starts with `error:` and names
/// the setting.
fn assert_one_clear_line(output: &Output, setting: &str) {
    let stderr = text(&output.stderr);
    let code = output.status.code();
    assert!(code.is_some_and(|c| c != 0 && c != 101), "exit code {code:?} (101 is a panic):\n{stderr}");
    assert!(!stderr.contains("panicked"), "a panic:\n{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "expected one error line:\n{stderr}");
    assert!(errors[0].contains(setting), "the error line does not name {setting}:\n{stderr}");
}

#[test]
fn a_role_with_a_missing_or_wrong_setting_exits_non_zero_with_one_line_naming_it() {
    let unreachable = "kafka://127.0.0.1:1";
    let secret = ("AUDITLOG_GATEWAY_AUTH_HS256_SECRET", SECRET);
    let query_secret = ("AUDITLOG_QUERY_AUTH_HS256_SECRET", SECRET);
    let no_key = run_to_exit(&[], &["gateway"]);
    assert_one_clear_line(&no_key, "AUDITLOG_GATEWAY_AUTH");
    let no_query_key = run_to_exit(&[], &["query-api"]);
    assert_one_clear_line(&no_query_key, "AUDITLOG_QUERY_AUTH");
    // The image listens on 0.0.0.0: HS256 without development mode, or a placeholder secret,
    // ends the role with one line naming the setting (never the secret).
    let no_dev_mode = run_to_exit(&[secret], &["gateway"]);
    assert_one_clear_line(&no_dev_mode, "AUDITLOG_DEV_MODE");
    let dev = ("AUDITLOG_DEV_MODE", "true");
    let placeholder = run_to_exit(&[dev, ("AUDITLOG_GATEWAY_AUTH_HS256_SECRET", "dev-only-insecure-hs256-secret-change-me-0123456789")], &["gateway"]);
    assert_one_clear_line(&placeholder, "AUDITLOG_GATEWAY_AUTH_HS256_SECRET");
    assert!(!text(&placeholder.stderr).contains("change-me"), "the secret is never printed");
    let broker = run_to_exit(&[secret, dev, ("AUDITLOG_EVENT_LOG", unreachable), ("AUDITLOG_TENANT_REGISTRY", unreachable), ("AUDITLOG_STARTUP_TIMEOUT_SECS", "5")], &["gateway"]);
    assert_one_clear_line(&broker, "AUDITLOG_EVENT_LOG");
    let bad_uri = run_to_exit(&[query_secret, dev, ("AUDITLOG_EVENT_STORE", "cassandra://127.0.0.1:9042")], &["query-api"]);
    assert_one_clear_line(&bad_uri, "AUDITLOG_EVENT_STORE");
    let bad_log = run_to_exit(&[("AUDITLOG_EVENT_LOG", "127.0.0.1:9092")], &["processor", "--sink", "scylla"]);
    assert_one_clear_line(&bad_log, "AUDITLOG_EVENT_LOG");
    let bad_sink = run_to_exit(&[], &["processor", "--sink", "cassandra"]);
    assert!(bad_sink.status.code() == Some(2) && text(&bad_sink.stderr).contains("--sink"), "{}", text(&bad_sink.stderr));
}
