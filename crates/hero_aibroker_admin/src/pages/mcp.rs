//! MCP: the aggregator's servers with their state and restarts, every tool with its schema and
//! a form built from that schema to call it, and the recent calls from the audit. All through
//! the broker's `mcp.*` methods.

use std::collections::HashMap;
use std::sync::Arc;

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, State};
use axum::response::Html;
use axum::{Extension, Form};
use hero_aibroker_sdk::mcp::McpCallQuery;
use hero_aibroker_sdk::rpc::HeroAiBrokerApiClient;
use serde_json::{Map, Value};

use super::{escape, fragment};
use crate::auth::Current;
use crate::console::Console;
use crate::view::{self, Chrome};

/// One server.
pub struct Server {
    pub name: String,
    pub transport: String,
    pub state: String,
    pub ready: bool,
    pub tools: String,
    pub restarts: u32,
    pub error: String,
}

/// One input of a tool's form.
pub struct Field {
    /// `s:`, `n:`, `i:`, `b:` or `j:` and the property name: how the value is read back.
    pub name: String,
    pub label: String,
    pub kind: &'static str,
    pub required: bool,
    pub help: String,
}

/// One tool.
pub struct Tool {
    pub name: String,
    pub server: String,
    pub description: String,
    pub schema: String,
    pub fields: Vec<Field>,
}

/// One audited call.
pub struct Call {
    pub ts_ms: i64,
    pub time: String,
    pub tool: String,
    pub caller: String,
    pub ok: bool,
    pub duration: String,
    pub error: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "mcp.html")]
pub struct Page {
    c: Chrome,
    servers: Vec<Server>,
    tools: Vec<Tool>,
    calls: Vec<Call>,
}

/// The form inputs of a JSON schema's top-level properties.
fn fields(schema: &Value) -> Vec<Field> {
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return Vec::new();
    };
    props
        .iter()
        .map(|(name, p)| {
            let (prefix, kind) = match p.get("type").and_then(Value::as_str) {
                Some("string") => ("s", "text"),
                Some("number") => ("n", "number"),
                Some("integer") => ("i", "number"),
                Some("boolean") => ("b", "checkbox"),
                _ => ("j", "json"),
            };
            Field {
                name: format!("{prefix}:{name}"),
                label: name.clone(),
                kind,
                required: required.contains(&name.as_str()),
                help: p
                    .get("description")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
            }
        })
        .collect()
}

/// The tool's arguments from its form's fields (blank optional fields are left out).
pub fn arguments(form: &HashMap<String, String>) -> Result<Value, String> {
    let mut out = Map::new();
    for (key, raw) in form {
        let Some((kind, name)) = key.split_once(':') else {
            continue;
        };
        let v = raw.trim();
        let value = match kind {
            "b" => Value::Bool(matches!(v, "on" | "true" | "1")),
            _ if v.is_empty() => continue,
            "s" => Value::String(raw.clone()),
            "n" => v
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number)
                .ok_or_else(|| format!("{name}: {v:?} is not a number"))?,
            "i" => v
                .parse::<i64>()
                .map(Value::from)
                .map_err(|_| format!("{name}: {v:?} is not a whole number"))?,
            _ => serde_json::from_str(v).map_err(|e| format!("{name}: not JSON ({e})"))?,
        };
        out.insert(name.to_owned(), value);
    }
    Ok(Value::Object(out))
}

pub async fn page(State(console): State<Arc<Console>>, Extension(cur): Extension<Current>) -> Page {
    let mut c = Chrome::new(&console, &cur, "mcp", "MCP");
    let rpc = &console.rpc;
    let servers = c
        .or_note(
            "MCP servers (is hero_aibroker_services running?)",
            rpc.mcp_servers().await,
        )
        .into_iter()
        .map(|s| Server {
            ready: s.state == "ready",
            tools: s.tools.map(view::int).unwrap_or_default(),
            error: s.last_error.or(s.error).unwrap_or_default(),
            name: s.name,
            transport: s.transport,
            state: s.state,
            restarts: s.restarts,
        })
        .collect();
    let tools = c
        .or_note("MCP tools", rpc.mcp_list_tools().await)
        .into_iter()
        .map(|t| Tool {
            fields: fields(&t.input_schema),
            schema: serde_json::to_string_pretty(&t.input_schema).unwrap_or_default(),
            description: t.description.unwrap_or_default(),
            name: t.name,
            server: t.server,
        })
        .collect();
    let calls = c
        .or_note(
            "MCP audit",
            rpc.mcp_calls(Some(McpCallQuery {
                limit: Some(20),
                ..McpCallQuery::default()
            }))
            .await,
        )
        .into_iter()
        .map(|k| Call {
            ts_ms: k.ts_ms,
            time: view::utc(k.ts_ms),
            tool: k.tool,
            caller: k.caller,
            ok: k.ok,
            duration: view::ms(k.duration_ms as f64),
            error: k.error.unwrap_or_default(),
        })
        .collect();
    Page {
        c,
        servers,
        tools,
        calls,
    }
}

/// Calls a tool with its form's values; the result in place.
pub async fn call(
    State(console): State<Arc<Console>>,
    Path(name): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Html<String> {
    let args = match arguments(&form) {
        Ok(a) => a,
        Err(e) => return fragment(false, e),
    };
    match console.rpc.mcp_call_tool(name, Some(args)).await {
        Ok(v) => {
            let failed = v.get("isError").and_then(Value::as_bool).unwrap_or(false);
            let text = serde_json::to_string_pretty(&v).unwrap_or_default();
            Html(format!(
                "<pre class=\"result {}\" data-tool-result>{}</pre>",
                if failed { "error" } else { "ok" },
                escape(&text)
            ))
        }
        Err(e) => fragment(false, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_schema_becomes_a_form_and_the_form_arguments() {
        let schema = serde_json::json!({
            "type": "object",
            "properties": {
                "text": {"type": "string", "description": "what to echo"},
                "times": {"type": "integer"},
                "loud": {"type": "boolean"},
                "meta": {"type": "object"}
            },
            "required": ["text"]
        });
        let f = fields(&schema);
        let names: Vec<&str> = f.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["s:text", "i:times", "b:loud", "j:meta"]);
        assert!(f[0].required && !f[1].required);
        let form = HashMap::from([
            ("s:text".to_owned(), "hi".to_owned()),
            ("i:times".to_owned(), "3".to_owned()),
            ("b:loud".to_owned(), "on".to_owned()),
            ("j:meta".to_owned(), String::new()),
        ]);
        assert_eq!(
            arguments(&form).expect("valid"),
            serde_json::json!({"text": "hi", "times": 3, "loud": true})
        );
        let bad = HashMap::from([("i:times".to_owned(), "x".to_owned())]);
        assert!(arguments(&bad).expect_err("bad").contains("whole number"));
    }
}
