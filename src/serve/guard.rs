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

/// The access token every request must carry when the server listens on `addr`: none on
/// loopback, a fresh one on any other address.
pub(super) fn token_for(addr: std::net::SocketAddr) -> Result<Option<String>> {
    match addr.ip().is_loopback() {
        true => Ok(None),
        false => token().map(Some),
    }
}

/// 32 hex digits from the system's random source.
fn token() -> Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("cannot read /dev/urandom for the access token")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_loopback_every_request_needs_a_fresh_token() {
        let loopback = "127.0.0.1:8080".parse().unwrap();
        assert_eq!(token_for(loopback).unwrap(), None);
        let ipv6 = "[::1]:8080".parse().unwrap();
        assert_eq!(token_for(ipv6).unwrap(), None);
        let lan = "192.168.1.5:8080".parse().unwrap();
        let (a, b) = (
            token_for(lan).unwrap().unwrap(),
            token_for(lan).unwrap().unwrap(),
        );
        assert!(
            a.len() == 32 && a.chars().all(|c| c.is_ascii_hexdigit()),
            "{a}"
        );
        assert_ne!(a, b, "each server its own token");
        let asked = |uri: &str, header: Option<&str>| {
            let mut r = axum::http::Request::builder().uri(uri);
            if let Some(h) = header {
                r = r.header("x-token", h);
            }
            has_token(&r.body(axum::body::Body::empty()).unwrap(), &a)
        };
        assert!(asked(&format!("/?token={a}"), None));
        assert!(asked(&format!("/api?x=1&token={a}"), None));
        assert!(asked("/", Some(&a)));
        assert!(!asked("/", None));
        assert!(!asked(&format!("/?token={b}"), None));
        assert!(
            !asked(&format!("/?token={a}x"), None),
            "the whole token, nothing more"
        );
    }

    #[test]
    fn a_post_from_another_origin_is_not_the_same_origin() {
        let hosts = vec!["127.0.0.1:8080".to_string(), "localhost:8080".to_string()];
        let with = |origin: Option<&str>| {
            let mut h = HeaderMap::new();
            if let Some(o) = origin {
                h.insert(header::ORIGIN, o.parse().unwrap());
            }
            same_origin(&h, &hosts)
        };
        assert!(with(None), "a script sends no Origin");
        assert!(with(Some("http://127.0.0.1:8080")));
        assert!(with(Some("http://localhost:8080")));
        assert!(!with(Some("http://127.0.0.1:8081")));
        assert!(!with(Some("http://evil.example")));
        assert!(!with(Some("null")));
    }
}
