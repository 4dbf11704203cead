//! Drift test: `openrpc.json` must describe `HeroAiBrokerApi` exactly. Method names are compared
//! with the module the trait generates; params are sent by name and by position to a stub of
//! the trait (so a misspelt or reordered param fails); results of the stub, with every optional
//! field filled and with none, are checked against the document's schemas in both directions
//! (no undeclared property, no declared property the Rust type lacks); examples must decode
//! into the Rust types. `scripts/validate_openrpc.sh` checks the document against the OpenRPC
//! meta-schema independently.

mod common;

use common::{doc, methods, name, params};

use std::collections::BTreeSet;

use hero_aibroker_sdk::admin::*;
use hero_aibroker_sdk::mcp::{McpCall, McpServer, McpTool};
use hero_aibroker_sdk::rpc::{MUTATING_METHODS, codes};
use hero_aibroker_sdk::wire::ModelObject;
use jsonrpsee::RpcModule;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

const INVALID_PARAMS: i64 = -32602;

/// The first example's params by name; a method with params must have an example.
fn example_params(method: &Value) -> Map<String, Value> {
    let mut out = Map::new();
    if params(method).is_empty() {
        return out;
    }
    let example = method["examples"][0]["params"]
        .as_array()
        .unwrap_or_else(|| {
            panic!(
                "method {} takes params but has no example: add one to openrpc.json",
                name(method)
            )
        });
    for p in example {
        out.insert(name(p).to_owned(), p["value"].clone());
    }
    out
}

/// Calls `method` on the module as a client would; `Err((code, message))` on a JSON-RPC error.
async fn call(
    module: &RpcModule<()>,
    method: &str,
    params: Option<Value>,
) -> Result<Value, (i64, String)> {
    let mut req = json!({"jsonrpc": "2.0", "id": 1, "method": method});
    if let Some(params) = params {
        req["params"] = params;
    }
    let (resp, _) = module
        .raw_json_request(&req.to_string(), 1)
        .await
        .expect("the request is well-formed");
    let resp: Value = serde_json::from_str(resp.get()).expect("the answer is JSON");
    match resp.get("error") {
        Some(e) => Err((
            e["code"].as_i64().unwrap_or_default(),
            e["message"].as_str().unwrap_or_default().to_owned(),
        )),
        None => Ok(resp["result"].clone()),
    }
}

/// A structural JSON Schema checker for the subset `openrpc.json` uses: `$ref` into
/// `components/schemas`, `type` (one or a list), `enum`, `minimum`/`maximum`, `properties`,
/// `required`, `additionalProperties: false`, `items`, `oneOf` (exactly one alternative matches;
/// used for a nullable `$ref`). With `complete`, every declared property must also be present
/// in the value (the value was built with every optional field filled).
struct Checker<'a> {
    doc: &'a Value,
    complete: bool,
    errors: Vec<String>,
}

impl<'a> Checker<'a> {
    fn new(doc: &'a Value, complete: bool) -> Self {
        Checker {
            doc,
            complete,
            errors: Vec::new(),
        }
    }

