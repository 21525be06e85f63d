//! Known placeholder secrets, refused at startup: every secret value the repository ever showed
//! as an example (README, compose files, manifests, example configs), and any value carrying an
//! obvious placeholder marker (`change-me`, `do-not-use`, `example`, ...). A deployment that
//! copied an example would otherwise accept tokens anyone can mint.
//!
//! One rule for every secret setting: the HS256 secrets of the gateway and the query API (from
//! the environment, a `*_FILE` or `auth.keys` of a config file) and the query API's cursor
//! secret. `tests/placeholders.rs` scans the repository's docs and manifests for the secret
//! values they show and asserts this rule refuses each one, so a new example cannot slip in.

/// Every secret value the repository showed as an example; refused exactly (compared after
/// trimming, case-insensitively).
pub const KNOWN_EXAMPLE_SECRETS: &[&str] = &[
    // README (distributed quick start) before the examples were randomised.
    "dev-only-secret-change-me-0123456789",
    // docker-compose.yml and deploy/compose/README.md.
    "dev-only-insecure-hs256-secret-change-me-0123456789",
    "dev-only-insecure-cursor-secret-change-me-0123456789",
    // deploy/k8s/overlays/dev.
    "dev-only-FAKE-hs256-secret-do-not-use-0123456789",
    "dev-only-FAKE-cursor-secret-do-not-use-0123456789",
    // ingest-gateway/gateway.example.json, query-api/query-api.example.json.
    "change-me-dev-only-shared-secret",
    "change-me-cursor-signing-secret-32-bytes",
    // The same files now: refused, so a copied example config fails at startup.
    "example-only-gateway-hs256-secret-replace-with-openssl-rand-hex-32",
    "example-only-query-hs256-secret-replace-with-openssl-rand-hex-32",
    "example-only-cursor-secret-replace-with-openssl-rand-hex-32",
];

/// Substrings that mark a value as a placeholder (compared case-insensitively, with `_` and
/// spaces read as `-`).
pub const PLACEHOLDER_MARKERS: &[&str] = &[
    "change-me",
    "changeme",
    "change-this",
    "replace-me",
    "do-not-use",
    "dont-use",
    "placeholder",
    "insecure",
    "example",
    "your-secret",
    "secret-here",
    "dev-only",
    "not-a-secret",
];

/// Fewest distinct characters a secret must have: `aaaa...` or `abababab...` is a placeholder
/// whatever its length.
pub const MIN_DISTINCT_CHARS: usize = 8;

/// Why `secret` is a placeholder that must not be accepted, or `None` when it is not one. The
/// answer never contains the secret.
pub fn placeholder_reason(secret: &str) -> Option<String> {
    let trimmed = secret.trim();
    if KNOWN_EXAMPLE_SECRETS.iter().any(|known| known.eq_ignore_ascii_case(trimmed)) {
        return Some("is an example secret published in the auditlog repository".to_owned());
    }
    let normalised: String = trimmed.to_ascii_lowercase().chars().map(|c| if c == '_' || c == ' ' { '-' } else { c }).collect();
    if let Some(marker) = PLACEHOLDER_MARKERS.iter().find(|m| normalised.contains(*m)) {
        return Some(format!("looks like a placeholder (contains {marker:?})"));
    }
    let mut distinct: Vec<char> = trimmed.chars().collect();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < MIN_DISTINCT_CHARS {
        return Some(format!("looks like a placeholder (fewer than {MIN_DISTINCT_CHARS} distinct characters)"));
    }
    None
}

/// How to make a real secret, for error messages.
pub const HOW_TO_GENERATE: &str = "generate one, e.g. `openssl rand -hex 32`";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_examples_and_markers_are_refused_random_values_are_not() {
        for known in KNOWN_EXAMPLE_SECRETS {
            assert!(placeholder_reason(known).is_some(), "{known}");
            assert!(placeholder_reason(&format!("  {}\n", known.to_uppercase())).is_some(), "{known}, other case and spaces");
        }
        for bad in ["my-CHANGE_ME-secret-0123456789abcdef", "Insecure-0123456789abcdef0123456789", "s".repeat(40).as_str(), "abababababababababababababababab"] {
            let reason = placeholder_reason(bad).expect("a placeholder");
            assert!(!reason.contains(bad), "the reason never repeats the secret");
        }
        for good in ["3f9a1c0e7b2d48a6c5e1f0b39d7a2e4c8b6f1d0a9e3c5b7d2f4a6c8e0b1d3f5a", "distributed-test-secret-0123456789abcdef", "Zk3q9Xv2Lw8Rt5Yp1Hs7Mn4Bd6Fg0Jc"] {
            assert_eq!(placeholder_reason(good), None, "{good}");
        }
    }
}
