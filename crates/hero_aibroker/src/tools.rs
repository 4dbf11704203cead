//! `hero_aibroker tools`: the MCP tools the broker reaches through its aggregator
//! (`hero_aibroker_services`): list them, call one, see the servers and the audit of calls.

use std::io::Read;

use hero_aibroker_sdk::mcp::{McpCallQuery, McpTool};
use hero_aibroker_sdk::rpc::HeroAiBrokerApiClient;
use serde_json::Value;

use crate::conn::Conn;
use crate::format::{json, opt, table, timestamp};

/// The tools table (also `/tools` in the chat).
pub async fn list(conn: &Conn, as_json: bool) -> anyhow::Result<String> {
    let rpc = conn.rpc();
    let tools = conn.call(|| rpc.mcp_list_tools()).await?;
    if as_json {
        return json(&tools);
    }
    if tools.is_empty() {
        return Ok("No tools: no MCP server is ready (see `hero_aibroker tools servers`).".into());
    }
    let mut t = table(["tool", "server", "arguments", "description"]);
    for tool in &tools {
        t.add_row([
            tool.name.clone(),
            tool.server.clone(),
            arguments(tool),
            first_line(tool.description.as_deref().unwrap_or_default(), 90),
        ]);
    }
    Ok(t.to_string())
}

