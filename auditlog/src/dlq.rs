//! `auditlog dlq redrive`: sends dead letters back to the topic they came from, after the
//! cause (a mapping, a registry schema, a sink's configuration) was fixed.

use std::time::Duration;

use auditlog_processors::redrive::{Action, RedriveOptions, redrive};
use auditlog_seams::resolve;

/// Dead-letter tools.
#[derive(Debug, clap::Args)]
pub struct DlqArgs {
    #[command(subcommand)]
    command: DlqCommand,
}

#[derive(Debug, clap::Subcommand)]
enum DlqCommand {
    /// Re-send dead letters to their origin topic, once the cause is fixed.
    ///
    /// Each letter of `<topic>.dlq` present when the run starts is appended again to its
    /// `dlq.origin.topic` with its original key, value and headers (the `dlq.*` headers
    /// removed). Every sink's processor then reads it like a new record; their writes are
    /// idempotent by (tenant_id, id), so a sink that had written the event already keeps its
    /// single copy: a redrive never duplicates an event in a read model. Progress is
    /// committed in a consumer group of its own (one per --sink/--reason filter, or
    /// --group), so a second run sends only letters that arrived since. A letter that fails
    /// again is dead-lettered again, with the new error.
    Redrive(RedriveArgs),
}

#[derive(Debug, clap::Args)]
struct RedriveArgs {
    /// Print what would be sent; send nothing and commit nothing.
    #[arg(long)]
    dry_run: bool,
    /// Only letters dead-lettered by this sink's processor (`scylla`, `opensearch`).
    #[arg(long)]
    sink: Option<String>,
    /// Only letters of this reason (`decode`, `rejected`, `conflict`; a conflict letter sent
    /// back is dead-lettered again while the first copy of its id is stored).
    #[arg(long)]
    reason: Option<String>,
    /// Send at most this many letters; the rest stays for the next run.
    #[arg(long)]
    limit: Option<u64>,
    /// Consumer group keeping the redrive's position (default: `auditlog-dlq-redrive`, with
    /// `-sink-<sink>` and `-reason-<reason>` appended for the filters given).
    #[arg(long)]
    group: Option<String>,
    /// Stop once no letter arrived for this many seconds (letters redriven before are not read again).
    #[arg(long, default_value_t = 10)]
    idle_secs: u64,
    /// Event log URI.
    #[arg(long, env = "AUDITLOG_EVENT_LOG", default_value = "kafka://127.0.0.1:9092")]
    event_log: String,
    /// The shared topic; the dead-letter topic is `<topic>.dlq`.
    #[arg(long, env = "AUDITLOG_TOPIC", default_value = "audit.events.v1")]
    topic: String,
}

/// Runs a `dlq` subcommand.
pub async fn dlq(args: DlqArgs) -> anyhow::Result<bool> {
    match args.command {
        DlqCommand::Redrive(args) => redrive_command(args).await,
    }
}

async fn redrive_command(args: RedriveArgs) -> anyhow::Result<bool> {
    let log = resolve::event_log(&args.event_log)?;
    let group = args.group.clone().unwrap_or_else(|| {
        let mut group = "auditlog-dlq-redrive".to_owned();
        for (name, value) in [("sink", &args.sink), ("reason", &args.reason)] {
            if let Some(value) = value {
                group.push_str(&format!("-{name}-{value}"));
            }
        }
        group
    });
    let options = RedriveOptions {
        dlq_topic: auditlog_seams::topics::dead_letters(&args.topic),
        group,
        sink: args.sink,
        reason: args.reason,
        limit: args.limit,
        dry_run: args.dry_run,
        idle: Duration::from_secs(args.idle_secs),
    };
    let report = redrive(log.as_ref(), &options, |letter, action| {
        let verb = match action {
            Action::Sent => "sent",
            Action::WouldSend => "would send",
            Action::Filtered => return,
            Action::Unusable => "cannot redrive (no origin topic)",
        };
        let origin = letter.origin.as_ref().map_or_else(|| "?".to_owned(), |o| format!("{}/{}@{}", o.topic, o.partition, o.offset));
        let key = letter.record.as_ref().map_or("", |r| r.key.as_str());
        println!(
            "{verb}: {}/{}@{} -> {origin} key={key} sink={} reason={} error={}",
            letter.position.topic, letter.position.partition, letter.position.offset, letter.sink, letter.reason, letter.error
        );
    })
    .await?;
    log.flush(Duration::from_secs(30)).await?;
    let verb = if options.dry_run { "would send" } else { "sent" };
    eprintln!("{verb} {} of {} dead letters ({} filtered out, {} without origin)", report.sent, report.read, report.filtered, report.unusable);
    Ok(report.unusable == 0)
}
