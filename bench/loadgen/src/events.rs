//! Realistic AuditEvent bodies: varied actions, actors, 0-3 targets, request context and a
//! little metadata, about 400-600 bytes of JSON each, as an application's audit SDK sends them.

use rand::Rng;
use rand::rngs::StdRng;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Actions with the target types they usually touch.
const ACTIONS: &[(&str, &[&str])] = &[
    ("user.login", &[]),
    ("user.logout", &[]),
    ("user.password_reset", &["user"]),
    ("user.mfa.enroll", &["user", "device"]),
    ("document.create", &["document", "folder"]),
    ("document.view", &["document"]),
    ("document.update", &["document"]),
    ("document.delete", &["document", "folder"]),
    ("document.share", &["document", "user", "group"]),
    ("project.member.add", &["project", "user"]),
    ("project.member.remove", &["project", "user"]),
    ("billing.invoice.pay", &["invoice", "payment_method"]),
    ("api_key.create", &["api_key"]),
    ("api_key.revoke", &["api_key"]),
    ("role.assign", &["user", "role", "project"]),
    ("settings.sso.update", &["sso_connection"]),
    ("export.download", &["export", "dataset"]),
    ("repository.push", &["repository", "branch"]),
];
const FIRST: &[&str] = &["Ada", "Grace", "Alan", "Edsger", "Barbara", "Ken", "Margaret", "Linus", "Donald", "Radia"];
const LAST: &[&str] = &["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Thompson", "Hamilton", "Torvalds", "Knuth", "Perlman"];
const SERVICES: &[(&str, &str)] = &[("docs-api", "3.14.1"), ("auth", "2.7.0"), ("billing", "1.22.4"), ("admin-console", "5.0.2")];
const AGENTS: &[&str] = &[
    "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/131.0 Safari/537.36",
    "auditlog-sdk-go/1.4.0",
    "curl/8.9.1",
];
const LOCATIONS: &[&str] = &["Lisbon, PT", "Berlin, DE", "Austin, US", "Osaka, JP", "Nairobi, KE"];

/// Makes events; one per producer task, so no locking on the hot path.
pub struct EventGen {
    rng: StdRng,
    /// Share of events that carry a producer `id` (the idempotency key), 0.0..=1.0.
    id_fraction: f64,
    /// When events occurred: within the last 2 s (zero), or uniformly over this much past.
    spread: time::Duration,
}

impl EventGen {
    /// A generator seeded by `rng`.
    pub fn new(rng: StdRng, id_fraction: f64) -> Self {
        Self { rng, id_fraction, spread: time::Duration::ZERO }
    }

    /// Events that occurred uniformly over the last `spread` (a history to query), each
    /// carrying its `occurred_at`.
    pub fn spread_over(mut self, spread: time::Duration) -> Self {
        self.spread = spread;
        self
    }

    /// One event as a JSON value.
    pub fn event(&mut self) -> Value {
        let r = &mut self.rng;
        let (action, target_types) = ACTIONS[r.random_range(0..ACTIONS.len())];
        let user = r.random_range(1..5_000u32);
        let (first, last) = (FIRST[r.random_range(0..FIRST.len())], LAST[r.random_range(0..LAST.len())]);
        let service_actor = r.random_bool(0.15);
        let actor = if service_actor {
            json!({"id": format!("svc-{}", r.random_range(1..40u32)), "type": "service", "name": "nightly-sync"})
        } else {
            json!({"id": format!("user-{user}"), "type": "user", "name": format!("{first} {last}"),
                   "email": format!("{}.{}{user}@example.com", first.to_lowercase(), last.to_lowercase())})
        };
        let (service, version) = SERVICES[r.random_range(0..SERVICES.len())];
        let mut event = Map::new();
        if r.random_bool(self.id_fraction) {
            event.insert("id".into(), Value::String(uuid::Uuid::now_v7().to_string()));
        }
        let ago = if self.spread.is_positive() {
            Some(time::Duration::milliseconds(r.random_range(0..self.spread.whole_milliseconds().max(1) as i64)))
        } else {
            r.random_bool(0.7).then(|| time::Duration::milliseconds(r.random_range(0..2_000)))
        };
        if let Some(ago) = ago
            && let Ok(at) = (OffsetDateTime::now_utc() - ago).format(&Rfc3339)
        {
            event.insert("occurred_at".into(), Value::String(at));
        }
        event.insert("action".into(), action.into());
        event.insert("actor".into(), actor);
        let targets = targets(r, target_types);
        if !targets.is_empty() {
            event.insert("targets".into(), Value::Array(targets));
        }
        event.insert("outcome".into(), (if r.random_bool(0.92) { "success" } else { "failure" }).into());
        event.insert("severity".into(), ["info", "info", "info", "warning", "error"][r.random_range(0..5)].into());
        event.insert("source".into(), json!({"service": service, "version": version, "host": format!("{service}-{:04x}", r.random_range(0..0xffffu32))}));
        event.insert("context".into(), context(r));
        if r.random_bool(0.4) {
            event.insert("description".into(), format!("{first} {last} ran {action} from the web console").into());
        }
        event.insert("metadata".into(), metadata(r));
        Value::Object(event)
    }
}

