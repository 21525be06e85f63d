//! [`FileTenantRegistry`]: the registry persisted in one JSON file (`file:///path`), the
//! durable registry of standalone mode.
//!
//! # Design, and why
//! - **One file, rewritten atomically.** The file holds the full current state of every
//!   entity, in the registry topic's record format (`crate::record`: key `tenant/<id>` or
//!   `key/<key_id>`, value the entity's JSON; a key's value holds the SHA-256 of its secret,
//!   never the secret). Each change rewrites the whole file (write a temporary file, fsync,
//!   rename, fsync the directory), so a crash leaves the old or the new state, never a mix.
//!   Admin changes are rare and human-paced and the file is as small as the registry, so the
//!   rewrite costs nothing that matters, and there is no log to compact.
//! - **Durable before visible.** A change is validated against the in-memory view, written
//!   and fsynced, and only then applied to the view, so a change the caller saw succeed
//!   survives a crash, and a failed write changes nothing. Changes are serialized by a lock.
//! - **Versioned.** The file names its format and version; a file of a newer version, or one
//!   that cannot be read, fails the open with an error naming the file (never a silently
//!   empty registry).
//! - **Checked on load.** Each record is checked like admin API input (as the Kafka reader
//!   checks the topic's); a malformed or invalid one is skipped, logged at WARN with its key
//!   and the reason, and counted in [`crate::RECORDS_REJECTED_METRIC`]. It stays in the file
//!   until a change of the same entity replaces it.
//! - **One process.** Only one process may change the file (standalone mode holds the data
//!   directory's lock); reads answer from memory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};

use async_trait::async_trait;
use auditlog_seams::event_log::embedded::files;
use serde::{Deserialize, Serialize};

use crate::api_key::KeyHash;
use crate::view::{Change, View};
use crate::{ApiKeyRecord, IssuedKey, NewSigningKey, RegistryError, Role, SigningKeyRecord, TenantAdmin, TenantPatch, TenantRegistry, TenantSettings, record};

/// Kind written into the registry file.
pub const FORMAT_KIND: &str = "auditlog-tenant-registry";
/// Format version of the registry file.
pub const FORMAT_VERSION: u32 = 1;

/// The file's content.
#[derive(Serialize, Deserialize)]
struct Document {
    format: String,
    version: u32,
    /// Record key to the entity's JSON value.
    records: BTreeMap<String, serde_json::Value>,
}

/// The registry persisted in one JSON file; see the module docs.
pub struct FileTenantRegistry {
    path: PathBuf,
    view: View,
    /// The file's records as last written; guarded by the write lock that serializes
    /// check, write and apply.
    records: tokio::sync::Mutex<BTreeMap<String, serde_json::Value>>,
    /// Version of the next change applied to the view.
    next_version: AtomicI64,
}

impl std::fmt::Debug for FileTenantRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileTenantRegistry").field("path", &self.path).finish_non_exhaustive()
    }
}

fn file_error(path: &Path, message: impl std::fmt::Display) -> RegistryError {
    RegistryError::Config(format!("tenant registry file {}: {message}", path.display()))
}

