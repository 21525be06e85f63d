//! The OpenSearch [`SearchIndex`] (`opensearch` crate).
//!
//! - **Layout**: monthly indices `<prefix>-YYYY.MM` by `occurred_at`, created on first write
//!   from an index template that also puts them behind the alias `<prefix>`; searches go to
//!   the alias. Old months can be dropped wholesale; per-tenant retention uses
//!   delete-by-query.
//! - **Documents**: the event as JSON plus `occurred_us` (exact ordering and cursors) and
//!   `log` (its log position); `_id` is `<tenant_id>:<id>`, because two tenants may use the
//!   same producer id; routing is the tenant, so a tenant's documents share a shard.
//! - **Idempotency**: bulk `create` operations: the first write of an id wins and a repeat is
//!   a 409 conflict, counted as success. (A producer re-sending an id with an `occurred_at`
//!   in another month would land in another index; the gateway's idempotency window and the
//!   event store's id table make that the rare case it is. The event store stays exact.)
//! - **Retries**: only the failed items of a bulk are retried, with backoff and a bounded
//!   number of attempts, after which the call fails as unavailable (the processor waits and
//!   retries, committing nothing). Only what the document itself causes is a permanent
//!   rejection reported by event id, for the dead-letter topic: an item status 400 (mapping
//!   or parsing error) or 413. Everything that is the cluster's state is retried: 429, 5xx,
//!   401/403 (credentials, permissions), 404 (a missing index the cluster will not create)
//!   and cluster blocks whatever their status (a write block, 403, or the disk flood-stage
//!   read-only block, 429), so an outage or a full disk makes the processor wait instead of
//!   dead-lettering the stream.
//! - **Too large**: a bulk the cluster refuses as too large (HTTP 413, `http.max_content_length`
//!   or a proxy's body limit) is split in halves until each part fits; an event too large on
//!   its own is rejected by id, with a reason saying so.

mod query;
mod template;

use std::time::Duration;

use async_trait::async_trait;
use opensearch::http::request::JsonBody;
use opensearch::http::transport::{SingleNodeConnectionPool, TransportBuilder};
use opensearch::indices::IndicesPutIndexTemplateParts;
use opensearch::{BulkParts, OpenSearch};
use serde_json::{Value, json};
use time::{Duration as TimeDuration, OffsetDateTime};

use crate::query::{EventFilter, GroupBy, Page, PageRequest, Stats, StoredEvent};
use crate::search_index::{IndexError, SearchIndex};

/// Settings of the OpenSearch index.
#[derive(Debug, Clone)]
pub struct OpenSearchConfig {
    /// Base URL of a node, e.g. `http://127.0.0.1:9200`.
    pub url: String,
    /// Alias searched, and prefix of the monthly indices behind it.
    pub prefix: String,
    /// Replicas per index (0 on a single node).
    pub replicas: u32,
    /// Attempts of a bulk's failed items before the call fails as unavailable.
    pub max_attempts: u32,
    /// Time budget of one request.
    pub request_timeout: Duration,
}

impl OpenSearchConfig {
    /// Defaults for a node at `url` with alias `prefix`.
    pub fn new(url: impl Into<String>, prefix: impl Into<String>) -> Self {
        Self { url: url.into(), prefix: prefix.into(), replicas: 0, max_attempts: 5, request_timeout: Duration::from_secs(30) }
    }
}

/// The search index on an OpenSearch cluster.
pub struct OpenSearchIndex {
    client: OpenSearch,
    config: OpenSearchConfig,
}

impl std::fmt::Debug for OpenSearchIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenSearchIndex").field("config", &self.config).finish_non_exhaustive()
    }
}

fn unavailable(err: impl std::fmt::Display) -> IndexError {
    IndexError::Unavailable(err.to_string())
}

impl OpenSearchIndex {
    /// Connects and installs the index template (idempotent).
    pub async fn connect(config: OpenSearchConfig) -> Result<Self, IndexError> {
        let url = config.url.parse().map_err(|e| IndexError::Invalid(format!("opensearch url {}: {e}", config.url)))?;
        let transport = TransportBuilder::new(SingleNodeConnectionPool::new(url))
            .timeout(config.request_timeout)
            .disable_proxy()
            .build()
            .map_err(unavailable)?;
        let index = Self { client: OpenSearch::new(transport), config };
        let name = index.config.prefix.clone();
        let response = index
            .client
            .indices()
            .put_index_template(IndicesPutIndexTemplateParts::Name(&name))
            .body(template::template(&name, index.config.replicas))
            .send()
            .await
            .map_err(unavailable)?;
        expect_success(response, "installing the index template").await?;
        Ok(index)
    }

    /// Makes everything indexed so far visible to search (tests, replay completion).
    pub async fn refresh(&self) -> Result<(), IndexError> {
        let alias = [self.config.prefix.as_str()];
        let response = self
            .client
            .indices()
            .refresh(opensearch::indices::IndicesRefreshParts::Index(&alias))
            .allow_no_indices(true)
            .ignore_unavailable(true)
            .send()
            .await
            .map_err(unavailable)?;
        expect_success(response, "refresh").await.map(|_| ())
    }