/// Up to three targets, of the types the action touches.
fn targets(r: &mut StdRng, types: &[&str]) -> Vec<Value> {
    let n = r.random_range(0..=types.len().min(3));
    types[..n]
        .iter()
        .map(|t| {
            let id = format!("{t}-{}", r.random_range(1..100_000u32));
            if r.random_bool(0.5) { json!({"type": t, "id": id, "name": format!("{t} #{}", r.random_range(1..999u32))}) } else { json!({"type": t, "id": id}) }
        })
        .collect()
}

fn context(r: &mut StdRng) -> Value {
    let ip = format!("{}.{}.{}.{}", r.random_range(1..224u8), r.random::<u8>(), r.random::<u8>(), r.random_range(1..255u8));
    let mut ctx = json!({
        "ip": ip,
        "user_agent": AGENTS[r.random_range(0..AGENTS.len())],
        "request_id": format!("req-{:08x}", r.random::<u32>()),
    });
    if r.random_bool(0.5) {
        ctx["trace_id"] = format!("{:032x}", r.random::<u128>()).into();
    }
    if r.random_bool(0.3) {
        ctx["location"] = LOCATIONS[r.random_range(0..LOCATIONS.len())].into();
    }
    ctx
}

fn metadata(r: &mut StdRng) -> Value {
    match r.random_range(0..4) {
        0 => json!({"mfa": r.random_bool(0.8), "session_age_s": r.random_range(0..86_400u32)}),
        1 => json!({"reason": "retention", "review": {"ticket": format!("GRC-{}", r.random_range(1..999u32)), "approved": true}}),
        2 => json!({"bytes": r.random_range(1..10_000_000u32), "mime": "application/pdf"}),
        _ => json!({"plan": "enterprise", "seats": r.random_range(1..500u32)}),
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn events_are_valid_and_of_realistic_size() {
        let mut generator = EventGen::new(StdRng::seed_from_u64(7), 0.5);
        let ctx = auditlog_schemas::IngestContext { tenant_id: "acme", received_at: OffsetDateTime::now_utc() };
        let mut total = 0;
        for _ in 0..1_000 {
            let event = generator.event();
            total += serde_json::to_vec(&event).expect("serializable").len();
            auditlog_schemas::validate_event(event, &ctx).expect("the gateway accepts generated events");
        }
        let average = total / 1_000;
        assert!((400..=600).contains(&average), "average JSON size {average} B");
    }

    #[test]
    fn a_spread_history_covers_the_past_days_and_stays_valid() {
        let days = time::Duration::days(30);
        let mut generator = EventGen::new(StdRng::seed_from_u64(7), 0.5).spread_over(days);
        let now = OffsetDateTime::now_utc();
        let ctx = auditlog_schemas::IngestContext { tenant_id: "acme", received_at: now };
        let ages: Vec<time::Duration> = (0..1_000)
            .map(|_| auditlog_schemas::validate_event(generator.event(), &ctx).expect("valid").occurred_at)
            .map(|at| now - at)
            .collect();
        assert!(ages.iter().all(|age| *age >= -time::Duration::seconds(1) && *age <= days), "within the last 30 days");
        assert!(ages.iter().any(|age| *age > time::Duration::days(25)) && ages.iter().any(|age| *age < time::Duration::days(5)), "spread over them");
    }
}