impl FileTenantRegistry {
    /// Opens the registry in `path`, empty when the file does not exist yet (its directory
    /// is created). Fails, naming the file, when it is unreadable, corrupt or newer.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, RegistryError> {
        let path = path.into();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| file_error(parent, e))?;
        }
        let records = match std::fs::read(&path) {
            Ok(bytes) => Self::parse(&path, &bytes)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(file_error(&path, e)),
        };
        let view = View::default();
        let mut version = 0;
        for (key, value) in &records {
            let bytes = serde_json::to_vec(value).map_err(|e| file_error(&path, e))?;
            if let Err(rejection) = record::apply_read(&view, key.as_bytes(), Some(&bytes), version) {
                rejection.count();
                tracing::warn!(
                    file = %path.display(),
                    record = %key,
                    reason = rejection.reason,
                    detail = %rejection.detail,
                    "skipping invalid tenant registry record"
                );
            }
            version += 1;
        }
        Ok(Self { path, view, records: tokio::sync::Mutex::new(records), next_version: AtomicI64::new(version) })
    }

    fn parse(path: &Path, bytes: &[u8]) -> Result<BTreeMap<String, serde_json::Value>, RegistryError> {
        let doc: Document = serde_json::from_slice(bytes).map_err(|e| file_error(path, format!("not a registry file: {e}")))?;
        if doc.format != FORMAT_KIND {
            return Err(file_error(path, format!("holds {:?}, expected {FORMAT_KIND:?}", doc.format)));
        }
        if doc.version > FORMAT_VERSION {
            return Err(file_error(path, format!("has format version {}, newer than the supported {FORMAT_VERSION}: upgrade auditlog", doc.version)));
        }
        Ok(doc.records)
    }

    /// The registry file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `change` durably into the file, then applies it to the view.
    async fn record(&self, records: &mut BTreeMap<String, serde_json::Value>, change: Change) -> Result<(), RegistryError> {
        let (key, value) = record::encode(&change).ok_or_else(|| RegistryError::Config("removals are not written".into()))?;
        let value: serde_json::Value = serde_json::from_slice(&value).map_err(|e| RegistryError::Config(e.to_string()))?;
        let mut next = records.clone();
        next.insert(key, value);
        let doc = Document { format: FORMAT_KIND.to_owned(), version: FORMAT_VERSION, records: next };
        let mut bytes = serde_json::to_vec_pretty(&doc).map_err(|e| RegistryError::Config(e.to_string()))?;
        bytes.push(b'\n');
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || files::write_atomic(&path, &bytes))
            .await
            .map_err(|e| RegistryError::Unavailable(format!("registry write task: {e}")))?
            .map_err(|e| RegistryError::Unavailable(format!("writing {}: {e}", self.path.display())))?;
        *records = doc.records;
        self.view.apply(change, self.next_version.fetch_add(1, Ordering::Relaxed));
        Ok(())
    }
}

impl TenantRegistry for FileTenantRegistry {
    fn api_key_by_hash(&self, hash: &KeyHash) -> Option<ApiKeyRecord> {
        self.view.key_by_hash(hash)
    }

    fn tenant(&self, tenant_id: &str) -> Option<TenantSettings> {
        self.view.tenant(tenant_id)
    }

    fn signing_key(&self, tenant_id: &str, key_id: &str) -> Option<SigningKeyRecord> {
        self.view.signing_key(tenant_id, key_id)
    }
}

#[async_trait]
impl TenantAdmin for FileTenantRegistry {
    async fn create_tenant(&self, settings: TenantSettings) -> Result<TenantSettings, RegistryError> {
        let mut records = self.records.lock().await;
        let settings = self.view.plan_create_tenant(settings)?;
        self.record(&mut records, Change::Tenant(settings.clone())).await?;
        tracing::info!(tenant_id = %settings.id, "tenant created");
        Ok(settings)
    }

    async fn update_tenant(&self, tenant_id: &str, patch: TenantPatch) -> Result<TenantSettings, RegistryError> {
        let mut records = self.records.lock().await;
        let settings = self.view.plan_update_tenant(tenant_id, &patch)?;
        self.record(&mut records, Change::Tenant(settings.clone())).await?;
        tracing::info!(tenant_id, "tenant updated");
        Ok(settings)
    }

    async fn create_api_key(&self, tenant_id: &str, name: &str, roles: Vec<Role>) -> Result<IssuedKey, RegistryError> {
        let mut records = self.records.lock().await;
        let (change, issued) = self.view.plan_create_key(tenant_id, name, roles)?;
        self.record(&mut records, change).await?;
        tracing::info!(tenant_id, key_id = %issued.key_id, "api key created");
        Ok(issued)
    }

