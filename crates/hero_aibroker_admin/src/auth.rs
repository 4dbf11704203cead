//! Who is using the console, and the CSRF check.
//!
//! - Every page but `/login`, `/health` and `/assets/*` needs a session (cookie `hab_session`,
//!   `HttpOnly`, `SameSite=Strict`). With `ADMIN_TOKEN` set a session is opened at `/login`
//!   with the token (the operator) or with a broker key (a key holder, who sees only "My
//!   key"); without it every visitor gets an operator session at once, and the header says the
//!   console is unprotected.
//! - Every request that changes something (any method but GET/HEAD) carries the session's CSRF
//!   token in `x-csrf-token` (htmx sends it from the page's `hx-headers`); without it: 403.

use std::sync::Arc;

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::console::{Console, Role, Session};

/// The session cookie.
pub const COOKIE: &str = "hab_session";

/// The request's session (an extension on every page behind the layer).
#[derive(Debug, Clone)]
pub struct Current {
    pub id: String,
    pub session: Session,
}

impl Current {
    /// The broker key of a key holder's session.
    pub fn key(&self) -> Option<&str> {
        match &self.session.role {
            Role::Key(k) => Some(k),
            Role::Admin => None,
        }
    }
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

fn set_cookie(id: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict"))
        .unwrap_or_else(|_| HeaderValue::from_static("hab_session=; Path=/"))
}

/// Sends the browser to the login page (htmx follows `HX-Redirect`).
fn to_login(headers: &HeaderMap) -> Response {
    if headers.contains_key("hx-request") {
        let mut r = StatusCode::UNAUTHORIZED.into_response();
        r.headers_mut()
            .insert("hx-redirect", HeaderValue::from_static("/login"));
        r
    } else {
        Redirect::to("/login").into_response()
    }
}

fn open_path(path: &str) -> bool {
    path == "/login" || path == "/health" || path.starts_with("/assets/")
}

/// The layer in front of every route.
pub async fn layer(State(c): State<Arc<Console>>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    if open_path(&path) {
        return next.run(req).await;
    }
    let found = cookie(req.headers(), COOKIE).and_then(|id| c.session(&id).map(|s| (id, s)));
    let (id, session, fresh) = match found {
        Some((id, s)) => (id, s, false),
        None if !c.protected() => {
            let (id, s) = c.open_session(Role::Admin);
            (id, s, true)
        }
        None => return to_login(req.headers()),
    };
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let sent = req
            .headers()
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !bool::from(sent.as_bytes().ct_eq(session.csrf.as_bytes())) || fresh {
            tracing::warn!(path, "refused a change without the console's CSRF token");
            return (
                StatusCode::FORBIDDEN,
                Html(
                    "<p class=\"error\">Refused: this change did not carry the console's CSRF token. Reload the page and try again.</p>",
                ),
            )
                .into_response();
        }
    }
    if matches!(session.role, Role::Key(_)) && !(path == "/me" || path == "/logout") {
        return Redirect::to("/me").into_response();
    }
    req.extensions_mut().insert(Current {
        id: id.clone(),
        session,
    });
    let mut resp = next.run(req).await;
    if fresh {
        resp.headers_mut()
            .append(header::SET_COOKIE, set_cookie(&id));
    }
    resp
}

#[derive(Template, WebTemplate)]
#[template(path = "login.html")]
struct LoginPage {
    error: Option<String>,
    protected: bool,
}

pub async fn login_page(State(c): State<Arc<Console>>) -> impl IntoResponse {
    LoginPage {
        error: None,
        protected: c.protected(),
    }
}

#[derive(Deserialize)]
pub struct LoginForm {
    secret: String,
}

/// Signs in with the admin token (operator) or a broker key (its own page only).
pub async fn login(State(c): State<Arc<Console>>, Form(f): Form<LoginForm>) -> Response {
    let secret = f.secret.trim();
    let role = if c.is_admin_token(secret) {
        Some(Role::Admin)
    } else if secret.starts_with("sk-hab-") && valid_key(&c, secret).await {
        Some(Role::Key(secret.to_owned()))
    } else {
        None
    };
    let Some(role) = role else {
        let page = LoginPage {
            error: Some("That is neither the admin token nor a valid broker key.".into()),
            protected: c.protected(),
        };
        return (StatusCode::UNAUTHORIZED, page).into_response();
    };
    let to = if role == Role::Admin { "/" } else { "/me" };
    let (id, _) = c.open_session(role);
    let mut r = Redirect::to(to).into_response();
    r.headers_mut().append(header::SET_COOKIE, set_cookie(&id));
    r
}

/// Whether the broker accepts `key` (its `/v1/key` answers).
async fn valid_key(c: &Console, key: &str) -> bool {
    let rest = c.rest(Some(key));
    matches!(rest.get_json("/v1/key").await, Ok(v) if v.get("data").is_some())
}

/// Ends the session.
pub async fn logout(
    State(c): State<Arc<Console>>,
    axum::Extension(cur): axum::Extension<Current>,
) -> Response {
    c.close_session(&cur.id);
    let mut r = StatusCode::NO_CONTENT.into_response();
    r.headers_mut()
        .insert("hx-redirect", HeaderValue::from_static("/login"));
    r.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_static("hab_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    r
}
