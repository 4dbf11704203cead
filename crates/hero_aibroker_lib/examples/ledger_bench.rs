//! Ledger throughput: how many request rows per second the ledger commits to SQLite (WAL) or
//! PostgreSQL.
//!
//! `cargo run --release -p hero_aibroker_lib --example ledger_bench [-- --rows N] [--keep DB --days D] [--db URL]`
//!
//! Opens a temporary database, starts the ledger with its default configuration, records N
//! realistic rows (default 200 000) from a few producer tasks as fast as the queue accepts them
//! (a producer that finds the queue full sleeps a millisecond and retries, so nothing is dropped), waits for
//! the flush, prints one line and checks the row count in the database.
//!
//! `--keep DB` writes to (and keeps) that database instead, and `--days D` spreads the rows'
//! start times evenly over the last D days up to now: a seeded ledger for the console's
//! scale benchmark (`scripts/bench.sh`). `--db URL` writes to that database (a fresh, empty
//! `postgres://…` one: the row count is checked).

use std::time::{Duration, Instant};

use hero_aibroker_lib::accounting::ledger::{Ledger, LedgerConfig};
use hero_aibroker_lib::accounting::store::Store;
use hero_aibroker_sdk::admin::{AttemptLog, RequestLog, RequestStatus};

const PRODUCERS: usize = 4;

/// The command line: rows, and where and over how many days to seed.
struct Args {
    rows: usize,
    keep: Option<std::path::PathBuf>,
    days: Option<u32>,
    db: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        rows: 200_000,
        keep: None,
        days: None,
        db: None,
    };
    let mut it = std::env::args().skip(1);
    let usage = "usage: ledger_bench [--rows N] [--keep DB --days D] [--db URL]";
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or_else(|| usage.to_owned());
        match a.as_str() {
            "--rows" => {
                let v = value()?;
                args.rows = v.parse().map_err(|_| format!("not a row count: {v:?}"))?;
            }
            "--keep" => args.keep = Some(value()?.into()),
            "--db" => args.db = Some(value()?),
            "--days" => {
                let v = value()?;
                args.days = Some(v.parse().map_err(|_| format!("not a day count: {v:?}"))?);
            }
            n if n.parse::<usize>().is_ok() => args.rows = n.parse().unwrap_or(args.rows),
            _ => return Err(usage.into()),
        }
    }
    Ok(args)
}

/// A row shaped like real traffic: a handful of models, clients and keys, one or two attempts.
fn realistic_row(i: usize, start: i64, step_ms: f64) -> RequestLog {
    const MODELS: [(&str, &str, &str); 4] = [
        ("gpt-4o", "openai-1", "gpt-4o-2024-08-06"),
        ("claude-sonnet", "anthropic-1", "claude-sonnet-4-5"),
        ("llama-3.3-70b", "groq-1", "llama-3.3-70b-versatile"),
        ("auto", "openrouter-1", "deepseek/deepseek-chat"),
    ];
    let (model, provider, upstream) = MODELS[i % MODELS.len()];
    let started = start + (i as f64 * step_ms) as i64;
    let mut attempts = vec![AttemptLog {
        candidate: format!("{provider}/{model}"),
        outcome: "ok".into(),
        ..AttemptLog::default()
    }];
    if i.is_multiple_of(10) {
        attempts.insert(
            0,
            AttemptLog {
                candidate: format!("groq-2/{model}"),
                outcome: "rate_limited".into(),
                ..AttemptLog::default()
            },
        );
    }
    let prompt = 200 + (i % 1800) as u64;
    let completion = 50 + (i % 700) as u64;
    RequestLog {
        id: format!("req_{i:016x}"),
        response_id: Some(format!("chatcmpl-{i:024x}")),
        started_ms: started,
        ended_ms: started + 850,
        client: format!("uds:uid=1000,pid={}", 4000 + i % 16),
        key_id: (!i.is_multiple_of(3)).then(|| format!("key_{:016x}", i % 50)),
        endpoint: "/v1/chat/completions".into(),
        requested_model: model.into(),
        model: Some(model.into()),
        provider: Some(provider.into()),
        upstream_model: Some(upstream.into()),
        stream: i.is_multiple_of(2),
        attempts,
        prompt_tokens: prompt,
        completion_tokens: completion,
        cached_tokens: prompt / 4,
        reasoning_tokens: 0,
        cost_usd: prompt as f64 * 2.5e-6 + completion as f64 * 1e-5,
        upstream_cost_usd: (provider == "openrouter-1").then_some(0.0012),
        list_cost_usd: Some(prompt as f64 * 2.5e-6 + completion as f64 * 1e-5),
        audio_seconds: None,
        characters: None,
        latency_ms: 850.0,
        ttfb_ms: Some(180.0),
        status: if i.is_multiple_of(50) {
            RequestStatus::Error
        } else {
            RequestStatus::Ok
        },
        http_status: if i.is_multiple_of(50) { 502 } else { 200 },
        error: i.is_multiple_of(50).then(|| "upstream_5xx".into()),
        trace: None,
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Args {
        rows,
        keep,
        days,
        db,
    } = parse_args()?;
    let dir = tempfile::tempdir()?;
    let url = db.unwrap_or_else(|| {
        keep.unwrap_or_else(|| dir.path().join("bench.db"))
            .display()
            .to_string()
    });
    let store = Store::open(&url).await?;
    let kind = match store.kind() {
        hero_aibroker_lib::accounting::store::StoreKind::Sqlite => "SQLite WAL",
        hero_aibroker_lib::accounting::store::StoreKind::Postgres => "PostgreSQL",
    };
    // Start times: one per millisecond from a fixed instant, or spread over the last `days`.
    let (start, step_ms) = match days {
        Some(d) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_millis() as i64;
            let span = i64::from(d) * 86_400_000;
            (now - span, span as f64 / rows.max(1) as f64)
        }
        None => (1_760_000_000_000, 1.0),
    };
    let cfg = LedgerConfig::default();
    let batch = cfg.batch;
    let (ledger, writer) = Ledger::start(store.clone(), cfg);

    let began = Instant::now();
    let mut producers = Vec::new();
    for p in 0..PRODUCERS {
        let ledger = ledger.clone();
        producers.push(tokio::spawn(async move {
            for i in (p..rows).step_by(PRODUCERS) {
                let mut row = realistic_row(i, start, step_ms);
                // Back-pressure instead of dropping: the benchmark measures the writer. A short
                // sleep, not a busy yield, leaves the two cores to the writer and SQLite.
                while let Err(back) = ledger.try_record(row) {
                    row = back;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        }));
    }
    for p in producers {
        p.await?;
    }
    ledger.flush().await;
    let secs = began.elapsed().as_secs_f64();

    let health = ledger.health();
    writer.shutdown(Duration::from_secs(30)).await;
    let stored = store.count_logs().await?;
    store.close().await;
    println!(
        "ledger: {rows} rows in {secs:.2} s = {:.0} rows/s (batch {batch}, {kind})",
        rows as f64 / secs
    );
    if stored != rows as u64 || health.dropped != 0 || health.write_errors != 0 {
        return Err(format!(
            "expected {rows} rows, the database has {stored} (dropped {}, write errors {})",
            health.dropped, health.write_errors
        )
        .into());
    }
    Ok(())
}