    async fn revoke_api_key(&self, tenant_id: &str, key_id: &str) -> Result<ApiKeyRecord, RegistryError> {
        let mut records = self.records.lock().await;
        let (hash, record) = self.view.plan_revoke(tenant_id, key_id)?;
        self.record(&mut records, Change::Key { hash, record: record.clone() }).await?;
        tracing::info!(tenant_id, key_id, "api key revoked");
        Ok(record)
    }

    async fn add_signing_key(&self, tenant_id: &str, key: NewSigningKey) -> Result<SigningKeyRecord, RegistryError> {
        let mut records = self.records.lock().await;
        let record = self.view.plan_add_signing_key(tenant_id, key)?;
        self.record(&mut records, Change::SigningKey(record.clone())).await?;
        tracing::info!(tenant_id, key_id = %record.key_id, producer = %record.producer, "signing key registered");
        Ok(record)
    }

    async fn revoke_signing_key(&self, tenant_id: &str, key_id: &str, at: time::OffsetDateTime) -> Result<SigningKeyRecord, RegistryError> {
        let mut records = self.records.lock().await;
        let (record, changed) = self.view.plan_revoke_signing_key(tenant_id, key_id, at)?;
        if changed {
            self.record(&mut records, Change::SigningKey(record.clone())).await?;
            tracing::info!(tenant_id, key_id, "signing key revoked");
        }
        Ok(record)
    }

    fn list_signing_keys(&self, tenant_id: &str) -> Result<Vec<SigningKeyRecord>, RegistryError> {
        self.view.list_signing_keys(tenant_id)
    }

    fn list_tenants(&self) -> Vec<TenantSettings> {
        self.view.list_tenants()
    }

    fn list_api_keys(&self, tenant_id: &str) -> Result<Vec<ApiKeyRecord>, RegistryError> {
        self.view.list_keys(tenant_id)
    }

    async fn check_ready(&self) -> Result<(), RegistryError> {
        match self.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            Some(dir) if !dir.is_dir() => Err(RegistryError::Unavailable(format!("{} is gone", dir.display()))),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api_key;

    fn path(dir: &tempfile::TempDir) -> PathBuf {
        dir.path().join("nested/tenants.json")
    }

    #[tokio::test]
    async fn changes_survive_a_reopen_and_revocation_sticks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let registry = FileTenantRegistry::open(path(&dir)).expect("new file");
        assert!(registry.list_tenants().is_empty());
        registry.create_tenant(TenantSettings::new("acme")).await.expect("valid tenant");
        let patch = TenantPatch { retention_days: Some(30), ..TenantPatch::default() };
        registry.update_tenant("acme", patch).await.expect("known tenant");
        let kept = registry.create_api_key("acme", "ci", vec![Role::Writer]).await.expect("tenant exists");
        let revoked = registry.create_api_key("acme", "old", vec![Role::Reader]).await.expect("tenant exists");
        registry.revoke_api_key("acme", &revoked.key_id).await.expect("own key");
        drop(registry);

        let reopened = FileTenantRegistry::open(path(&dir)).expect("existing file");
        assert_eq!(reopened.tenant("acme").map(|t| t.retention_days), Some(30));
        let record = api_key::authenticate(&reopened, &kept.key).expect("kept key still works");
        assert_eq!(record.roles, vec![Role::Writer]);
        assert!(api_key::authenticate(&reopened, &revoked.key).is_none(), "revoked key stays revoked");
        assert_eq!(reopened.list_api_keys("acme").map(|k| k.len()), Ok(2));
        assert!(matches!(reopened.create_tenant(TenantSettings::new("acme")).await, Err(RegistryError::TenantExists(_))));
    }

