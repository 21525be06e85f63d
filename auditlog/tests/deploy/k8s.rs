//! The Kustomize manifests under `deploy/k8s/`, checked offline: every overlay renders with
//! kustomize and passes `deploy/k8s/check.py` (strict Kubernetes 1.34 schemas, security
//! context, probes, resources, scaling, network policies, secrets, monitoring, the
//! PrometheusRule equal to `deploy/observability/prometheus/alerts.yml`); and the checker
//! itself fails, naming the rule, on a render broken on purpose, so a green run means
//! something.

use std::path::PathBuf;
use std::process::Command;

use crate::tools;

fn checker() -> PathBuf {
    tools::repo().join("deploy/k8s/check.py")
}

/// `kustomize build` of one overlay.
fn render(overlay: &str) -> String {
    let dir = tools::repo().join("deploy/k8s/overlays").join(overlay);
    let output = tools::run_ok(Command::new(tools::tool("kustomize")).arg("build").arg(dir));
    String::from_utf8(output.stdout).expect("kustomize prints UTF-8")
}

/// Runs the checker on `rendered` under the rules of `profile`; answers whether it passed,
/// and everything it printed.
fn check_rendered(rendered: &str, profile: &str) -> (bool, String) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("rendered.yaml");
    std::fs::write(&path, rendered).expect("the render is written");
    let mut command = Command::new(tools::python());
    command.arg(checker()).arg("--rendered").arg(&path).arg("--profile").arg(profile);
    let output = command.output().unwrap_or_else(|e| panic!("{command:?} cannot start: {e}"));
    let printed = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), printed)
}

/// `rendered` with the first `from` replaced by `to`; `from` must be there.
fn mutated(rendered: &str, from: &str, to: &str) -> String {
    assert!(rendered.contains(from), "the render no longer contains {from:?}: update this test");
    rendered.replacen(from, to, 1)
}

