//! Read-only operator commands over `rpc.sock`: health, info, models, providers, usage, logs,
//! explain. Each prints a table, or with `--json` the RPC result as it came.

use std::collections::HashMap;
use std::time::Duration;

use hero_aibroker_sdk::admin::{
    ExplainQuery, GroupBy, LogQuery, ProviderInfo, RequestLog, UsageQuery,
};
use hero_aibroker_sdk::rpc::HeroAiBrokerApiClient;

use crate::cli::{By, ExplainArgs, LogsArgs, UsageArgs};
use crate::conn::Conn;
use crate::format::{json, now_ms, opt, table, timestamp, uptime, usd};

pub async fn health(conn: &Conn, as_json: bool) -> anyhow::Result<String> {
    let rpc = conn.rpc();
    let h = conn.call(|| rpc.health()).await?;
    if as_json {
        return json(&h);
    }
    let l = &h.ledger;
    let mut t = table(["check", "value"]);
    t.add_row(["status", h.status.as_str()]);
    t.add_row(["version", h.version.as_str()]);
    t.add_row(["uptime", uptime(h.uptime_seconds).as_str()]);
    t.add_row([
        "ledger".to_owned(),
        format!(
            "{} (written {}, queued {}, dropped {}, write errors {})",
            if l.healthy { "healthy" } else { "failing" },
            l.written,
            l.queued,
            l.dropped,
            l.write_errors
        ),
    ]);
    if let Some(c) = &h.catalog {
        let state = match &c.last_error {
            Some(e) => format!("{} models, last refresh failed: {e}", c.models),
            None => format!("{} models", c.models),
        };
        t.add_row(["openrouter catalog".to_owned(), state]);
    }
    Ok(t.to_string())
}

pub async fn info(conn: &Conn, as_json: bool) -> anyhow::Result<String> {
    let rpc = conn.rpc();
    let i = conn.call(|| rpc.info()).await?;
    if as_json {
        return json(&i);
    }
    let mut t = table(["field", "value"]);
    let rows = [
        ("name", i.name.clone()),
        ("version", i.version.clone()),
        ("uptime", uptime(i.uptime_seconds)),
        ("rest socket", i.sockets.rest.clone()),
        ("rpc socket", i.sockets.rpc.clone()),
        ("database", i.database.clone()),
        (
            "models",
            format!("{} ({} servable)", i.models, i.servable_models),
        ),
        (
            "providers",
            format!("{} ({} instances)", i.providers, i.instances),
        ),
        ("api keys", i.keys.to_string()),
        ("requests", i.requests.to_string()),
        (
            "tcp",
            i.sockets.tcp.clone().unwrap_or_else(|| "none".to_owned()),
        ),
        ("mother", if i.is_mother { "yes" } else { "no" }.to_owned()),
        ("mothers", i.mother_count.to_string()),
    ];
    for (k, v) in rows {
        t.add_row([k.to_owned(), v]);
    }
    Ok(t.to_string())
}

