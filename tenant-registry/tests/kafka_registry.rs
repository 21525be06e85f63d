//! The Kafka tenant registry against the real local broker: changes cross processes within a
//! second, a late opener replays everything, secrets never reach the topic, and records
//! anyone else produced to the topic are checked like admin API input.
#![cfg(feature = "real-services")]

use std::sync::Arc;
use std::time::{Duration, Instant};

use auditlog_tenant_registry::api_key;
use auditlog_tenant_registry::{
    KafkaRegistryConfig, KafkaTenantRegistry, NewSigningKey, RegistryError, Role, SignaturePolicy, TenantAdmin, TenantPatch, TenantRegistry,
    TenantSettings, TenantStatus,
};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};

fn bootstrap() -> String {
    std::env::var("AUDITLOG_KAFKA_BOOTSTRAP").unwrap_or_else(|_| "127.0.0.1:9092".to_owned())
}

/// A fresh compacted one-partition topic, as `deploy/local/stack topics` creates the real one.
async fn compacted_topic() -> String {
    let name = format!("test.tenants.{}", uuid::Uuid::new_v4().simple());
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", bootstrap()).create().expect("admin client config is valid");
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let topic = NewTopic::new(&name, 1, TopicReplication::Fixed(1)).set("cleanup.policy", "compact").set("retention.ms", "-1");
    let results = tokio::time::timeout(Duration::from_secs(15), admin.create_topics([&topic], &options))
        .await
        .unwrap_or_else(|_| panic!("kafka at {} did not answer within 15 s: is the local stack up?", bootstrap()))
        .expect("kafka accepts create_topics");
    for result in results {
        result.unwrap_or_else(|(topic, code)| panic!("kafka could not create topic {topic}: {code}"));
    }
    name
}

async fn open(topic: &str) -> KafkaTenantRegistry {
    let config = KafkaRegistryConfig { topic: topic.to_owned(), ..KafkaRegistryConfig::new(bootstrap()) };
    KafkaTenantRegistry::open(config).await.expect("registry opens on the local broker")
}

