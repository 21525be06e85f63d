//! `docker-compose.yml` (the distributed stack) and `docker-compose.standalone.yml`, checked
//! offline, since third-party images cannot be pulled here: both files validate against the
//! Compose Specification's JSON schema and `podman-compose config` accepts them; every service
//! is healthchecked (or a one-shot, or says why not), waited for with the right
//! `depends_on` condition, pinned to an exact image version and published on 127.0.0.1 only;
//! every file they mount exists; the auditlog roles share one hardened image and the same
//! backends and secrets; Prometheus scrapes each of them; and the checks catch each kind of
//! violation in a broken copy. The rules live in `deploy/compose/check.py`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::tools::{self, repo, run_ok};

const DISTRIBUTED: &str = "docker-compose.yml";
const STANDALONE: &str = "docker-compose.standalone.yml";
const FILES: [&str; 2] = [DISTRIBUTED, STANDALONE];

/// The auditlog services of the distributed file and the role each runs.
const ROLES: [(&str, &[&str]); 6] = [
    ("init", &["init"]),
    ("gateway", &["gateway"]),
    ("processor-scylla", &["processor", "--sink", "scylla"]),
    ("processor-opensearch", &["processor", "--sink", "opensearch"]),
    ("processor-ledger", &["processor", "--sink", "ledger"]),
    ("query-api", &["query-api"]),
];

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `deploy/compose/check.py` with the deploy tools' Python, run from the repository.
fn check_py() -> Command {
    let mut command = Command::new(tools::python());
    command.arg(repo().join("deploy/compose/check.py")).current_dir(repo()).stdin(Stdio::null());
    command
}

/// `check.py check --only <kind>` on `files`, which must pass.
fn check_passes(kind: &str, files: &[&str]) {
    let output = run_ok(check_py().args(["check", "--only", kind]).args(files));
    let out = text(&output.stdout);
    for file in files {
        assert!(out.contains(&format!("ok {file}")), "check.py did not pass {file}:\n{out}");
    }
}

/// A YAML file as JSON, `${VAR:-default}` replaced by its default.
fn yaml(path: &Path) -> Value {
    let output = run_ok(check_py().arg("json").arg(path));
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("check.py json {}: {e}", path.display()))
}

fn compose(file: &str) -> Value {
    yaml(&repo().join(file))
}

fn service<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc.pointer(&format!("/services/{name}")).unwrap_or_else(|| panic!("no service {name}"))
}

fn env<'a>(doc: &'a Value, service_name: &str, var: &str) -> &'a str {
    service(doc, service_name)["environment"][var]
        .as_str()
        .unwrap_or_else(|| panic!("{service_name} does not set {var}"))
}

fn strings(value: &Value) -> Vec<&str> {
    value.as_array().map(|items| items.iter().filter_map(Value::as_str).collect()).unwrap_or_default()
}

#[test]
fn both_files_validate_against_the_compose_spec_schema() {
    check_passes("schema", &FILES);
}

#[test]
fn podman_compose_config_accepts_both_files() {
    for file in FILES {
        let output = run_ok(
            Command::new(tools::tool("podman-compose"))
                .args(["-f", file, "config"])
                .current_dir(repo())
                .env_remove("AUDITLOG_VERSION")
                .stdin(Stdio::null()),
        );
        let rendered = text(&output.stdout);
        let doc = compose(file);
        for name in doc["services"].as_object().expect("services").keys() {
            assert!(rendered.contains(&format!("\n  {name}:\n")), "podman-compose config of {file} lost service {name}:\n{rendered}");
        }
        assert!(rendered.contains("image: ghcr.io/auditlog/auditlog:0.1.0"), "{file}: the image tag is not interpolated:\n{rendered}");
    }
}

#[test]
fn every_service_is_healthchecked_ordered_pinned_and_local() {
    check_passes("rules", &FILES);
}

#[test]
fn every_mounted_file_exists_in_the_repo() {
    check_passes("files", &FILES);
}

