//! `POST /api/COMMAND`: the body read within its limits, turned into the command line
//! (`api::argv`), and run on a worker of the bounded pool through the command's own code.
//! Answered whole (JSON, or with `?as=` the CSV, TSV or SVG the command line writes), or,
//! when the request accepts `text/event-stream`, as server-sent events: `start` and
//! `progress` of long work, `token` for each generated token, then `result` (the JSON) or
//! `error`. A client that goes away stops the computation at its next step.

use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use clap::Parser;
use futures_util::stream::{self, Stream};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};
use tokio::sync::OwnedSemaphorePermit;
use tokio::task::JoinHandle;

use super::api::{self, Form};
use super::{error, Served, BODY_LIMIT, BODY_TIME};
use crate::analysis::progress::Stopped;
use crate::cli::Cli;
use crate::error::UsageError;
use crate::render::format::printer::Format;
use crate::session::progress::{Event, Listener};
use crate::session::Session;

/// What a computation answers: its bytes and their type, or a status and a message.
type Outcome = Result<(&'static str, Vec<u8>), (StatusCode, String)>;

pub(super) async fn api(
    State(s): State<Arc<Served>>,
    Path(command): Path<String>,
    uri: Uri,
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
    let events = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/event-stream"));
    let request = api::Form::from_query(uri.query())
        .and_then(|form| match (events, &form) {
            (true, Form::Json) | (false, _) => Ok(form),
            (true, _) => Err(api::Refused::BadRequest(
                "events carry JSON: ask ?as=csv, tsv or svg without text/event-stream".into(),
            )),
        })
        .and_then(|form| Ok((api::argv(&command, &bytes, &form)?, form)));
    let (argv, form) = match request {
        Ok(r) => r,
        Err(api::Refused::NotFound(m)) => return error(StatusCode::NOT_FOUND, m),
        Err(api::Refused::BadRequest(m)) => return error(StatusCode::BAD_REQUEST, m),
    };
    let cli = match Cli::try_parse_from(&argv) {
        Ok(c) => c,
        Err(e) => return error(StatusCode::BAD_REQUEST, clap_message(&e)),
    };
    compute(&s, cli, form, events).await
}

fn too_large() -> Response {
    error(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the request body is over {} bytes", BODY_LIMIT),
    )
}

/// clap's error as one line (its first paragraph, joined), without its usage and hints.
fn clap_message(e: &clap::Error) -> String {
    let text = e.to_string();
    let first: Vec<&str> = (text.lines())
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect();
    first.join(" ").trim_start_matches("error: ").to_string()
}

/// Runs the parsed command on a worker of the bounded pool; the permits go with the
/// computation, so a client that leaves frees its worker only when the work has stopped.
async fn compute(s: &Served, cli: Cli, form: Form, events: bool) -> Response {
    let Ok(admitted) = s.admitted.clone().try_acquire_owned() else {
        let mut r = error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is busy: every worker and queue place is taken; try again",
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return r;
    };
    let Ok(worker) = s.workers.clone().acquire_owned().await else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "the server is stopping");
    };
    let (tx, rx) = unbounded_channel();
    let mut session = s.session.clone();
    session.prepend_bos = cli.global.prepend_bos;
    let g = &cli.global;
    session.output.format = Format::from_flags(g.json, g.jsonl, g.csv, g.tsv);
    session.listener = Listener::Client(tx);
    let work = tokio::task::spawn_blocking(move || run(session, cli, form, (admitted, worker)));
    match events {
        true => Sse::new(event_stream(rx, work)).into_response(),
        false => {
            let outcome = finished(work.await);
            drop(rx); // held until here: dropping it earlier would stop the work
            answer(outcome)
        }
    }
}

/// The command's output, or why there is none.
fn run(
    session: Session,
    cli: Cli,
    form: Form,
    _permits: (OwnedSemaphorePermit, OwnedSemaphorePermit),
) -> Outcome {
    let mut out = Vec::new();
    if let Err(e) = crate::commands::dispatch(&session, &cli.command, &mut out) {
        let status = match () {
            _ if e.chain().any(|c| c.is::<UsageError>()) => StatusCode::BAD_REQUEST,
            _ if e.chain().any(|c| c.is::<Stopped>()) => StatusCode::REQUEST_TIMEOUT,
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        };
        return Err((status, format!("{e:#}")));
    }
    match form {
        Form::Json => Ok(("application/json", out)),
        Form::Csv => Ok(("text/csv; charset=utf-8", out)),
        Form::Tsv => Ok(("text/tab-separated-values; charset=utf-8", out)),
        Form::Svg(dir) => std::fs::read(dir.path().join(api::SVG_NAME))
            .map(|svg| ("image/svg+xml", svg))
            .map_err(|e| {
                let m = format!("the command wrote no SVG ({e})");
                (StatusCode::INTERNAL_SERVER_ERROR, m)
            }),
    }
}

fn finished(joined: Result<Outcome, tokio::task::JoinError>) -> Outcome {
    joined.unwrap_or_else(|e| {
        let m = format!("the computation failed: {e}");
        Err((StatusCode::INTERNAL_SERVER_ERROR, m))
    })
}

fn answer(outcome: Outcome) -> Response {
    match outcome {
        Ok((kind, body)) => ([(header::CONTENT_TYPE, kind)], body).into_response(),
        Err((status, message)) => error(status, message),
    }
}

/// The computation's events as they come, then `result` (its JSON) or `error`
/// (`{"error", "status"}`). Dropped (the client gone), it drops the receiver, which stops
/// the work.
fn event_stream(
    rx: UnboundedReceiver<Event>,
    work: JoinHandle<Outcome>,
) -> impl Stream<Item = Result<SseEvent, std::convert::Infallible>> {
    stream::unfold(Some((rx, work)), |state| async move {
        let (mut rx, work) = state?;
        let event = match rx.recv().await {
            Some(e) => {
                let event = SseEvent::default().event(e.kind).data(e.data);
                return Some((Ok(event), Some((rx, work))));
            }
            None => match finished(work.await) {
                Ok((_, body)) => SseEvent::default()
                    .event("result")
                    .data(String::from_utf8_lossy(&body).trim_end()),
                Err((status, message)) => SseEvent::default().event("error").data(
                    serde_json::json!({ "error": message, "status": status.as_u16() }).to_string(),
                ),
            },
        };
        Some((Ok(event), None))
    })
}
