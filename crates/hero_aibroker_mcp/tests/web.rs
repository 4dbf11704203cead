//! The bundled web search and scraping servers through the real aggregator, each against a fake
//! of its HTTP API that answers with the fixtures of `tests/fixtures/web` (composed from each
//! service's documented shapes; see the README there) and checks what it is sent: the key where
//! the service takes it, the documented parameter names. Keys rotate: a refused key (403) and a
//! rate-limited one (429) are passed over and not tried again while they are out; a server
//! without keys answers a one-line tool error naming its variable.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hero_aibroker_testkit::{AggregatorConfig, sibling_bin, uds_http};
use serde_json::{Value, json};

const REFUSED: &str = "refused-key-0001";
const LIMITED: &str = "limited-key-0002";

/// What the fake was sent: service, key, and the request's parameters (query or JSON body).
#[derive(Debug, Clone)]
struct Seen {
    service: &'static str,
    key: String,
    params: Value,
}

type Calls = Arc<Mutex<Vec<Seen>>>;

fn fixture(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/web")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture")).expect("JSON")
}

/// The answer for `key`: refused, rate-limited (Retry-After: 30), or `ok`.
fn by_key(key: &str, refused: Response, limited: Response, ok: Response) -> Response {
    match key {
        REFUSED => refused,
        LIMITED => {
            let mut r = limited;
            r.headers_mut()
                .insert(header::RETRY_AFTER, "30".parse().expect("header"));
            r
        }
        _ => ok,
    }
}

fn json_status(status: StatusCode, v: Value) -> Response {
    (status, Json(v)).into_response()
}

fn record(calls: &Calls, service: &'static str, key: &str, params: Value) {
    calls.lock().expect("calls").push(Seen {
        service,
        key: key.to_owned(),
        params,
    });
}

async fn serper(
    State(calls): State<Calls>,
    Path(kind): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let key = headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    record(&calls, "serper", &key, body.clone());
    if body["q"].as_str().is_none() {
        return json_status(
            StatusCode::BAD_REQUEST,
            json!({"message": "Missing query", "statusCode": 400}),
        );
    }
    let ok = fixture(if kind == "news" {
        "serper-news.json"
    } else {
        "serper-search.json"
    });
    by_key(
        &key,
        json_status(StatusCode::FORBIDDEN, fixture("serper-error-403.json")),
        json_status(
            StatusCode::TOO_MANY_REQUESTS,
            json!({"message": "Too many requests", "statusCode": 429}),
        ),
        Json(ok).into_response(),
    )
}

async fn serpapi(State(calls): State<Calls>, Query(q): Query<HashMap<String, String>>) -> Response {
    let key = q.get("api_key").cloned().unwrap_or_default();
    let mut params = q.clone();
    params.remove("api_key");
    record(&calls, "serpapi", &key, json!(params));
    by_key(
        &key,
        json_status(StatusCode::UNAUTHORIZED, fixture("serpapi-error-401.json")),
        json_status(
            StatusCode::TOO_MANY_REQUESTS,
            json!({"error": "Your account has run out of searches."}),
        ),
        Json(fixture("serpapi-search.json")).into_response(),
    )
}

async fn exa(
    State(calls): State<Calls>,
    Path(kind): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let key = headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    record(&calls, "exa", &key, body);
    let ok = fixture(if kind == "contents" {
        "exa-contents.json"
    } else {
        "exa-search.json"
    });
    by_key(
        &key,
        json_status(StatusCode::UNAUTHORIZED, fixture("exa-error-401.json")),
        json_status(
            StatusCode::TOO_MANY_REQUESTS,
            json!({"requestId": "r", "error": "Rate limit exceeded", "tag": "RATE_LIMITED"}),
        ),
        Json(ok).into_response(),
    )
}

async fn scraperapi(
    State(calls): State<Calls>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let key = q.get("api_key").cloned().unwrap_or_default();
    let mut params = q.clone();
    params.remove("api_key");
    record(&calls, "scraperapi", &key, json!(params));
    let page = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/web/scraperapi-page.html"),
    )
    .expect("page");
    by_key(
        &key,
        (
            StatusCode::UNAUTHORIZED,
            "Unauthorized request, please make sure your API key is valid.",
        )
            .into_response(),
        (
            StatusCode::TOO_MANY_REQUESTS,
            "You have exceeded your concurrent connections limit.",
        )
            .into_response(),
        ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], page).into_response(),
    )
}