    fn resolve<'s>(&mut self, schema: &'s Value, at: &str) -> Option<&'s Value>
    where
        'a: 's,
    {
        let Some(reference) = schema.get("$ref").and_then(Value::as_str) else {
            return Some(schema);
        };
        let target = reference
            .strip_prefix('#')
            .and_then(|pointer| self.doc.pointer(pointer));
        if target.is_none() {
            self.errors
                .push(format!("{at}: $ref {reference} does not resolve"));
        }
        target
    }

    fn check(&mut self, schema: &Value, value: &Value, at: &str) {
        let Some(schema) = self.resolve(schema, at) else {
            return;
        };
        if let Some(alternatives) = schema.get("oneOf").and_then(Value::as_array) {
            self.check_one_of(alternatives, value, at);
        }
        if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
            && !allowed.contains(value)
        {
            self.errors
                .push(format!("{at}: {value} is not one of {allowed:?}"));
        }
        let types: Vec<&str> = match schema.get("type") {
            Some(Value::String(t)) => vec![t.as_str()],
            Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !types.is_empty() && !types.iter().any(|t| type_matches(t, value)) {
            self.errors
                .push(format!("{at}: {value} is not of type {types:?}"));
            return;
        }
        if let Some(n) = value.as_f64() {
            if schema["minimum"].as_f64().is_some_and(|min| n < min) {
                self.errors.push(format!("{at}: {n} is below the minimum"));
            }
            if schema["maximum"].as_f64().is_some_and(|max| n > max) {
                self.errors.push(format!("{at}: {n} is above the maximum"));
            }
        }
        match value {
            Value::Object(object) => self.check_object(schema, object, at),
            Value::Array(items) => {
                if let Some(item_schema) = schema.get("items") {
                    for (i, item) in items.iter().enumerate() {
                        self.check(item_schema, item, &format!("{at}[{i}]"));
                    }
                }
            }
            _ => {}
        }
    }

    fn check_one_of(&mut self, alternatives: &[Value], value: &Value, at: &str) {
        let mut failures = Vec::new();
        let mut matched = 0;
        for alternative in alternatives {
            let mut sub = Checker::new(self.doc, self.complete);
            sub.check(alternative, value, at);
            if sub.errors.is_empty() {
                matched += 1;
            } else {
                failures.push(sub.errors.join("; "));
            }
        }
        match matched {
            1 => {}
            0 => self.errors.push(format!(
                "{at}: {value} matches no alternative of oneOf: {}",
                failures.join(" | ")
            )),
            n => self
                .errors
                .push(format!("{at}: {value} matches {n} alternatives of oneOf")),
        }
    }

    fn check_object(&mut self, schema: &Value, object: &Map<String, Value>, at: &str) {
        let empty = Map::new();
        let declared = schema["properties"].as_object().unwrap_or(&empty);
        for required in schema["required"].as_array().into_iter().flatten() {
            let required = required.as_str().unwrap_or_default();
            if !object.contains_key(required) {
                self.errors
                    .push(format!("{at}: required property `{required}` is missing"));
            }
        }
        for (key, value) in object {
            match declared.get(key) {
                Some(property) => self.check(property, value, &format!("{at}.{key}")),
                None if schema["additionalProperties"] == Value::Bool(false) => {
                    self.errors.push(format!(
                        "{at}: property `{key}` is not declared in openrpc.json"
                    ));
                }
                None => {}
            }
        }
        if self.complete {
            for key in declared.keys() {
                if !object.contains_key(key) {
                    self.errors.push(format!(
                        "{at}: openrpc.json declares `{key}`, which the Rust type does not produce"
                    ));
                }
            }
        }
    }
}

fn type_matches(t: &str, value: &Value) -> bool {
    match t {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "string" => value.is_string(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        "number" => value.is_number(),
        "integer" => value.is_i64() || value.is_u64(),
        _ => false,
    }
}

fn assert_no_errors(what: &str, errors: &[String]) {
    assert!(
        errors.is_empty(),
        "openrpc.json drifted from the Rust types ({what}):\n  {}",
        errors.join("\n  ")
    );
}

#[test]
fn document_version_is_the_crate_version() {
    let doc = doc();
    assert_eq!(doc["openrpc"], "1.3.2");
    assert_eq!(
        doc["info"]["version"].as_str(),
        Some(env!("CARGO_PKG_VERSION")),
        "set info.version in openrpc.json to the crate version"
    );
}

#[test]
fn method_names_match_the_trait() {
    let doc = doc();
    let documented: BTreeSet<&str> = methods(&doc).iter().map(name).collect();
    assert_eq!(
        documented.len(),
        methods(&doc).len(),
        "openrpc.json names a method twice"
    );
    let module = common::module(true);
    let implemented: BTreeSet<&str> = module.method_names().collect();
    let missing: Vec<_> = implemented.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&implemented).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "openrpc.json and HeroAiBrokerApi disagree: not documented {missing:?}; documented but not in the trait {extra:?}"
    );
    for m in MUTATING_METHODS {
        assert!(
            documented.contains(m),
            "MUTATING_METHODS names {m}, which is not a method"
        );
    }
}

#[tokio::test]
async fn params_by_name_and_by_position_match_the_trait() {
    let doc = doc();
    let module = common::module(true);
    for method in methods(&doc) {
        let method_name = name(method);
        let by_name = example_params(method);
        let declared: Vec<&str> = params(method).iter().map(name).collect();
        for key in by_name.keys() {
            assert!(
                declared.contains(&key.as_str()),
                "{method_name}: the example names param `{key}`, which the method does not declare"
            );
        }

        let named = call(&module, method_name, Some(Value::Object(by_name.clone())))
            .await
            .unwrap_or_else(|e| {
                panic!("{method_name}: by-name params {by_name:?} were refused: {e:?}")
            });

        // Positional, in the document's order: a swapped or missing param fails to decode.
        let positional: Vec<Value> = declared
            .iter()
            .map(|p| by_name.get(*p).cloned().unwrap_or(Value::Null))
            .collect();
        let by_position = call(&module, method_name, Some(Value::Array(positional)))
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "{method_name}: params by position in the documented order were refused: {e:?}"
                )
            });
        assert_eq!(
            named, by_position,
            "{method_name}: by name and by position differ"
        );

        for p in params(method) {
            let param = name(p);
            let mut without = by_name.clone();
            without.remove(param);
            let answer = call(&module, method_name, Some(Value::Object(without))).await;
            if p["required"] == Value::Bool(true) {
                match answer {
                    Err((INVALID_PARAMS, _)) => {}
                    other => panic!(
                        "{method_name}: param `{param}` is documented as required, yet a call without it gave {other:?}: is its name the trait's?"
                    ),
                }
            } else {
                let answer = answer.unwrap_or_else(|e| {
                    panic!(
                        "{method_name}: param `{param}` is documented as optional, yet a call without it failed: {e:?}"
                    )
                });
                // The stub echoes its params, so an optional param that was read changes the
                // result; one the trait knows by another name would be silently ignored.
                assert_ne!(
                    answer, named,
                    "{method_name}: optional param `{param}` had no effect: is its name the trait's?"
                );
            }
        }
    }
}

