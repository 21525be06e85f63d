//! The embedded [`LedgerStore`]: files under one directory, for standalone mode.
//!
//! Layout: `<root>/tenants/<tenant>/tile/...` (one file per tile, at its `tlog-tiles` path),
//! `.../<tenant>/state.json` and `.../<tenant>/checkpoint.json`, next to `<root>/FORMAT`. A tile is written to a
//! temporary file, fsynced, then hard-linked to its path (which fails if the path exists, so
//! two writers cannot both win) and the directory fsynced. State and checkpoint are replaced
//! atomically (write, fsync, rename, fsync the directory), so a crash leaves the old or the new.
//! Leaf rows (id → index, index → id) are in a `fjall` database at `<root>/leaves`, each
//! `put_leaves` one write batch fsynced before it returns; signing keys in `<root>/keys.json`.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{LeafEntry, LedgerState, LedgerStore, LedgerStoreError, SigningKeyRecord, StoredCheckpoint, check_tenant, check_tile_path};
use crate::LogPosition;
use crate::event_log::embedded::files::{check_format, sync_dir, write_atomic};

const FORMAT_KIND: &str = "ledger";
const FORMAT_VERSION: u32 = 1;
const TENANTS: &str = "tenants";

/// The file-backed ledger store.
#[derive(Clone)]
pub struct FileLedgerStore {
    root: Arc<PathBuf>,
    leaves: Arc<Leaves>,
    /// Serialises read-modify-write of `keys.json`.
    keys_lock: Arc<Mutex<()>>,
}

impl std::fmt::Debug for FileLedgerStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileLedgerStore").field("root", &self.root).finish_non_exhaustive()
    }
}

struct Leaves {
    db: Database,
    by_id: Keyspace,
    by_index: Keyspace,
}

#[derive(Serialize, Deserialize)]
struct KeyFile {
    public_key: String,
    name: String,
    not_before: i128,
    not_after: Option<i128>,
}

fn id_key(tenant: &str, id: &str) -> Vec<u8> {
    [tenant.as_bytes(), b"\0", id.as_bytes()].concat()
}

fn index_key(tenant: &str, index: u64) -> Vec<u8> {
    [tenant.as_bytes(), b"\0", &index.to_be_bytes()].concat()
}

#[derive(Serialize, Deserialize)]
struct StateFile {
    size: u64,
    builder: String,
    topic: String,
    partition: i32,
    offset: i64,
}

#[derive(Serialize, Deserialize)]
struct CheckpointFile {
    size: u64,
    note: String,
}

impl FileLedgerStore {
    /// Opens (creating if needed) the store in `root`; a directory of another kind or a newer
    /// format is refused.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, LedgerStoreError> {
        let root = root.into();
        check_format(&root, FORMAT_KIND, FORMAT_VERSION).map_err(LedgerStoreError::Unavailable)?;
        let unavailable = |e: fjall::Error| LedgerStoreError::Unavailable(format!("{}: {e}", root.join("leaves").display()));
        let db = Database::builder(root.join("leaves")).open().map_err(unavailable)?;
        let by_id = db.keyspace("by_id", KeyspaceCreateOptions::default).map_err(unavailable)?;
        let by_index = db.keyspace("by_index", KeyspaceCreateOptions::default).map_err(unavailable)?;
        Ok(Self { root: Arc::new(root), leaves: Arc::new(Leaves { db, by_id, by_index }), keys_lock: Arc::new(Mutex::new(())) })
    }

    async fn blocking<T: Send + 'static>(&self, f: impl FnOnce(&Path) -> Result<T, LedgerStoreError> + Send + 'static) -> Result<T, LedgerStoreError> {
        let root = Arc::clone(&self.root);
        tokio::task::spawn_blocking(move || f(&root)).await.map_err(|e| LedgerStoreError::Unavailable(format!("ledger store task failed: {e}")))?
    }

    async fn with_self<T: Send + 'static>(&self, f: impl FnOnce(&Self) -> Result<T, LedgerStoreError> + Send + 'static) -> Result<T, LedgerStoreError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || f(&this)).await.map_err(|e| LedgerStoreError::Unavailable(format!("ledger store task failed: {e}")))?
    }

    fn read_keys(&self) -> Result<Vec<KeyFile>, LedgerStoreError> {
        Ok(read_json::<Vec<KeyFile>>(&self.root.join("keys.json"))?.unwrap_or_default())
    }

    fn update_keys(&self, change: impl FnOnce(&mut Vec<KeyFile>)) -> Result<(), LedgerStoreError> {
        let _lock = self.keys_lock.lock().unwrap_or_else(PoisonError::into_inner);
        let mut keys = self.read_keys()?;
        change(&mut keys);
        write_json(&self.root, "keys.json", &keys)
    }
}

