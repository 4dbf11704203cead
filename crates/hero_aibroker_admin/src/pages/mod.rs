//! The pages, one module per area. Each handler asks the broker what it needs, notes what
//! failed in the page's frame ([`crate::view::Chrome`]) and renders anyway: the console never
//! fails a page because the broker is down.

pub mod cascade;
pub mod catalog;
pub mod inflight;
pub mod keys;
pub mod logs;
pub mod mcp;
pub mod overview;
pub mod play;
pub mod usage;

use axum::http::{HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};

/// Unknown routes.
pub async fn not_found() -> impl IntoResponse {
    (
        StatusCode::NOT_FOUND,
        Html(
            "<!doctype html><title>Not found</title><link rel=\"stylesheet\" href=\"/assets/console.css\"><main><p class=\"error\">No such page. <a href=\"/\">Overview</a></p></main>",
        ),
    )
}

/// A fragment that reports an outcome in place (htmx swaps it in).
pub fn fragment(ok: bool, text: impl std::fmt::Display) -> Html<String> {
    let class = if ok { "ok" } else { "error" };
    Html(format!(
        "<span class=\"{class}\" role=\"status\">{}</span>",
        escape(&text.to_string())
    ))
}

/// A number typed in a form field: blank is none, anything else must parse.
pub fn number<T: std::str::FromStr>(field: &str, v: &str) -> Result<Option<T>, String> {
    let v = v.trim();
    if v.is_empty() {
        return Ok(None);
    }
    v.parse()
        .map(Some)
        .map_err(|_| format!("{field}: {v:?} is not a valid number"))
}

/// A change's answer that also fires `event` (`keys-changed`, `mothers-changed`), on which the
/// page's list refreshes itself.
pub fn changed(event: &'static str, body: impl IntoResponse) -> Response {
    let mut r = body.into_response();
    r.headers_mut()
        .insert("hx-trigger", HeaderValue::from_static(event));
    r
}

/// HTML-escapes text for the few fragments built outside templates.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
