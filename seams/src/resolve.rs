//! Picks a seam implementation from a URI, so services and tools are configured with one
//! string per backend (`kafka://127.0.0.1:9092`).

use std::sync::Arc;

use crate::event_log::kafka::{KafkaConfig, KafkaEventLog};
use crate::{EventLog, LogError};

/// Opens the event log named by `uri`.
///
/// - `kafka://host:port[,host:port...]`: a Kafka cluster.
pub fn event_log(uri: &str) -> Result<Arc<dyn EventLog>, LogError> {
    match uri.split_once("://") {
        Some(("kafka", servers)) if !servers.is_empty() => {
            Ok(Arc::new(KafkaEventLog::new(KafkaConfig::new(servers.trim_end_matches('/')))?))
        }
        Some((scheme, _)) => Err(LogError::Config(format!("unsupported event log scheme {scheme:?} in {uri:?}"))),
        None => Err(LogError::Config(format!("event log uri {uri:?} has no scheme, e.g. kafka://127.0.0.1:9092"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_unknown_or_missing_schemes() {
        assert!(matches!(event_log("kafk://x:1"), Err(LogError::Config(_))));
        assert!(matches!(event_log("127.0.0.1:9092"), Err(LogError::Config(_))));
        assert!(matches!(event_log("kafka://"), Err(LogError::Config(_))));
    }

    #[test]
    fn opens_kafka_lazily() {
        assert!(event_log("kafka://127.0.0.1:1").is_ok());
    }
}
