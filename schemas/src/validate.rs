//! Validation of an event as a producer sends it (JSON) into an [`AuditEvent`], with every
//! offending field named by its path (`actor.id`, `targets[2].type`, ...).
//!
//! Validation walks the JSON value by hand instead of deserializing with serde, because serde
//! stops at the first problem and a producer deserves to hear about all of them at once.
//! [`validate_json`] first tries the fast path of [`fast`], which deserializes a valid event
//! straight from its text; whatever that path cannot accept gets the walk, so every answer,
//! accepted event or list of problems, is the walk's.

mod fast;

use std::net::IpAddr;

use serde::Serialize;
use serde_json::{Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::event::{Actor, ActorType, AuditEvent, Context, Outcome, Severity, Signature, SignatureAlg, Source, Target};

/// Limits from the design contract.
pub mod limits {
    /// Longest producer-supplied id.
    pub const ID_MAX_CHARS: usize = 128;
    /// Longest action name.
    pub const ACTION_MAX_CHARS: usize = 128;
    /// Most targets per event.
    pub const TARGETS_MAX: usize = 16;
    /// Largest `metadata` object, serialized.
    pub const METADATA_MAX_BYTES: usize = 16 * 1024;
    /// Largest event, serialized as JSON.
    pub const EVENT_MAX_BYTES: usize = 32 * 1024;
    /// Longest identifier-like string (actor id, target id, names, source fields, ...).
    pub const SHORT_TEXT_MAX_CHARS: usize = 256;
    /// Longest user agent.
    pub const USER_AGENT_MAX_CHARS: usize = 1024;
    /// Longest description.
    pub const DESCRIPTION_MAX_CHARS: usize = 8 * 1024;
    /// Longest signing key id.
    pub const KEY_ID_MAX_CHARS: usize = 128;
    /// How far in the future `occurred_at` may be, to allow for clock skew.
    pub const MAX_FUTURE_SKEW: time::Duration = time::Duration::minutes(5);
}

/// One problem with one field of an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// Path of the field, e.g. `actor.id` or `targets[2].type`.
    pub field: String,
    /// What is wrong with it, lowercase, no trailing period.
    pub message: String,
}

/// Why an event was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// The event breaks the contract; every offending field is listed.
    #[error("event is invalid: {}", summary(.0))]
    Invalid(Vec<FieldError>),
    /// The body names a tenant other than the one of the credentials.
    #[error("tenant_id does not match the credentials")]
    TenantMismatch,
}

fn summary(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect::<Vec<_>>()
        .join("; ")
}

/// What the gateway knows about a request, as opposed to what the body claims.
#[derive(Debug, Clone, Copy)]
pub struct IngestContext<'a> {
    /// Tenant of the verified credentials.
    pub tenant_id: &'a str,
    /// When the gateway received the request.
    pub received_at: OffsetDateTime,
}

/// Timestamps travel as Avro `timestamp-micros`: an event is completed at that precision, so
/// the gateway's answer, the log and both views carry the same instant.
fn to_micros_precision(t: OffsetDateTime) -> OffsetDateTime {
    t.replace_nanosecond(t.nanosecond() / 1_000 * 1_000).unwrap_or(t)
}

/// Why JSON text is not an acceptable event.
#[derive(Debug)]
pub enum JsonRejection {
    /// The text is not JSON.
    Malformed(serde_json::Error),
    /// The text is JSON but not a valid event.
    Event(Rejection),
}

/// An event accepted from its JSON text.
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted {
    /// The validated, completed event.
    pub event: AuditEvent,
    /// Whether the producer chose its id (the idempotency key of retries).
    pub producer_id: bool,
}