/// `rendered` without the first `key:` block: the line and every line below it indented
/// deeper, or as deep when it is an item of the key's list (kustomize does not indent those).
fn without_block(rendered: &str, key: &str) -> String {
    let lines: Vec<&str> = rendered.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.trim_start().starts_with(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no {key}: in the render"));
    let indent = |l: &str| l.len() - l.trim_start().len();
    let inside = |l: &&str| indent(l) > indent(lines[start]) || (indent(l) == indent(lines[start]) && l.trim_start().starts_with("- "));
    let end = lines[start + 1..].iter().position(|l| !inside(l)).map_or(lines.len(), |n| start + 1 + n);
    let mut kept: Vec<&str> = lines[..start].to_vec();
    kept.extend_from_slice(&lines[end..]);
    kept.join("\n") + "\n"
}

/// Asserts the checker refuses `rendered`, with `expected` in its report.
fn assert_refused(rendered: &str, profile: &str, expected: &str, case: &str) {
    let (passed, printed) = check_rendered(rendered, profile);
    assert!(!passed, "{case}: the checker passed a broken render\n{printed}");
    assert!(printed.contains("FAIL") && printed.contains(expected), "{case}: the report does not say {expected:?}\n{printed}");
}

#[test]
fn k8s_every_overlay_renders_and_passes_the_checker() {
    let mut command = Command::new(tools::python());
    command.arg(checker()).arg("--kustomize").arg(tools::tool("kustomize"));
    let output = tools::run_ok(&mut command);
    let printed = String::from_utf8_lossy(&output.stdout);
    for overlay in ["overlays/dev", "overlays/prod"] {
        assert!(printed.contains(&format!("rendered {overlay}")), "{overlay} was not checked\n{printed}");
    }
    assert!(printed.contains("valid against the Kubernetes 1.34 schemas (strict)"), "{printed}");
    assert!(printed.contains("PrometheusRule groups == alerts.yml groups"), "{printed}");
    assert!(printed.contains("all checks passed"), "{printed}");
}

#[test]
fn k8s_checker_refuses_a_dev_render_that_breaks_a_rule() {
    let dev = render("dev");
    let (passed, printed) = check_rendered(&dev, "dev");
    assert!(passed, "the unchanged dev render must pass, or the cases below prove nothing\n{printed}");

    assert_refused(&mutated(&dev, "runAsNonRoot: true", "runAsNonRoot: false"), "dev", "runAsNonRoot must be True", "runAsNonRoot false");
    assert_refused(
        &mutated(&dev, "allowPrivilegeEscalation: false", "allowPrivilegeEscalation: true"),
        "dev",
        "allowPrivilegeEscalation must be False",
        "privilege escalation allowed",
    );
    assert_refused(&without_block(&dev, "readinessProbe"), "dev", "readinessProbe is missing", "no readiness probe");
    assert_refused(&mutated(&dev, "path: /healthz", "path: /"), "dev", "path is '/', expected /healthz", "liveness on the wrong path");
    assert_refused(&without_block(&dev, "limits"), "dev", "resources.limits.cpu is missing", "no resource limits");
    assert_refused(
        &mutated(&dev, "fieldPath: metadata.name", "fieldPath: metadata.uid"),
        "dev",
        "AUDITLOG_PROCESSOR_INSTANCE_ID must come from fieldRef metadata.name",
        "instance id not the pod name",
    );
    assert_refused(
        &mutated(&dev, "terminationGracePeriodSeconds: 45", "terminationGracePeriodSeconds: 30"),
        "dev",
        "terminationGracePeriodSeconds 30 must exceed",
        "gateway grace period within the drain",
    );
    assert_refused(
        &mutated(&dev, "  AUDITLOG_EVENT_LOG: ", "  AUDITLOG_KAFKA_PASSWORD: hunter2\n  AUDITLOG_EVENT_LOG: "),
        "dev",
        "'AUDITLOG_KAFKA_PASSWORD' looks like a secret",
        "a password in the ConfigMap",
    );
    assert_refused(
        &mutated(&dev, "revisionHistoryLimit: 5", "revisionHistoryLimt: 5"),
        "dev",
        "schema (Kubernetes 1.34, strict)",
        "an unknown field",
    );
    assert_refused(&without_block(&dev, "topologySpreadConstraints"), "dev", "no topologySpreadConstraints", "no topology spread");
    assert_refused(
        &mutated(&dev, "name: AUDITLOG_GATEWAY_METRICS_LISTEN", "name: AUDITLOG_GATEWAY_METRICS_LISTEN_OFF"),
        "dev",
        "AUDITLOG_GATEWAY_METRICS_LISTEN is not set",
        "gateway metrics back on the API port",
    );
    assert_refused(
        &format!("{dev}---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: auditlog-auth\n  namespace: auditlog\nstringData:\n  gateway-hs256-secret: FAKE\n"),
        "dev",
        "secrets are created by the operator",
        "a committed Secret",
    );
}

#[test]
fn k8s_checker_refuses_a_prod_render_that_drifts_from_the_alerts() {
    let prod = render("prod");
    let (passed, printed) = check_rendered(&prod, "prod");
    assert!(passed, "the unchanged prod render must pass, or the cases below prove nothing\n{printed}");

    assert_refused(&mutated(&prod, "for: 2m", "for: 3m"), "prod", "spec.groups differ", "an alert edited in the PrometheusRule only");
    assert_refused(&mutated(&prod, "minReplicas: 3", "minReplicas: 2"), "prod", "prod needs at least 3 replicas", "HPA floor below 3");
    assert_refused(
        &mutated(
            &prod,
            "name: AUDITLOG_INIT_REPLICATION_FACTOR\n          value: \"3\"",
            "name: AUDITLOG_INIT_REPLICATION_FACTOR\n          value: \"1\"",
        ),
        "prod",
        "AUDITLOG_INIT_REPLICATION_FACTOR=3",
        "topics without replication",
    );
}
