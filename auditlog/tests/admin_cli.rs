//! `auditlog admin signing-key add|list|revoke` and `update-tenant --signatures`, run as the
//! built binary on a file registry (standalone's): changes are durable in the file, bad input
//! fails naming the field, and a second revocation keeps the earlier time.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

/// A valid ed25519 public key (RFC 8032 test 1), standard base64.
const ED25519_KEY: &str = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";

fn admin(registry: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_auditlog"))
        .arg("admin")
        .arg("--registry")
        .arg(format!("file://{}", registry.display()))
        .args(args)
        .env("RUST_LOG", "off")
        .output()
        .expect("run auditlog")
}

fn ok(registry: &Path, args: &[&str]) -> Value {
    let out = admin(registry, args);
    assert!(out.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{args:?} printed no json ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

fn fails_naming(registry: &Path, args: &[&str], field: &str) {
    let out = admin(registry, args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} should fail");
    assert!(stderr.contains(field), "{args:?}: the error names {field}: {stderr}");
}

#[test]
fn signing_keys_are_added_listed_and_revoked_and_the_policy_is_set() {
    let dir = tempfile::tempdir().expect("tempdir");
    let registry = dir.path().join("tenants.json");
    ok(&registry, &["create-tenant", "--id", "acme"]);
    let updated = ok(&registry, &["update-tenant", "--id", "acme", "--signatures", "required"]);
    assert_eq!(updated["signatures"], "required");
    fails_naming(&registry, &["update-tenant", "--id", "acme", "--signatures", "always"], "signature policy");

    let added = ok(
        &registry,
        &["signing-key", "add", "--tenant", "acme", "--producer", "billing", "--public-key", ED25519_KEY, "--key-id", "billing-1",
          "--not-before", "2026-01-01T00:00:00Z", "--not-after", "2027-01-01T00:00:00Z"],
    );
    assert_eq!((added["key_id"].as_str(), added["alg"].as_str(), added["not_after"].as_str()), (Some("billing-1"), Some("ed25519"), Some("2027-01-01T00:00:00Z")));
    fails_naming(&registry, &["signing-key", "add", "--tenant", "acme", "--producer", "billing", "--public-key", ED25519_KEY, "--key-id", "billing-1"], "billing-1");
    fails_naming(&registry, &["signing-key", "add", "--tenant", "acme", "--producer", "billing", "--public-key", "AAAA"], "public_key");
    fails_naming(&registry, &["signing-key", "add", "--tenant", "acme", "--producer", "billing", "--alg", "rsa", "--public-key", ED25519_KEY], "alg");
    fails_naming(&registry, &["signing-key", "add", "--tenant", "acme", "--producer", "b", "--public-key", ED25519_KEY, "--not-before", "soon"], "RFC 3339");

    let revoked = ok(&registry, &["signing-key", "revoke", "--tenant", "acme", "--key-id", "billing-1", "--at", "2026-06-01T00:00:00Z"]);
    assert_eq!(revoked["revoked_at"], "2026-06-01T00:00:00Z");
    let again = ok(&registry, &["signing-key", "revoke", "--tenant", "acme", "--key-id", "billing-1"]);
    assert_eq!(again["revoked_at"], "2026-06-01T00:00:00Z", "a later revocation keeps the earlier time");
    fails_naming(&registry, &["signing-key", "revoke", "--tenant", "acme", "--key-id", "nope"], "unknown signing key");

    // Each command opened the file anew: what the last one lists was durable.
    let listed = ok(&registry, &["signing-key", "list", "--tenant", "acme"]);
    let keys = listed.as_array().expect("a list");
    assert_eq!(keys.len(), 1);
    assert_eq!((keys[0]["key_id"].as_str(), keys[0]["revoked_at"].as_str()), (Some("billing-1"), Some("2026-06-01T00:00:00Z")));
    let tenants = ok(&registry, &["list-tenants"]);
    assert_eq!(tenants[0]["signatures"], "required");
}