async fn scrapfly(
    State(calls): State<Calls>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let key = q.get("key").cloned().unwrap_or_default();
    let mut params = q.clone();
    params.remove("key");
    record(&calls, "scrapfly", &key, json!(params));
    by_key(
        &key,
        json_status(StatusCode::UNAUTHORIZED, fixture("scrapfly-error-401.json")),
        json_status(
            StatusCode::TOO_MANY_REQUESTS,
            json!({"code": "ERR::THROTTLE::MAX_CONCURRENT_REQUEST_EXCEEDED", "http_code": 429, "message": "Too many concurrent requests", "retryable": true}),
        ),
        Json(fixture("scrapfly-scrape.json")).into_response(),
    )
}

/// Starts the fake APIs; their base URL and what they were sent.
async fn fake_apis() -> (String, Calls) {
    let calls: Calls = Arc::default();
    let app = axum::Router::new()
        .route("/serper/{kind}", post(serper))
        .route("/serpapi/search.json", get(serpapi))
        .route("/exa/{kind}", post(exa))
        .route("/scraperapi/", get(scraperapi))
        .route("/scrapfly/scrape", get(scrapfly))
        .with_state(calls.clone());
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), calls)
}

fn server(name: &str, bin: &str, env: Value) -> Value {
    json!({"name": name, "command": sibling_bin(bin), "transport": "stdio", "timeout_secs": 10, "env": env})
}

