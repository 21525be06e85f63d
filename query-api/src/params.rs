//! Query-string parsing shared by the list, stats, export and stream routes: every parameter
//! is checked (unknown, repeated, malformed, out of range) and every problem is named, so bad
//! input is a 400 and never reaches a backend.

use auditlog_schemas::{Outcome, Severity};
use auditlog_seams::{ActionFilter, EventFilter};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::{FieldProblem, QueryError};

/// Filter parameters every event route takes.
pub const FILTER_PARAMS: &[&str] = &["from", "to", "actor_id", "action", "target_type", "target_id", "outcome", "severity", "q"];

/// Longest accepted `q`.
pub const MAX_QUERY_CHARS: usize = 512;
/// Most words (phrase words included) in one `q`: each is a clause of the backend's query.
pub const MAX_QUERY_TERMS: usize = 32;
/// Most prefix words (`auth*`) in one `q`: each expands to every indexed term it starts,
/// which is the cost a short or repeated prefix multiplies.
pub const MAX_QUERY_PREFIXES: usize = 2;
/// Fewest characters before a prefix word's `*`: a shorter prefix (`a*`) matches a large part
/// of the dictionary.
pub const MIN_PREFIX_CHARS: usize = 3;
/// Deepest nesting of parentheses in `q`.
pub const MAX_QUERY_DEPTH: usize = 4;
/// Longest accepted id-like filter value (`actor_id`, `target_id`, `target_type`).
const MAX_VALUE_CHARS: usize = 512;

/// The decoded query string of one request.
#[derive(Debug, Default)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// Decodes `raw`, refusing names outside `allowed` and repeated names.
    pub fn parse(raw: Option<&str>, allowed: &[&[&str]]) -> Result<Self, QueryError> {
        let pairs: Vec<(String, String)> =
            form_urlencoded::parse(raw.unwrap_or_default().as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
        let mut problems = Vec::new();
        for (i, (name, _)) in pairs.iter().enumerate() {
            if !allowed.iter().any(|set| set.contains(&name.as_str())) {
                problems.push(problem(name, "is not a known parameter"));
            } else if pairs[..i].iter().any(|(earlier, _)| earlier == name) {
                problems.push(problem(name, "is given more than once"));
            }
        }
        if problems.is_empty() { Ok(Self { pairs }) } else { Err(QueryError::InvalidParameter(problems)) }
    }

    /// The value of `name`, if given.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The parameters the cursor is bound to: every one but `cursor` and `limit`, sorted.
    pub fn canonical_query(&self) -> String {
        let mut pairs: Vec<&(String, String)> = self.pairs.iter().filter(|(k, _)| k != "cursor" && k != "limit").collect();
        pairs.sort();
        pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&")
    }

    /// `limit`, within `1..=max`, or `default` when absent.
    pub fn limit(&self, default: usize, max: usize) -> Result<usize, QueryError> {
        match self.get("limit") {
            None => Ok(default),
            Some(raw) => match raw.parse::<usize>() {
                Ok(n) if (1..=max).contains(&n) => Ok(n),
                _ => Err(QueryError::param("limit", format!("must be an integer within 1..={max}"))),
            },
        }
    }

    /// The event filter for `tenant_id`, reporting every bad parameter at once.
    pub fn filter(&self, tenant_id: &str) -> Result<EventFilter, QueryError> {
        let mut problems = Vec::new();
        let mut filter = EventFilter { tenant_id: tenant_id.to_owned(), ..EventFilter::default() };
        filter.from = self.time("from", &mut problems);
        filter.to = self.time("to", &mut problems);
        if let (Some(from), Some(to)) = (filter.from, filter.to)
            && from > to
        {
            problems.push(problem("from", "must not be after `to`"));
        }
        filter.actor_id = self.text("actor_id", MAX_VALUE_CHARS, &mut problems);
        filter.target_type = self.text("target_type", MAX_VALUE_CHARS, &mut problems);
        filter.target_id = self.text("target_id", MAX_VALUE_CHARS, &mut problems);
        filter.text = self.text("q", MAX_QUERY_CHARS, &mut problems);
        if let Some(q) = &filter.text
            && let Err(message) = check_search_syntax(q)
        {
            problems.push(problem("q", message));
            filter.text = None;
        }
        if let Some(raw) = self.get("action") {
            match parse_action(raw) {
                Ok(action) => filter.action = action,
                Err(message) => problems.push(problem("action", message)),
            }
        }
        if let Some(raw) = self.get("outcome") {
            match parse_outcome(raw) {
                Some(o) => filter.outcome = Some(o),
                None => problems.push(problem("outcome", "must be one of success, failure, unknown")),
            }
        }
        if let Some(raw) = self.get("severity") {
            match parse_severity(raw) {
                Some(s) => filter.severity = Some(s),
                None => problems.push(problem("severity", "must be one of debug, info, warning, error, critical")),
            }
        }
        if problems.is_empty() { Ok(filter) } else { Err(QueryError::InvalidParameter(problems)) }
    }

    fn time(&self, name: &str, problems: &mut Vec<FieldProblem>) -> Option<OffsetDateTime> {
        let raw = self.get(name)?;
        match OffsetDateTime::parse(raw, &Rfc3339) {
            Ok(at) => Some(at),
            Err(_) => {
                problems.push(problem(name, "must be an RFC 3339 timestamp, e.g. 2025-01-31T12:00:00Z"));
                None
            }
        }
    }

    fn text(&self, name: &str, max: usize, problems: &mut Vec<FieldProblem>) -> Option<String> {
        let raw = self.get(name)?;
        if raw.trim().is_empty() || raw.chars().count() > max || raw.chars().any(char::is_control) {
            problems.push(problem(name, format!("must be 1..={max} characters without control characters")));
            return None;
        }
        Some(raw.to_owned())
    }
}