    fn index_name(&self, at: OffsetDateTime) -> String {
        format!("{}-{:04}.{:02}", self.config.prefix, at.year(), u8::from(at.month()))
    }

    /// One bulk of `create` operations over `batch`.
    async fn bulk(&self, batch: &[&StoredEvent]) -> Result<Bulk, IndexError> {
        let mut body: Vec<JsonBody<Value>> = Vec::with_capacity(batch.len() * 2);
        for stored in batch {
            let e = &stored.event;
            body.push(json!({"create": {
                "_index": self.index_name(e.occurred_at), "_id": doc_id(&e.tenant_id, &e.id), "routing": e.tenant_id
            }}).into());
            body.push(query::document(stored)?.into());
        }
        let response = self.client.bulk(BulkParts::None).body(body).send().await.map_err(unavailable)?;
        let status = response.status_code().as_u16();
        match status {
            200..=299 => {}
            413 => return Ok(Bulk::TooLarge),
            // A malformed request: ours to fix, not the cluster's state.
            400 => return Err(expect_success(response, "bulk").await.err().unwrap_or_else(|| unavailable("bulk: 400"))),
            // 401/403 (credentials), 404, 408, 429, 5xx, a proxy's answer: wait for the cluster.
            _ => {
                let answer: Value = response.json().await.unwrap_or(Value::Null);
                return Ok(Bulk::Items { retry: (0..batch.len()).collect(), rejected: Vec::new(), reason: format!("bulk: HTTP {status}: {}", answer["error"]) });
            }
        }
        let answer: Value = response.json().await.map_err(unavailable)?;
        let items = answer["items"].as_array().ok_or_else(|| unavailable("bulk answer has no items"))?;
        let (mut retry, mut rejected, mut reason) = (Vec::new(), Vec::new(), String::new());
        for (i, item) in items.iter().enumerate() {
            let result = &item["create"];
            match classify_item(result) {
                Item::Done => {}
                Item::Retry => {
                    retry.push(i);
                    reason = format!("item status {}: {}", result["status"], result["error"]);
                }
                Item::Rejected => {
                    rejected.push(batch[i].event.id.clone());
                    reason = format!("item status {}: {}", result["status"], result["error"]);
                }
            }
        }
        Ok(Bulk::Items { retry, rejected, reason })
    }

    /// Indexes `chunk`, retrying its failed items up to `max_attempts` times.
    async fn index_chunk<'a>(&self, chunk: Vec<&'a StoredEvent>) -> Result<Chunk<'a>, IndexError> {
        let mut pending = chunk;
        let mut refused = Vec::new();
        let mut last = String::new();
        for attempt in 0..self.config.max_attempts {
            if pending.is_empty() {
                break;
            }
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(100 << attempt.min(6))).await;
            }
            match self.bulk(&pending).await {
                Ok(Bulk::TooLarge) => return Ok(Chunk::TooLarge(pending, refused, last)),
                Ok(Bulk::Items { retry, rejected, reason }) => {
                    if !rejected.is_empty() {
                        refused.extend(rejected);
                    }
                    if !reason.is_empty() {
                        last = reason;
                    }
                    pending = retry.into_iter().map(|i| pending[i]).collect();
                }
                Err(IndexError::Unavailable(reason)) if attempt + 1 < self.config.max_attempts => last = reason,
                Err(err) => return Err(err),
            }
        }
        if pending.is_empty() {
            Ok(Chunk::Indexed(refused, last))
        } else {
            Err(IndexError::Unavailable(format!(
                "{} documents still failing after {} attempts; last: {last}",
                pending.len(),
                self.config.max_attempts
            )))
        }
    }
}

/// What one bulk request left to do.
enum Bulk {
    /// The cluster answered per item: positions to retry, ids refused for good, and the last
    /// item error (for logs and dead letters).
    Items { retry: Vec<usize>, rejected: Vec<String>, reason: String },
    /// The request was too large for the cluster (HTTP 413): split it.
    TooLarge,
}

/// What [`OpenSearchIndex::index_chunk`] did: each carries the ids refused for good and why.
enum Chunk<'a> {
    /// Every document is indexed, but for the refused ones.
    Indexed(Vec<String>, String),
    /// These documents are too large for one request together: split them.
    TooLarge(Vec<&'a StoredEvent>, Vec<String>, String),
}

/// How the cluster answered one item of a bulk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Item {
    /// Created, or held already (409: the first write of an id wins).
    Done,
    /// Not the document's fault (cluster state, overload, credentials): retry it.
    Retry,
    /// The document itself is refused (mapping or parsing error): dead-letter it.
    Rejected,
}

