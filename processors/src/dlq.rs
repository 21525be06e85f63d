//! Dead letters: a record that cannot be decoded, or that the sink refuses after bounded
//! attempts, is copied unchanged (key, value, headers) to the dead-letter topic with headers
//! saying why and where it came from, so the partition keeps moving and nothing is dropped
//! silently. Each processor dead-letters what its own sink refused, so a record both sinks
//! refuse appears once per sink (header `dlq.sink`).
//!
//! A **conflict** (reason `conflict`) is a record whose producer id the event store holds
//! already with other content (another [content digest](auditlog_schemas::digest)): the first
//! copy stays in every view and this one is dead-lettered, by the event store's processor
//! only (one letter per conflict). Redriving it changes nothing while the first copy is
//! stored: it is dead-lettered again. It is the producer's to resend under a new id.

use auditlog_seams::{LogRecord, OutgoingRecord};

/// Header: the reason class (`decode`, `rejected`, `conflict`).
pub const REASON: &str = "dlq.reason";
/// Header: the error message.
pub const ERROR: &str = "dlq.error";
/// Header: the sink whose processor dead-lettered it (`scylla`, `opensearch`).
pub const SINK: &str = "dlq.sink";
/// Header: the original topic.
pub const ORIGIN_TOPIC: &str = "dlq.origin.topic";
/// Header: the original partition (decimal).
pub const ORIGIN_PARTITION: &str = "dlq.origin.partition";
/// Header: the original offset (decimal).
pub const ORIGIN_OFFSET: &str = "dlq.origin.offset";
/// Header: when the original record was appended, in ms since the epoch (decimal), if known.
pub const ORIGIN_TIMESTAMP: &str = "dlq.origin.timestamp_ms";

/// Why a record is dead-lettered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Not a decodable AuditEvent (not the wire format, unknown schema id, bad datum).
    Decode,
    /// The sink refused the event after bounded attempts.
    Rejected,
    /// The id is stored already with other content; the stored first copy stays.
    Conflict,
}

impl Reason {
    /// The header value and metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Decode => "decode",
            Self::Rejected => "rejected",
            Self::Conflict => "conflict",
        }
    }
}

/// Headers longer than this are cut: an error message must not make the record too large.
const MAX_ERROR_LEN: usize = 2_048;

/// The dead-letter copy of `record`.
pub fn letter(record: &LogRecord, dlq_topic: &str, sink: &str, reason: Reason, error: &str) -> OutgoingRecord {
    let mut error = error.to_owned();
    if error.len() > MAX_ERROR_LEN {
        let mut cut = MAX_ERROR_LEN;
        while !error.is_char_boundary(cut) {
            cut -= 1;
        }
        error.truncate(cut);
    }
    let origin = &record.position;
    let mut headers = record.headers.clone();
    headers.extend([
        (REASON.to_owned(), reason.as_str().as_bytes().to_vec()),
        (ERROR.to_owned(), error.into_bytes()),
        (SINK.to_owned(), sink.as_bytes().to_vec()),
        (ORIGIN_TOPIC.to_owned(), origin.topic.as_bytes().to_vec()),
        (ORIGIN_PARTITION.to_owned(), origin.partition.to_string().into_bytes()),
        (ORIGIN_OFFSET.to_owned(), origin.offset.to_string().into_bytes()),
    ]);
    if let Some(ts) = record.timestamp_ms {
        headers.push((ORIGIN_TIMESTAMP.to_owned(), ts.to_string().into_bytes()));
    }
    OutgoingRecord {
        topic: dlq_topic.to_owned(),
        key: record.key.as_deref().map(|k| String::from_utf8_lossy(k).into_owned()).unwrap_or_default(),
        payload: record.payload.clone(),
        headers,
    }
}

#[cfg(test)]
mod tests {
    use auditlog_seams::LogPosition;

    use super::*;

    #[test]
    fn keeps_the_record_and_says_why_and_where() {
        let record = LogRecord {
            position: LogPosition { topic: "audit.events.v1".into(), partition: 4, offset: 1234 },
            key: Some(b"acme".to_vec()),
            payload: vec![9, 9, 9],
            headers: vec![("event_id".into(), b"e1".to_vec())],
            timestamp_ms: Some(1_700_000_000_000),
        };
        let letter = letter(&record, "audit.events.v1.dlq", "scylla", Reason::Decode, &"x".repeat(5_000));
        assert_eq!(letter.topic, "audit.events.v1.dlq");
        assert_eq!(letter.key, "acme");
        assert_eq!(letter.payload, vec![9, 9, 9]);
        let header = |name: &str| letter.headers.iter().find(|(k, _)| k == name).map(|(_, v)| String::from_utf8_lossy(v).into_owned());
        assert_eq!(header("event_id").as_deref(), Some("e1"));
        assert_eq!(header(REASON).as_deref(), Some("decode"));
        assert_eq!(header(SINK).as_deref(), Some("scylla"));
        assert_eq!(header(ORIGIN_TOPIC).as_deref(), Some("audit.events.v1"));
        assert_eq!(header(ORIGIN_PARTITION).as_deref(), Some("4"));
        assert_eq!(header(ORIGIN_OFFSET).as_deref(), Some("1234"));
        assert_eq!(header(ORIGIN_TIMESTAMP).as_deref(), Some("1700000000000"));
        assert_eq!(header(ERROR).map(|e| e.len()), Some(MAX_ERROR_LEN));
    }
}