#[test]
fn the_auditlog_roles_share_one_hardened_image_and_the_same_backends() {
    let doc = compose(DISTRIBUTED);
    let standalone = compose(STANDALONE);
    let gateway = service(&doc, "gateway");
    let image = gateway["image"].as_str().expect("gateway image");
    assert!(image.starts_with("ghcr.io/auditlog/auditlog:"), "{image}");

    let mut roles: Vec<(&Value, &str)> = ROLES.iter().map(|(name, _)| (&doc, *name)).collect();
    roles.push((&standalone, "standalone"));
    for (doc, name) in &roles {
        let svc = service(doc, name);
        assert_eq!(svc["image"].as_str(), Some(image), "{name}: another image");
        assert_eq!(svc["build"].as_str(), Some("."), "{name}: not built from the top-level Dockerfile");
        assert_eq!(svc["read_only"], Value::Bool(true), "{name}: root file system not read-only");
        assert!(strings(&svc["tmpfs"]).contains(&"/tmp"), "{name}: no tmpfs /tmp");
        assert!(strings(&svc["cap_drop"]).contains(&"ALL"), "{name}: capabilities kept");
    }
    for (name, command) in ROLES {
        assert_eq!(strings(&service(&doc, name)["command"]), command, "{name}: command");
    }
    assert_eq!(strings(&service(&standalone, "standalone")["command"]), ["standalone"]);
    assert_eq!(env(&standalone, "standalone", "AUDITLOG_DATA_DIR"), "/data");
    let standalone_volumes = strings(&service(&standalone, "standalone")["volumes"]);
    assert!(standalone_volumes.iter().any(|v| v.ends_with(":/data")), "standalone: no volume at /data: {standalone_volumes:?}");

    // One value of each backend setting across the roles, pointing at the compose services.
    let same = |var: &str, services: &[&str]| -> String {
        let values: BTreeSet<&str> = services.iter().map(|s| env(&doc, s, var)).collect();
        assert_eq!(values.len(), 1, "{var} differs between {services:?}: {values:?}");
        values.into_iter().next().unwrap_or_default().to_owned()
    };
    let all: Vec<&str> = ROLES.iter().map(|(name, _)| *name).collect();
    assert_eq!(same("AUDITLOG_EVENT_LOG", &all), "kafka://kafka:9092");
    assert_eq!(same("AUDITLOG_TENANT_REGISTRY", &all), "kafka://kafka:9092");
    assert_eq!(same("AUDITLOG_EVENT_STORE", &all), "scylla://scylla:9042/auditlog");
    assert!(same("AUDITLOG_SEARCH_INDEX", &all).starts_with("opensearch://opensearch:9200"));
    // The processors' (and init's) registry URL and the gateway's and query API's are
    // separate settings: all must name the same registry.
    let registry = same("AUDITLOG_REGISTRY_URL", &all);
    assert_eq!(env(&doc, "gateway", "AUDITLOG_GATEWAY_REGISTRY_URL"), registry);
    assert_eq!(env(&doc, "query-api", "AUDITLOG_QUERY_REGISTRY_URL"), registry);
    assert!(registry.starts_with("http://registry:"), "{registry}");
    // No secret value in the file: init draws each service's own HS256 key and the cursor
    // key into a volume, and the services read them from files (development mode on, since
    // they listen on 0.0.0.0 inside their containers).
    let secrets_dir = env(&doc, "init", "AUDITLOG_INIT_DEV_SECRETS_DIR").to_owned();
    let gateway_key = env(&doc, "gateway", "AUDITLOG_GATEWAY_AUTH_HS256_SECRET_FILE");
    let query_key = env(&doc, "query-api", "AUDITLOG_QUERY_AUTH_HS256_SECRET_FILE");
    assert_ne!(gateway_key, query_key, "the gateway and the query API have keys of their own");
    for (name, file) in [("gateway", gateway_key), ("query-api", query_key), ("query-api", env(&doc, "query-api", "AUDITLOG_QUERY_CURSOR_SECRET_FILE"))] {
        assert!(file.starts_with(&format!("{secrets_dir}/")), "{name}: {file} is not in init's {secrets_dir}");
        assert_eq!(env(&doc, name, "AUDITLOG_DEV_MODE"), "true", "{name}: HS256 on 0.0.0.0 needs development mode");
    }
    let volume_of = |name: &str| strings(&service(&doc, name)["volumes"]).into_iter().find(|v| v.starts_with("auditlog-dev-secrets:")).map(str::to_owned);
    assert!(volume_of("init").is_some_and(|v| secrets_dir.starts_with(v.split(':').nth(1).unwrap_or("?"))), "init writes the secrets into the volume");
    for name in ["gateway", "query-api"] {
        assert!(volume_of(name).is_some_and(|v| v.ends_with(":ro")), "{name} mounts the secrets read-only");
    }
    for (name, _) in ROLES {
        for var in ["AUDITLOG_GATEWAY_AUTH_HS256_SECRET", "AUDITLOG_QUERY_AUTH_HS256_SECRET", "AUDITLOG_QUERY_CURSOR_SECRET"] {
            assert!(service(&doc, name)["environment"].get(var).is_none(), "{name}: {var} holds a secret in the file");
        }
    }
    for var in ["AUDITLOG_INIT_PARTITIONS", "AUDITLOG_INIT_REPLICATION_FACTOR", "AUDITLOG_INIT_MIN_INSYNC_REPLICAS"] {
        env(&doc, "init", var);
    }

    // The published ports of the brief, on the loopback.
    let published = |name: &str| strings(&service(&doc, name)["ports"]).into_iter().map(str::to_owned).collect::<Vec<_>>();
    assert_eq!(published("gateway"), ["127.0.0.1:8080:8080"]);
    assert_eq!(published("query-api"), ["127.0.0.1:8090:8090"]);
    assert_eq!(published("grafana"), ["127.0.0.1:3000:3000"]);
    assert_eq!(published("prometheus"), ["127.0.0.1:9090:9090"]);
    assert_eq!(published("kafka"), ["127.0.0.1:9094:9094"]);
    assert_eq!(strings(&service(&standalone, "standalone")["ports"]), ["127.0.0.1:8080:8080"]);
}