/// Validates one event given as JSON text, as the gateway receives it. A valid event is
/// deserialized straight into its fields and checked ([`fast`]); anything else is parsed into
/// a JSON value and walked by [`validate_event`], which names every problem. The answer is
/// the same either way: the fast path only ever accepts what the walk accepts.
pub fn validate_json(json: &[u8], ctx: &IngestContext<'_>) -> Result<Accepted, JsonRejection> {
    if let Some(accepted) = fast::accept(json, ctx) {
        return Ok(accepted);
    }
    let value: Value = serde_json::from_slice(json).map_err(JsonRejection::Malformed)?;
    let producer_id = value.get("id").is_some_and(|v| !v.is_null());
    validate_event(value, ctx).map(|event| Accepted { event, producer_id }).map_err(JsonRejection::Event)
}

/// Validates one event as sent by a producer and completes it (id, defaults, timestamps).
/// Takes the value by ownership: its strings and `metadata` move into the event uncopied.
pub fn validate_event(input: Value, ctx: &IngestContext<'_>) -> Result<AuditEvent, Rejection> {
    let mut errors = Vec::new();
    let Value::Object(mut obj) = input else {
        return Err(Rejection::Invalid(vec![FieldError {
            field: String::new(),
            message: "an event must be a JSON object".into(),
        }]));
    };
    let obj = &mut obj;
    let mut f = Fields::new(obj, "", &mut errors);
    f.deny_unknown(&[
        "id", "tenant_id", "occurred_at", "received_at", "action", "actor", "targets", "outcome",
        "severity", "source", "context", "description", "metadata", "signature",
    ]);
    let id = f.string("id", 1, limits::ID_MAX_CHARS, Some(is_id_char), "[A-Za-z0-9_.:-]");
    let body_tenant = f.string("tenant_id", 1, limits::SHORT_TEXT_MAX_CHARS, None, "");
    let occurred_at = f.timestamp("occurred_at");
    if f.has("received_at") {
        f.error("received_at", "is set by the gateway and must not be sent");
    }
    let action = f.required_string("action", limits::ACTION_MAX_CHARS, Some(is_action_char), "[a-z0-9_.:-]");
    let actor = f.object("actor", true).and_then(|o| actor(o, &mut errors));
    let mut f = Fields::new(obj, "", &mut errors);
    let targets = f.targets();
    let outcome = f.enumeration("outcome", &["success", "failure", "unknown"], parse_outcome);
    let severity = f.enumeration("severity", &["debug", "info", "warning", "error", "critical"], parse_severity);
    let description = f.string("description", 0, limits::DESCRIPTION_MAX_CHARS, None, "");
    let metadata = f.metadata();
    let source = f.object("source", false).map(|o| source(o, &mut errors));
    let context = Fields::new(obj, "", &mut errors)
        .object("context", false)
        .map(|o| context(o, &mut errors));
    let mut f = Fields::new(obj, "", &mut errors);
    let signed = f.has("signature");
    let signature = f.object("signature", false).and_then(|o| signature(o, &mut errors));
    if signed && id.is_none() && !errors.iter().any(|e| e.field == "id") {
        errors.push(FieldError { field: "id".into(), message: SIGNED_WITHOUT_ID.into() });
    }

    if let Some(occurred) = occurred_at
        && occurred - ctx.received_at > limits::MAX_FUTURE_SKEW
    {
        errors.push(FieldError {
            field: "occurred_at".into(),
            message: "is more than 5 minutes in the future".into(),
        });
    }
    if !errors.is_empty() {
        return Err(Rejection::Invalid(errors));
    }
    if body_tenant.as_deref().is_some_and(|t| t != ctx.tenant_id) {
        return Err(Rejection::TenantMismatch);
    }
    let (Some(action), Some(actor)) = (action, actor) else {
        // A missing or bad required field always records an error above.
        return Err(Rejection::Invalid(vec![FieldError {
            field: String::new(),
            message: "required fields are missing".into(),
        }]));
    };
    let event = AuditEvent {
        id: id.unwrap_or_else(|| uuid::Uuid::now_v7().to_string()),
        tenant_id: ctx.tenant_id.to_owned(),
        occurred_at: to_micros_precision(occurred_at.unwrap_or(ctx.received_at)),
        received_at: to_micros_precision(ctx.received_at),
        action,
        actor,
        targets: targets.unwrap_or_default(),
        outcome: outcome.unwrap_or_default(),
        severity: severity.unwrap_or_default(),
        source,
        context,
        description,
        metadata,
        signature,
    };
    check_size(&event)?;
    Ok(event)
}

