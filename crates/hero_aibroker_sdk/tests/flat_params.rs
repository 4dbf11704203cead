//! `openrpc.json` declares the flat by-name params the broker accepts (`x-flat-params`, from
//! the SDK's `FLAT_PARAMS`), and each flat call it shows is read whole by the parameter's type.

mod common;

use common::{doc, methods, name, params};
use hero_aibroker_sdk::admin::*;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use std::collections::BTreeSet;

/// Decodes `flat` into `T` and encodes it again: every value of `flat` must come back (under its
/// name or the name it is an alias of), so a misspelt field, silently ignored by serde, fails.
fn kept_by<T: DeserializeOwned + serde::Serialize>(
    flat: &Map<String, Value>,
) -> Result<(), String> {
    let decoded: T =
        serde_json::from_value(Value::Object(flat.clone())).map_err(|e| e.to_string())?;
    let encoded = serde_json::to_value(decoded).map_err(|e| e.to_string())?;
    let values: Vec<&Value> = encoded
        .as_object()
        .map(|o| o.values().collect())
        .unwrap_or_default();
    for (k, v) in flat {
        if !values.contains(&v) {
            return Err(format!("{k} = {v} is not read by the parameter's type"));
        }
    }
    Ok(())
}

/// The flat forms the broker accepts (`FLAT_PARAMS`) are the ones the document declares
/// (`x-flat-params`, the wrapping parameter, which must be one of the method's params), and the
/// flat call each description shows, with the kept fields taken out, is read whole by the
/// wrapped parameter's Rust type.
#[test]
fn flat_params_are_declared_as_the_broker_accepts_them() {
    use hero_aibroker_sdk::mcp::McpCallQuery;
    use hero_aibroker_sdk::rpc::FLAT_PARAMS;
    let doc = doc();
    let declared: BTreeSet<(&str, &str)> = methods(&doc)
        .iter()
        .filter_map(|m| Some((name(m), m.get("x-flat-params")?.as_str()?)))
        .collect();
    let accepted: BTreeSet<(&str, &str)> = FLAT_PARAMS.iter().map(|(m, w, _)| (*m, *w)).collect();
    assert_eq!(
        declared, accepted,
        "x-flat-params in openrpc.json vs FLAT_PARAMS"
    );
    for (method, wrapper, kept) in FLAT_PARAMS {
        let m = methods(&doc)
            .iter()
            .find(|m| name(m) == *method)
            .expect("documented");
        assert!(
            params(m).iter().any(|p| p["name"] == *wrapper),
            "{method}: x-flat-params names {wrapper}, which is not a param"
        );
        let description = m["description"].as_str().unwrap_or("");
        let shown = description
            .split("may also be given flat")
            .nth(1)
            .and_then(|rest| rest.split('`').find(|piece| piece.starts_with('{')))
            .unwrap_or_else(|| panic!("{method}: the description shows no flat call"));
        let mut flat: Map<String, Value> = serde_json::from_str(shown)
            .unwrap_or_else(|e| panic!("{method}: the flat call {shown} is not JSON: {e}"));
        for k in *kept {
            assert!(
                flat.remove(*k).is_some(),
                "{method}: the flat call lacks {k}"
            );
        }
        let decoded = match *method {
            "keys.create" => kept_by::<KeyCreate>(&flat),
            "keys.update" => kept_by::<KeyUpdate>(&flat),
            "usage.summary" => kept_by::<UsageQuery>(&flat),
            "usage.series" => kept_by::<SeriesQuery>(&flat),
            "usage.logs" => kept_by::<LogQuery>(&flat),
            "routing.explain" => kept_by::<ExplainQuery>(&flat),
            "mcp.calls" => kept_by::<McpCallQuery>(&flat),
            other => Err(format!("no Rust type known for {other}'s flat form")),
        };
        assert!(decoded.is_ok(), "{method}: {shown}: {decoded:?}");
    }
}