/// Polls `check` until it holds, failing with `what` after `limit`.
async fn within(limit: Duration, what: &str, check: impl Fn() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < limit, "not within {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

const SECOND: Duration = Duration::from_secs(1);

#[tokio::test]
async fn a_tenant_and_key_created_in_one_instance_are_visible_in_another_within_a_second() {
    let topic = compacted_topic().await;
    let (a, b) = (open(&topic).await, open(&topic).await);
    let settings = TenantSettings { rate_limit_per_sec: Some(7), dedicated_topic: true, ..TenantSettings::new("acme") };
    let created = a.create_tenant(settings).await.expect("valid tenant");
    assert_eq!(a.tenant("acme").as_ref(), Some(&created), "the writer reads its own write");
    within(SECOND, "tenant reaches b", || b.tenant("acme").as_ref() == Some(&created)).await;

    let issued = a.create_api_key("acme", "ci", vec![Role::Writer]).await.expect("tenant exists");
    within(SECOND, "key verifies at b", || api_key::authenticate(&b, &issued.key).is_some_and(|r| r.tenant_id == "acme")).await;
    assert_eq!(b.create_tenant(TenantSettings::new("acme")).await, Err(RegistryError::TenantExists("acme".into())));

    let patched = b.update_tenant("acme", TenantPatch { retention_days: Some(30), ..TenantPatch::default() }).await.expect("known");
    within(SECOND, "update made at b reaches a", || a.tenant("acme").as_ref() == Some(&patched)).await;
}

#[tokio::test]
async fn a_key_revoked_in_one_instance_stops_verifying_in_another_within_a_second() {
    let topic = compacted_topic().await;
    let (a, b) = (open(&topic).await, open(&topic).await);
    a.create_tenant(TenantSettings::new("acme")).await.expect("valid tenant");
    let issued = a.create_api_key("acme", "ci", vec![Role::Writer, Role::Reader]).await.expect("tenant exists");
    within(SECOND, "key verifies at b", || api_key::authenticate(&b, &issued.key).is_some()).await;

    let revoked = b.revoke_api_key("acme", &issued.key_id).await.expect("b sees the key and revokes it");
    assert!(revoked.revoked);
    assert!(api_key::authenticate(&b, &issued.key).is_none(), "the revoker refuses it at once");
    within(SECOND, "revocation reaches a", || api_key::authenticate(&a, &issued.key).is_none()).await;
    assert!(a.list_api_keys("acme").expect("known tenant")[0].revoked, "revoked keys stay listed");
}

#[tokio::test]
async fn an_instance_opened_later_replays_the_full_state() {
    let topic = compacted_topic().await;
    let a = open(&topic).await;
    for id in ["acme", "globex", "initech"] {
        a.create_tenant(TenantSettings::new(id)).await.expect("valid tenant");
    }
    a.update_tenant("globex", TenantPatch { rate_limit_per_sec: Some(Some(3)), ..TenantPatch::default() }).await.expect("known");
    let kept = a.create_api_key("acme", "ci", vec![Role::Writer]).await.expect("tenant exists");
    let gone = a.create_api_key("acme", "old", vec![Role::Writer]).await.expect("tenant exists");
    a.revoke_api_key("acme", &gone.key_id).await.expect("own key");

    let c = open(&topic).await;
    assert_eq!(c.list_tenants(), a.list_tenants(), "every tenant with its latest settings");
    assert_eq!(c.tenant("globex").and_then(|t| t.rate_limit_per_sec), Some(3));
    assert_eq!(c.list_api_keys("acme"), a.list_api_keys("acme"));
    assert!(api_key::authenticate(&c, &kept.key).is_some(), "a live key verifies right after open");
    assert!(api_key::authenticate(&c, &gone.key).is_none(), "a revoked key stays revoked after replay");
}

#[tokio::test]
async fn the_secret_verifies_by_hash_and_never_appears_in_the_topic() {
    let topic = compacted_topic().await;
    let a = open(&topic).await;
    a.create_tenant(TenantSettings::new("acme")).await.expect("valid tenant");
    let issued = a.create_api_key("acme", "ci", vec![Role::Writer]).await.expect("tenant exists");
    a.revoke_api_key("acme", &issued.key_id).await.expect("own key");
    assert_eq!(a.api_key_by_hash(&api_key::hash(&issued.key)).map(|r| r.key_id), Some(issued.key_id.clone()));

    let records = raw_records(&topic, 3).await;
    let body = issued.key.strip_prefix(api_key::API_KEY_PREFIX).expect("prefixed");
    let hex = api_key::to_hex(&api_key::hash(&issued.key));
    let mut hash_seen = false;
    for (key, value) in &records {
        for bytes in [key, value] {
            assert!(!contains(bytes, issued.key.as_bytes()) && !contains(bytes, body.as_bytes()), "secret leaked into the topic");
        }
        hash_seen |= contains(value, hex.as_bytes());
    }
    assert!(hash_seen, "the key records carry the secret's sha-256");
    let keys: Vec<_> = records.iter().map(|(k, _)| String::from_utf8_lossy(k).into_owned()).collect();
    let key_record = format!("key/{}", issued.key_id);
    assert_eq!(keys, ["tenant/acme", key_record.as_str(), key_record.as_str()]);
}

#[tokio::test]
async fn opening_on_a_missing_topic_fails_and_shutdown_stops_following() {
    let missing = format!("test.tenants.missing.{}", uuid::Uuid::new_v4().simple());
    let config = KafkaRegistryConfig { topic: missing, ..KafkaRegistryConfig::new(bootstrap()) };
    assert!(matches!(KafkaTenantRegistry::open(config).await, Err(RegistryError::Config(_))));

    let a = Arc::new(open(&compacted_topic().await).await);
    a.check_ready().await.expect("ready while following");
    a.shutdown();
    let start = Instant::now();
    while a.check_ready().await.is_ok() {
        assert!(start.elapsed() < SECOND, "the tail did not stop within a second of shutdown");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The first `count` records of `topic` as raw (key, value) bytes, read by a plain consumer.
async fn raw_records(topic: &str, count: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap())
            .set("group.id", format!("raw-{}", uuid::Uuid::new_v4()))
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .create()
            .expect("consumer config is valid");
        consumer.subscribe(&[&topic]).expect("subscribes");
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut records = Vec::new();
        while records.len() < count {
            assert!(Instant::now() < deadline, "read {} of {count} records", records.len());
            if let Some(message) = consumer.poll(Duration::from_millis(200)) {
                let message = message.expect("reads the topic");
                records.push((message.key().unwrap_or_default().to_vec(), message.payload().unwrap_or_default().to_vec()));
            }
        }
        records
    })
    .await
    .expect("reader task")
}