/// Bytes `value` takes serialized as JSON, counted without building the text.
fn json_len(value: &impl Serialize) -> usize {
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    match serde_json::to_writer(&mut counter, value) {
        Ok(()) => counter.0,
        Err(_) => usize::MAX,
    }
}

fn check_size(event: &AuditEvent) -> Result<(), Rejection> {
    let size = json_len(event);
    if size > limits::EVENT_MAX_BYTES {
        return Err(Rejection::Invalid(vec![FieldError {
            field: String::new(),
            message: format!("event is {size} bytes serialized, more than the {} allowed", limits::EVENT_MAX_BYTES),
        }]));
    }
    Ok(())
}

fn actor(mut obj: Map<String, Value>, errors: &mut Vec<FieldError>) -> Option<Actor> {
    let mut f = Fields::new(&mut obj, "actor", errors);
    f.deny_unknown(&["id", "type", "name", "email"]);
    let id = f.required_string("id", limits::SHORT_TEXT_MAX_CHARS, None, "");
    let kind = f.enumeration("type", &["user", "service", "system", "api_key"], parse_actor_type);
    let name = f.string("name", 0, limits::SHORT_TEXT_MAX_CHARS, None, "");
    let email = f.string("email", 3, limits::SHORT_TEXT_MAX_CHARS, None, "");
    if email.as_deref().is_some_and(|e| !looks_like_email(e)) {
        f.error("email", "is not an e-mail address");
    }
    Some(Actor { id: id?, kind: kind.unwrap_or_default(), name, email })
}

fn target(mut obj: Map<String, Value>, path: &str, errors: &mut Vec<FieldError>) -> Option<Target> {
    let mut f = Fields::new(&mut obj, path, errors);
    f.deny_unknown(&["type", "id", "name"]);
    let kind = f.required_string("type", limits::SHORT_TEXT_MAX_CHARS, None, "");
    let id = f.required_string("id", limits::SHORT_TEXT_MAX_CHARS, None, "");
    let name = f.string("name", 0, limits::SHORT_TEXT_MAX_CHARS, None, "");
    Some(Target { kind: kind?, id: id?, name })
}

fn source(mut obj: Map<String, Value>, errors: &mut Vec<FieldError>) -> Source {
    let mut f = Fields::new(&mut obj, "source", errors);
    f.deny_unknown(&["service", "version", "host"]);
    Source {
        service: f.string("service", 0, limits::SHORT_TEXT_MAX_CHARS, None, ""),
        version: f.string("version", 0, limits::SHORT_TEXT_MAX_CHARS, None, ""),
        host: f.string("host", 0, limits::SHORT_TEXT_MAX_CHARS, None, ""),
    }
}

fn context(mut obj: Map<String, Value>, errors: &mut Vec<FieldError>) -> Context {
    let mut f = Fields::new(&mut obj, "context", errors);
    f.deny_unknown(&["ip", "user_agent", "request_id", "trace_id", "location"]);
    let ip = f.string("ip", 1, 64, None, "");
    if ip.as_deref().is_some_and(|ip| ip.parse::<IpAddr>().is_err()) {
        f.error("ip", "is not an IPv4 or IPv6 address");
    }
    Context {
        ip,
        user_agent: f.string("user_agent", 0, limits::USER_AGENT_MAX_CHARS, None, ""),
        request_id: f.string("request_id", 0, limits::SHORT_TEXT_MAX_CHARS, None, ""),
        trace_id: f.string("trace_id", 0, limits::SHORT_TEXT_MAX_CHARS, None, ""),
        location: f.string("location", 0, limits::SHORT_TEXT_MAX_CHARS, None, ""),
    }
}