#[test]
fn prometheus_scrapes_every_auditlog_service_and_loads_the_alerts() {
    let doc = compose(DISTRIBUTED);
    let prometheus = yaml(&repo().join("deploy/compose/prometheus.yml"));
    let mut scraped = BTreeSet::new();
    for job in prometheus["scrape_configs"].as_array().expect("scrape_configs") {
        let name = job["job_name"].as_str().expect("job_name");
        for target in job["static_configs"].as_array().expect("static_configs").iter().flat_map(|c| strings(&c["targets"])) {
            scraped.insert((name.to_owned(), target.to_owned()));
        }
    }
    // Each target is the compose service's name and the port its role listens on.
    let listen = |service_name: &str, var: &str| {
        let address = env(&doc, service_name, var);
        let port = address.rsplit_once(':').expect("host:port").1;
        format!("{service_name}:{port}")
    };
    for expected in [
        ("auditlog-gateway", listen("gateway", "AUDITLOG_GATEWAY_LISTEN")),
        ("auditlog-processor", listen("processor-scylla", "AUDITLOG_PROCESSOR_LISTEN")),
        ("auditlog-processor", listen("processor-opensearch", "AUDITLOG_PROCESSOR_LISTEN")),
        ("auditlog-processor", listen("processor-ledger", "AUDITLOG_PROCESSOR_LISTEN")),
        ("auditlog-query-api", listen("query-api", "AUDITLOG_QUERY_LISTEN")),
    ] {
        let expected = (expected.0.to_owned(), expected.1);
        assert!(scraped.contains(&expected), "prometheus.yml does not scrape {expected:?}: {scraped:?}");
    }
    let prometheus_service = service(&doc, "prometheus");
    let mounts = strings(&prometheus_service["volumes"]);
    for rule_file in strings(&prometheus["rule_files"]) {
        assert!(mounts.iter().any(|m| m.split(':').nth(1) == Some(rule_file)), "rule file {rule_file} is not mounted: {mounts:?}");
    }
    assert!(mounts.contains(&"./deploy/compose/prometheus.yml:/etc/prometheus/prometheus.yml:ro"), "{mounts:?}");
    let grafana_mounts = strings(&service(&doc, "grafana")["volumes"]);
    for mount in [
        "./deploy/observability/grafana/provisioning:/etc/grafana/provisioning:ro",
        "./deploy/observability/grafana/dashboards:/var/lib/grafana/dashboards:ro",
    ] {
        assert!(grafana_mounts.contains(&mount), "grafana does not mount {mount}: {grafana_mounts:?}");
    }
    // The config itself, as Prometheus parses it (the rule file's path exists only in the
    // container; the rules are checked by the observability tests).
    run_ok(Command::new(tools::tool("promtool")).args(["check", "config", "--syntax-only"]).arg(repo().join("deploy/compose/prometheus.yml")));
}

/// A copy of the distributed file in `dir`, changed by the Python statements `mutation`
/// (`s` is the services mapping, `doc` the whole file); answers its path.
fn broken_copy(dir: &Path, name: &str, mutation: &str) -> PathBuf {
    let path = dir.join(format!("{name}.yml"));
    let program = format!(
        "import sys, yaml\ndoc = yaml.safe_load(open(sys.argv[1]))\ns = doc['services']\n{mutation}\nyaml.safe_dump(doc, open(sys.argv[2], 'w'), sort_keys=False)\n"
    );
    run_ok(Command::new(tools::python()).arg("-c").arg(program).arg(repo().join(DISTRIBUTED)).arg(&path));
    path
}

