//! The explorer's local server: the page (`page.html`, inside the binary) and the API
//! (`api`), on axum. Safe by default: loopback unless told otherwise (then an access token
//! is required), requests whose Host is not the address served or whose Origin is another
//! site refused, bodies over 1 MiB refused before they are read, a bounded pool computing
//! and a bounded queue waiting (503 beyond it), and every failure a 4xx or 5xx with
//! `{"error": "…"}` in the command line's words.

mod api;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use axum::body::{to_bytes, Body};
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use clap::Parser;
use serde_json::json;
use tokio::sync::Semaphore;

use crate::cli::{Cli, ServeArgs};
use crate::error::UsageError;
use crate::session::{Output, Session};

/// The most a request body may hold.
const BODY_LIMIT: usize = 1 << 20;
/// How long a request body may take to arrive.
const BODY_TIME: Duration = Duration::from_secs(10);
/// Requests waiting for a worker at most; more are answered 503.
const QUEUE: usize = 16;
/// The page: markup, style and script in one file, nothing fetched from elsewhere.
const PAGE: &str = include_str!("page.html");
/// What the page may load: only itself.
const CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                   connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; \
                   frame-ancestors 'none'";

/// What every request handler shares.
struct Served {
    session: Session,
    /// The `Host` values the server answers: its address, and `localhost` on loopback.
    hosts: Vec<String>,
    /// Required of every request when the server is not on loopback.
    token: Option<String>,
    /// Requests computing now, and requests admitted (computing or waiting).
    workers: Arc<Semaphore>,
    admitted: Arc<Semaphore>,
}

/// Serves until the process is stopped (Ctrl-C or SIGTERM end it as any command).
pub fn serve(session: &Session, args: &ServeArgs, out: &mut dyn Write) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_io()
        .enable_time()
        .build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind((args.host, args.port))
            .await
            .with_context(|| format!("cannot listen on {}:{}", args.host, args.port))?;
        let addr = listener.local_addr()?;
        let served = Arc::new(served(session, args, addr)?);
        let url = match &served.token {
            Some(t) => format!("http://{addr}/?token={t}"),
            None => format!("http://{addr}/"),
        };
        writeln!(out, "serving {url}")?;
        out.flush()?;
        if served.token.is_some() {
            eprintln!(
                "warning: listening on {addr}, which is not loopback: every request needs the access token in the URL above"
            );
        }
        if args.open {
            open_browser(&url);
        }
        axum::serve(listener, router(served)).await?;
        Ok(())
    })
}

/// Starts the default browser on `url` and leaves it running: `$BROWSER` when set (its
/// `%s` replaced by the URL, else the URL appended, as Python's webbrowser reads it), else
/// the system's opener. A browser that cannot be started is a warning: the server serves on.
fn open_browser(url: &str) {
    let (program, args): (String, Vec<String>) = match std::env::var("BROWSER") {
        Ok(b) if !b.trim().is_empty() => {
            let mut words = b.split_whitespace().map(str::to_string);
            let program = words.next().unwrap_or_default();
            let mut args: Vec<String> = words.collect();
            match args.iter().any(|a| a.contains("%s")) {
                true => args.iter_mut().for_each(|a| *a = a.replace("%s", url)),
                false => args.push(url.to_string()),
            }
            (program, args)
        }
        _ if cfg!(target_os = "macos") => ("open".into(), vec![url.into()]),
        _ if cfg!(windows) => (
            "cmd".into(),
            vec!["/C".into(), "start".into(), String::new(), url.into()],
        ),
        _ => ("xdg-open".into(), vec![url.into()]),
    };
    let started = std::process::Command::new(&program)
        .args(&args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .spawn();
    match started {
        // Reaped on a thread of its own, so an opener that exits leaves no zombie.
        Ok(mut child) => drop(std::thread::spawn(move || child.wait())),
        Err(e) => eprintln!("warning: --open: cannot start {program} ({e}); open {url} yourself"),
    }
}

fn served(session: &Session, args: &ServeArgs, addr: SocketAddr) -> Result<Served> {
    let loopback = addr.ip().is_loopback();
    let mut hosts = vec![addr.to_string()];
    if loopback {
        hosts.push(format!("localhost:{}", addr.port()));
    }
    let workers = args.workers as usize;
    Ok(Served {
        session: session.with_output(Output::json()),
        hosts,
        token: match loopback {
            true => None,
            false => Some(token()?),
        },
        workers: Arc::new(Semaphore::new(workers)),
        admitted: Arc::new(Semaphore::new(workers + QUEUE)),
    })
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

fn router(served: Arc<Served>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/api", get(index))
        .route("/api/{command}", post(api).fallback(wrong_method))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(served.clone(), guard))
        .with_state(served)
}

/// `{"error": message}` with `status`.
fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({ "error": message.into() }))).into_response()
}