    #[tokio::test]
    async fn the_file_holds_hashes_never_secrets_and_failed_checks_write_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let registry = FileTenantRegistry::open(path(&dir)).expect("new file");
        assert!(matches!(registry.create_tenant(TenantSettings::new("Bad Id")).await, Err(RegistryError::Invalid(_))));
        assert!(!path(&dir).exists(), "an invalid change writes nothing");
        registry.create_tenant(TenantSettings::new("acme")).await.expect("valid tenant");
        let issued = registry.create_api_key("acme", "ci", vec![Role::Writer]).await.expect("tenant exists");
        let text = std::fs::read_to_string(path(&dir)).expect("written");
        assert!(!text.contains(&issued.key) && !text.contains(&issued.key[4..]), "no secret on disk");
        assert!(text.contains(&api_key::to_hex(&api_key::hash(&issued.key))));
    }

    #[tokio::test]
    async fn signing_keys_survive_a_reopen_and_bad_ones_are_refused_on_read_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = path(&dir);
        let registry = FileTenantRegistry::open(&file).expect("new file");
        crate::signing_key::tests::backend_contract(&registry).await;
        let acme = registry.list_signing_keys("acme").expect("known");
        let settings = registry.list_tenants();
        drop(registry);

        let reopened = FileTenantRegistry::open(&file).expect("reopens");
        assert_eq!(reopened.list_signing_keys("acme").expect("known"), acme, "keys and their revocation times are durable");
        assert_eq!(reopened.list_tenants(), settings);
        drop(reopened);

        // Records a hand edit could leave: a key that is not base64, one of the wrong length
        // for its algorithm, an unknown algorithm, a window that ends before it starts, and
        // one filed under another tenant.
        let mut doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).expect("written")).expect("json");
        let records = doc["records"].as_object_mut().expect("records");
        let template = records[&format!("signing-key/acme/{}", acme[0].key_id)].clone();
        let forge = |key_id: &str, field: &str, value: serde_json::Value| {
            let mut forged = template.clone();
            forged["key_id"] = key_id.into();
            forged[field] = value;
            (format!("signing-key/acme/{key_id}"), forged)
        };
        for (key, value) in [
            forge("bad-b64", "public_key", "***".into()),
            forge("short", "public_key", "AAAA".into()),
            forge("rsa", "alg", "rsa-sha256".into()),
            forge("backwards", "not_after", "2000-01-01T00:00:00Z".into()),
            forge("moved", "tenant_id", "globex".into()),
        ] {
            records.insert(key, value);
        }
        std::fs::write(&file, serde_json::to_vec(&doc).expect("json")).expect("write");
        let (again, counts) = open_counting(&file);
        assert_eq!(again.list_signing_keys("acme").expect("known"), acme, "only the valid keys load");
        assert_eq!(again.signing_key("acme", "short"), None);
        let expected: BTreeMap<String, u64> = [("invalid_signing_key", 4), ("malformed", 1)].map(|(r, n)| (r.to_owned(), n)).into();
        assert_eq!(counts, expected);
    }

    #[test]
    fn a_file_written_before_signing_keys_still_opens() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = path(&dir);
        std::fs::create_dir_all(file.parent().expect("parent")).expect("dir");
        let old = serde_json::json!({"format": FORMAT_KIND, "version": 1, "records": {"tenant/acme": {"id": "acme", "name": "Acme", "retention_days": 30}}});
        std::fs::write(&file, serde_json::to_vec(&old).expect("json")).expect("write");
        let registry = FileTenantRegistry::open(&file).expect("an old file opens");
        let acme = registry.tenant("acme").expect("loaded");
        assert_eq!((acme.retention_days, acme.signatures), (30, crate::SignaturePolicy::Off));
        assert_eq!(registry.list_signing_keys("acme"), Ok(vec![]));
    }

    #[test]
    fn corrupt_or_newer_files_are_refused_naming_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("tenants.json");
        std::fs::write(&file, b"{not json").expect("write");
        let err = FileTenantRegistry::open(&file).expect_err("corrupt").to_string();
        assert!(err.contains("tenants.json"), "{err}");
        std::fs::write(&file, format!(r#"{{"format":"{FORMAT_KIND}","version":99,"records":{{}}}}"#)).expect("write");
        let err = FileTenantRegistry::open(&file).expect_err("newer").to_string();
        assert!(err.contains("tenants.json") && err.contains("newer"), "{err}");
    }

    /// Opens `file` with a recorder of its own; answers the registry and the rejection
    /// counts it rendered, by reason.
    fn open_counting(file: &Path) -> (FileTenantRegistry, BTreeMap<String, u64>) {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let registry = metrics::with_local_recorder(&recorder, || FileTenantRegistry::open(file)).expect("a readable file opens");
        let counts = handle
            .render()
            .lines()
            .filter_map(|line| line.strip_prefix(crate::RECORDS_REJECTED_METRIC)?.strip_prefix("{reason=\""))
            .filter_map(|rest| {
                let (reason, value) = rest.split_once("\"} ")?;
                Some((reason.to_owned(), value.trim().parse().ok()?))
            })
            .collect();
        (registry, counts)
    }

    #[tokio::test]
    async fn invalid_records_are_skipped_counted_and_the_valid_ones_around_them_load() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = path(&dir);
        let registry = FileTenantRegistry::open(&file).expect("new file");
        registry.create_tenant(TenantSettings::new("acme")).await.expect("valid tenant");
        let issued = registry.create_api_key("acme", "ci", vec![Role::Reader]).await.expect("tenant exists");
        drop(registry);

        // What a hand edit, or another writer, could leave in the file.
        let mut doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).expect("written")).expect("json");
        let records = doc["records"].as_object_mut().expect("records");
        let key = records[&format!("key/{}", issued.key_id)].clone();
        let hex = api_key::to_hex(&api_key::generate().hash);
        let smuggled_id = "key_0190f0e8a1b27c3d8e4f5a6b7c8d9e0f";
        let mut smuggled = key.clone();
        smuggled["key_id"] = smuggled_id.into();
        smuggled["tenant_id"] = "system".into();
        smuggled["key_sha256"] = hex.clone().into();
        records.insert(format!("key/{smuggled_id}"), smuggled);
        let elevated_id = "key_0190f0e8a1b27c3d8e4f5a6b7c8d9e1f";
        let mut elevated = key;
        elevated["key_id"] = elevated_id.into();
        elevated["roles"] = serde_json::json!(["platform_admin"]);
        elevated["key_sha256"] = api_key::to_hex(&api_key::generate().hash).into();
        records.insert(format!("key/{elevated_id}"), elevated);
        records.insert("tenant/system".into(), serde_json::json!({"id": "system", "name": "System"}));
        records.insert("tenant/forever".into(), serde_json::json!({"id": "forever", "name": "F", "retention_days": 0}));
        records.insert("tenant/globex".into(), serde_json::json!({"id": "other", "name": "Globex"}));
        records.insert("user/x".into(), serde_json::json!({}));
        records.insert("tenant/initech".into(), serde_json::json!({"id": "initech", "name": "Initech"}));
        std::fs::write(&file, serde_json::to_vec(&doc).expect("json")).expect("write");

        let (reopened, counts) = open_counting(&file);
        let ids: Vec<_> = reopened.list_tenants().into_iter().map(|t| t.id).collect();
        assert_eq!(ids, ["acme", "initech"], "only the valid tenants load");
        assert!(api_key::authenticate(&reopened, &issued.key).is_some(), "the valid key still works");
        assert_eq!(reopened.list_api_keys("acme").map(|k| k.len()), Ok(1), "the platform_admin key is not loaded");
        assert_eq!(reopened.api_key_by_hash(&api_key::from_hex(&hex).expect("hex")), None, "the reserved tenant's key is not loaded");
        let expected: BTreeMap<String, u64> = [("invalid_api_key", 2), ("invalid_tenant", 2), ("malformed", 2)].map(|(r, n)| (r.to_owned(), n)).into();
        assert_eq!(counts, expected);

        reopened.create_tenant(TenantSettings::new("forever")).await.expect("an id whose record was invalid can be registered");
        drop(reopened);
        let (again, _) = open_counting(&file);
        assert_eq!(again.tenant("forever").map(|t| t.retention_days), Some(crate::DEFAULT_RETENTION_DAYS), "the valid record replaced it");
    }
}