#[tokio::test]
async fn results_match_their_schemas() {
    let doc = doc();
    for full in [true, false] {
        let module = common::module(full);
        for method in methods(&doc) {
            let method_name = name(method);
            let result = call(
                &module,
                method_name,
                Some(Value::Object(example_params(method))),
            )
            .await
            .unwrap_or_else(|e| panic!("{method_name}: the stub refused the example: {e:?}"));
            let mut checker = Checker::new(&doc, full);
            checker.check(&method["result"]["schema"], &result, method_name);
            let mode = if full {
                "every optional field filled"
            } else {
                "optional fields empty"
            };
            assert_no_errors(&format!("result of {method_name}, {mode}"), &checker.errors);
        }
    }
}

#[test]
fn param_types_match_their_schemas() {
    let doc = doc();
    let schema = |n: &str| doc["components"]["schemas"][n].clone();
    let full: Vec<(&str, Value)> = vec![
        (
            "KeyCreate",
            json!(KeyCreate {
                name: "ci".to_owned(),
                allowed_models: Some(vec!["m".to_owned()]),
                rpm: Some(1),
                tpm: Some(2),
                max_concurrent: Some(4),
                budget_usd: Some(3.5),
            }),
        ),
        (
            "KeyUpdate",
            json!(KeyUpdate {
                name: Some("ci".to_owned()),
                allowed_models: Some(vec!["m".to_owned()]),
                rpm: Some(1),
                tpm: Some(2),
                max_concurrent: Some(4),
                budget_usd: Some(3.5),
                clear: vec!["rpm".to_owned()],
            }),
        ),
        (
            "UsageQuery",
            json!(UsageQuery {
                group_by: GroupBy::Client,
                from_ms: Some(1),
                to_ms: Some(2),
                key_id: Some("key_1".to_owned()),
            }),
        ),
        (
            "LogQuery",
            json!(LogQuery {
                limit: Some(10),
                offset: Some(20),
                model: Some("m".to_owned()),
                provider: Some("p".to_owned()),
                key_id: Some("k".to_owned()),
                client: Some("c".to_owned()),
                status: Some(RequestStatus::Ok),
                from_ms: Some(1),
                to_ms: Some(2),
            }),
        ),
        (
            "ExplainQuery",
            json!(ExplainQuery {
                model: "gpt-4o-mini".to_owned(),
                endpoint: Some("embeddings".to_owned()),
                request: Some(json!({"models": ["gpt-4o"], "provider": {"sort": "price"}})),
                session: Some("conv-42".to_owned()),
            }),
        ),
    ];
    for (type_name, value) in &full {
        let mut checker = Checker::new(&doc, true);
        checker.check(&schema(type_name), value, type_name);
        assert_no_errors(type_name, &checker.errors);
    }
    let minimal = [
        ("KeyCreate", json!(KeyCreate::default())),
        ("KeyUpdate", json!(KeyUpdate::default())),
        ("UsageQuery", json!(UsageQuery::default())),
        ("LogQuery", json!(LogQuery::default())),
        ("ExplainQuery", json!(ExplainQuery::default())),
    ];
    for (type_name, value) in &minimal {
        let mut checker = Checker::new(&doc, false);
        checker.check(&schema(type_name), value, type_name);
        assert_no_errors(type_name, &checker.errors);
    }
    for group in ["model", "provider", "key", "client"] {
        let parsed: GroupBy =
            serde_json::from_value(json!(group)).expect("every documented GroupBy decodes");
        assert_eq!(json!(parsed), json!(group));
    }
    assert_eq!(
        schema("GroupBy")["enum"],
        json!(["model", "provider", "key", "client"])
    );
}

