//! The hostile-input battery: property tests over everything that reads bytes from outside —
//! the request parser, the SSE parser, the models-file loader and the JSON-RPC params of every
//! method. For any input: no panic, and every refusal is a clear error (a message, and for
//! the request parser a 4xx code of the error table).

use std::path::Path;
use std::sync::Arc;

use hero_aibroker_host::env::Env;
use hero_aibroker_lib::accounting::ledger::{Ledger, LedgerConfig};
use hero_aibroker_lib::accounting::store::Store;
use hero_aibroker_lib::config::{ModelsConfig, Settings};
use hero_aibroker_lib::endpoint::Endpoint;
use hero_aibroker_lib::pipeline::request::ParsedRequest;
use hero_aibroker_lib::state::AppState;
use hero_aibroker_lib::surfaces::rpc::methods::{Admin, module};
use hero_aibroker_sdk::admin::Sockets;
use hero_aibroker_sdk::sse::{SseEvent, SseParser};
use proptest::prelude::*;
use serde_json::{Value, json};

const MODELS: &str = r#"
providers:
  - {name: local, base_url: "http://127.0.0.1:9/v1"}
models:
  small:
    display_name: Small
    tier: cheap
    aliases: [tiny]
    context_window: 8192
    capabilities: [tools]
    backends:
      - {provider: local, model_id: small-gguf, priority: 1, input_cost: 0.1, output_cost: 0.4}
"#;

