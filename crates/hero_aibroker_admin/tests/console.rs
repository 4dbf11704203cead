//! The console's router in-process, with no broker behind it: every page still answers (and
//! says the broker is down), the login gate, sessions and the CSRF check.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use hero_aibroker_admin::console::Console;
use http_body_util::BodyExt;
use tower::ServiceExt;

const TOKEN: &str = "test-admin-token-0123456789";

fn app(token: Option<&str>) -> axum::Router {
    let dir = tempfile::tempdir().expect("tmp");
    let console = Arc::new(Console::new(dir.path(), token.map(str::to_owned)));
    std::mem::forget(dir);
    hero_aibroker_admin::router(console)
}

async fn send(
    app: &axum::Router,
    req: Request<Body>,
) -> (StatusCode, Vec<(String, String)>, String) {
    let resp = app.clone().oneshot(req).await.expect("infallible");
    let status = resp.status();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

fn get(path: &str, cookie: Option<&str>) -> Request<Body> {
    let mut b = Request::get(path);
    if let Some(c) = cookie {
        b = b.header(header::COOKIE, c);
    }
    b.body(Body::empty()).expect("request")
}

fn cookie_of(headers: &[(String, String)]) -> String {
    headers
        .iter()
        .find(|(k, _)| k == "set-cookie")
        .map(|(_, v)| v.split(';').next().unwrap_or("").to_owned())
        .expect("a session cookie")
}

fn csrf_of(body: &str) -> String {
    let at = body.find("data-csrf=\"").expect("a CSRF token in the page") + 11;
    body[at..at + 64].to_owned()
}

#[tokio::test]
async fn every_page_answers_and_says_the_broker_is_down() {
    let app = app(None);
    for path in [
        "/",
        "/models",
        "/providers",
        "/keys",
        "/usage",
        "/logs",
        "/routing?model=x",
        "/mcp",
        "/playground",
        "/me",
        "/logs/req_x",
    ] {
        let (status, _, body) = send(&app, get(path, None)).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        assert!(body.contains("unprotected console"), "{path}: no badge");
        if path != "/me" {
            assert!(
                body.contains("class=\"trouble\""),
                "{path}: the broker's absence is not reported"
            );
        }
    }
    let (status, _, _) = send(&app, get("/assets/htmx.min.js", None)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = send(&app, get("/nope", None)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn changes_need_the_sessions_csrf_token() {
    let app = app(None);
    let (_, headers, body) = send(&app, get("/keys", None)).await;
    let cookie = cookie_of(&headers);
    let csrf = csrf_of(&body);
    let post = |token: Option<&str>| {
        let mut b = Request::post("/providers/fake/priority")
            .header(header::COOKIE, &cookie)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(t) = token {
            b = b.header("x-csrf-token", t);
        }
        b.body(Body::from("priority=1")).expect("request")
    };
    let (status, _, body) = send(&app, post(None)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, _, _) = send(&app, post(Some("0".repeat(64).as_str()))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // With the token the change reaches the broker (which is down here: an error in place).
    let (status, _, body) = send(&app, post(Some(&csrf))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("class=\"error\""), "{body}");
}

#[tokio::test]
async fn with_a_token_the_console_asks_for_it() {
    let app = app(Some(TOKEN));
    let (status, headers, _) = send(&app, get("/keys", None)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(
        headers
            .iter()
            .any(|(k, v)| k == "location" && v == "/login")
    );
    let login = |secret: &str| {
        Request::post("/login")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(format!("secret={secret}")))
            .expect("request")
    };
    let (status, _, body) = send(&app, login("wrong")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body.contains("neither the admin token"));
    assert!(!body.contains("wrong"), "the attempt is not echoed");
    let (status, headers, _) = send(&app, login(TOKEN)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let cookie = cookie_of(&headers);
    assert!(
        headers.iter().any(|(k, v)| k == "set-cookie"
            && v.contains("HttpOnly")
            && v.contains("SameSite=Strict")),
        "{headers:?}"
    );
    let (status, _, body) = send(&app, get("/keys", Some(&cookie))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!body.contains("unprotected console"));
    assert!(!body.contains(TOKEN), "the token is in the page");
}
