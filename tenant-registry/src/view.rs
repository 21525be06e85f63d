//! The in-memory view every implementation answers reads from, and the checks that turn an
//! admin request into a [`Change`] against it.
//!
//! Every entity carries the version (log offset) of the change that set it; an older change
//! never overwrites a newer one, so a writer applying its own acknowledged change and the
//! tail applying the same or older records can run in any order.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use time::OffsetDateTime;

use crate::api_key::{self, KeyHash};
use crate::signing_key::utc;
use crate::{ApiKeyRecord, IssuedKey, NewSigningKey, RegistryError, Role, SigningKeyRecord, TenantPatch, TenantSettings, validate};

/// One entity's new full state (or its removal by a compaction tombstone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change {
    /// A tenant's settings.
    Tenant(TenantSettings),
    /// A key's record and the hash it is found by.
    Key { hash: KeyHash, record: ApiKeyRecord },
    /// Tombstone of `tenant/<id>`.
    RemoveTenant(String),
    /// Tombstone of `key/<key_id>`.
    RemoveKey(String),
    /// A signing key's record.
    SigningKey(SigningKeyRecord),
    /// Tombstone of `signing-key/<tenant_id>/<key_id>`.
    RemoveSigningKey { tenant_id: String, key_id: String },
}

#[derive(Default)]
struct Inner {
    tenants: HashMap<String, (i64, TenantSettings)>,
    keys: HashMap<KeyHash, (i64, ApiKeyRecord)>,
    key_ids: HashMap<String, KeyHash>,
    /// Signing keys by (tenant id, key id).
    signing_keys: HashMap<(String, String), (i64, SigningKeyRecord)>,
}

/// Tenants and keys held in memory.
#[derive(Default)]
pub(crate) struct View {
    inner: RwLock<Inner>,
}

impl View {
    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies `change` made at `version` unless the entity already has a newer version.
    pub(crate) fn apply(&self, change: Change, version: i64) {
        let mut inner = self.write();
        match change {
            Change::Tenant(settings) => {
                if inner.tenants.get(&settings.id).is_none_or(|(v, _)| *v <= version) {
                    inner.tenants.insert(settings.id.clone(), (version, settings));
                }
            }
            Change::Key { hash, record } => {
                if inner.keys.get(&hash).is_some_and(|(v, _)| *v > version) {
                    return;
                }
                if let Some(old) = inner.key_ids.insert(record.key_id.clone(), hash).filter(|old| *old != hash) {
                    inner.keys.remove(&old);
                }
                inner.keys.insert(hash, (version, record));
            }
            Change::RemoveTenant(id) => {
                inner.tenants.remove(&id);
            }
            Change::RemoveKey(key_id) => {
                if let Some(hash) = inner.key_ids.remove(&key_id) {
                    inner.keys.remove(&hash);
                }
            }
            Change::SigningKey(mut record) => {
                let id = (record.tenant_id.clone(), record.key_id.clone());
                if let Some((known_version, known)) = inner.signing_keys.get_mut(&id) {
                    // A revocation only ever moves earlier, in whatever order two processes'
                    // revocations arrive: every process ends with the earliest.
                    let earliest = match (known.revoked_at, record.revoked_at) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                    if *known_version > version {
                        known.revoked_at = earliest;
                        return;
                    }
                    record.revoked_at = earliest;
                }
                inner.signing_keys.insert(id, (version, record));
            }
            Change::RemoveSigningKey { tenant_id, key_id } => {
                inner.signing_keys.remove(&(tenant_id, key_id));
            }
        }
    }

    /// Why `change` contradicts what is applied, if it does: a key never moves to another
    /// tenant and a secret's hash belongs to one key id (the admin API can do neither, so a
    /// record that does was not written by it).
    pub(crate) fn conflict(&self, change: &Change) -> Option<String> {
        if let Change::SigningKey(record) = change {
            return self.signing_key_conflict(record);
        }
        let Change::Key { hash, record } = change else { return None };
        let inner = self.read();
        let by_id = inner.key_ids.get(&record.key_id).and_then(|h| inner.keys.get(h));
        let by_hash = inner.keys.get(hash);
        for (_, known) in by_id.into_iter().chain(by_hash) {
            if known.tenant_id != record.tenant_id {
                return Some(format!("key {} belongs to tenant {:?}, the record names {:?}", known.key_id, known.tenant_id, record.tenant_id));
            }
            if known.key_id != record.key_id {
                return Some(format!("the record's key_sha256 is key {}'s, the record names {}", known.key_id, record.key_id));
            }
        }
        None
    }