/// The process-wide Prometheus recorder of this test binary (the registry's counters go to
/// the global recorder, as in the services).
fn metrics() -> &'static metrics_exporter_prometheus::PrometheusHandle {
    static HANDLE: std::sync::OnceLock<metrics_exporter_prometheus::PrometheusHandle> = std::sync::OnceLock::new();
    HANDLE.get_or_init(|| metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder().expect("first recorder of this binary"))
}

/// `auditlog_registry_records_rejected_total{reason}` as rendered now.
fn rejected(reason: &str) -> u64 {
    let prefix = format!("{}{{reason=\"{reason}\"}} ", auditlog_tenant_registry::RECORDS_REJECTED_METRIC);
    metrics().render().lines().find_map(|line| line.strip_prefix(&prefix)?.trim().parse().ok()).unwrap_or(0)
}

/// Produces `records` (key, value; `None` value is a tombstone) in order with a plain producer.
async fn produce(topic: &str, records: &[(Option<&str>, Option<Vec<u8>>)]) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .set("enable.idempotence", "true")
        .create()
        .expect("producer config is valid");
    for (key, value) in records {
        let mut record = FutureRecord::<str, [u8]>::to(topic);
        if let Some(key) = key {
            record = record.key(key);
        }
        if let Some(value) = value {
            record = record.payload(value);
        }
        producer.send(record, Duration::from_secs(10)).await.unwrap_or_else(|(e, _)| panic!("kafka accepts the record: {e}"));
    }
}

fn key_value(key_id: &str, tenant: &str, roles: &str, hash: &str) -> Vec<u8> {
    format!(
        r#"{{"key_id":"{key_id}","tenant_id":"{tenant}","name":"ci","roles":{roles},"revoked":false,"created_at":"2026-01-01T00:00:00Z","key_sha256":"{hash}"}}"#
    )
    .into_bytes()
}