/// Classifies one `create` item of a bulk answer. Only what the document causes is
/// permanent; cluster blocks are the cluster's state whatever their status (a write block
/// is a 403, the disk flood-stage block a 429), so they are retried.
fn classify_item(result: &Value) -> Item {
    let status = result["status"].as_u64().unwrap_or(0);
    let kind = result["error"]["type"].as_str().unwrap_or_default();
    match status {
        200..=299 | 409 => Item::Done,
        _ if kind == "cluster_block_exception" => Item::Retry,
        400 | 413 => Item::Rejected,
        _ => Item::Retry,
    }
}

/// `_id` of an event's document.
fn doc_id(tenant_id: &str, id: &str) -> String {
    format!("{tenant_id}:{id}")
}

/// The JSON body of a successful response; an error naming `what` otherwise.
pub(super) async fn expect_success(response: opensearch::http::response::Response, what: &str) -> Result<Value, IndexError> {
    let status = response.status_code();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if status.is_success() {
        Ok(body)
    } else if status.is_client_error() && !matches!(status.as_u16(), 401 | 403 | 408 | 429) {
        // The request's fault; 401/403 (credentials, blocks), 408 and 429 are the cluster's
        // state and wait like 5xx.
        Err(IndexError::Invalid(format!("{what}: {status}: {}", body["error"])))
    } else {
        Err(IndexError::Unavailable(format!("{what}: {status}: {}", body["error"])))
    }
}

#[async_trait]
impl SearchIndex for OpenSearchIndex {
    async fn index(&self, events: &[StoredEvent]) -> Result<(), IndexError> {
        let mut refused: Vec<String> = Vec::new();
        let mut reason = String::new();
        let mut chunks: Vec<Vec<&StoredEvent>> = vec![events.iter().collect()];
        while let Some(chunk) = chunks.pop() {
            let (ids, why, too_large) = match self.index_chunk(chunk).await? {
                Chunk::Indexed(ids, why) => (ids, why, None),
                Chunk::TooLarge(rest, ids, why) => (ids, why, Some(rest)),
            };
            if !ids.is_empty() {
                refused.extend(ids);
                reason = why;
            }
            match too_large {
                Some(mut first) if first.len() > 1 => {
                    let second = first.split_off(first.len() / 2);
                    chunks.push(second);
                    chunks.push(first);
                }
                Some(alone) => {
                    let id = &alone[0].event.id;
                    reason = format!("event {id} alone is larger than the search index accepts in one request (HTTP 413, http.max_content_length)");
                    refused.push(id.clone());
                }
                None => {}
            }
        }
        if refused.is_empty() { Ok(()) } else { Err(IndexError::Rejected { ids: refused, reason }) }
    }

    async fn search(&self, filter: &EventFilter, page: &PageRequest) -> Result<Page, IndexError> {
        query::search(&self.client, &self.config.prefix, filter, page).await
    }

    async fn stats(&self, filter: &EventFilter, group_by: Option<GroupBy>, interval: Option<TimeDuration>) -> Result<Stats, IndexError> {
        query::stats(&self.client, &self.config.prefix, filter, group_by, interval).await
    }

    async fn purge_before(&self, tenant_id: &str, before: OffsetDateTime) -> Result<u64, IndexError> {
        query::purge_before(&self.client, &self.config.prefix, tenant_id, before).await
    }

    async fn check_ready(&self) -> Result<(), IndexError> {
        let response = self.client.cluster().health(opensearch::cluster::ClusterHealthParts::None).send().await.map_err(unavailable)?;
        let health = expect_success(response, "cluster health").await?;
        match health["status"].as_str() {
            Some("green" | "yellow") => Ok(()),
            other => Err(IndexError::Unavailable(format!("cluster health is {other:?}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{Item, classify_item};

    #[test]
    fn only_what_the_document_causes_is_rejected() {
        let item = |status: u64, kind: &str| json!({"status": status, "error": {"type": kind, "reason": "r"}});
        assert_eq!(classify_item(&json!({"status": 201})), Item::Done);
        assert_eq!(classify_item(&item(409, "version_conflict_engine_exception")), Item::Done);
        assert_eq!(classify_item(&item(400, "mapper_parsing_exception")), Item::Rejected);
        assert_eq!(classify_item(&item(400, "strict_dynamic_mapping_exception")), Item::Rejected);
        // The cluster's state, not the document: wait and retry, never dead-letter.
        assert_eq!(classify_item(&item(403, "cluster_block_exception")), Item::Retry, "index.blocks.write");
        assert_eq!(classify_item(&item(429, "cluster_block_exception")), Item::Retry, "disk flood stage");
        assert_eq!(classify_item(&item(401, "security_exception")), Item::Retry);
        assert_eq!(classify_item(&item(403, "security_exception")), Item::Retry);
        assert_eq!(classify_item(&item(404, "index_not_found_exception")), Item::Retry);
        assert_eq!(classify_item(&item(429, "es_rejected_execution_exception")), Item::Retry);
        assert_eq!(classify_item(&item(503, "unavailable_shards_exception")), Item::Retry);
    }
}