/// Refuses what did not come from the page or a script on this machine: a `Host` that is
/// not the address served (DNS rebinding), a POST from another origin, a missing token.
async fn guard(State(s): State<Arc<Served>>, request: Request, next: Next) -> Response {
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

async fn page() -> Response {
    let mut r = ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], PAGE).into_response();
    r.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    r
}

async fn index() -> Response {
    axum::Json(api::index()).into_response()
}

async fn wrong_method(method: Method) -> Response {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{method} is not how the API is asked: POST a JSON object of the options"),
    )
}

async fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "no such page: the explorer is at /, the API at /api",
    )
}

/// `POST /api/COMMAND`: what `gpt2-inspect COMMAND … --json` prints for the options in the
/// body.
async fn api(
    State(s): State<Arc<Served>>,
    Path(command): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|n| n > BODY_LIMIT) {
        return too_large();
    }
    let bytes = match tokio::time::timeout(BODY_TIME, to_bytes(body, BODY_LIMIT)).await {
        Err(_) => {
            return error(
                StatusCode::REQUEST_TIMEOUT,
                "the request body took too long",
            )
        }
        Ok(Err(_)) => return too_large(),
        Ok(Ok(b)) => b,
    };
    let argv = match api::argv(&command, &bytes) {
        Ok(a) => a,
        Err(api::Refused::NotFound(m)) => return error(StatusCode::NOT_FOUND, m),
        Err(api::Refused::BadRequest(m)) => return error(StatusCode::BAD_REQUEST, m),
    };
    let cli = match Cli::try_parse_from(&argv) {
        Ok(c) => c,
        Err(e) => return error(StatusCode::BAD_REQUEST, clap_message(&e)),
    };
    compute(&s, cli).await
}

fn too_large() -> Response {
    error(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the request body is over {} bytes", BODY_LIMIT),
    )
}

/// clap's error as one line, without its usage and help hints.
fn clap_message(e: &clap::Error) -> String {
    let text = e.to_string();
    let first = text.lines().next().unwrap_or("invalid options");
    first.trim_start_matches("error: ").to_string()
}

/// Runs the parsed command on a worker of the bounded pool.
async fn compute(s: &Served, cli: Cli) -> Response {
    let Ok(_admitted) = s.admitted.clone().try_acquire_owned() else {
        let mut r = error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is busy: every worker and queue place is taken; try again",
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return r;
    };
    let Ok(_worker) = s.workers.clone().acquire_owned().await else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "the server is stopping");
    };
    let mut session = s.session.clone();
    session.prepend_bos = cli.global.prepend_bos;
    let done = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        crate::commands::dispatch(&session, &cli.command, &mut out).map(|()| out)
    })
    .await;
    match done {
        Ok(Ok(json)) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
        Ok(Err(e)) if e.chain().any(|c| c.is::<UsageError>()) => {
            error(StatusCode::BAD_REQUEST, format!("{e:#}"))
        }
        Ok(Err(e)) => error(StatusCode::UNPROCESSABLE_ENTITY, format!("{e:#}")),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the computation failed: {e}"),
        ),
    }
}
