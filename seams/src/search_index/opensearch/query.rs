//! Documents, searches, aggregations and purges of the OpenSearch index.

use auditlog_schemas::AuditEvent;
use auditlog_schemas::avro::to_micros;
use opensearch::{DeleteByQueryParts, OpenSearch, SearchParts};
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};

use super::{expect_success, unavailable};
use crate::query::{ActionFilter, EventFilter, GroupBy, Page, PageRequest, Stats, StoredEvent};
use crate::search_index::IndexError;
use crate::LogPosition;

/// Largest page.
pub const MAX_PAGE: usize = 1_000;
/// Most groups returned by stats.
pub const MAX_GROUPS: usize = 1_000;
/// Time OpenSearch may spend on one search or stats request (its `timeout`): past it the
/// shards stop collecting and the answer says `timed_out`, which is reported as unavailable
/// rather than served as a partial page or count. Below the client's request timeout (30 s
/// by default) and above the query API's default budget (15 s), whose expiry drops the
/// request, and OpenSearch cancels a search whose HTTP connection closed.
pub const SEARCH_TIMEOUT: &str = "20s";
/// `simple_query_string` operators allowed in `q`: AND, OR, NOT, phrases, precedence,
/// whitespace, escapes and prefix (`word*`); fuzzy (`~N`), slop and near are off, so no
/// `q` expands into an edit-distance automaton over the dictionary.
const TEXT_FLAGS: &str = "AND|OR|NOT|PHRASE|PRECEDENCE|WHITESPACE|ESCAPE|PREFIX";
/// Terms one prefix word or fuzzy term may expand to, should either reach the index.
const MAX_EXPANSIONS: u32 = 50;

/// The document of one event.
pub(super) fn document(stored: &StoredEvent) -> Result<Value, IndexError> {
    let mut doc = serde_json::to_value(&stored.event).map_err(|e| IndexError::Invalid(format!("event {}: {e}", stored.event.id)))?;
    let p = &stored.position;
    doc["occurred_us"] = json!(to_micros(stored.event.occurred_at));
    doc["log"] = json!({"topic": p.topic, "partition": p.partition, "offset": p.offset});
    Ok(doc)
}

fn from_document(mut source: Value) -> Result<StoredEvent, IndexError> {
    let corrupt = |what: String| IndexError::Unavailable(format!("unreadable document: {what}"));
    let log = source.as_object_mut().and_then(|o| {
        o.remove("occurred_us");
        o.remove("log")
    });
    let log = log.ok_or_else(|| corrupt("no log position".into()))?;
    let position = LogPosition {
        topic: log["topic"].as_str().unwrap_or_default().to_owned(),
        partition: log["partition"].as_i64().and_then(|p| i32::try_from(p).ok()).unwrap_or(-1),
        offset: log["offset"].as_i64().unwrap_or(-1),
    };
    let event: AuditEvent = serde_json::from_value(source).map_err(|e| corrupt(e.to_string()))?;
    Ok(StoredEvent { event, position })
}

/// The bool query of a filter; always confined to the tenant.
fn bool_query(filter: &EventFilter) -> Value {
    let mut must = Vec::new();
    let mut clauses = vec![json!({"term": {"tenant_id": filter.tenant_id}})];
    let (from, to) = (filter.from.map(to_micros), filter.to.map(to_micros));
    if from.is_some() || to.is_some() {
        let mut range = serde_json::Map::new();
        if let Some(from) = from {
            range.insert("gte".into(), json!(from));
        }
        if let Some(to) = to {
            range.insert("lt".into(), json!(to));
        }
        clauses.push(json!({"range": {"occurred_us": range}}));
    }
    if let Some(actor) = &filter.actor_id {
        clauses.push(json!({"term": {"actor.id": actor}}));
    }
    match &filter.action {
        Some(ActionFilter::Exact(a)) => clauses.push(json!({"term": {"action": a}})),
        Some(ActionFilter::Prefix(p)) => clauses.push(json!({"prefix": {"action": p}})),
        None => {}
    }
    if filter.target_type.is_some() || filter.target_id.is_some() {
        let mut target = Vec::new();
        if let Some(t) = &filter.target_type {
            target.push(json!({"term": {"targets.type": t}}));
        }
        if let Some(t) = &filter.target_id {
            target.push(json!({"term": {"targets.id": t}}));
        }
        clauses.push(json!({"nested": {"path": "targets", "query": {"bool": {"filter": target}}}}));
    }
    if let Some(outcome) = filter.outcome {
        clauses.push(json!({"term": {"outcome": outcome.as_str()}}));
    }
    if let Some(severity) = filter.severity {
        clauses.push(json!({"term": {"severity": severity.as_str()}}));
    }
    if let Some(text) = &filter.text {
        must.push(json!({"simple_query_string": {
            "query": text, "fields": ["description", "actor.name", "action", "actor.id"], "default_operator": "and",
            "flags": TEXT_FLAGS, "fuzzy_max_expansions": MAX_EXPANSIONS, "fuzzy_prefix_length": 2
        }}));
    }
    json!({"bool": {"filter": clauses, "must": must}})
}