fn io_error(path: &Path) -> impl Fn(io::Error) -> LedgerStoreError + '_ {
    move |e| LedgerStoreError::Unavailable(format!("{}: {e}", path.display()))
}

fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, LedgerStoreError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error(path)(e)),
    }
}

fn put_tile_file(path: &Path, tenant: &str, tile: &str, data: &[u8]) -> Result<(), LedgerStoreError> {
    let conflict = || LedgerStoreError::Conflict { tenant: tenant.to_string(), path: tile.to_string() };
    if let Some(existing) = read_optional(path)? {
        return if existing == data { Ok(()) } else { Err(conflict()) };
    }
    let dir = path.parent().ok_or_else(|| LedgerStoreError::Invalid(format!("{tile:?} has no directory")))?;
    fs::create_dir_all(dir).map_err(io_error(dir))?;
    let tmp = dir.join(format!(".{}.{}.tmp", path.file_name().and_then(|n| n.to_str()).unwrap_or("tile"), uuid::Uuid::new_v4().simple()));
    let written = (|| {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(data)?;
        file.sync_all()?;
        fs::hard_link(&tmp, path)
    })();
    let _ = fs::remove_file(&tmp);
    match written {
        Ok(()) => sync_dir(dir).map_err(io_error(dir)),
        // Someone else linked it first: it holds either our bytes or a conflict.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => match read_optional(path)? {
            Some(existing) if existing == data => Ok(()),
            _ => Err(conflict()),
        },
        Err(e) => Err(io_error(path)(e)),
    }
}

