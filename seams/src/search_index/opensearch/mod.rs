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
//! - **Retries**: only the failed items of a bulk are retried (429 and 5xx), with backoff and
//!   a bounded number of attempts; any other item error is a permanent rejection reported by
//!   event id, for the dead-letter topic.

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

    /// One bulk of `create` operations; returns the positions (in `batch`) to retry.
    async fn bulk(&self, batch: &[&StoredEvent]) -> Result<Vec<usize>, IndexError> {
        let mut body: Vec<JsonBody<Value>> = Vec::with_capacity(batch.len() * 2);
        for stored in batch {
            let e = &stored.event;
            body.push(json!({"create": {
                "_index": self.index_name(e.occurred_at), "_id": doc_id(&e.tenant_id, &e.id), "routing": e.tenant_id
            }}).into());
            body.push(query::document(stored)?.into());
        }
        let response = self.client.bulk(BulkParts::None).body(body).send().await.map_err(unavailable)?;
        let status = response.status_code();
        if status.as_u16() == 429 || status.is_server_error() {
            return Ok((0..batch.len()).collect());
        }
        let answer = expect_success(response, "bulk").await?;
        let items = answer["items"].as_array().ok_or_else(|| unavailable("bulk answer has no items"))?;
        let mut retry = Vec::new();
        let mut rejected = Vec::new();
        let mut reason = String::new();
        for (i, item) in items.iter().enumerate() {
            let result = &item["create"];
            match result["status"].as_u64().unwrap_or(0) {
                200 | 201 | 409 => {}
                429 | 500..=599 => retry.push(i),
                _ => {
                    rejected.push(batch[i].event.id.clone());
                    reason = result["error"].to_string();
                }
            }
        }
        if rejected.is_empty() { Ok(retry) } else { Err(IndexError::Rejected { ids: rejected, reason }) }
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
    } else if status.is_client_error() && status.as_u16() != 429 {
        Err(IndexError::Invalid(format!("{what}: {status}: {}", body["error"])))
    } else {
        Err(IndexError::Unavailable(format!("{what}: {status}: {}", body["error"])))
    }
}

#[async_trait]
impl SearchIndex for OpenSearchIndex {
    async fn index(&self, events: &[StoredEvent]) -> Result<(), IndexError> {
        let mut pending: Vec<&StoredEvent> = events.iter().collect();
        for attempt in 0..self.config.max_attempts {
            if pending.is_empty() {
                return Ok(());
            }
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(100 << attempt.min(6))).await;
            }
            match self.bulk(&pending).await {
                Ok(retry) => pending = retry.into_iter().map(|i| pending[i]).collect(),
                Err(IndexError::Unavailable(_)) if attempt + 1 < self.config.max_attempts => {}
                Err(err) => return Err(err),
            }
        }
        if pending.is_empty() {
            Ok(())
        } else {
            Err(IndexError::Unavailable(format!("{} documents still failing after {} attempts", pending.len(), self.config.max_attempts)))
        }
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