/// Checks that `q` uses only the search syntax both read models serve cheaply: words (AND by
/// default), `"phrases"`, `-word` and `+word`, `AND` / `OR` / `NOT`, parentheses, and a
/// trailing `*` for a prefix of at least [`MIN_PREFIX_CHARS`] characters (at most
/// [`MAX_QUERY_PREFIXES`]). Refused, because a single one can cost a scan of the whole term
/// dictionary or exists only in one backend's syntax: leading or inner wildcards (`*x`, `a*b`,
/// `?`), fuzzy and proximity (`~`), field names (`field:value`), ranges and sets (`[ ]`,
/// `{ }`), regular expressions (`/re/`), boosts (`^`) and phrase prefixes (`"a b"*`). Text with
/// those characters can be searched inside quotes.
pub fn check_search_syntax(q: &str) -> Result<(), String> {
    let (mut terms, mut prefixes, mut depth) = (0usize, 0usize, 0usize);
    let mut chars = q.chars().peekable();
    let mut word = String::new();
    fn end_word(word: &mut String, terms: &mut usize, prefixes: &mut usize) -> Result<(), String> {
        if word.is_empty() {
            return Ok(());
        }
        let body = word.trim_start_matches(['+', '-', '!']);
        *terms += 1;
        if let Some(stem) = body.strip_suffix('*') {
            *prefixes += 1;
            if stem.chars().count() < MIN_PREFIX_CHARS || stem.contains('*') {
                return Err(format!("a prefix search needs at least {MIN_PREFIX_CHARS} characters before a single trailing `*` (got {word:?})"));
            }
        } else if body.contains('*') {
            return Err(format!("`*` may only end a word, as a prefix search (got {word:?})"));
        }
        if body.starts_with('/') {
            return Err(format!("regular expressions are not supported; quote text that starts with `/` (got {word:?})"));
        }
        word.clear();
        Ok(())
    }
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                end_word(&mut word, &mut terms, &mut prefixes)?;
                let phrase: String = chars.by_ref().take_while(|&c| c != '"').collect();
                terms += phrase.split_whitespace().count().max(1);
                if matches!(chars.peek(), Some('*' | '~' | '^')) {
                    return Err("phrase prefix, proximity and boost operators after a phrase are not supported".into());
                }
            }
            '(' => {
                end_word(&mut word, &mut terms, &mut prefixes)?;
                depth += 1;
                if depth > MAX_QUERY_DEPTH {
                    return Err(format!("parentheses may nest at most {MAX_QUERY_DEPTH} deep"));
                }
            }
            ')' => {
                end_word(&mut word, &mut terms, &mut prefixes)?;
                depth = depth.saturating_sub(1);
            }
            c if c.is_whitespace() => end_word(&mut word, &mut terms, &mut prefixes)?,
            '~' => return Err("fuzzy and proximity searches (`~`) are not supported".into()),
            '?' => return Err("`?` wildcards are not supported; a prefix search ends a word in `*`".into()),
            ':' => return Err("field names (`field:value`) are not supported; quote text containing `:`".into()),
            '[' | ']' | '{' | '}' => return Err("ranges and sets are not supported; use `from` and `to` for time, or quote the text".into()),
            '^' => return Err("boosts (`^`) are not supported".into()),
            c => word.push(c),
        }
    }
    end_word(&mut word, &mut terms, &mut prefixes)?;
    if terms > MAX_QUERY_TERMS {
        return Err(format!("must have at most {MAX_QUERY_TERMS} words"));
    }
    if prefixes > MAX_QUERY_PREFIXES {
        return Err(format!("may have at most {MAX_QUERY_PREFIXES} prefix searches (`word*`)"));
    }
    Ok(())
}