fn write_json(dir: &Path, name: &str, value: &impl Serialize) -> Result<(), LedgerStoreError> {
    fs::create_dir_all(dir).map_err(io_error(dir))?;
    let path = dir.join(name);
    let bytes = serde_json::to_vec(value).map_err(|e| LedgerStoreError::Invalid(e.to_string()))?;
    write_atomic(&path, &bytes).map_err(io_error(&path))
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>, LedgerStoreError> {
    read_optional(path)?
        .map(|bytes| serde_json::from_slice(&bytes).map_err(|e| LedgerStoreError::Corrupt(format!("{}: {e}", path.display()))))
        .transpose()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

#[async_trait]
impl LedgerStore for FileLedgerStore {
    async fn put_tile(&self, tenant: &str, path: &str, data: &[u8]) -> Result<(), LedgerStoreError> {
        check_tenant(tenant)?;
        check_tile_path(path)?;
        let (tenant, path, data) = (tenant.to_string(), path.to_string(), data.to_vec());
        self.blocking(move |root| put_tile_file(&root.join(TENANTS).join(&tenant).join(&path), &tenant, &path, &data)).await
    }

    async fn get_tile(&self, tenant: &str, path: &str) -> Result<Option<Vec<u8>>, LedgerStoreError> {
        check_tenant(tenant)?;
        check_tile_path(path)?;
        let file = self.root.join(TENANTS).join(tenant).join(path);
        self.blocking(move |_| read_optional(&file)).await
    }

    async fn save_state(&self, tenant: &str, state: &LedgerState) -> Result<(), LedgerStoreError> {
        check_tenant(tenant)?;
        let file = StateFile {
            size: state.size,
            builder: hex(&state.builder),
            topic: state.position.topic.clone(),
            partition: state.position.partition,
            offset: state.position.offset,
        };
        let tenant = tenant.to_string();
        self.blocking(move |root| write_json(&root.join(TENANTS).join(tenant), "state.json", &file)).await
    }

    async fn load_state(&self, tenant: &str) -> Result<Option<LedgerState>, LedgerStoreError> {
        check_tenant(tenant)?;
        let path = self.root.join(TENANTS).join(tenant).join("state.json");
        let file: Option<StateFile> = self.blocking(move |_| read_json(&path)).await?;
        file.map(|f| {
            let builder = unhex(&f.builder).ok_or_else(|| LedgerStoreError::Corrupt("state.json: builder is not hex".into()))?;
            Ok(LedgerState { size: f.size, builder, position: LogPosition { topic: f.topic, partition: f.partition, offset: f.offset } })
        })
        .transpose()
    }

    async fn save_checkpoint(&self, tenant: &str, checkpoint: &StoredCheckpoint) -> Result<(), LedgerStoreError> {
        check_tenant(tenant)?;
        let file = CheckpointFile { size: checkpoint.size, note: checkpoint.note.clone() };
        let tenant = tenant.to_string();
        self.blocking(move |root| write_json(&root.join(TENANTS).join(tenant), "checkpoint.json", &file)).await
    }

    async fn load_checkpoint(&self, tenant: &str) -> Result<Option<StoredCheckpoint>, LedgerStoreError> {
        check_tenant(tenant)?;
        let path = self.root.join(TENANTS).join(tenant).join("checkpoint.json");
        let file: Option<CheckpointFile> = self.blocking(move |_| read_json(&path)).await?;
        Ok(file.map(|f| StoredCheckpoint { size: f.size, note: f.note }))
    }

    async fn put_leaves(&self, tenant: &str, leaves: &[LeafEntry]) -> Result<(), LedgerStoreError> {
        check_tenant(tenant)?;
        let tenant = tenant.to_string();
        let leaves = leaves.to_vec();
        self.with_self(move |this| {
            let l = &this.leaves;
            let mut batch = l.db.batch().durability(Some(PersistMode::SyncAll));
            for leaf in &leaves {
                batch.insert(&l.by_id, id_key(&tenant, &leaf.id), &leaf.index.to_be_bytes()[..]);
                batch.insert(&l.by_index, index_key(&tenant, leaf.index), leaf.id.as_bytes());
            }
            batch.commit().map_err(|e| LedgerStoreError::Unavailable(format!("writing leaves: {e}")))
        })
        .await
    }

    async fn leaf_indexes(&self, tenant: &str, ids: &[String]) -> Result<HashMap<String, u64>, LedgerStoreError> {
        check_tenant(tenant)?;
        let tenant = tenant.to_string();
        let ids = ids.to_vec();
        self.with_self(move |this| {
            let mut found = HashMap::new();
            for id in ids {
                let value = this.leaves.by_id.get(id_key(&tenant, &id)).map_err(|e| LedgerStoreError::Unavailable(format!("reading leaves: {e}")))?;
                if let Some(value) = value {
                    let bytes: [u8; 8] = value.as_ref().try_into().map_err(|_| LedgerStoreError::Corrupt(format!("leaf index of {id} is not 8 bytes")))?;
                    found.insert(id, u64::from_be_bytes(bytes));
                }
            }
            Ok(found)
        })
        .await
    }

    async fn leaves(&self, tenant: &str, from: u64, limit: usize) -> Result<Vec<LeafEntry>, LedgerStoreError> {
        check_tenant(tenant)?;
        let (low, high) = (index_key(tenant, from), index_key(tenant, u64::MAX));
        let prefix = tenant.len() + 1;
        self.with_self(move |this| {
            let mut out = Vec::new();
            for item in this.leaves.by_index.range(low.as_slice()..=high.as_slice()).take(limit) {
                let (key, value) = item.into_inner().map_err(|e| LedgerStoreError::Unavailable(format!("reading leaves: {e}")))?;
                let index: [u8; 8] = key.get(prefix..).and_then(|b| b.try_into().ok()).ok_or_else(|| LedgerStoreError::Corrupt("a leaf key is malformed".into()))?;
                let id = String::from_utf8(value.to_vec()).map_err(|_| LedgerStoreError::Corrupt("a leaf id is not UTF-8".into()))?;
                out.push(LeafEntry { index: u64::from_be_bytes(index), id });
            }
            Ok(out)
        })
        .await
    }

    async fn put_key(&self, key: &SigningKeyRecord) -> Result<(), LedgerStoreError> {
        let key = key.clone();
        self.with_self(move |this| {
            this.update_keys(|keys| {
                let hex_key = hex(&key.public_key);
                if !keys.iter().any(|k| k.public_key == hex_key) {
                    keys.push(KeyFile {
                        public_key: hex_key,
                        name: key.name.clone(),
                        not_before: key.not_before.unix_timestamp_nanos(),
                        not_after: key.not_after.map(OffsetDateTime::unix_timestamp_nanos),
                    });
                }
            })
        })
        .await
    }

    async fn retire_key(&self, public_key: &[u8], at: OffsetDateTime) -> Result<(), LedgerStoreError> {
        let hex_key = hex(public_key);
        self.with_self(move |this| {
            this.update_keys(|keys| {
                for key in keys.iter_mut().filter(|k| k.public_key == hex_key) {
                    key.not_after = Some(at.unix_timestamp_nanos());
                }
            })
        })
        .await
    }

    async fn keys(&self) -> Result<Vec<SigningKeyRecord>, LedgerStoreError> {
        self.with_self(|this| {
            let time = |nanos: i128| OffsetDateTime::from_unix_timestamp_nanos(nanos).map_err(|e| LedgerStoreError::Corrupt(format!("keys.json: {e}")));
            let mut keys = this
                .read_keys()?
                .into_iter()
                .map(|k| {
                    Ok(SigningKeyRecord {
                        public_key: unhex(&k.public_key).ok_or_else(|| LedgerStoreError::Corrupt("keys.json: a public key is not hex".into()))?,
                        name: k.name,
                        not_before: time(k.not_before)?,
                        not_after: k.not_after.map(time).transpose()?,
                    })
                })
                .collect::<Result<Vec<_>, LedgerStoreError>>()?;
            keys.sort_by_key(|k| k.not_before);
            Ok(keys)
        })
        .await
    }
}