#[tokio::test]
async fn records_produced_by_anyone_are_checked_and_invalid_ones_skipped_by_the_tail_and_the_replay() {
    let topic = compacted_topic().await;
    let follower = open(&topic).await;
    let before: Vec<u64> = ["malformed", "invalid_tenant", "invalid_api_key", "conflict"].map(rejected).into();

    // A real key of acme, so a forged record can try to move it to another tenant.
    let secret = api_key::generate();
    let hex = api_key::to_hex(&secret.hash);
    let key_id = "key_0190f0e8a1b27c3d8e4f5a6b7c8d9e0f";
    let key_record = format!("key/{key_id}");
    let tenant = |id: &str, extra: &str| format!(r#"{{"id":"{id}","name":"{id}"{extra}}}"#).into_bytes();
    let forged = |id: &str, tenant: &str, roles: &str, hash: &str| (Some(format!("key/{id}")), Some(key_value(id, tenant, roles, hash)));
    let other_hash = api_key::to_hex(&api_key::generate().hash);
    let mut records: Vec<(Option<String>, Option<Vec<u8>>)> = vec![
        (Some("tenant/acme".into()), Some(tenant("acme", ""))),
        (Some(key_record.clone()), Some(key_value(key_id, "acme", r#"["reader"]"#, &hex))),
        // malformed: 4
        // (a compacted topic refuses records without a key, so no keyless one here)
        (Some("tenants/nokey".into()), Some(tenant("nokey", ""))),
        (Some("tenant/acme".into()), Some(b"{not json".to_vec())),
        (Some("tenant/acme".into()), Some(tenant("globex", ""))),
        (Some("tenant/acme".into()), Some(tenant("acme", r#","status":"root""#))),
        // invalid_tenant: 5
        (Some("tenant/system".into()), Some(tenant("system", ""))),
        (Some("tenant/Evil.Corp".into()), Some(tenant("Evil.Corp", ""))),
        (Some("tenant/acme".into()), Some(tenant("acme", r#","retention_days":0"#))),
        (Some("tenant/acme".into()), Some(tenant("acme", r#","rate_limit_per_sec":2000000"#))),
        (Some("tenant/acme".into()), Some(format!(r#"{{"id":"acme","name":"{}"}}"#, "x".repeat(500)).into_bytes())),
        // invalid_api_key: 5
        forged("key_0190f0e8a1b27c3d8e4f5a6b7c8d9e1f", "acme", r#"["platform_admin"]"#, &other_hash),
        forged("key_0190f0e8a1b27c3d8e4f5a6b7c8d9e2f", "acme", r#"["superuser"]"#, &other_hash),
        forged("key_0190f0e8a1b27c3d8e4f5a6b7c8d9e3f", "system", r#"["reader"]"#, &other_hash),
        forged("key_0190f0e8a1b27c3d8e4f5a6b7c8d9e4f", "acme", r#"["reader"]"#, "00"),
        forged("not-a-key-id", "acme", r#"["reader"]"#, &other_hash),
        // conflict: 1 (acme's key moved to globex)
        (Some(key_record.clone()), Some(key_value(key_id, "globex", r#"["reader","writer","tenant_admin"]"#, &hex))),
    ];
    // Valid records after the invalid ones still apply.
    records.push((Some("tenant/globex".into()), Some(tenant("globex", r#","retention_days":30"#))));
    let records: Vec<(Option<&str>, Option<Vec<u8>>)> = records.iter().map(|(k, v)| (k.as_deref(), v.clone())).collect();
    produce(&topic, &records).await;

    let expect = |registry: &KafkaTenantRegistry, who: &str| {
        let acme = registry.tenant("acme").unwrap_or_else(|| panic!("{who}: acme applied"));
        assert_eq!((acme.name.as_str(), acme.retention_days, acme.rate_limit_per_sec), ("acme", 365, None), "{who}: no invalid acme record applied");
        let ids: Vec<_> = registry.list_tenants().into_iter().map(|t| t.id).collect();
        assert_eq!(ids, ["acme", "globex"], "{who}: only valid tenants");
        let record = api_key::authenticate(registry, &secret.secret).unwrap_or_else(|| panic!("{who}: the valid key works"));
        assert_eq!((record.tenant_id.as_str(), record.roles.as_slice()), ("acme", &[Role::Reader][..]), "{who}: the key stays acme's reader");
        assert_eq!(registry.list_api_keys("acme").map(|k| k.len()), Ok(1), "{who}: no forged key of acme");
        assert_eq!(registry.api_key_by_hash(&api_key::from_hex(&other_hash).expect("hex")), None, "{who}: no forged key at all");
    };
    // The last record applied proves the tail read past every invalid one.
    within(Duration::from_secs(5), "globex reaches the follower", || follower.tenant("globex").is_some()).await;
    expect(&follower, "follower");
    let late = open(&topic).await;
    expect(&late, "late opener");
    follower.check_ready().await.expect("the follower still follows");
    late.check_ready().await.expect("the late opener follows");

    // Both readers rejected every invalid record once.
    let after: Vec<u64> = ["malformed", "invalid_tenant", "invalid_api_key", "conflict"].map(rejected).into();
    let counted: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    assert_eq!(counted, [4 * 2, 5 * 2, 5 * 2, 2], "rejections by reason (malformed, invalid_tenant, invalid_api_key, conflict)");

    // And the follower still applies the registry's own changes after them.
    let made = late.create_tenant(TenantSettings::new("initech")).await.expect("valid tenant");
    within(SECOND, "a later change reaches the follower", || follower.tenant("initech").as_ref() == Some(&made)).await;
}

/// A valid ed25519 public key (RFC 8032 test 1), standard base64.
const ED25519_KEY: &str = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";

fn signing_key(key_id: &str) -> NewSigningKey {
    NewSigningKey {
        key_id: Some(key_id.to_owned()),
        producer: "billing".into(),
        alg: "ed25519".into(),
        public_key: ED25519_KEY.into(),
        ..NewSigningKey::default()
    }
}

#[tokio::test]
async fn signing_keys_and_the_signature_policy_cross_instances_and_revocation_keeps_the_earlier_time() {
    let topic = compacted_topic().await;
    let (a, b) = (open(&topic).await, open(&topic).await);
    a.create_tenant(TenantSettings::new("acme")).await.expect("valid tenant");
    let policy = TenantPatch { signatures: Some(SignaturePolicy::Required), ..TenantPatch::default() };
    a.update_tenant("acme", policy).await.expect("known tenant");
    within(SECOND, "the policy reaches b", || b.tenant("acme").is_some_and(|t| t.signatures == SignaturePolicy::Required)).await;

    let added = a.add_signing_key("acme", signing_key("billing-1")).await.expect("valid key");
    within(SECOND, "the key reaches b", || b.signing_key("acme", "billing-1").as_ref() == Some(&added)).await;
    assert_eq!(b.add_signing_key("acme", signing_key("billing-1")).await, Err(RegistryError::SigningKeyExists("billing-1".into())), "duplicate id");

    let at = added.not_before + time::Duration::hours(1);
    let revoked = b.revoke_signing_key("acme", "billing-1", at).await.expect("b sees the key and revokes it");
    assert_eq!(revoked.revoked_at, Some(at));
    within(SECOND, "the revocation reaches a", || a.signing_key("acme", "billing-1").and_then(|k| k.revoked_at) == Some(at)).await;
    let again = a.revoke_signing_key("acme", "billing-1", at + time::Duration::hours(5)).await.expect("idempotent");
    assert_eq!(again.revoked_at, Some(at), "a second, later revocation keeps the earlier time");
    assert_eq!(b.revoke_signing_key("acme", "nope", at).await, Err(RegistryError::UnknownSigningKey("nope".into())));

    let late = open(&topic).await;
    assert_eq!(late.list_signing_keys("acme"), a.list_signing_keys("acme"), "a late opener replays the keys");
    assert_eq!(late.signing_key("acme", "billing-1").and_then(|k| k.revoked_at), Some(at));
    assert_eq!(late.tenant("acme").map(|t| t.signatures), Some(SignaturePolicy::Required));

    let tombstone = TenantPatch { status: Some(TenantStatus::Deleted), ..TenantPatch::default() };
    a.update_tenant("acme", tombstone).await.expect("known tenant");
    within(SECOND, "a deleted tenant's keys stop being served at b", || b.signing_key("acme", "billing-1").is_none()).await;
}

#[tokio::test]
async fn signing_key_records_with_a_bad_key_are_refused_on_read_back() {
    let topic = compacted_topic().await;
    let follower = open(&topic).await;
    let before = rejected("invalid_signing_key");
    let key = |key_id: &str, alg: &str, public_key: &str| {
        let value = format!(
            r#"{{"key_id":"{key_id}","tenant_id":"acme","producer":"billing","alg":"{alg}","public_key":"{public_key}","not_before":"2026-01-01T00:00:00Z","not_after":null,"revoked_at":null,"created_at":"2026-01-01T00:00:00Z"}}"#
        );
        (Some(format!("signing-key/acme/{key_id}")), Some(value.into_bytes()))
    };
    let records: Vec<(Option<String>, Option<Vec<u8>>)> = vec![
        (Some("tenant/acme".into()), Some(br#"{"id":"acme","name":"acme"}"#.to_vec())),
        key("not-base64", "ed25519", "%%%"),
        key("short", "ed25519", "AAAA"),
        key("wrong-alg", "ecdsa-p256-sha256", ED25519_KEY),
        key("unknown-alg", "rsa", ED25519_KEY),
        key("good", "ed25519", ED25519_KEY),
    ];
    let records: Vec<(Option<&str>, Option<Vec<u8>>)> = records.iter().map(|(k, v)| (k.as_deref(), v.clone())).collect();
    produce(&topic, &records).await;

    within(Duration::from_secs(5), "the valid key reaches the follower", || follower.signing_key("acme", "good").is_some()).await;
    let late = open(&topic).await;
    for (registry, who) in [(&follower, "follower"), (&late, "late opener")] {
        let ids: Vec<_> = registry.list_signing_keys("acme").expect("known tenant").into_iter().map(|k| k.key_id).collect();
        assert_eq!(ids, ["good"], "{who}: only the valid key");
    }
    assert_eq!(rejected("invalid_signing_key") - before, 4 * 2, "each bad record rejected by both readers");
}
