//! `auditlog healthcheck`: the container image's `HEALTHCHECK`, so the image needs no curl.
//! One image serves every role, each on its own port, so without `--url` it probes
//! `/healthz` on every listen address the environment names (`AUDITLOG_GATEWAY_LISTEN`,
//! `AUDITLOG_QUERY_LISTEN`, `AUDITLOG_PROCESSOR_LISTEN`, `AUDITLOG_LISTEN`, or their
//! defaults) and passes when one answers 2xx: in a container only the running role listens.

use std::time::Duration;

/// Listen settings of the roles, with their defaults.
const LISTEN_SETTINGS: [(&str, &str); 4] = [
    ("AUDITLOG_GATEWAY_LISTEN", "127.0.0.1:8080"),
    ("AUDITLOG_QUERY_LISTEN", "127.0.0.1:8090"),
    ("AUDITLOG_PROCESSOR_LISTEN", "127.0.0.1:9464"),
    ("AUDITLOG_LISTEN", "127.0.0.1:8080"),
];

/// Options of `auditlog healthcheck`.
#[derive(Debug, clap::Args)]
pub struct HealthcheckArgs {
    /// URL to probe instead of `/healthz` on the roles' listen addresses.
    #[arg(long)]
    url: Option<String>,
    /// Time budget of each probe, in milliseconds.
    #[arg(long, default_value_t = 2_000)]
    timeout_ms: u64,
}

/// The URLs to probe: `--url`, or `/healthz` on each distinct listen address, a wildcard
/// host (`0.0.0.0`, `[::]`) probed on the loopback.
fn urls(args: &HealthcheckArgs, var: impl Fn(&str) -> Option<String>) -> Vec<String> {
    if let Some(url) = &args.url {
        return vec![url.clone()];
    }
    let mut urls = Vec::new();
    for (name, default) in LISTEN_SETTINGS {
        let listen = var(name).unwrap_or_else(|| default.to_owned());
        let local = match listen.rsplit_once(':') {
            Some(("0.0.0.0" | "[::]" | "", port)) => format!("127.0.0.1:{port}"),
            _ => listen,
        };
        let url = format!("http://{local}/healthz");
        if !urls.contains(&url) {
            urls.push(url);
        }
    }
    urls
}

/// True when one of the probed URLs answered 2xx; prints what it found.
pub async fn healthcheck(args: HealthcheckArgs) -> anyhow::Result<bool> {
    let client = reqwest::Client::builder().timeout(Duration::from_millis(args.timeout_ms)).build()?;
    let mut failures = Vec::new();
    for url in urls(&args, |name| std::env::var(name).ok()) {
        match client.get(&url).send().await {
            Ok(answer) if answer.status().is_success() => {
                println!("healthy: {url} answered {}", answer.status());
                return Ok(true);
            }
            Ok(answer) => failures.push(format!("{url} answered {}", answer.status())),
            Err(err) => failures.push(format!("{url}: {}", err.without_url())),
        }
    }
    eprintln!("unhealthy: {}", failures.join("; "));
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_each_roles_address_on_the_loopback() {
        let args = HealthcheckArgs { url: None, timeout_ms: 1 };
        let env = |name: &str| match name {
            "AUDITLOG_GATEWAY_LISTEN" => Some("0.0.0.0:8080".to_owned()),
            "AUDITLOG_QUERY_LISTEN" => Some("[::]:8090".to_owned()),
            "AUDITLOG_LISTEN" => Some("0.0.0.0:8080".to_owned()),
            _ => None,
        };
        assert_eq!(urls(&args, env), ["http://127.0.0.1:8080/healthz", "http://127.0.0.1:8090/healthz", "http://127.0.0.1:9464/healthz"]);
        let explicit = HealthcheckArgs { url: Some("http://h:1/readyz".into()), timeout_ms: 1 };
        assert_eq!(urls(&explicit, |_| None), ["http://h:1/readyz"]);
    }
}