/// Why a signed event must carry its own id: the id is part of the signed bytes, and one the
/// gateway assigned could not have been signed.
const SIGNED_WITHOUT_ID: &str = "a signed event carries its id";

fn signature(mut obj: Map<String, Value>, errors: &mut Vec<FieldError>) -> Option<Signature> {
    let mut f = Fields::new(&mut obj, "signature", errors);
    f.deny_unknown(&["key_id", "alg", "value"]);
    let key_id = f.required_string("key_id", limits::KEY_ID_MAX_CHARS, Some(is_id_char), "[A-Za-z0-9._:-]");
    let alg = if f.has("alg") {
        f.enumeration("alg", &["ed25519", "ecdsa-p256-sha256"], SignatureAlg::parse)
    } else {
        f.error("alg", "is required");
        None
    };
    let value = match f.required_string("value", 256, None, "") {
        Some(text) => match signature_value_problem(&text) {
            Ok(value) => Some(value),
            Err(problem) => {
                f.error("value", problem);
                None
            }
        },
        None => None,
    };
    Some(Signature { key_id: key_id?, alg: alg?, value: value? })
}

/// The bytes of a signature value given as base64, or what is wrong with it.
fn signature_value_problem(text: &str) -> Result<Vec<u8>, String> {
    let value = STANDARD.decode(text).map_err(|_| "must be standard base64 (with padding)".to_owned())?;
    if value.len() != crate::signing::SIGNATURE_LEN {
        return Err(format!("must be {} bytes (base64), not {}", crate::signing::SIGNATURE_LEN, value.len()));
    }
    Ok(value)
}

/// What is wrong with a string field holding `s`, if anything: at least `min` and at most
/// `max` characters, each one `allowed`.
fn text_problem(s: &str, min: usize, max: usize, allowed: Option<fn(char) -> bool>, charset: &str) -> Option<String> {
    let chars = s.chars().count();
    if chars < min {
        return Some(if min == 1 { "must not be empty".to_owned() } else { format!("must be at least {min} characters") });
    }
    if chars > max {
        return Some(format!("must be at most {max} characters"));
    }
    if let Some(allowed) = allowed
        && !s.chars().all(allowed)
    {
        return Some(format!("may only contain {charset}"));
    }
    None
}

fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-')
}

fn is_action_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | ':' | '-')
}

fn looks_like_email(e: &str) -> bool {
    matches!(e.split_once('@'), Some((local, domain)) if !local.is_empty() && !domain.is_empty() && !e.contains(char::is_whitespace))
}

fn parse_outcome(s: &str) -> Option<Outcome> {
    Some(match s {
        "success" => Outcome::Success,
        "failure" => Outcome::Failure,
        "unknown" => Outcome::Unknown,
        _ => return None,
    })
}

fn parse_severity(s: &str) -> Option<Severity> {
    Some(match s {
        "debug" => Severity::Debug,
        "info" => Severity::Info,
        "warning" => Severity::Warning,
        "error" => Severity::Error,
        "critical" => Severity::Critical,
        _ => return None,
    })
}

fn parse_actor_type(s: &str) -> Option<ActorType> {
    Some(match s {
        "user" => ActorType::User,
        "service" => ActorType::Service,
        "system" => ActorType::System,
        "api_key" => ActorType::ApiKey,
        _ => return None,
    })
}

/// Reads the fields of one JSON object, recording an error per bad field. Each field is
/// read once: a read takes its value out of the object.
struct Fields<'a, 'e> {
    obj: &'a mut Map<String, Value>,
    prefix: &'a str,
    errors: &'e mut Vec<FieldError>,
}

impl<'a, 'e> Fields<'a, 'e> {
    fn new(obj: &'a mut Map<String, Value>, prefix: &'a str, errors: &'e mut Vec<FieldError>) -> Self {
        Self { obj, prefix, errors }
    }

