//! The index template of the OpenSearch search index: monthly indices `<prefix>-YYYY.MM`
//! behind the alias `<prefix>`, one shard each (a tenant's documents are routed to one shard,
//! which keeps its aggregations exact), strict mapping.

use serde_json::{Value, json};

/// The composable index template for indices named `<prefix>-*`.
pub(super) fn template(prefix: &str, replicas: u32) -> Value {
    let keyword = json!({"type": "keyword"});
    let text_and_keyword = json!({"type": "text", "fields": {"raw": {"type": "keyword", "ignore_above": 256}}});
    json!({
        "index_patterns": [format!("{prefix}-*")],
        "template": {
            "settings": {"number_of_shards": 1, "number_of_replicas": replicas, "refresh_interval": "1s"},
            "aliases": {prefix: {}},
            "mappings": {
                "dynamic": "strict",
                "_routing": {"required": true},
                "properties": {
                    "id": keyword,
                    "tenant_id": keyword,
                    "occurred_at": {"type": "date"},
                    "received_at": {"type": "date"},
                    "occurred_us": {"type": "long"},
                    "action": keyword,
                    "actor": {"properties": {
                        "id": keyword, "type": keyword, "name": text_and_keyword, "email": keyword
                    }},
                    "targets": {"type": "nested", "properties": {
                        "type": keyword, "id": keyword, "name": text_and_keyword
                    }},
                    "outcome": keyword,
                    "severity": keyword,
                    "source": {"properties": {"service": keyword, "version": keyword, "host": keyword}},
                    "context": {"properties": {
                        "ip": {"type": "ip"}, "user_agent": {"type": "text"}, "request_id": keyword,
                        "trace_id": keyword, "location": keyword
                    }},
                    "description": {"type": "text"},
                    "metadata": {"type": "flat_object"},
                    "log": {"properties": {"topic": keyword, "partition": {"type": "integer"}, "offset": {"type": "long"}}}
                }
            }
        }
    })
}