/// `text*, count` from the input schema: required arguments marked with `*`.
fn arguments(tool: &McpTool) -> String {
    let required: Vec<&str> = tool.input_schema["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    tool.input_schema["properties"]
        .as_object()
        .map(|props| {
            props
                .keys()
                .map(|k| {
                    if required.contains(&k.as_str()) {
                        format!("{k}*")
                    } else {
                        k.clone()
                    }
                })
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

fn first_line(s: &str, max: usize) -> String {
    let line = s.lines().next().unwrap_or_default().trim();
    if line.chars().count() > max {
        format!("{}…", line.chars().take(max - 1).collect::<String>())
    } else {
        line.to_owned()
    }
}

/// The `--args` value: a JSON object, `-` for stdin, absent for `{}`.
fn parse_args(args: Option<&str>) -> anyhow::Result<Value> {
    let text = match args {
        None => return Ok(Value::Object(Default::default())),
        Some("-") => {
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s)?;
            s
        }
        Some(s) => s.to_owned(),
    };
    match serde_json::from_str::<Value>(&text) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => anyhow::bail!("--args must be a JSON object, e.g. --args '{{\"text\": \"hi\"}}'"),
        Err(e) => anyhow::bail!("--args is not valid JSON: {e}"),
    }
}

async fn call_result(conn: &Conn, name: &str, args: Option<&str>) -> anyhow::Result<Value> {
    let arguments = parse_args(args)?;
    let rpc = conn.rpc();
    conn.call(|| rpc.mcp_call_tool(name.to_owned(), Some(arguments.clone())))
        .await
}

/// Calls a tool and prints its result: the text of each content block (`--json`: the whole
/// CallToolResult). A result with `isError: true` exits 1 after printing it.
pub async fn call(
    conn: &Conn,
    name: &str,
    args: Option<&str>,
    as_json: bool,
) -> anyhow::Result<()> {
    let result = call_result(conn, name, args).await?;
    if as_json {
        println!("{}", json(&result)?);
    } else {
        println!("{}", render_result(&result));
    }
    if result["isError"] == true {
        anyhow::bail!("the tool {name} reported an error");
    }
    Ok(())
}

/// `/tools NAME JSON` in the chat: the result as text, a tool error as an error.
pub async fn call_quiet(conn: &Conn, name: &str, args: Option<&str>) -> anyhow::Result<String> {
    let result = call_result(conn, name, args).await?;
    let text = render_result(&result);
    if result["isError"] == true {
        anyhow::bail!("the tool {name} reported an error: {text}");
    }
    Ok(text)
}

/// A CallToolResult as text: each content block on its own; structured content when there is
/// no text.
pub fn render_result(result: &Value) -> String {
    let blocks: Vec<String> = result["content"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|b| match b["type"].as_str() {
            Some("text") => b["text"].as_str().unwrap_or_default().to_owned(),
            Some(kind @ ("image" | "audio")) => format!(
                "[{kind}: {}, {} bytes of base64]",
                b["mimeType"].as_str().unwrap_or("unknown type"),
                b["data"].as_str().map_or(0, str::len)
            ),
            Some("resource_link") => format!("[resource: {}]", b["uri"].as_str().unwrap_or("?")),
            Some("resource") => match b["resource"]["text"].as_str() {
                Some(text) => text.to_owned(),
                None => format!(
                    "[resource: {}]",
                    b["resource"]["uri"].as_str().unwrap_or("?")
                ),
            },
            _ => b.to_string(),
        })
        .collect();
    if blocks.is_empty()
        && let Some(s) = result.get("structuredContent").filter(|s| !s.is_null())
    {
        return serde_json::to_string_pretty(s).unwrap_or_default();
    }
    blocks.join("\n")
}

pub async fn servers(conn: &Conn, as_json: bool) -> anyhow::Result<String> {
    let rpc = conn.rpc();
    let servers = conn.call(|| rpc.mcp_servers()).await?;
    if as_json {
        return json(&servers);
    }
    let mut t = table([
        "server",
        "transport",
        "state",
        "tools",
        "restarts",
        "pid",
        "detail",
    ]);
    for s in &servers {
        let detail = match (&s.error, &s.last_error, s.attempt, s.retry_in_ms) {
            (Some(e), ..) => e.clone(),
            (None, Some(e), Some(a), Some(ms)) => {
                format!("attempt {a}, retry in {:.1} s: {e}", ms as f64 / 1000.0)
            }
            (None, Some(e), ..) => e.clone(),
            _ => String::new(),
        };
        t.add_row([
            s.name.clone(),
            s.transport.clone(),
            s.state.clone(),
            opt(s.tools),
            s.restarts.to_string(),
            opt(s.pid),
            detail,
        ]);
    }
    Ok(t.to_string())
}

pub async fn calls(
    conn: &Conn,
    limit: u32,
    server: Option<String>,
    tool: Option<String>,
    as_json: bool,
) -> anyhow::Result<String> {
    let rpc = conn.rpc();
    let query = McpCallQuery {
        limit: Some(limit),
        server,
        tool,
        ..Default::default()
    };
    let calls = conn.call(|| rpc.mcp_calls(Some(query.clone()))).await?;
    if as_json {
        return json(&calls);
    }
    let mut t = table([
        "time (UTC)",
        "caller",
        "tool",
        "server",
        "via",
        "ms",
        "result",
    ]);
    for c in &calls {
        t.add_row([
            timestamp(c.ts_ms),
            c.caller.clone(),
            c.tool.clone(),
            opt(c.server.as_deref()),
            c.via.clone(),
            c.duration_ms.to_string(),
            match (&c.error, c.ok) {
                (_, true) => "ok".to_owned(),
                (Some(e), false) => format!("error: {}", first_line(e, 80)),
                (None, false) => "error".to_owned(),
            },
        ]);
    }
    Ok(t.to_string())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn arguments_mark_required_ones() {
        let tool: McpTool = serde_json::from_value(json!({
            "name": "echo", "server": "ping",
            "inputSchema": {"type": "object", "properties": {"text": {}, "times": {}},
                            "required": ["text"]}
        }))
        .expect("tool");
        assert_eq!(arguments(&tool), "text*, times");
    }

    #[test]
    fn results_render_by_block() {
        let r = json!({"content": [
            {"type": "text", "text": "hello"},
            {"type": "image", "mimeType": "image/png", "data": "AAAA"},
            {"type": "resource_link", "uri": "file:///x"},
        ], "isError": false});
        assert_eq!(
            render_result(&r),
            "hello\n[image: image/png, 4 bytes of base64]\n[resource: file:///x]"
        );
        let structured = json!({"content": [], "structuredContent": {"a": 1}});
        assert_eq!(render_result(&structured), "{\n  \"a\": 1\n}");
    }

    #[test]
    fn args_must_be_an_object() {
        assert_eq!(parse_args(None).expect("none"), json!({}));
        assert_eq!(
            parse_args(Some(r#"{"a":1}"#)).expect("obj"),
            json!({"a": 1})
        );
        assert!(parse_args(Some("[1]")).is_err());
        assert!(parse_args(Some("{")).is_err());
    }
}