    /// Why a signing key record contradicts the applied one, if it does: a registered key
    /// never changes (its producer, algorithm, public key and window are fixed; rotation is a
    /// new key), and a revocation is never lifted nor moved later (the admin API can do
    /// neither, so a record that does was not written by it).
    fn signing_key_conflict(&self, record: &SigningKeyRecord) -> Option<String> {
        let inner = self.read();
        let (_, known) = inner.signing_keys.get(&(record.tenant_id.clone(), record.key_id.clone()))?;
        let fixed = |r: &SigningKeyRecord| (r.producer.clone(), r.alg.clone(), r.public_key.clone(), r.not_before, r.not_after, r.created_at);
        if fixed(known) != fixed(record) {
            return Some(format!("signing key {} of tenant {:?} is registered with other fields", record.key_id, record.tenant_id));
        }
        match (known.revoked_at, record.revoked_at) {
            (Some(_), None) => Some(format!("signing key {} is revoked, the record lifts the revocation", record.key_id)),
            (Some(was), Some(now)) if now > was => Some(format!("signing key {} is revoked at {was}, the record moves it later", record.key_id)),
            _ => None,
        }
    }

    pub(crate) fn tenant(&self, id: &str) -> Option<TenantSettings> {
        self.read().tenants.get(id).map(|(_, s)| s.clone())
    }

    pub(crate) fn key_by_hash(&self, hash: &KeyHash) -> Option<ApiKeyRecord> {
        self.read().keys.get(hash).map(|(_, r)| r.clone())
    }

    pub(crate) fn list_tenants(&self) -> Vec<TenantSettings> {
        let mut all: Vec<_> = self.read().tenants.values().map(|(_, s)| s.clone()).collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all
    }

    pub(crate) fn list_keys(&self, tenant_id: &str) -> Result<Vec<ApiKeyRecord>, RegistryError> {
        let inner = self.read();
        if !inner.tenants.contains_key(tenant_id) {
            return Err(RegistryError::UnknownTenant(tenant_id.to_owned()));
        }
        let mut keys: Vec<_> = inner.keys.values().filter(|(_, r)| r.tenant_id == tenant_id).map(|(_, r)| r.clone()).collect();
        keys.sort_by(|a, b| (a.created_at, &a.key_id).cmp(&(b.created_at, &b.key_id)));
        Ok(keys)
    }

    /// A served signing key: the tenant is registered and not deleted.
    pub(crate) fn signing_key(&self, tenant_id: &str, key_id: &str) -> Option<SigningKeyRecord> {
        let inner = self.read();
        let (_, tenant) = inner.tenants.get(tenant_id).filter(|(_, t)| t.status.accepts_credentials())?;
        validate::is_valid_tenant_id(&tenant.id).then_some(())?;
        inner.signing_keys.get(&(tenant_id.to_owned(), key_id.to_owned())).map(|(_, r)| r.clone())
    }

    pub(crate) fn list_signing_keys(&self, tenant_id: &str) -> Result<Vec<SigningKeyRecord>, RegistryError> {
        let inner = self.read();
        if !inner.tenants.contains_key(tenant_id) {
            return Err(RegistryError::UnknownTenant(tenant_id.to_owned()));
        }
        let mut keys: Vec<_> = inner.signing_keys.values().filter(|(_, r)| r.tenant_id == tenant_id).map(|(_, r)| r.clone()).collect();
        keys.sort_by(|a, b| (a.created_at, &a.key_id).cmp(&(b.created_at, &b.key_id)));
        Ok(keys)
    }

    /// The record a new signing key registers: the tenant is registered and not deleted, the
    /// key is valid and its id new in the tenant.
    pub(crate) fn plan_add_signing_key(&self, tenant_id: &str, key: NewSigningKey) -> Result<SigningKeyRecord, RegistryError> {
        if self.tenant(tenant_id).is_none_or(|t| !t.status.accepts_credentials()) {
            return Err(RegistryError::UnknownTenant(tenant_id.to_owned()));
        }
        let record = key.into_record(tenant_id, OffsetDateTime::now_utc())?;
        record.validate()?;
        if self.read().signing_keys.contains_key(&(tenant_id.to_owned(), record.key_id.clone())) {
            return Err(RegistryError::SigningKeyExists(record.key_id));
        }
        Ok(record)
    }

    /// The revoked state of a tenant's signing key from `at`, and whether it changes (a key
    /// revoked already keeps the earlier time).
    pub(crate) fn plan_revoke_signing_key(&self, tenant_id: &str, key_id: &str, at: OffsetDateTime) -> Result<(SigningKeyRecord, bool), RegistryError> {
        let inner = self.read();
        let (_, record) = inner
            .signing_keys
            .get(&(tenant_id.to_owned(), key_id.to_owned()))
            .ok_or_else(|| RegistryError::UnknownSigningKey(key_id.to_owned()))?;
        let at = utc(at);
        match record.revoked_at {
            Some(was) if was <= at => Ok((record.clone(), false)),
            _ => Ok((SigningKeyRecord { revoked_at: Some(at), ..record.clone() }, true)),
        }
    }

    /// The settings a create request registers.
    pub(crate) fn plan_create_tenant(&self, mut settings: TenantSettings) -> Result<TenantSettings, RegistryError> {
        if settings.name.is_empty() {
            settings.name.clone_from(&settings.id);
        }
        settings.validate()?;
        if self.read().tenants.contains_key(&settings.id) {
            return Err(RegistryError::TenantExists(settings.id));
        }
        Ok(settings)
    }

