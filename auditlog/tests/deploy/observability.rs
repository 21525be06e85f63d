//! The observability pack (`deploy/observability/`) against what the roles really export:
//! the gateway, both processors and the query API run on the local stack, take a few events
//! (one invalid, so a rejection is recorded) and queries, and their `/metrics` scrapes are
//! handed to `deploy/observability/check.py`, which runs `promtool check rules` and
//! `promtool test rules` and fails on any metric name a dashboard, a variable or an alert
//! uses that no role exports. A second test proves the checker fails on a dashboard or a
//! rule naming a metric that does not exist (temp copies).

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::distributed::{Proc, Setup, free_port, until};
use crate::tools;

const KEYSPACE: &str = "auditlog_observability_test";

fn observability() -> std::path::PathBuf {
    tools::repo().join("deploy/observability")
}

/// `check.py` with the tools' Python and promtool.
fn checker() -> Command {
    let mut command = Command::new(tools::python());
    command.arg(observability().join("check.py")).arg("--promtool").arg(tools::tool("promtool"));
    command
}

/// Runs `command`, which must fail; returns its stdout and stderr together.
fn run_failing(command: &mut Command) -> String {
    let Output { status, stdout, stderr } = command.output().unwrap_or_else(|e| panic!("{command:?} cannot start: {e}"));
    let output = format!("{}{}", String::from_utf8_lossy(&stdout), String::from_utf8_lossy(&stderr));
    assert!(!status.success(), "{command:?} passed but should have failed:\n{output}");
    output
}

/// A processor of `sink` with its health and metrics on a port of our choosing.
fn processor(setup: &Setup, sink: &str) -> (Proc, String) {
    let listen = format!("127.0.0.1:{}", free_port());
    let group = format!("{}-{sink}", setup.prefix);
    let instance = format!("{sink}-0");
    let args = ["processor", "--sink", sink, "--group", &group, "--instance-id", &instance, "--listen", &listen];
    let proc = Proc(setup.command(&args).spawn().unwrap_or_else(|e| panic!("the {sink} processor starts: {e}")));
    (proc, format!("http://{listen}"))
}

async fn scrape(http: &reqwest::Client, base: &str) -> String {
    let answer = http.get(format!("{base}/metrics")).send().await.unwrap_or_else(|e| panic!("{base}/metrics: {e}"));
    assert_eq!(answer.status(), StatusCode::OK, "{base}/metrics");
    answer.text().await.expect("a text scrape")
}

/// The value of the first sample of `name` carrying every label of `labels`.
fn sample(scrape: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape.lines().filter(|line| !line.starts_with('#')).find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
        let matches = metric == name && labels.iter().all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
        if matches { value.parse().ok() } else { None }
    })
}