/// An answer cut short by [`SEARCH_TIMEOUT`] (or by a failed shard) is incomplete: a page from
/// it could skip events and a count would be low, so it is unavailable, not served.
fn complete(answer: &Value, what: &str) -> Result<(), IndexError> {
    let failed = answer["_shards"]["failed"].as_u64().unwrap_or(0);
    if answer["timed_out"].as_bool() == Some(true) {
        Err(IndexError::Unavailable(format!("{what} timed out after {SEARCH_TIMEOUT}")))
    } else if failed > 0 {
        Err(IndexError::Unavailable(format!("{what}: {failed} shards failed")))
    } else {
        Ok(())
    }
}

fn parse_cursor(text: &str) -> Result<(i64, String), IndexError> {
    let invalid = || IndexError::Invalid(format!("cursor {text:?} is not one this index made"));
    let (us, id) = text.split_once(':').ok_or_else(invalid)?;
    Ok((us.parse().map_err(|_| invalid())?, id.to_owned()))
}

/// An answer to a search of an alias that has no index yet is empty, not an error.
fn no_index_yet(err: &IndexError) -> bool {
    matches!(err, IndexError::Invalid(m) if m.contains("index_not_found_exception"))
}

pub(super) async fn search(client: &OpenSearch, alias: &str, filter: &EventFilter, page: &PageRequest) -> Result<Page, IndexError> {
    if page.limit == 0 || page.limit > MAX_PAGE {
        return Err(IndexError::Invalid(format!("limit must be 1..={MAX_PAGE}")));
    }
    let mut body = json!({
        "query": bool_query(filter),
        "sort": [{"occurred_us": "desc"}, {"id": "desc"}],
        "size": page.limit + 1,
        "track_total_hits": false,
        "timeout": SEARCH_TIMEOUT
    });
    if let Some(after) = &page.after {
        let (us, id) = parse_cursor(after)?;
        body["search_after"] = json!([us, id]);
    }
    let routing = [filter.tenant_id.as_str()];
    let response = client.search(SearchParts::Index(&[alias])).routing(&routing).body(body).send().await.map_err(unavailable)?;
    let answer = match expect_success(response, "search").await {
        Ok(answer) => answer,
        Err(err) if no_index_yet(&err) => return Ok(Page { events: Vec::new(), next: None }),
        Err(err) => return Err(err),
    };
    complete(&answer, "search")?;
    let hits = answer["hits"]["hits"].as_array().cloned().unwrap_or_default();
    let more = hits.len() > page.limit;
    let events = hits.into_iter().take(page.limit).map(|h| from_document(h["_source"].clone())).collect::<Result<Vec<_>, _>>()?;
    let next = match (more, events.last()) {
        (true, Some(last)) => Some(format!("{}:{}", to_micros(last.event.occurred_at), last.event.id)),
        _ => None,
    };
    Ok(Page { events, next })
}

fn group_field(group: GroupBy) -> &'static str {
    match group {
        GroupBy::Action => "action",
        GroupBy::ActorId => "actor.id",
        GroupBy::Outcome => "outcome",
        GroupBy::Severity => "severity",
    }
}

