//! The names of auditlog's topics, defined once for every producer and consumer: the shared
//! topic `<prefix>.v1`, a tenant's dedicated topic `<prefix>.v1.<tenant>`, the dead-letter
//! topic `<prefix>.v1.dlq` (tenant id `dlq` is reserved for it), and the pattern processors
//! subscribe with.

use crate::TopicSelector;

/// The shared topic of `prefix` (`audit.events` → `audit.events.v1`).
pub fn shared(prefix: &str) -> String {
    format!("{prefix}.v1")
}

/// The dedicated topic of `tenant` next to `shared_topic`.
pub fn dedicated(shared_topic: &str, tenant: &str) -> String {
    format!("{shared_topic}.{tenant}")
}

/// The dead-letter topic of `shared_topic`.
pub fn dead_letters(shared_topic: &str) -> String {
    dedicated(shared_topic, "dlq")
}

/// The shared topic and every dedicated one, by pattern, so topics created later are
/// picked up. It also matches the dead-letter topic, which consumers skip.
pub fn subscription(shared_topic: &str) -> TopicSelector {
    TopicSelector::Pattern(format!("^{}(\\.[A-Za-z0-9_-]+)?$", shared_topic.replace('.', "\\.")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_pattern() {
        let shared = shared("audit.events");
        assert_eq!(shared, "audit.events.v1");
        assert_eq!(dedicated(&shared, "acme"), "audit.events.v1.acme");
        assert_eq!(dead_letters(&shared), "audit.events.v1.dlq");
        let TopicSelector::Pattern(p) = subscription(&shared) else { panic!("a pattern") };
        let re = regex::Regex::new(&p).expect("valid regex");
        for (topic, matched) in [
            ("audit.events.v1", true),
            ("audit.events.v1.acme", true),
            ("audit.events.v1.dlq", true),
            ("audit.events.v10", false),
            ("auditXevents.v1", false),
            ("audit.events.v1.acme.x", false),
        ] {
            assert_eq!(re.is_match(topic), matched, "{topic}");
        }
    }
}