fn decodes<T: DeserializeOwned>(value: &Value) -> Result<(), String> {
    serde_json::from_value::<T>(value.clone())
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Decodes an example result into the Rust type the trait returns for `method`.
fn decode_result(method: &str, value: &Value) -> Result<(), String> {
    match method {
        "health" => decodes::<Health>(value),
        "info" => decodes::<Info>(value),
        "models.list" => decodes::<Vec<ModelObject>>(value),
        "models.get" => decodes::<ModelObject>(value),
        "providers.list" => decodes::<Vec<ProviderInfo>>(value),
        "providers.reset" | "providers.disable" => decodes::<InstanceInfo>(value),
        "providers.check" => decodes::<Vec<KeyCheck>>(value),
        "keys.create" => decodes::<KeyCreated>(value),
        "keys.list" => decodes::<Vec<ApiKeyInfo>>(value),
        "keys.update" | "keys.revoke" => decodes::<ApiKeyInfo>(value),
        "usage.summary" => decodes::<Vec<UsageGroup>>(value),
        "usage.series" => decodes::<Vec<UsageBucket>>(value),
        "usage.logs" => decodes::<LogPage>(value),
        "usage.log" => decodes::<RequestLog>(value),
        "requests.list" => decodes::<Vec<RunningRequest>>(value),
        "requests.cancel" => decodes::<RunningRequest>(value),
        "routing.explain" => decodes::<RouteTrace>(value),
        "priority.list" => decodes::<Vec<PriorityEntry>>(value),
        "priority.set" => decodes::<PriorityEntry>(value),
        "config.reload" => decodes::<ReloadResult>(value),
        "mothers.list" => decodes::<Vec<MotherInfo>>(value),
        "mothers.add" | "mothers.remove" => decodes::<MotherChange>(value),
        "mothers.update" => decodes::<MotherInfo>(value),
        "mcp.list_tools" => decodes::<Vec<McpTool>>(value),
        "mcp.call_tool" => decodes::<Value>(value),
        "mcp.servers" => decodes::<Vec<McpServer>>(value),
        "mcp.calls" => decodes::<Vec<McpCall>>(value),
        "rpc.discover" => Ok(()),
        other => Err(format!(
            "no Rust type known for {other}: add it to decode_result"
        )),
    }
}

#[test]
fn examples_match_schemas_and_rust_types() {
    let doc = doc();
    for method in methods(&doc) {
        let method_name = name(method);
        for example in method["examples"].as_array().into_iter().flatten() {
            let mut checker = Checker::new(&doc, false);
            for p in example["params"].as_array().into_iter().flatten() {
                let declared = params(method)
                    .iter()
                    .find(|d| name(d) == name(p))
                    .unwrap_or_else(|| {
                        panic!("{method_name}: example param {} is not declared", name(p))
                    });
                checker.check(
                    &declared["schema"],
                    &p["value"],
                    &format!("{method_name}({})", name(p)),
                );
            }
            let result = &example["result"]["value"];
            checker.check(&method["result"]["schema"], result, method_name);
            assert_no_errors(&format!("example of {method_name}"), &checker.errors);
            if let Err(e) = decode_result(method_name, result) {
                panic!("{method_name}: the example result does not decode into the Rust type: {e}");
            }
        }
    }
}

/// Collects every `$ref` string in `value`.
fn refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::Object(object) => {
            for (key, v) in object {
                match (key.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r),
                    _ => refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[test]
fn every_ref_resolves_and_every_schema_is_used() {
    let doc = doc();
    let mut all = Vec::new();
    refs(&doc, &mut all);
    for r in &all {
        assert!(
            r.strip_prefix('#').and_then(|p| doc.pointer(p)).is_some(),
            "$ref {r} does not resolve"
        );
    }
    let components = doc["components"]["schemas"]
        .as_object()
        .expect("components.schemas is an object");
    for key in components.keys() {
        let target = format!("#/components/schemas/{key}");
        assert!(
            all.contains(&target.as_str()),
            "components.schemas.{key} is never referenced"
        );
    }
}

#[test]
fn documented_error_codes_are_the_sdk_codes() {
    let known = [
        codes::UNAUTHORIZED,
        codes::NOT_FOUND,
        codes::INVALID_CONFIG,
        codes::STORE,
        codes::MCP_UNAVAILABLE,
        codes::MCP_CALL,
        -32602,
    ];
    let doc = doc();
    for method in methods(&doc) {
        let method_name = name(method);
        let errors: Vec<i64> = method["errors"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["code"].as_i64())
            .collect();
        for code in &errors {
            assert!(
                known.iter().any(|k| i64::from(*k) == *code),
                "{method_name}: error code {code} is not in hero_aibroker_sdk::rpc::codes"
            );
        }
        assert_eq!(
            errors.contains(&i64::from(codes::UNAUTHORIZED)),
            MUTATING_METHODS.contains(&method_name),
            "{method_name}: documents -32001 (unauthorized) exactly when it is in MUTATING_METHODS"
        );
    }
}

#[test]
fn routing_explain_is_read_only_and_its_endpoints_are_documented() {
    assert!(
        !MUTATING_METHODS.contains(&"routing.explain"),
        "routing.explain changes nothing: it must not need the admin token"
    );
    let doc = doc();
    let explain = methods(&doc)
        .iter()
        .find(|m| name(m) == "routing.explain")
        .expect("routing.explain is documented");
    let errors: Vec<i64> = explain["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["code"].as_i64())
        .collect();
    assert_eq!(errors, [INVALID_PARAMS]);
    assert_eq!(
        doc["components"]["schemas"]["ExplainQuery"]["properties"]["endpoint"]["enum"],
        json!(["chat", "completions", "embeddings", null])
    );
    // The first example ranks a candidate first and skips one, as the description promises.
    let trace: RouteTrace =
        serde_json::from_value(explain["examples"][0]["result"]["value"].clone())
            .expect("the example decodes");
    assert_eq!(trace.candidates[0].rank, Some(0));
    assert!(
        trace
            .candidates
            .iter()
            .any(|c| c.rank.is_none() && c.skipped.is_some())
    );
}

/// `components.errors` is the error table: one entry per code string, with the table's
/// JSON-RPC code, and nothing else; every error a method declares is one of the table's codes.
#[test]
fn error_codes_match_the_error_table() {
    use hero_aibroker_sdk::ErrorCode;
    let doc = doc();
    let listed = doc["components"]["errors"]
        .as_object()
        .expect("components.errors is an object");
    let table: BTreeSet<&str> = ErrorCode::all().map(ErrorCode::as_str).collect();
    let documented: BTreeSet<&str> = listed.keys().map(String::as_str).collect();
    assert_eq!(documented, table, "components.errors and ErrorCode differ");
    for code in ErrorCode::all() {
        let entry = &listed[code.as_str()];
        assert_eq!(
            entry["code"].as_i64(),
            Some(i64::from(code.rpc_code())),
            "{}: openrpc.json says {}, the table {}",
            code.as_str(),
            entry["code"],
            code.rpc_code()
        );
        assert!(
            entry["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{}: no message",
            code.as_str()
        );
    }
    let rpc_codes: BTreeSet<i64> = ErrorCode::all().map(|c| i64::from(c.rpc_code())).collect();
    for method in methods(&doc) {
        for e in method["errors"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or(&[])
        {
            let code = e["code"].as_i64().expect("error code");
            assert!(
                rpc_codes.contains(&code),
                "{} declares error {code}, which is not in the error table",
                name(method)
            );
        }
    }
    // The named constants clients match on are table codes too.
    for c in [
        codes::UNAUTHORIZED,
        codes::NOT_FOUND,
        codes::INVALID_CONFIG,
        codes::STORE,
        codes::MCP_UNAVAILABLE,
        codes::MCP_CALL,
    ] {
        assert!(rpc_codes.contains(&i64::from(c)), "{c}");
    }
}

/// The request statuses `openrpc.json` documents are exactly [`RequestStatus::ALL`], for the
/// ledger row and for the `usage.logs` filter.
#[test]
fn request_statuses_match_the_enum() {
    let doc = doc();
    let all: BTreeSet<String> = RequestStatus::ALL
        .iter()
        .map(|s| s.as_str().to_owned())
        .collect();
    for (schema, nullable) in [("RequestLog", false), ("LogQuery", true)] {
        let listed: BTreeSet<String> = doc["components"]["schemas"][schema]["properties"]["status"]
            ["enum"]
            .as_array()
            .unwrap_or_else(|| panic!("{schema}.status has no enum"))
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect();
        assert_eq!(listed, all, "{schema}.status");
        for s in RequestStatus::ALL {
            let json = serde_json::to_value(s).expect("serializes");
            assert_eq!(json, s.as_str());
            assert_eq!(s.as_str().parse::<RequestStatus>(), Ok(s));
        }
        let has_null = doc["components"]["schemas"][schema]["properties"]["status"]["enum"]
            .as_array()
            .is_some_and(|a| a.contains(&Value::Null));
        assert_eq!(has_null, nullable, "{schema}.status null");
    }
}