fn at_least(scrape: &str, role: &str, name: &str, labels: &[(&str, &str)], min: f64) {
    let value = sample(scrape, name, labels);
    assert!(value.is_some_and(|v| v >= min), "{role}: {name}{labels:?} is {value:?}, expected at least {min}\n{scrape}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dashboards_and_alerts_name_only_metrics_the_roles_export() {
    let setup = Setup::new("obs", KEYSPACE).await;
    let (_gateway, gateway) = setup.serve("gateway").await;
    let (_query, query) = setup.serve("query-api").await;
    let (_scylla, scylla) = processor(&setup, "scylla");
    let (_opensearch, opensearch) = processor(&setup, "opensearch");
    let http = reqwest::Client::new();
    for base in [&scylla, &opensearch] {
        until(&format!("{base}/healthz answers"), 60, || async { http.get(format!("{base}/healthz")).send().await.is_ok_and(|r| r.status().is_success()) }).await;
    }

    // A tenant, created through the query API (an admin action), and a writer+reader token.
    let tenant = format!("acme{}", &setup.prefix["obs".len()..]);
    let admin = setup.token(None, "platform_admin");
    let created = http.post(format!("{query}/v1/tenants")).bearer_auth(&admin).json(&json!({"id": tenant, "name": tenant})).send().await.expect("create tenant");
    assert_eq!(created.status(), StatusCode::CREATED, "{}", created.text().await.unwrap_or_default());
    let token = setup.token(Some(&tenant), "writer,reader");

    // Valid events, one by one (the first once the gateway knows the tenant) and in a batch
    // that also holds an invalid one; then an invalid one alone.
    let event = |n: usize| json!({"action": "document.read", "actor": {"id": format!("user-{n}")}, "description": format!("observability probe {n}")});
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let answer = http.post(format!("{gateway}/v1/events")).bearer_auth(&token).json(&event(0)).send().await.expect("gateway answers");
        if answer.status() == StatusCode::ACCEPTED {
            break;
        }
        assert!(Instant::now() < deadline, "the gateway still refuses the new tenant: {}", answer.status());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let batch = json!([event(1), event(2), {"actor": {"id": "no-action"}}, event(3)]);
    let answer = http.post(format!("{gateway}/v1/events/batch")).bearer_auth(&token).json(&batch).send().await.expect("batch");
    assert_eq!(answer.status(), StatusCode::MULTI_STATUS, "{}", answer.text().await.unwrap_or_default());
    let answer = http.post(format!("{gateway}/v1/events")).bearer_auth(&token).json(&json!({"action": ""})).send().await.expect("invalid");
    assert_eq!(answer.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let valid = 4;

    // Both views hold them (read through the query API: the store, then the index), then
    // a stats query and an export.
    let count = |url: String| {
        let (http, token) = (http.clone(), token.clone());
        async move {
            let answer = http.get(url).bearer_auth(&token).send().await.expect("query api answers");
            if !answer.status().is_success() {
                return 0;
            }
            let body: Value = answer.json().await.unwrap_or(Value::Null);
            body["events"].as_array().map_or(0, Vec::len)
        }
    };
    until("the store holds the events", 60, || async { count(format!("{query}/v1/events?limit=100")).await == valid }).await;
    until("the index finds the events", 60, || async { count(format!("{query}/v1/events?q=probe&limit=100")).await == valid }).await;
    let stats = http.get(format!("{query}/v1/stats?group_by=action")).bearer_auth(&token).send().await.expect("stats");
    assert_eq!(stats.status(), StatusCode::OK);
    let export = http.get(format!("{query}/v1/events/export?format=csv")).bearer_auth(&token).send().await.expect("export");
    assert_eq!(export.status(), StatusCode::OK);
    let csv = export.text().await.expect("csv");
    assert!(csv.lines().count() > valid, "the export holds a header and the events:\n{csv}");

    // The processors sample their consumer lag every 5 s, once they own partitions.
    for base in [&scylla, &opensearch] {
        until(&format!("{base} exports its consumer lag"), 60, || async { scrape(&http, base).await.contains("auditlog_processor_consumer_lag_records{") }).await;
    }
    let scrapes = [
        ("auditlog-gateway", "gateway", scrape(&http, &gateway).await),
        ("auditlog-processor", "processor-scylla", scrape(&http, &scylla).await),
        ("auditlog-processor", "processor-opensearch", scrape(&http, &opensearch).await),
        ("auditlog-query-api", "query-api", scrape(&http, &query).await),
    ];

    // The scrapes show the traffic of this test.
    let [(_, _, gw), (_, _, sc), (_, _, os), (_, _, qa)] = &scrapes;
    at_least(gw, "gateway", "auditlog_gateway_events_accepted_total", &[], valid as f64);
    at_least(gw, "gateway", "auditlog_gateway_events_rejected_total", &[("reason", "validation")], 2.0);
    at_least(gw, "gateway", "auditlog_gateway_events_rejected_total", &[("reason", "unavailable")], 0.0);
    at_least(gw, "gateway", "auditlog_gateway_requests_total", &[("route", "/v1/events/batch"), ("status", "207")], 1.0);
    at_least(sc, "processor-scylla", "auditlog_processor_events_total", &[("sink", "scylla"), ("outcome", "written")], valid as f64);
    at_least(os, "processor-opensearch", "auditlog_processor_events_total", &[("sink", "opensearch"), ("outcome", "written")], valid as f64);
    for (scrape, role) in [(sc, "processor-scylla"), (os, "processor-opensearch")] {
        at_least(scrape, role, "auditlog_processor_dead_letters_total", &[("reason", "decode")], 0.0);
        at_least(scrape, role, "auditlog_processor_sink_waiting", &[], 0.0);
    }
    at_least(qa, "query-api", "auditlog_query_export_rows_total", &[("format", "csv")], valid as f64);
    at_least(qa, "query-api", "auditlog_query_admin_actions_total", &[("outcome", "recorded")], 1.0);

    let dir = tempfile::tempdir().expect("temp dir");
    let mut check = checker();
    for (job, file, text) in &scrapes {
        let path = dir.path().join(format!("{file}.prom"));
        std::fs::write(&path, text).expect("write the scrape");
        check.arg("--scrape").arg(format!("{job}={}", path.display()));
    }
    let output = tools::run_ok(&mut check);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("all checks passed"), "{stdout}");
}

/// Copies `from`'s files into `to`, replacing `old` by `new` in `file` (which must hold it).
fn tampered_copy(from: &Path, to: &Path, file: &str, old: &str, new: &str) {
    std::fs::create_dir_all(to).expect("create the copy's dir");
    for entry in std::fs::read_dir(from).expect("read the dir") {
        let path = entry.expect("dir entry").path();
        if !path.is_file() {
            continue;
        }
        let mut text = std::fs::read_to_string(&path).expect("read");
        if path.file_name().is_some_and(|n| n == file) {
            assert!(text.contains(old), "{} holds no {old}", path.display());
            text = text.replacen(old, new, 1);
        }
        std::fs::write(to.join(path.file_name().expect("a file name")), text).expect("write the copy");
    }
}

#[test]
fn the_checker_fails_on_a_metric_no_role_exports() {
    // A scrape holding exactly the names the pack uses: the pack passes with it.
    let listed = tools::run_ok(checker().arg("--list-metrics"));
    let names = String::from_utf8(listed.stdout).expect("utf-8");
    assert!(names.lines().count() > 20, "the pack uses the metrics of every role:\n{names}");
    let mut scrape = String::new();
    for name in names.lines() {
        if let Some(family) = name.strip_suffix("_bucket") {
            scrape.push_str(&format!("# TYPE {family} histogram\n{name}{{le=\"+Inf\"}} 0\n"));
        } else {
            scrape.push_str(&format!("{name} 0\n"));
        }
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let scrape_file = dir.path().join("all.prom");
    std::fs::write(&scrape_file, scrape).expect("write the scrape");
    let with_scrape = || {
        let mut command = checker();
        command.arg("--scrape").arg(format!("auditlog-all={}", scrape_file.display()));
        command
    };
    tools::run_ok(&mut with_scrape());

    // A dashboard naming a metric that does not exist fails, naming it.
    let dashboards = observability().join("grafana/dashboards");
    let renamed = dir.path().join("renamed");
    tampered_copy(&dashboards, &renamed, "auditlog-query.json", "auditlog_query_live_skipped_total", "auditlog_query_live_dropped_total");
    let output = run_failing(with_scrape().arg("--dashboards").arg(&renamed));
    assert!(output.contains("metric auditlog_query_live_dropped_total: exported by no role"), "{output}");
    assert!(output.contains("auditlog-query.json"), "the failure names the dashboard:\n{output}");

    // So does a histogram queried by its bare family name.
    let bare = dir.path().join("bare");
    tampered_copy(
        &dashboards,
        &bare,
        "auditlog-ingest.json",
        "rate(auditlog_gateway_request_duration_seconds_bucket",
        "rate(auditlog_gateway_request_duration_seconds",
    );
    let output = run_failing(with_scrape().arg("--dashboards").arg(&bare));
    assert!(output.contains("auditlog_gateway_request_duration_seconds is a histogram"), "{output}");

    // And an alert on a metric that does not exist.
    let rules = dir.path().join("rules");
    tampered_copy(&observability().join("prometheus"), &rules, "alerts.yml", "auditlog_processor_sink_waiting", "auditlog_processor_sink_blocked");
    let output = run_failing(with_scrape().arg("--rules").arg(rules.join("alerts.yml")));
    assert!(output.contains("alert AuditlogSinkWaiting: metric auditlog_processor_sink_blocked: exported by no role"), "{output}");
}