/// JSON values of any shape, a few levels deep, with the strings requests use.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop_oneof![
            Just("small".to_owned()),
            Just("auto".to_owned()),
            Just("user".to_owned()),
            Just("tool".to_owned()),
            Just("image_url".to_owned()),
            ".{0,40}",
        ]
        .prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("model".to_owned()),
                    Just("messages".to_owned()),
                    Just("role".to_owned()),
                    Just("content".to_owned()),
                    Just("stream".to_owned()),
                    Just("max_tokens".to_owned()),
                    Just("tools".to_owned()),
                    Just("models".to_owned()),
                    Just("provider".to_owned()),
                    Just("prompt".to_owned()),
                    Just("input".to_owned()),
                    Just("transforms".to_owned()),
                    "[a-z_]{1,12}",
                ],
                inner,
                0..8,
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn endpoint() -> impl Strategy<Value = Endpoint> {
    prop_oneof![
        Just(Endpoint::Chat),
        Just(Endpoint::Completions),
        Just(Endpoint::Embeddings),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Any bytes, and any JSON document, parse or are refused with a 4xx from the table.
    #[test]
    fn the_request_parser_never_panics(
        ep in endpoint(),
        bytes in prop::collection::vec(any::<u8>(), 0..256),
        doc in json_value(),
    ) {
        for body in [bytes, serde_json::to_vec(&doc).expect("json")] {
            if let Err(e) = ParsedRequest::parse(ep, &body) {
                let status = e.code.http_status();
                prop_assert!((400..500).contains(&status), "{status}: {}", e.message);
                prop_assert!(!e.message.is_empty());
            }
        }
    }

    /// SSE text of any shape, cut into any chunks: no panic, and the same events (or the same
    /// error) as when it arrives whole.
    #[test]
    fn the_sse_parser_never_panics_and_chunking_does_not_matter(
        parts in prop::collection::vec(
            prop_oneof![
                Just("data: ".to_owned()),
                Just("data:".to_owned()),
                Just("event: x".to_owned()),
                Just(": comment".to_owned()),
                Just("\n".to_owned()),
                Just("\r\n".to_owned()),
                Just("\r".to_owned()),
                Just("[DONE]".to_owned()),
                "[ -~é€]{0,12}",
            ],
            0..40,
        ),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
        limit in 8usize..64,
    ) {
        let text = parts.concat();
        let bytes = text.as_bytes();
        let whole = run_sse(&[bytes], limit);
        let mut at: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
        at.sort_unstable();
        let mut chunks = Vec::new();
        let mut from = 0;
        for c in at {
            chunks.push(&bytes[from..c]);
            from = c;
        }
        chunks.push(&bytes[from..]);
        let split = run_sse(&chunks, limit);
        // A limit can trip at a different point while a line is still incomplete; the events
        // before it agree either way.
        match (&whole, &split) {
            (Ok(a), Ok(b)) => prop_assert_eq!(a, b),
            (Ok(a), Err(b)) | (Err(b), Ok(a)) => prop_assert!(a.starts_with(b)),
            (Err(a), Err(b)) => prop_assert!(a.starts_with(b) || b.starts_with(a)),
        }
    }

    /// Any text as a models file, and valid files with lines dropped, doubled or garbled: a
    /// config or an error naming the file, never a panic.
    #[test]
    fn the_models_loader_never_panics(
        noise in ".{0,200}",
        edits in prop::collection::vec((any::<prop::sample::Index>(), 0u8..3, ".{0,12}"), 0..4),
    ) {
        let path = Path::new("models.yml");
        if let Err(e) = ModelsConfig::parse(path, &noise) {
            prop_assert!(e.to_string().contains("models.yml"), "{e}");
        }
        let mut lines: Vec<String> = MODELS.lines().map(str::to_owned).collect();
        for (i, op, text) in edits {
            let at = i.index(lines.len());
            match op {
                0 => { lines.remove(at); }
                1 => { let l = lines[at].clone(); lines.insert(at, l); }
                _ => lines[at].push_str(&text),
            }
            if lines.is_empty() {
                break;
            }
        }
        if let Err(e) = ModelsConfig::parse(path, &lines.join("\n")) {
            prop_assert!(e.to_string().contains("models.yml"), "{e}");
        }
    }
}

/// Every event the parser yields for `chunks`, or the events before its error and the error.
fn run_sse(chunks: &[&[u8]], limit: usize) -> Result<Vec<SseEvent>, Vec<SseEvent>> {
    let mut p = SseParser::with_limit(limit);
    let mut out = Vec::new();
    for c in chunks {
        p.push(c);
        loop {
            match p.next_event() {
                Ok(Some(e)) => out.push(e),
                Ok(None) => break,
                Err(_) => return Err(out),
            }
        }
    }
    match p.finish() {
        Ok(Some(e)) => out.push(e),
        Ok(None) => {}
        Err(_) => return Err(out),
    }
    Ok(out)
}

/// The broker's JSON-RPC module over a fresh state and store.
fn rpc() -> (
    tokio::runtime::Runtime,
    jsonrpsee::RpcModule<()>,
    tempfile::TempDir,
) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tmp");
    let module = rt.block_on(async {
        let cfg = ModelsConfig::parse(&dir.path().join("models.yml"), MODELS).expect("valid");
        let env = Env::from_pairs([("HOME", dir.path().to_str().expect("utf-8"))]);
        let settings = Settings::from_env(&env).expect("settings");
        let store = Store::open(&dir.path().join("t.db").display().to_string())
            .await
            .expect("store");
        let (ledger, writer) = Ledger::start(store.clone(), LedgerConfig::default());
        std::mem::forget(writer);
        let state: Arc<AppState> = AppState::new(settings, cfg, env, store, ledger)
            .await
            .expect("state");
        module(Admin {
            state,
            sockets: Sockets {
                rest: "/s/rest.sock".into(),
                rpc: "/s/rpc.sock".into(),
                tcp: None,
            },
        })
    });
    (rt, module, dir)
}

/// Every method `openrpc.json` declares.
fn methods() -> Vec<String> {
    let doc: Value = serde_json::from_str(hero_aibroker_sdk::OPENRPC_JSON).expect("openrpc");
    doc["methods"]
        .as_array()
        .expect("methods")
        .iter()
        .map(|m| m["name"].as_str().expect("name").to_owned())
        .filter(|m| m != "providers.check")
        .collect()
}

#[test]
fn rpc_params_of_any_shape_get_a_result_or_an_error() {
    let (rt, module, _dir) = rpc();
    let methods = methods();
    assert!(methods.len() >= 20, "{methods:?}");
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 256,
        ..ProptestConfig::default()
    });
    runner
        .run(
            &(prop::sample::select(methods), json_value()),
            |(method, params)| {
                let call = json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params});
                let (answer, _) = rt
                    .block_on(module.raw_json_request(&call.to_string(), 1))
                    .expect("a JSON-RPC answer");
                let v: Value = serde_json::from_str(answer.get()).expect("JSON");
                prop_assert_eq!(&v["id"], &json!(7));
                let ok = v.get("result").is_some();
                let err = v["error"]["code"].is_i64()
                    && v["error"]["message"]
                        .as_str()
                        .is_some_and(|m| !m.is_empty());
                prop_assert!(ok != err, "{method}: {v}");
                Ok(())
            },
        )
        .expect("no RPC params break a method");
}