pub async fn models(conn: &Conn, as_json: bool) -> anyhow::Result<String> {
    let rpc = conn.rpc();
    let models = conn.call(|| rpc.models_list()).await?;
    if as_json {
        return json(&models);
    }
    let providers = conn.call(|| rpc.providers_list()).await?;
    let mut t = table([
        "model",
        "tier",
        "context",
        "$/M in",
        "$/M out",
        "servable backends",
        "health",
    ]);
    for m in &models {
        // The cheapest backend that has keys sets the price shown; every keyed backend is
        // listed with its instance count.
        let keyed: Vec<_> = m.backends.iter().filter(|b| b.instances > 0).collect();
        let cheapest = keyed
            .iter()
            .copied()
            .chain(m.backends.iter())
            .min_by(|a, b| a.input_cost.total_cmp(&b.input_cost));
        let backends = if keyed.is_empty() {
            "none (no keys)".to_owned()
        } else {
            keyed
                .iter()
                .map(|b| {
                    // The demo provider (`scripts/start.sh --demo`) answers with scripted text.
                    let demo = if b.provider == "demo" {
                        ", scripted"
                    } else {
                        ""
                    };
                    format!("{} ({}×{demo})", b.provider, b.instances)
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let health = keyed
            .iter()
            .filter_map(|b| backend_health(&providers, &m.id, &b.provider, &b.model_id))
            .collect::<Vec<_>>();
        t.add_row([
            m.id.clone(),
            opt(m.tier.as_deref()),
            opt(m.context_window),
            opt(cheapest.map(|b| b.input_cost)),
            opt(cheapest.map(|b| b.output_cost)),
            backends,
            match (keyed.is_empty(), health.is_empty()) {
                (true, _) => "-".to_owned(),
                (false, true) => "ok".to_owned(),
                (false, false) => health.join("; "),
            },
        ]);
    }
    Ok(t.to_string())
}

/// What is wrong with one backend (keys not ready, circuit not closed), or None when it is
/// fully ready.
fn backend_health(
    providers: &[ProviderInfo],
    model: &str,
    provider: &str,
    upstream: &str,
) -> Option<String> {
    let p = providers.iter().find(|p| p.name == provider)?;
    let mut problems = Vec::new();
    let ready = p.instances.iter().filter(|i| i.state == "healthy").count();
    if ready < p.instances.len() {
        let mut states: Vec<&str> = p
            .instances
            .iter()
            .filter(|i| i.state != "healthy")
            .map(|i| i.state.as_str())
            .collect();
        states.dedup();
        problems.push(format!(
            "{ready}/{} keys ready ({})",
            p.instances.len(),
            states.join(", ")
        ));
    }
    if let Some(c) = p
        .circuits
        .iter()
        .find(|c| c.model == model && c.upstream_model == upstream && c.state != "closed")
    {
        problems.push(format!("circuit {}", c.state));
    }
    (!problems.is_empty()).then(|| format!("{provider}: {}", problems.join(", ")))
}

pub async fn providers(conn: &Conn, as_json: bool) -> anyhow::Result<String> {
    let rpc = conn.rpc();
    let providers = conn.call(|| rpc.providers_list()).await?;
    if as_json {
        return json(&providers);
    }
    let mut inst = table([
        "provider", "instance", "key", "state", "reason", "cooldown", "priority",
    ]);
    let mut circuits = table([
        "provider", "model", "upstream", "circuit", "failures", "probe in",
    ]);
    let mut any_circuit = false;
    for p in &providers {
        let priority = opt(p.priority_override);
        if p.instances.is_empty() {
            inst.add_row([
                p.name.clone(),
                "-".into(),
                "-".into(),
                "no keys".into(),
                format!("set {}", p.key_source),
                "-".into(),
                priority.clone(),
            ]);
        }
        for i in &p.instances {
            inst.add_row([
                p.name.clone(),
                i.id.clone(),
                opt(i.key_hint.as_deref()),
                i.state.clone(),
                opt(i.reason.as_deref()),
                opt(i.cooldown_seconds.map(|s| format!("{s:.0}s"))),
                priority.clone(),
            ]);
        }
        for c in p.circuits.iter().filter(|c| c.state != "closed") {
            any_circuit = true;
            circuits.add_row([
                p.name.clone(),
                c.model.clone(),
                c.upstream_model.clone(),
                c.state.clone(),
                c.failures.to_string(),
                opt(c.open_seconds.map(|s| format!("{s:.0}s"))),
            ]);
        }
    }
    let mut out = inst.to_string();
    if any_circuit {
        out.push_str("\n\nCircuits not closed:\n");
        out.push_str(&circuits.to_string());
    } else {
        out.push_str("\n\nAll circuits closed.");
    }
    Ok(out)
}

pub async fn usage(conn: &Conn, args: &UsageArgs, as_json: bool) -> anyhow::Result<String> {
    let query = UsageQuery {
        group_by: match args.by {
            By::Model => GroupBy::Model,
            By::Provider => GroupBy::Provider,
            By::Key => GroupBy::Key,
            By::Client => GroupBy::Client,
        },
        from_ms: args
            .since
            .map(|d| now_ms() - i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2)),
        to_ms: None,
        key_id: None,
    };
    let rpc = conn.rpc();
    let groups = conn.call(|| rpc.usage_summary(query.clone())).await?;
    if as_json {
        return json(&groups);
    }
    let by = format!("{:?}", args.by).to_lowercase();
    let mut t = table([
        by.as_str(),
        "requests",
        "errors",
        "tokens in",
        "tokens out",
        "cost",
        "avg latency",
        "last",
    ]);
    for g in &groups {
        t.add_row([
            if g.group.is_empty() {
                "-".into()
            } else {
                g.group.clone()
            },
            g.requests.to_string(),
            g.errors.to_string(),
            g.prompt_tokens.to_string(),
            g.completion_tokens.to_string(),
            usd(g.cost_usd),
            format!("{:.0} ms", g.avg_latency_ms),
            timestamp(g.last_ms),
        ]);
    }
    if groups.is_empty() {
        return Ok("No requests in this range.".to_owned());
    }
    Ok(t.to_string())
}

pub async fn logs(conn: &Conn, args: &LogsArgs, as_json: bool) -> anyhow::Result<String> {
    let query = LogQuery {
        limit: Some(args.limit),
        ..LogQuery::default()
    };
    let rpc = conn.rpc();
    let page = conn.call(|| rpc.usage_logs(query.clone())).await?;
    if as_json {
        return json(&page);
    }
    if page.rows.is_empty() {
        return Ok("No requests yet.".to_owned());
    }
    let mut t = table([
        "time (UTC)",
        "endpoint",
        "model",
        "provider",
        "status",
        "tokens in/out",
        "cost",
        "latency",
        "error",
    ]);
    for r in &page.rows {
        t.add_row([
            timestamp(r.started_ms),
            format!("{}{}", r.endpoint, if r.stream { " (stream)" } else { "" }),
            r.model.clone().unwrap_or_else(|| r.requested_model.clone()),
            opt(r.provider.as_deref()),
            format!("{} {}", r.status, r.http_status),
            format!("{}/{}", r.prompt_tokens, r.completion_tokens),
            usd(r.cost_usd),
            format!("{:.0} ms", r.latency_ms),
            opt(r.error.as_deref()),
        ]);
    }
    Ok(t.to_string())
}

/// How far back each poll of `logs -f` looks: rows are recorded when a request ends, so a
/// long stream's row arrives after newer ones.
const FOLLOW_WINDOW_MS: i64 = 10 * 60 * 1000;

/// `logs -f`: the last rows oldest first, then new ones as the ledger records them, until
/// Ctrl-C.
pub async fn follow(conn: &Conn, args: &LogsArgs, as_json: bool) -> anyhow::Result<()> {
    tokio::select! {
        r = follow_rows(conn, args.limit.min(1000), as_json) => r,
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}

async fn follow_rows(conn: &Conn, limit: u32, as_json: bool) -> anyhow::Result<()> {
    let rpc = conn.rpc();
    let mut seen: HashMap<String, i64> = HashMap::new();
    let mut query = LogQuery {
        limit: Some(limit),
        ..LogQuery::default()
    };
    loop {
        let page = conn.call(|| rpc.usage_logs(query.clone())).await?;
        for r in page.rows.iter().rev() {
            if seen.insert(r.id.clone(), r.started_ms).is_some() {
                continue;
            }
            if as_json {
                println!("{}", serde_json::to_string(r)?);
            } else {
                println!("{}", log_line(r));
            }
        }
        let newest = seen.values().copied().max().unwrap_or_else(now_ms);
        let from = newest - FOLLOW_WINDOW_MS;
        seen.retain(|_, started| *started >= from);
        query = LogQuery {
            limit: Some(1000),
            from_ms: Some(from),
            ..LogQuery::default()
        };
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// One request as a line: time, endpoint, model, provider, status, tokens, cost, latency.
fn log_line(r: &RequestLog) -> String {
    let mut line = format!(
        "{}  {}{}  {}  {}  {} {}  {}/{} tok  {}  {:.0} ms",
        timestamp(r.started_ms),
        r.endpoint,
        if r.stream { " (stream)" } else { "" },
        r.model.as_deref().unwrap_or(&r.requested_model),
        opt(r.provider.as_deref()),
        r.status,
        r.http_status,
        r.prompt_tokens,
        r.completion_tokens,
        usd(r.cost_usd),
        r.latency_ms
    );
    if let Some(e) = &r.error {
        line.push_str("  ");
        line.push_str(e);
    }
    line
}

pub async fn explain(conn: &Conn, args: &ExplainArgs, as_json: bool) -> anyhow::Result<String> {
    let query = ExplainQuery {
        model: args.model.clone(),
        endpoint: Some(args.endpoint.clone()),
        request: None,
        session: None,
    };
    let rpc = conn.rpc();
    let trace = conn.call(|| rpc.routing_explain(query.clone())).await?;
    if as_json {
        return json(&trace);
    }
    let mut out = format!(
        "Routing {} ({}) with strategy {}",
        trace.requested, args.endpoint, trace.strategy
    );
    if let Some(a) = &trace.affinity {
        out.push_str(&format!(", sticky to {a}"));
    }
    out.push('\n');
    let mut t = table([
        "rank", "model", "provider", "instance", "upstream", "skipped", "note",
    ]);
    for c in &trace.candidates {
        t.add_row([
            opt(c.rank),
            c.model.clone(),
            c.provider.clone(),
            opt(c.instance.as_deref()),
            c.upstream_model.clone(),
            opt(c.skipped.as_deref()),
            opt(c.note.as_deref()),
        ]);
    }
    out.push_str(&t.to_string());
    if let Some(e) = &trace.error {
        out.push_str(&format!("\nNo candidate left: {e}"));
    }
    Ok(out)
}