pub(super) async fn stats(
    client: &OpenSearch,
    alias: &str,
    filter: &EventFilter,
    group_by: Option<GroupBy>,
    interval: Option<Duration>,
) -> Result<Stats, IndexError> {
    let mut aggs = serde_json::Map::new();
    if let Some(group) = group_by {
        aggs.insert("groups".into(), json!({"terms": {"field": group_field(group), "size": MAX_GROUPS}}));
    }
    if let Some(interval) = interval {
        let secs = interval.whole_seconds();
        if secs < 1 {
            return Err(IndexError::Invalid("interval must be at least one second".into()));
        }
        aggs.insert("histogram".into(), json!({"date_histogram": {"field": "occurred_at", "fixed_interval": format!("{secs}s"), "min_doc_count": 1}}));
    }
    let body = json!({"query": bool_query(filter), "size": 0, "track_total_hits": true, "aggs": aggs, "timeout": SEARCH_TIMEOUT});
    let routing = [filter.tenant_id.as_str()];
    let response = client.search(SearchParts::Index(&[alias])).routing(&routing).body(body).send().await.map_err(unavailable)?;
    let answer = match expect_success(response, "stats").await {
        Ok(answer) => answer,
        Err(err) if no_index_yet(&err) => return Ok(Stats::default()),
        Err(err) => return Err(err),
    };
    complete(&answer, "stats")?;
    let buckets = |name: &str| answer["aggregations"][name]["buckets"].as_array().cloned().unwrap_or_default();
    let groups = buckets("groups")
        .iter()
        .map(|b| (b["key"].as_str().unwrap_or_default().to_owned(), b["doc_count"].as_u64().unwrap_or(0)))
        .collect();
    let histogram = buckets("histogram")
        .iter()
        .filter_map(|b| {
            let start = OffsetDateTime::from_unix_timestamp_nanos(i128::from(b["key"].as_i64()?) * 1_000_000).ok()?;
            Some((start, b["doc_count"].as_u64().unwrap_or(0)))
        })
        .collect();
    Ok(Stats { total: answer["hits"]["total"]["value"].as_u64().unwrap_or(0), groups, histogram })
}

pub(super) async fn purge_before(client: &OpenSearch, alias: &str, tenant_id: &str, before: OffsetDateTime) -> Result<u64, IndexError> {
    let filter = EventFilter { tenant_id: tenant_id.to_owned(), to: Some(before), ..EventFilter::default() };
    let routing = [tenant_id];
    let response = client
        .delete_by_query(DeleteByQueryParts::Index(&[alias]))
        .routing(&routing)
        .conflicts(opensearch::params::Conflicts::Proceed)
        .refresh(true)
        .body(json!({"query": bool_query(&filter)}))
        .send()
        .await
        .map_err(unavailable)?;
    match expect_success(response, "delete by query").await {
        Ok(answer) => Ok(answer["deleted"].as_u64().unwrap_or(0)),
        Err(err) if no_index_yet(&err) => Ok(0),
        Err(err) => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_text_has_no_fuzzy_or_proximity_operators() {
        let filter = EventFilter { tenant_id: "t".into(), text: Some("zebra~2".into()), ..EventFilter::default() };
        let sqs = &bool_query(&filter)["bool"]["must"][0]["simple_query_string"];
        let flags = sqs["flags"].as_str().expect("flags are set");
        assert!(!flags.contains("FUZZY") && !flags.contains("NEAR") && !flags.contains("SLOP") && !flags.contains("ALL"), "{flags}");
        assert_eq!(sqs["fuzzy_max_expansions"], MAX_EXPANSIONS);
    }

    #[test]
    fn an_answer_cut_short_is_unavailable_not_partial() {
        assert!(complete(&json!({"timed_out": false, "_shards": {"failed": 0}}), "search").is_ok());
        assert!(matches!(complete(&json!({"timed_out": true, "_shards": {"failed": 0}}), "search"), Err(IndexError::Unavailable(_))));
        assert!(matches!(complete(&json!({"timed_out": false, "_shards": {"failed": 1}}), "stats"), Err(IndexError::Unavailable(_))));
    }
}
