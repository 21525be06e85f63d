//! Every secret value the repository's docs, manifests and example configs show is refused by
//! the placeholder rule (`auditlog_api_common::secrets`), so a new example secret cannot slip
//! in: someone who copies it gets a startup error, not a deployment anyone can mint tokens for.
//!
//! The scan finds `<something>secret<something> = value` and `...: value` (env files, YAML,
//! JSON, shell), takes the default of `${VAR:-default}`, and skips what is not a literal
//! (`$(openssl rand ...)`, `$VAR`, `<random>`, file paths). Values shorter than 32 bytes are
//! skipped too: the services refuse those anyway (HS256 and cursor secrets need 32 bytes).

use std::path::{Path, PathBuf};

use auditlog_api_common::secrets::placeholder_reason;

/// Shortest secret a service accepts; anything shorter is refused by length already.
const MIN_SECRET_LEN: usize = 32;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

/// The files that show secrets to a reader: README, compose files, deploy/, bench and script
/// docs, and the example configs.
fn scanned_files() -> Vec<PathBuf> {
    let root = repo();
    let mut files = vec![root.join("README.md"), root.join("ingest-gateway/gateway.example.json"), root.join("query-api/query-api.example.json")];
    for dir in ["", "bench", "scripts"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
            let wanted = match dir {
                "" => name.starts_with("docker-compose") && (name.ends_with(".yml") || name.ends_with(".yaml")),
                "bench" => name.ends_with(".md") || name.ends_with(".sh"),
                _ => path.is_file(),
            };
            if wanted {
                files.push(path);
            }
        }
    }
    walk(&root.join("deploy"), &mut files);
    files
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if name.starts_with('.') || name == "target" || name == "node_modules" {
            continue; // state of a running local stack, caches
        }
        if path.is_dir() {
            walk(&path, files);
        } else {
            files.push(path);
        }
    }
}

fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')
}

/// The literal values assigned to secret-named keys on `line`.
fn secret_values(line: &str) -> Vec<String> {
    let lower = line.to_ascii_lowercase();
    let mut values = Vec::new();
    let mut from = 0;
    while let Some(found) = lower[from..].find("secret") {
        let start = from + found;
        let key_end = start + lower[start..].find(|c: char| !is_key_char(c)).unwrap_or(lower.len() - start);
        from = key_end.max(start + 1);
        let rest = line[key_end..].trim_start_matches(['"', '\'']).trim_start();
        // `${VAR_SECRET:-default}`: the default is what runs when nothing is set.
        if let Some(default) = rest.strip_prefix(":-") {
            values.push(default.split('}').next().unwrap_or_default().to_owned());
            continue;
        }
        let Some(rest) = rest.strip_prefix([':', '=']) else { continue };
        let rest = rest.trim_start().trim_start_matches(['"', '\'']);
        let value: String = rest.chars().take_while(|c| !c.is_whitespace() && !matches!(c, '"' | '\'' | ',' | '}' | ')')).collect();
        // `${VAR:-default}`: the default is what runs when nothing is set.
        let value = match rest.strip_prefix("${").and_then(|r| r.split_once(":-")) {
            Some((_, default)) => default.split('}').next().unwrap_or_default().to_owned(),
            None => value,
        };
        values.push(value);
    }
    values.retain(|v| v.len() >= MIN_SECRET_LEN && !v.starts_with(['$', '<', '/', '{', '[']));
    values.dedup();
    values
}

#[test]
fn the_scanner_finds_secrets_in_each_notation() {
    let found = |line: &str| secret_values(line);
    let long = "abcdefghijklmnopqrstuvwxyz0123456789";
    assert_eq!(found(&format!("export AUDITLOG_GATEWAY_AUTH_HS256_SECRET={long}")), [long]);
    assert_eq!(found(&format!("  AUDITLOG_QUERY_CURSOR_SECRET: ${{AUDITLOG_DEV_CURSOR_SECRET:-{long}}}")), [long]);
    assert_eq!(found(&format!("  SOMETHING: ${{ANY_SECRET:-{long}}}")), [long]);
    assert_eq!(found(&format!(r#"  "cursor_secret": "{long}","#)), [long]);
    assert_eq!(found(&format!(r#"{{ "id": "dev", "material": {{ "secret": "{long}" }} }}"#)), [long]);
    assert_eq!(found(&format!("      - hs256-secret={long}")), [long]);
    for not_literal in [
        "export AUDITLOG_GATEWAY_AUTH_HS256_SECRET=$(openssl rand -hex 32)",
        "AUDITLOG_GATEWAY_AUTH_HS256_SECRET=<random> auditlog gateway",
        "  AUDITLOG_QUERY_CURSOR_SECRET_FILE: /data/dev-secrets/query-cursor-with-a-long-path",
        r#"--from-literal=cursor-secret="$(openssl rand -base64 48)""#,
        "            secretName: auditlog-auth",
    ] {
        assert!(found(not_literal).is_empty(), "{not_literal}");
    }
}

#[test]
fn every_secret_the_repository_shows_is_refused() {
    let mut seen = Vec::new();
    for path in scanned_files() {
        let Ok(text) = std::fs::read_to_string(&path) else { continue }; // binary files
        for (number, line) in text.lines().enumerate() {
            for value in secret_values(line) {
                let place = format!("{}:{}", path.strip_prefix(repo()).unwrap_or(&path).display(), number + 1);
                assert!(placeholder_reason(&value).is_some(), "{place} shows a secret the services would accept: {value:?}");
                seen.push(place);
            }
        }
    }
    // The example configs show three (the gateway's and the query API's HS256 keys, the
    // cursor key): the scan is not vacuous.
    assert!(seen.len() >= 3, "too few secrets found, is the scanner broken? {seen:?}");
}