fn problem(field: &str, message: impl Into<String>) -> FieldProblem {
    FieldProblem { field: field.to_owned(), message: message.into() }
}

/// `user.login` exactly, `user.*` (or `user*`) by prefix, `*` for any action.
fn parse_action(raw: &str) -> Result<Option<ActionFilter>, &'static str> {
    const RULE: &str = "must be an action of 1..=128 [a-z0-9_.:-], optionally ending in `*` for a prefix (e.g. user.*)";
    let (body, prefix) = match raw.strip_suffix('*') {
        Some(body) => (body, true),
        None => (raw, false),
    };
    if body.len() > 128 || !body.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | ':' | '-')) {
        return Err(RULE);
    }
    Ok(match (prefix, body.is_empty()) {
        (true, true) => None,
        (true, false) => Some(ActionFilter::Prefix(body.to_owned())),
        (false, true) => return Err(RULE),
        (false, false) => Some(ActionFilter::Exact(body.to_owned())),
    })
}

fn parse_outcome(raw: &str) -> Option<Outcome> {
    [Outcome::Success, Outcome::Failure, Outcome::Unknown].into_iter().find(|o| o.as_str() == raw)
}

fn parse_severity(raw: &str) -> Option<Severity> {
    [Severity::Debug, Severity::Info, Severity::Warning, Severity::Error, Severity::Critical].into_iter().find(|s| s.as_str() == raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(err: QueryError) -> Vec<String> {
        match err {
            QueryError::InvalidParameter(problems) => problems.into_iter().map(|p| p.field).collect(),
            other => panic!("expected invalid parameters, got {other:?}"),
        }
    }

    #[test]
    fn unknown_and_repeated_parameters_are_named() {
        let err = Params::parse(Some("actor_id=a&bogus=1&actor_id=b"), &[FILTER_PARAMS]).expect_err("two problems");
        assert_eq!(fields(err), ["bogus", "actor_id"]);
    }

    #[test]
    fn every_bad_filter_is_reported_at_once() {
        let params = Params::parse(Some("from=yesterday&to=2025-01-01T00:00:00Z&action=User.Login&outcome=ok&severity=loud&q="), &[FILTER_PARAMS])
            .expect("names are known");
        assert_eq!(fields(params.filter("t").expect_err("bad values")), ["from", "q", "action", "outcome", "severity"]);
        let reversed = Params::parse(Some("from=2025-02-01T00:00:00Z&to=2025-01-01T00:00:00Z"), &[FILTER_PARAMS]).expect("known");
        assert_eq!(fields(reversed.filter("t").expect_err("from after to")), ["from"]);
    }

    #[test]
    fn actions_match_exactly_or_by_prefix() {
        assert_eq!(parse_action("user.login"), Ok(Some(ActionFilter::Exact("user.login".into()))));
        assert_eq!(parse_action("user.*"), Ok(Some(ActionFilter::Prefix("user.".into()))));
        assert_eq!(parse_action("*"), Ok(None));
        assert!(parse_action("us*er").is_err() && parse_action("").is_err());
    }

    #[test]
    fn search_syntax_is_bounded() {
        for good in ["zebra", "login OR report", "\"seeded event\" -plain", "(user AND login) OR auth*", "use* doc*", "user.login", "\"auth:mfa [x]\""] {
            assert_eq!(check_search_syntax(good), Ok(()), "{good}");
        }
        let many = vec!["w"; MAX_QUERY_TERMS + 1].join(" ");
        let deep = format!("{}x{}", "(".repeat(MAX_QUERY_DEPTH + 1), ")".repeat(MAX_QUERY_DEPTH + 1));
        for bad in ["a*", "*", "*ebra", "ze*ra", "zeb**", "zebr?", "zebra~2", "\"a b\"~3", "\"a b\"*", "description:zebra", "[a TO z]", "{a TO z}",
            "/.*/", "zebra^5", "abc* def* ghi*", many.as_str(), deep.as_str()]
        {
            assert!(check_search_syntax(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn limits_and_the_canonical_query_ignore_paging() {
        let params = Params::parse(Some("limit=0&b=2&a=1&cursor=x"), &[&["a", "b", "limit", "cursor"]]).expect("known");
        assert!(params.limit(10, 100).is_err());
        assert_eq!(params.canonical_query(), "a=1&b=2");
    }
}
