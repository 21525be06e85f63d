//! `GET /v1/stats`: exact counts over a bounded time range from the search index, grouped by
//! `group_by`, with a histogram of `interval` (chosen automatically when absent).

use auditlog_seams::GroupBy;
use axum::Json;
use axum::extract::{RawQuery, State};
use serde::Serialize;
use time::{Duration, OffsetDateTime};
use utoipa::ToSchema;

use crate::auth::Reader;
use crate::error::QueryError;
use crate::params::{FILTER_PARAMS, Params};
use crate::retention;
use crate::state::QueryState;

/// Range when `from` is absent: the last 30 days before `to`.
const DEFAULT_RANGE: Duration = Duration::days(30);
/// Histogram buckets aimed at when `interval` is absent.
const AUTO_BUCKETS: i64 = 200;
/// Intervals tried, shortest first, when `interval` is absent.
const AUTO_INTERVALS: [i64; 9] = [60, 300, 900, 3_600, 10_800, 21_600, 43_200, 86_400, 604_800];

/// Counts over a range.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatsAnswer {
    /// Matching events.
    pub total: u64,
    /// Counts per `group_by` key, largest first (empty without `group_by`).
    pub groups: Vec<GroupCount>,
    /// Counts per time bucket, oldest first; empty buckets are left out.
    pub histogram: Vec<Bucket>,
}

/// One group.
#[derive(Debug, Serialize, ToSchema)]
pub struct GroupCount {
    /// The action, actor id, outcome or severity.
    pub key: String,
    /// Events in the group.
    pub count: u64,
}

/// One histogram bucket.
#[derive(Debug, Serialize, ToSchema)]
pub struct Bucket {
    /// Start of the bucket (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub start: OffsetDateTime,
    /// Events in the bucket.
    pub count: u64,
}

/// `GET /v1/stats`.
#[utoipa::path(get, path = "/v1/stats", tag = "events",
    params(
        ("group_by" = Option<String>, Query, description = "action, actor_id, outcome or severity"),
        ("interval" = Option<String>, Query, description = "histogram bucket: 30s, 5m, 1h, 1d, 1w (or minute, hour, day, week)"),
        ("from" = Option<String>, Query, description = "RFC 3339; default `to` minus 30 days"), ("to" = Option<String>, Query, description = "RFC 3339; default now"),
        ("actor_id" = Option<String>, Query), ("action" = Option<String>, Query), ("target_type" = Option<String>, Query), ("target_id" = Option<String>, Query),
        ("outcome" = Option<String>, Query), ("severity" = Option<String>, Query), ("q" = Option<String>, Query),
    ),
    responses((status = 200, body = StatsAnswer), (status = 400, description = "a bad parameter or a range over the limit, named"), (status = 401), (status = 403),
        (status = 429, description = "the tenant is past its request rate (Retry-After)"), (status = 503)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn stats(State(state): State<QueryState>, reader: Reader, RawQuery(raw): RawQuery) -> Result<Json<StatsAnswer>, QueryError> {
    let _admitted = state.quotas().admit(&reader.tenant_id)?;
    let params = Params::parse(raw.as_deref(), &[FILTER_PARAMS, &["group_by", "interval"]])?;
    let mut filter = params.filter(&reader.tenant_id)?;
    let group_by = params.get("group_by").map(parse_group_by).transpose()?;
    let to = filter.to.unwrap_or_else(OffsetDateTime::now_utc);
    let from = filter.from.unwrap_or(to - DEFAULT_RANGE);
    let max_days = state.config().limits.max_stats_range_days;
    if to - from > Duration::days(i64::from(max_days)) {
        return Err(QueryError::param("from", format!("the range from `from` to `to` must not exceed {max_days} days")));
    }
    let span = (to - from).whole_seconds().max(1);
    let max_buckets = state.config().limits.max_histogram_buckets;
    let interval = match params.get("interval") {
        Some(raw) => {
            let secs = parse_interval(raw)?;
            if (span / secs) as u64 >= max_buckets {
                return Err(QueryError::param("interval", format!("makes more than {max_buckets} buckets over this range")));
            }
            secs
        }
        None => AUTO_INTERVALS.into_iter().find(|i| span / i <= AUTO_BUCKETS).unwrap_or(604_800),
    };
    filter.from = Some(from);
    filter.to = Some(to);
    retention::bound(&state, &mut filter);
    let query = state.backends().index.stats(&filter, group_by, Some(Duration::seconds(interval)));
    let stats = tokio::time::timeout(state.config().backend_timeout(), query)
        .await
        .map_err(|_| QueryError::Unavailable("stats timed out".into()))??;
    Ok(Json(StatsAnswer {
        total: stats.total,
        groups: stats.groups.into_iter().map(|(key, count)| GroupCount { key, count }).collect(),
        histogram: stats.histogram.into_iter().map(|(start, count)| Bucket { start, count }).collect(),
    }))
}

fn parse_group_by(raw: &str) -> Result<GroupBy, QueryError> {
    match raw {
        "action" => Ok(GroupBy::Action),
        "actor_id" => Ok(GroupBy::ActorId),
        "outcome" => Ok(GroupBy::Outcome),
        "severity" => Ok(GroupBy::Severity),
        _ => Err(QueryError::param("group_by", "must be one of action, actor_id, outcome, severity")),
    }
}

/// Seconds of `30s`, `5m`, `1h`, `1d`, `1w`, or `minute`, `hour`, `day`, `week`.
fn parse_interval(raw: &str) -> Result<i64, QueryError> {
    let invalid = || QueryError::param("interval", "must be a positive duration such as 30s, 5m, 1h, 1d, 1w (or minute, hour, day, week)");
    let named = match raw {
        "second" => Some(1),
        "minute" => Some(60),
        "hour" => Some(3_600),
        "day" => Some(86_400),
        "week" => Some(604_800),
        _ => None,
    };
    if let Some(secs) = named {
        return Ok(secs);
    }
    let split = raw.find(|c: char| !c.is_ascii_digit()).ok_or_else(invalid)?;
    let (count, unit) = raw.split_at(split);
    let count: i64 = count.parse().map_err(|_| invalid())?;
    let unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return Err(invalid()),
    };
    match count.checked_mul(unit) {
        Some(secs) if count > 0 && secs <= 366 * 86_400 => Ok(secs),
        _ => Err(invalid()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_parse_units_and_names_and_refuse_the_rest() {
        assert_eq!(parse_interval("30s").ok(), Some(30));
        assert_eq!(parse_interval("2h").ok(), Some(7_200));
        assert_eq!(parse_interval("day").ok(), Some(86_400));
        for bad in ["", "0m", "h", "5x", "-1h", "99999999999999999999d", "1.5h"] {
            assert!(parse_interval(bad).is_err(), "{bad}");
        }
    }
}
