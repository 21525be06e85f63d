//! The tantivy schema of the embedded search index, and the document of one event.
//!
//! Filters use untokenized (`STRING`) fields, sorting and aggregations use fast columns, and
//! full text goes to one tokenized field `text` holding what the OpenSearch index searches
//! (description, actor name and id, action) plus the actor's e-mail and target names. The
//! stored `row` is the event and its log position as JSON, returned by searches.

use auditlog_schemas::avro::to_micros;
use tantivy::TantivyDocument;
use tantivy::schema::{FAST, Field, INDEXED, STORED, STRING, Schema, TEXT, Value as _};

use crate::query::StoredEvent;
use crate::search_index::IndexError;
use crate::LogPosition;

/// Handles of every field of the schema.
#[derive(Debug, Clone)]
pub(super) struct Fields {
    /// `tenant_id \u{1f} id`: the document's identity, for first-write-wins and deletes.
    pub key: Field,
    pub tenant: Field,
    pub id: Field,
    pub occurred_us: Field,
    pub action: Field,
    pub actor_id: Field,
    pub target_type: Field,
    pub target_id: Field,
    /// `type \u{1f} id` of each target: both filters must hold for the same target, like
    /// OpenSearch's nested query.
    pub target_key: Field,
    pub outcome: Field,
    pub severity: Field,
    pub text: Field,
    pub row: Field,
}

/// Fast columns by name (sorting, aggregations).
pub(super) const ID: &str = "id";
pub(super) const OCCURRED_US: &str = "occurred_us";

/// The schema and its field handles.
pub(super) fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let fields = Fields {
        key: b.add_text_field("key", STRING),
        tenant: b.add_text_field("tenant_id", STRING),
        id: b.add_text_field(ID, STRING | FAST),
        occurred_us: b.add_i64_field(OCCURRED_US, INDEXED | FAST),
        action: b.add_text_field("action", STRING | FAST),
        actor_id: b.add_text_field("actor_id", STRING | FAST),
        target_type: b.add_text_field("target_type", STRING),
        target_id: b.add_text_field("target_id", STRING),
        target_key: b.add_text_field("target_key", STRING),
        outcome: b.add_text_field("outcome", STRING | FAST),
        severity: b.add_text_field("severity", STRING | FAST),
        text: b.add_text_field("text", TEXT),
        row: b.add_bytes_field("row", STORED),
    };
    (b.build(), fields)
}

/// The identity of an event's document.
pub(super) fn key(tenant_id: &str, id: &str) -> String {
    format!("{tenant_id}\u{1f}{id}")
}

/// The key of a target in `target_key`.
pub(super) fn target_key(kind: &str, id: &str) -> String {
    format!("{kind}\u{1f}{id}")
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Row {
    event: auditlog_schemas::AuditEvent,
    topic: String,
    partition: i32,
    offset: i64,
}

/// The document of one event.
pub(super) fn document(f: &Fields, stored: &StoredEvent) -> Result<TantivyDocument, IndexError> {
    let e = &stored.event;
    let p = &stored.position;
    let row = Row { event: e.clone(), topic: p.topic.clone(), partition: p.partition, offset: p.offset };
    let row = serde_json::to_vec(&row).map_err(|err| IndexError::Rejected { ids: vec![e.id.clone()], reason: err.to_string() })?;
    let mut doc = TantivyDocument::default();
    doc.add_text(f.key, key(&e.tenant_id, &e.id));
    doc.add_text(f.tenant, &e.tenant_id);
    doc.add_text(f.id, &e.id);
    doc.add_i64(f.occurred_us, to_micros(e.occurred_at));
    doc.add_text(f.action, &e.action);
    doc.add_text(f.actor_id, &e.actor.id);
    for t in &e.targets {
        doc.add_text(f.target_type, &t.kind);
        doc.add_text(f.target_id, &t.id);
        doc.add_text(f.target_key, target_key(&t.kind, &t.id));
    }
    doc.add_text(f.outcome, e.outcome.as_str());
    doc.add_text(f.severity, e.severity.as_str());
    let names = e.targets.iter().filter_map(|t| t.name.as_deref());
    let text: Vec<&str> = [e.description.as_deref(), e.actor.name.as_deref(), e.actor.email.as_deref(), Some(&e.actor.id), Some(&e.action)]
        .into_iter()
        .flatten()
        .chain(names)
        .collect();
    doc.add_text(f.text, text.join("\n"));
    doc.add_bytes(f.row, &row);
    Ok(doc)
}

/// The event and log position stored in a document.
pub(super) fn stored_event(f: &Fields, doc: &TantivyDocument) -> Result<StoredEvent, IndexError> {
    let bytes = doc.get_first(f.row).and_then(|v| v.as_bytes()).ok_or_else(|| IndexError::Unavailable("document without its row".into()))?;
    let row: Row = serde_json::from_slice(bytes).map_err(|e| IndexError::Unavailable(format!("unreadable document: {e}")))?;
    Ok(StoredEvent { event: row.event, position: LogPosition { topic: row.topic, partition: row.partition, offset: row.offset } })
}
