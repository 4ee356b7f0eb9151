//! The explorer's local server: the page (`page.html`, inside the binary) and the API
//! (`api`), on axum. Safe by default: loopback unless told otherwise (then an access token
//! is required), requests whose Host is not the address served or whose Origin is another
//! site refused, bodies over 1 MiB refused before they are read, a bounded pool computing
//! and a bounded queue waiting (503 beyond it), and every failure a 4xx or 5xx with
//! `{"error": "…"}` in the command line's words.

mod api;
mod compute;
mod guard;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use axum::extract::State;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::cli::ServeArgs;
use crate::session::{Output, Session};

/// The most a request body may hold.
const BODY_LIMIT: usize = 1 << 20;
/// How long a request body may take to arrive.
const BODY_TIME: Duration = Duration::from_secs(10);
/// How long a request's headers may take to arrive; then the connection is closed.
const HEADER_TIME: Duration = Duration::from_secs(5);
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
    /// The SAEs requests may name (`serve --sae`), loaded once.
    saes: Vec<String>,
    /// The lenses requests may name besides logit (`serve --lens`), as spelled.
    lenses: Vec<String>,
    /// The transcoder sets requests may name (`serve --transcoders`), loaded once.
    transcoders: Vec<String>,
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
        accept(listener, router(served)).await
    })
}

/// Serves each connection on a task of its own, HTTP/1.1, closing one whose request
/// headers take longer than [`HEADER_TIME`] (a slow or vanished client holds nothing).
async fn accept(listener: TcpListener, app: Router) -> Result<()> {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            // Out of descriptors, or a connection reset before it was accepted: go on.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let service = TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIME)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
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
        token: guard::token_for(addr)?,
        workers: Arc::new(Semaphore::new(workers)),
        admitted: Arc::new(Semaphore::new(workers + QUEUE)),
        saes: args.sae.clone(),
        lenses: args.lens.iter().map(|l| l.spec()).collect(),
        transcoders: args.transcoders.clone(),
    })
}

fn router(served: Arc<Served>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/api", get(index))
        .route("/api/{command}", post(compute::api).fallback(wrong_method))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(served.clone(), guard::guard))
        .with_state(served)
}

/// `{"error": message}` with `status`.
fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({ "error": message.into() }))).into_response()
}

async fn page() -> Response {
    let mut r = ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], PAGE).into_response();
    r.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    r
}

async fn index(State(s): State<Arc<Served>>) -> Response {
    axum::Json(api::index(&s.saes, &s.lenses, &s.transcoders)).into_response()
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