fn text(result: &Value) -> String {
    result["content"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|c| c["text"].as_str())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_bundled_web_server_answers_through_the_aggregator_against_its_api() {
    let (base, calls) = fake_apis().await;
    let servers = json!([
        server(
            "serper",
            "mcp_serper",
            json!({
                "SERPER_API_KEYS": format!("{REFUSED},{LIMITED},good-serper-key"),
                "SERPER_BASE_URL": format!("{base}/serper"),
            })
        ),
        server(
            "serpapi",
            "mcp_serpapi",
            json!({
                "SERPAPI_API_KEYS": "good-serpapi-key",
                "SERPAPI_BASE_URL": format!("{base}/serpapi"),
            })
        ),
        server(
            "exa",
            "mcp_exa",
            json!({
                "EXA_API_KEYS": "good-exa-key",
                "EXA_BASE_URL": format!("{base}/exa"),
            })
        ),
        server(
            "scraperapi",
            "mcp_scraperapi",
            json!({
                "SCRAPERAPI_API_KEYS": "good-scraperapi-key",
                "SCRAPERAPI_BASE_URL": format!("{base}/scraperapi"),
            })
        ),
        server(
            "scrapfly",
            "mcp_scrapfly",
            json!({
                "SCRAPFLY_API_KEYS": format!("{REFUSED}"),
                "SCRAPFLY_BASE_URL": format!("{base}/scrapfly"),
            })
        ),
        server(
            "keyless",
            "mcp_exa",
            json!({"EXA_BASE_URL": format!("{base}/exa")})
        ),
    ]);
    let dir = tempfile::tempdir().expect("tempdir");
    let agg = AggregatorConfig::new(servers)
        .in_dir(dir.path())
        .start(6)
        .await;
    let sock = agg.mcp_sock();
    let call = async |tool: &str, args: Value| -> Value {
        let (status, v) = uds_http(
            &sock,
            "POST",
            &format!("/tools/{tool}"),
            &[],
            Some(&args.to_string()),
        )
        .await
        .expect("mcp.sock answers");
        assert_eq!(status, 200, "{tool}: {v}");
        v
    };

    let (status, listed) = uds_http(&sock, "GET", "/tools", &[], None)
        .await
        .expect("tools");
    assert_eq!(status, 200, "{listed}");
    let names: Vec<&str> = listed["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    for n in [
        "serper__search",
        "news",
        "serpapi__search",
        "exa__search",
        "exa__get_contents",
        "fetch_page",
        "scrape",
        "keyless__search",
    ] {
        assert!(names.contains(&n), "{n} missing from {names:?}");
    }

    // Serper: the refused key, then the rate-limited one, then the good one answers.
    let r = call(
        "serper__search",
        json!({"q": "apple inc", "gl": "us", "num": 10}),
    )
    .await;
    assert_eq!(r["isError"], false, "{r}");
    let t = text(&r);
    assert!(t.contains("Apple: Apple Inc. is an American"), "{t}");
    assert!(t.contains("1. Apple — https://www.apple.com/"), "{t}");
    assert_eq!(r["structuredContent"]["organic"][1]["position"], 2, "{r}");
    let serper_keys = |calls: &Calls| -> Vec<String> {
        calls
            .lock()
            .expect("calls")
            .iter()
            .filter(|c| c.service == "serper")
            .map(|c| c.key.clone())
            .collect()
    };
    assert_eq!(serper_keys(&calls), [REFUSED, LIMITED, "good-serper-key"]);
    let body = calls
        .lock()
        .expect("calls")
        .last()
        .expect("a call")
        .params
        .clone();
    assert_eq!(
        body,
        json!({"q": "apple inc", "gl": "us", "num": 10}),
        "Serper's body"
    );
    // Next call: the refused key is out for good, the limited one is cooling: only the good one.
    let r = call("news", json!({"q": "apple inc"})).await;
    assert!(
        text(&r).contains("1. Apple announces new developer tools — https://news.example.com/"),
        "{r}"
    );
    assert_eq!(serper_keys(&calls).len(), 4);
    assert_eq!(serper_keys(&calls)[3], "good-serper-key");

    // SerpApi: GET with the documented query names, the key as api_key.
    let r = call("serpapi__search", json!({"q": "coffee", "hl": "en"})).await;
    assert_eq!(r["isError"], false, "{r}");
    assert!(
        text(&r).contains("1. Coffee - Wikipedia — https://en.wikipedia.org/wiki/Coffee"),
        "{r}"
    );
    let seen = calls.lock().expect("calls").last().expect("a call").clone();
    assert_eq!(
        (seen.service, seen.key.as_str()),
        ("serpapi", "good-serpapi-key")
    );
    assert_eq!(
        seen.params,
        json!({"engine": "google", "q": "coffee", "hl": "en"})
    );

    // Exa: camelCase body, contents.text when asked; texts come back.
    let r = call("exa__search", json!({"query": "llm routing", "num_results": 2, "include_domains": ["arxiv.org"], "text": true})).await;
    assert_eq!(r["isError"], false, "{r}");
    assert!(
        text(&r).contains("A broker in front of several providers"),
        "{r}"
    );
    let seen = calls.lock().expect("calls").last().expect("a call").clone();
    assert_eq!(
        seen.params,
        json!({"query": "llm routing", "numResults": 2, "includeDomains": ["arxiv.org"], "contents": {"text": true}})
    );
    let r = call(
        "exa__get_contents",
        json!({"urls": ["https://blog.example.com/llm-routing"]}),
    )
    .await;
    assert!(text(&r).contains("fails over when it errs"), "{r}");

    // ScraperAPI: the page itself.
    let r = call(
        "fetch_page",
        json!({"url": "https://example.com/", "render": true}),
    )
    .await;
    assert_eq!(r["isError"], false, "{r}");
    assert!(text(&r).contains("<h1>Example Domain</h1>"), "{r}");
    assert_eq!(
        r["structuredContent"]["content_type"],
        "text/html; charset=utf-8"
    );
    let seen = calls.lock().expect("calls").last().expect("a call").clone();
    assert_eq!(
        seen.params,
        json!({"url": "https://example.com/", "render": "true"})
    );

    // Scrapfly with its only key refused: one line naming the variable, and never the key.
    let r = call(
        "scrape",
        json!({"url": "https://web-scraping.dev/product/1", "format": "text"}),
    )
    .await;
    assert_eq!(r["isError"], true, "{r}");
    let t = text(&r);
    assert_eq!(
        t, "Scrapfly refused key 1 of SCRAPFLY_API_KEYS (401)",
        "{t}"
    );
    let r = call(
        "scrape",
        json!({"url": "https://web-scraping.dev/product/1"}),
    )
    .await;
    assert_eq!(
        text(&r),
        "the service refused every key in SCRAPFLY_API_KEYS (401/403): check them"
    );

    // No key at all: the variable is named.
    let r = call("keyless__search", json!({"query": "anything"})).await;
    assert_eq!(r["isError"], true, "{r}");
    assert_eq!(
        text(&r),
        "EXA_API_KEYS is not set: give this server one or more API keys (comma-separated)"
    );
    assert!(
        !calls
            .lock()
            .expect("calls")
            .iter()
            .any(|c| c.service == "exa" && c.key.is_empty()),
        "a keyless server sends nothing"
    );

    // No key ever reaches an answer.
    let (_, audit) = uds_http(&sock, "GET", "/calls?limit=100", &[], None)
        .await
        .expect("calls");
    let everything = audit.to_string();
    for secret in [
        "good-serper-key",
        "good-serpapi-key",
        "good-exa-key",
        "good-scraperapi-key",
        REFUSED,
        LIMITED,
    ] {
        assert!(!everything.contains(secret), "{secret} in the audit");
    }
}