    fn path(&self, name: &str) -> String {
        if self.prefix.is_empty() { name.to_owned() } else { format!("{}.{name}", self.prefix) }
    }

    fn error(&mut self, name: &str, message: impl Into<String>) {
        let field = self.path(name);
        self.errors.push(FieldError { field, message: message.into() });
    }

    /// Whether the field is present and not null.
    fn has(&self, name: &str) -> bool {
        self.obj.get(name).is_some_and(|v| !v.is_null())
    }

    /// The field's value, taken out of the object, when present and not null.
    fn take(&mut self, name: &str) -> Option<Value> {
        self.obj.remove(name).filter(|v| !v.is_null())
    }

    fn deny_unknown(&mut self, known: &[&str]) {
        let unknown: Vec<String> = self.obj.keys().filter(|k| !known.contains(&k.as_str())).cloned().collect();
        for key in unknown {
            self.error(&key, "is not a known field");
        }
    }

    fn string(&mut self, name: &str, min: usize, max: usize, allowed: Option<fn(char) -> bool>, charset: &str) -> Option<String> {
        let Value::String(s) = self.take(name)? else {
            self.error(name, "must be a string");
            return None;
        };
        match text_problem(&s, min, max, allowed, charset) {
            Some(problem) => {
                self.error(name, problem);
                None
            }
            None => Some(s),
        }
    }

    fn required_string(&mut self, name: &str, max: usize, allowed: Option<fn(char) -> bool>, charset: &str) -> Option<String> {
        if !self.has(name) {
            self.error(name, "is required");
            return None;
        }
        self.string(name, 1, max, allowed, charset)
    }

    fn timestamp(&mut self, name: &str) -> Option<OffsetDateTime> {
        // Sub-microsecond digits are accepted and dropped (see `to_micros_precision`).
        let s = self.string(name, 1, 64, None, "")?;
        match OffsetDateTime::parse(&s, &Rfc3339) {
            Ok(t) => Some(t.to_offset(time::UtcOffset::UTC)),
            Err(_) => {
                self.error(name, "must be an RFC 3339 timestamp, e.g. 2026-01-31T12:00:00Z");
                None
            }
        }
    }

    fn enumeration<T>(&mut self, name: &str, symbols: &[&str], parse: fn(&str) -> Option<T>) -> Option<T> {
        let s = self.string(name, 1, 32, None, "")?;
        let parsed = parse(&s);
        if parsed.is_none() {
            self.error(name, format!("must be one of {}", symbols.join(", ")));
        }
        parsed
    }

    fn object(&mut self, name: &str, required: bool) -> Option<Map<String, Value>> {
        match self.take(name) {
            None if required => {
                self.error(name, "is required");
                None
            }
            None => None,
            Some(Value::Object(o)) => Some(o),
            Some(_) => {
                self.error(name, "must be an object");
                None
            }
        }
    }

    fn targets(&mut self) -> Option<Vec<Target>> {
        let Value::Array(items) = self.take("targets")? else {
            self.error("targets", "must be an array");
            return None;
        };
        if items.len() > limits::TARGETS_MAX {
            self.error("targets", format!("must have at most {} items", limits::TARGETS_MAX));
            return None;
        }
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.into_iter().enumerate() {
            let path = format!("targets[{i}]");
            match item {
                Value::Object(o) => out.extend(target(o, &path, self.errors)),
                _ => self.errors.push(FieldError { field: path, message: "must be an object".into() }),
            }
        }
        Some(out)
    }

    fn metadata(&mut self) -> Option<Map<String, Value>> {
        let Value::Object(map) = self.take("metadata")? else {
            self.error("metadata", "must be a JSON object");
            return None;
        };
        let size = json_len(&map);
        if size > limits::METADATA_MAX_BYTES {
            self.error("metadata", format!("is {size} bytes serialized, more than the {} allowed", limits::METADATA_MAX_BYTES));
            return None;
        }
        Some(map)
    }
}