    /// The settings an update request leads to.
    pub(crate) fn plan_update_tenant(&self, tenant_id: &str, patch: &TenantPatch) -> Result<TenantSettings, RegistryError> {
        let current = self.tenant(tenant_id).ok_or_else(|| RegistryError::UnknownTenant(tenant_id.to_owned()))?;
        let updated = patch.apply(current);
        updated.validate()?;
        Ok(updated)
    }

    /// A new key for a registered tenant: the change to record and the secret to show once.
    pub(crate) fn plan_create_key(&self, tenant_id: &str, name: &str, roles: Vec<Role>) -> Result<(Change, IssuedKey), RegistryError> {
        if !self.read().tenants.contains_key(tenant_id) {
            return Err(RegistryError::UnknownTenant(tenant_id.to_owned()));
        }
        let mut roles = roles;
        roles.sort();
        roles.dedup();
        validate::api_key_request(name, &roles)?;
        let generated = api_key::generate();
        let key_id = format!("{}{}", validate::KEY_ID_PREFIX, uuid::Uuid::now_v7().simple());
        let record = ApiKeyRecord {
            key_id: key_id.clone(),
            tenant_id: tenant_id.to_owned(),
            name: name.trim().to_owned(),
            roles,
            revoked: false,
            created_at: OffsetDateTime::now_utc(),
        };
        Ok((Change::Key { hash: generated.hash, record }, IssuedKey { key_id, key: generated.secret }))
    }

    /// The revoked state of a tenant's key.
    pub(crate) fn plan_revoke(&self, tenant_id: &str, key_id: &str) -> Result<(KeyHash, ApiKeyRecord), RegistryError> {
        let inner = self.read();
        let unknown = || RegistryError::UnknownApiKey(key_id.to_owned());
        let hash = *inner.key_ids.get(key_id).ok_or_else(unknown)?;
        match inner.keys.get(&hash) {
            Some((_, record)) if record.tenant_id == tenant_id => Ok((hash, ApiKeyRecord { revoked: true, ..record.clone() })),
            _ => Err(unknown()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_change(view: &View, tenant: &str) -> (Change, IssuedKey) {
        view.plan_create_key(tenant, "ci", vec![Role::Writer, Role::Writer]).expect("tenant exists")
    }

    #[test]
    fn older_versions_never_overwrite_newer_ones() {
        let view = View::default();
        view.apply(Change::Tenant(TenantSettings { retention_days: 30, ..TenantSettings::new("acme") }), 5);
        view.apply(Change::Tenant(TenantSettings::new("acme")), 4);
        assert_eq!(view.tenant("acme").map(|t| t.retention_days), Some(30));
        view.apply(Change::Tenant(TenantSettings::new("acme")), 5);
        assert_eq!(view.tenant("acme").map(|t| t.retention_days), Some(365), "the same version re-applies");
        view.apply(Change::RemoveTenant("acme".into()), 6);
        assert_eq!(view.tenant("acme"), None);
    }

    #[test]
    fn keys_are_created_deduplicated_revoked_and_listed_per_tenant() {
        let view = View::default();
        assert_eq!(view.plan_create_key("acme", "ci", vec![Role::Writer]).map(|_| ()), Err(RegistryError::UnknownTenant("acme".into())));
        view.apply(Change::Tenant(TenantSettings::new("acme")), 0);
        view.apply(Change::Tenant(TenantSettings::new("globex")), 1);
        let (change, issued) = key_change(&view, "acme");
        view.apply(change, 2);
        let record = view.key_by_hash(&api_key::hash(&issued.key)).expect("found by the secret's hash");
        assert_eq!(record.roles, vec![Role::Writer]);
        assert!(matches!(view.plan_revoke("globex", &issued.key_id), Err(RegistryError::UnknownApiKey(_))));
        let (hash, revoked) = view.plan_revoke("acme", &issued.key_id).expect("own key");
        view.apply(Change::Key { hash, record: revoked }, 3);
        assert!(view.key_by_hash(&hash).is_some_and(|r| r.revoked));
        assert_eq!(view.list_keys("acme").map(|k| k.len()), Ok(1));
        assert_eq!(view.list_keys("globex").map(|k| k.len()), Ok(0));
        view.apply(Change::RemoveKey(issued.key_id), 4);
        assert_eq!(view.key_by_hash(&hash), None);
    }

    #[test]
    fn creating_a_known_tenant_or_updating_an_unknown_one_fails() {
        let view = View::default();
        let planned = view.plan_create_tenant(TenantSettings { name: String::new(), ..TenantSettings::new("acme") }).expect("valid");
        assert_eq!(planned.name, "acme", "an empty name becomes the id");
        view.apply(Change::Tenant(planned), 0);
        assert_eq!(view.plan_create_tenant(TenantSettings::new("acme")), Err(RegistryError::TenantExists("acme".into())));
        assert!(matches!(view.plan_update_tenant("nope", &TenantPatch::default()), Err(RegistryError::UnknownTenant(_))));
        let bad = TenantPatch { retention_days: Some(0), ..TenantPatch::default() };
        assert!(matches!(view.plan_update_tenant("acme", &bad), Err(RegistryError::Invalid(_))));
    }
}
