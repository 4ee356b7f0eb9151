//! What the server refuses before any handler runs: a `Host` that is not the address
//! served (DNS rebinding), a POST from another origin, a missing access token.

use std::sync::Arc;

use anyhow::{Context, Result};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

use super::{error, Served};

/// Refuses what did not come from the page or a script on this machine: a `Host` that is
/// not the address served (DNS rebinding), a POST from another origin, a missing token.
pub(super) async fn guard(State(s): State<Arc<Served>>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    if !host.is_some_and(|h| s.hosts.iter().any(|ok| ok == h)) {
        return error(
            StatusCode::FORBIDDEN,
            format!("this server answers requests for {} only", s.hosts[0]),
        );
    }
    if request.method() == Method::POST && !same_origin(headers, &s.hosts) {
        return error(StatusCode::FORBIDDEN, "cross-origin requests are refused");
    }
    if let Some(t) = &s.token {
        if !has_token(&request, t) {
            return error(
                StatusCode::UNAUTHORIZED,
                "give the access token the server printed (?token=… or the x-token header)",
            );
        }
    }
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    response
}

/// No `Origin` (a script), or this server's own.
fn same_origin(headers: &HeaderMap, hosts: &[String]) -> bool {
    match headers.get(header::ORIGIN).map(|o| o.to_str()) {
        None => true,
        Some(Ok(origin)) => hosts.iter().any(|h| origin == format!("http://{h}")),
        Some(Err(_)) => false,
    }
}

fn has_token(request: &Request, token: &str) -> bool {
    let header = request
        .headers()
        .get("x-token")
        .and_then(|v| v.to_str().ok());
    let query = request.uri().query().unwrap_or("");
    header == Some(token) || query.split('&').any(|kv| kv == format!("token={token}"))
}

/// 32 hex digits from the system's random source.
pub(super) fn token() -> Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("cannot read /dev/urandom for the access token")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
