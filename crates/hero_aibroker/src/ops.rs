//! Read-only operator commands over `rpc.sock`: health, info, models, providers, usage, logs,
//! explain. Each prints a table, or with `--json` the RPC result as it came.

use hero_aibroker_sdk::admin::{ExplainQuery, GroupBy, LogQuery, UsageQuery};
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
    let mut t = table([
        "model",
        "tier",
        "context",
        "$/M in",
        "$/M out",
        "servable backends",
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
                .map(|b| format!("{} ({}×)", b.provider, b.instances))
                .collect::<Vec<_>>()
                .join(", ")
        };
        t.add_row([
            m.id.clone(),
            opt(m.tier.as_deref()),
            opt(m.context_window),
            opt(cheapest.map(|b| b.input_cost)),
            opt(cheapest.map(|b| b.output_cost)),
            backends,
        ]);
    }
    Ok(t.to_string())
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