/// check.py on `file` (paths relative to the repository), which must fail.
fn check_fails(file: &Path) -> String {
    let output: Output = check_py()
        .arg("check")
        .arg("--project-dir")
        .arg(repo())
        .arg(file)
        .output()
        .expect("check.py starts");
    let out = text(&output.stdout) + &text(&output.stderr);
    assert!(!output.status.success(), "check.py passed a broken file {}:\n{out}", file.display());
    out
}

#[test]
fn the_checks_catch_each_kind_of_violation() {
    let dir = tempfile::tempdir().expect("a temp dir");
    // The unbroken copy passes, so each failure below is the mutation's.
    let intact = broken_copy(dir.path(), "intact", "pass");
    run_ok(check_py().arg("check").arg("--project-dir").arg(repo()).arg(&intact));

    let cases: &[(&str, &str, &str)] = &[
        ("no-healthcheck", "del s['kafka']['healthcheck']", "kafka: no healthcheck"),
        ("healthcheck-disabled", "s['opensearch']['healthcheck'] = {'disable': True}", "opensearch: no healthcheck"),
        ("service-started", "s['gateway']['depends_on']['kafka']['condition'] = 'service_started'", "gateway: depends_on kafka (healthchecked) must use service_healthy"),
        ("short-depends-on", "s['grafana']['depends_on'] = ['prometheus']", "grafana: depends_on prometheus without a condition"),
        ("healthy-without-check", "del s['scylla']['healthcheck']\ns['scylla']['x-healthcheck-omitted'] = 'test'", "query-api: depends_on scylla with service_healthy, but scylla has no healthcheck"),
        ("oneshot-healthy", "s['query-api']['depends_on']['init']['condition'] = 'service_healthy'", "query-api: depends_on init (a one-shot) must use service_completed_successfully"),
        ("oneshot-restarts", "s['init']['restart'] = 'always'", "init: a one-shot"),
        ("latest", "s['grafana']['image'] = 'grafana/grafana:latest'", "grafana: image 'grafana/grafana:latest' is `latest`"),
        ("floating", "s['opensearch']['image'] = 'opensearchproject/opensearch:2.19'", "not pinned to an exact version"),
        ("untagged", "s['scylla']['image'] = 'scylladb/scylla'", "image 'scylladb/scylla' has no tag"),
        ("env-tag", "s['gateway']['image'] = 'ghcr.io/auditlog/auditlog:${AUDITLOG_VERSION}'", "gateway: its image depends on an environment variable"),
        ("all-interfaces", "s['prometheus']['ports'] = ['9090:9090']", "prometheus: host port '9090:9090' is not bound to 127.0.0.1"),
        ("random-port", "s['grafana']['ports'] = ['3000']", "grafana: port '3000' publishes a random host port"),
        ("missing-mount", "s['prometheus']['volumes'].append('./deploy/compose/no-such-file.yml:/etc/x.yml:ro')", "bind mount ./deploy/compose/no-such-file.yml does not exist"),
        ("outside-mount", "s['grafana']['volumes'].append('/etc/passwd:/etc/passwd:ro')", "bind mount /etc/passwd is outside the project"),
        ("undeclared-volume", "del doc['volumes']['kafka-data']", "kafka: named volume 'kafka-data' is not declared"),
        ("schema-typo", "s['kafka']['helthcheck'] = s['kafka'].pop('healthcheck')", "schema: services/kafka"),
        ("schema-type", "s['gateway']['restart'] = ['always']", "schema: services/gateway/restart"),
    ];
    for (name, mutation, expected) in cases {
        let out = check_fails(&broken_copy(dir.path(), name, mutation));
        assert!(out.contains(expected), "{name}: expected {expected:?} in:\n{out}");
    }

    // A reason is the documented way out of the healthcheck and loopback rules.
    let excused = broken_copy(
        dir.path(),
        "excused",
        "del s['kafka']['healthcheck']\ns['kafka']['x-healthcheck-omitted'] = 'a test of the escape hatch'\n\
         s['prometheus']['ports'] = ['9090:9090']\ns['prometheus']['x-public-ports'] = 'a test of the escape hatch'\n\
         for svc in s.values():\n    d = svc.get('depends_on') or {}\n    if 'kafka' in d: d['kafka']['condition'] = 'service_started'",
    );
    run_ok(check_py().arg("check").arg("--project-dir").arg(repo()).arg(&excused));
}
