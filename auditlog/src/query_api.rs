//! `auditlog query-api`: serves the query API (issue #5; being built).

/// Options of `auditlog query-api`.
#[derive(Debug, clap::Args)]
pub struct QueryApiArgs {}

/// Runs the query API until shutdown.
pub async fn query_api(_args: QueryApiArgs) -> anyhow::Result<bool> {
    anyhow::bail!("the query API is not built yet (issue #5)")
}
