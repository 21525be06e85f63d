//! The embedded [`LedgerStore`]: files under one directory, for standalone mode.
//!
//! Layout: `<root>/tenants/<tenant>/tile/...` (one file per tile, at its `tlog-tiles` path),
//! `.../<tenant>/state.json` and `.../<tenant>/checkpoint.json`, next to `<root>/FORMAT`. A tile is written to a
//! temporary file, fsynced, then hard-linked to its path (which fails if the path exists, so
//! two writers cannot both win) and the directory fsynced. State and checkpoint are replaced
//! atomically (write, fsync, rename, fsync the directory), so a crash leaves the old or the new.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{LedgerState, LedgerStore, LedgerStoreError, StoredCheckpoint, check_tenant, check_tile_path};
use crate::LogPosition;
use crate::event_log::embedded::files::{check_format, sync_dir, write_atomic};

const FORMAT_KIND: &str = "ledger";
const FORMAT_VERSION: u32 = 1;
const TENANTS: &str = "tenants";

/// The file-backed ledger store.
#[derive(Debug, Clone)]
pub struct FileLedgerStore {
    root: Arc<PathBuf>,
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
        Ok(Self { root: Arc::new(root) })
    }

    async fn blocking<T: Send + 'static>(&self, f: impl FnOnce(&Path) -> Result<T, LedgerStoreError> + Send + 'static) -> Result<T, LedgerStoreError> {
        let root = Arc::clone(&self.root);
        tokio::task::spawn_blocking(move || f(&root)).await.map_err(|e| LedgerStoreError::Unavailable(format!("ledger store task failed: {e}")))?
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
}
