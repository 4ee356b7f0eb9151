//! A Hugging Face hub on 127.0.0.1 serving the fixture model, speaking the protocol
//! `huggingface_hub` and gpt2-inspect use: `HEAD`/`GET /{repo}/resolve/{revision}/{file}`
//! answered with `X-Repo-Commit`, `ETag` (git blob sha1) and `Content-Length` for small
//! files, and for the LFS checkpoint a 302 to `/cdn/{sha256}` with `X-Linked-Etag` and
//! `X-Linked-Size`; `Range` requests get 206. A [`Fault`] makes it misbehave.
//!
//! Bounded in time: every connection and the accept loop end when the server is dropped,
//! and after [`LIFETIME`] in any case.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::Digest;

use super::hex;

pub const REPO: &str = "openai-community/gpt2";
pub const COMMIT_MAIN: &str = "1111111111111111111111111111111111111111";
pub const COMMIT_V1: &str = "2222222222222222222222222222222222222222";
const LIFETIME: Duration = Duration::from_secs(120);

/// (repository, revision) → (commit, files by name).
type Files = HashMap<(String, String), (String, HashMap<String, File>)>;

/// Every regular file below `dir`, named by its path relative to it (`folder/cfg.json`).
fn files_below(dir: &Path) -> Vec<(String, std::path::PathBuf)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.is_file() {
                let name = path
                    .strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.push((name, path));
            }
        }
    }
    out
}

/// The checkpoints, served as LFS files (a redirect to the CDN).
fn is_lfs(name: &str) -> bool {
    name.ends_with(".safetensors") || name.ends_with(".bin")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    None,
    /// Accepts connections and never answers.
    Hang,
    /// Sends the checkpoint's headers and half its body, then nothing.
    StallBody,
    /// Sends the checkpoint without a length, and zeros without end.
    Endless,
    /// Announces the whole checkpoint, sends half, closes.
    Truncated,
    /// Answers the checkpoint's HEAD with a 302 that has no Location.
    NoLocation,
    /// A commit hash that climbs out of the cache.
    EvilCommit,
    /// An etag that climbs out of the cache.
    EvilEtag,
    /// Every resolve request answered with this status and `X-Error-Code`.
    Status(u16, &'static str),
}

struct File {
    bytes: Vec<u8>,
    /// git blob sha1 (small files) or sha256 (LFS).
    etag: String,
}

pub struct HubServer {
    pub endpoint: String,
    requests: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<String>>>,
}

impl HubServer {
    pub fn start(model_dir: &Path, fault: Fault) -> Self {
        Self::start_repos(
            &[
                (REPO, "main", COMMIT_MAIN, model_dir),
                (REPO, "v1", COMMIT_V1, model_dir),
            ],
            fault,
        )
    }

    /// A hub serving every file of each directory as `repo` at `revision` (commit `commit`).
    /// A revision that is a commit hash is served as that commit, or as the repository's
    /// main when no revision has it.
    pub fn start_repos(repos: &[(&str, &str, &str, &Path)], fault: Fault) -> Self {
        let mut files: Files = HashMap::new();
        for &(repo, revision, commit, dir) in repos {
            let mut served = HashMap::new();
            for (name, path) in files_below(dir) {
                let bytes = std::fs::read(&path).unwrap();
                let etag = if is_lfs(&name) {
                    hex(&sha2::Sha256::digest(&bytes))
                } else {
                    let mut h = sha1::Sha1::new();
                    h.update(format!("blob {}\0", bytes.len()).as_bytes());
                    h.update(&bytes);
                    hex(&h.finalize())
                };
                served.insert(name, File { bytes, etag });
            }
            let key = (repo.to_string(), revision.to_string());
            files.insert(key, (commit.to_string(), served));
        }
        let files = Arc::new(files);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let (r, s, l, e) = (
            requests.clone(),
            stop.clone(),
            log.clone(),
            endpoint.clone(),
        );
        std::thread::spawn(move || {
            let started = Instant::now();
            while !s.load(Ordering::Relaxed) && started.elapsed() < LIFETIME {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let (files, r, s, l, e) =
                            (files.clone(), r.clone(), s.clone(), l.clone(), e.clone());
                        std::thread::spawn(move || {
                            let _ = serve(stream, &files, fault, &r, &s, &l, &e);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        HubServer {
            endpoint,
            requests,
            stop,
            log,
        }
    }

    /// Requests answered so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// `METHOD path` of every request so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    pub fn etag(model_dir: &Path, name: &str) -> String {
        let bytes = std::fs::read(model_dir.join(name)).unwrap();
        hex(&sha2::Sha256::digest(&bytes))
    }
}

impl Drop for HubServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Sleeps until the server stops (or its lifetime ends).
fn linger(stop: &AtomicBool) {
    let started = Instant::now();
    while !stop.load(Ordering::Relaxed) && started.elapsed() < LIFETIME {
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn serve(
    stream: TcpStream,
    files: &Files,
    fault: Fault,
    requests: &AtomicUsize,
    stop: &AtomicBool,
    log: &Mutex<Vec<String>>,
    endpoint: &str,
) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut headers = HashMap::new();
        loop {
            let mut h = String::new();
            reader.read_line(&mut h)?;
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
        let mut parts = line.split_whitespace();
        let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        requests.fetch_add(1, Ordering::SeqCst);
        log.lock().unwrap().push(format!("{method} {path}"));
        if fault == Fault::Hang {
            linger(stop);
            return Ok(());
        }
        let head = method == "HEAD";
        let range_start = headers
            .get("range")
            .and_then(|r| r.strip_prefix("bytes="))
            .and_then(|r| r.split('-').next())
            .and_then(|s| s.parse::<usize>().ok());

        if let Some(sha) = path.strip_prefix("/cdn/") {
            let all = files.values().flat_map(|(_, f)| f.values());
            let Some(file) = all.into_iter().find(|f| f.etag == sha) else {
                respond(&mut out, 404, &[], b"", head)?;
                continue;
            };
            let start = range_start.unwrap_or(0).min(file.bytes.len());
            let body = &file.bytes[start..];
            let status = if range_start.is_some() { 206 } else { 200 };
            let range = format!(
                "bytes {start}-{}/{}",
                file.bytes.len().max(1) - 1,
                file.bytes.len()
            );
            match fault {
                Fault::Endless if !head => {
                    write!(out, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")?;
                    let zeros = vec![0u8; 1 << 16];
                    let started = Instant::now();
                    while !stop.load(Ordering::Relaxed) && started.elapsed() < LIFETIME {
                        out.write_all(&zeros)?;
                    }
                    return Ok(());
                }
                Fault::StallBody | Fault::Truncated if !head => {
                    write!(
                        out,
                        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nContent-Range: {range}\r\n\r\n",
                        body.len()
                    )?;
                    out.write_all(&body[..body.len() / 2])?;
                    out.flush()?;
                    if fault == Fault::StallBody {
                        linger(stop);
                    }
                    return Ok(());
                }
                _ => {
                    respond(&mut out, status, &[("Content-Range", range)], body, head)?;
                    continue;
                }
            }
        }

        // /{org}/{name}/resolve/{revision}/{file}
        let rest: Vec<&str> = path.trim_start_matches('/').splitn(5, '/').collect();
        if let Fault::Status(code, error) = fault {
            respond(&mut out, code, &[("X-Error-Code", error.into())], b"", head)?;
            continue;
        }
        let repo = format!(
            "{}/{}",
            rest.first().unwrap_or(&""),
            rest.get(1).unwrap_or(&"")
        );
        if rest.len() != 5 || rest[2] != "resolve" || !files.keys().any(|(r, _)| *r == repo) {
            respond(
                &mut out,
                401,
                &[("X-Error-Code", "RepoNotFound".into())],
                b"",
                head,
            )?;
            continue;
        }
        let revision = rest[3].replace("%2F", "/");
        let by_commit = (files.iter()).find(|((r, _), (c, _))| *r == repo && *c == revision);
        let served = match files
            .get(&(repo.clone(), revision.clone()))
            .or(by_commit.map(|(_, v)| v))
        {
            Some(s) => Some(s),
            None if revision.len() == 40 => files.get(&(repo.clone(), "main".to_string())),
            None => None,
        };
        let Some((commit, repo_files)) = served else {
            respond(
                &mut out,
                404,
                &[("X-Error-Code", "RevisionNotFound".into())],
                b"",
                head,
            )?;
            continue;
        };
        // A commit asked for by hash is answered as that commit.
        let commit = match revision.len() == 40 {
            true => revision.clone(),
            false => commit.clone(),
        };
        let commit = match fault {
            Fault::EvilCommit => "../../../../../../tmp/gpt2-inspect-evil-commit".to_string(),
            _ => commit,
        };
        let Some(file) = repo_files.get(rest[4]) else {
            let h = [
                ("X-Error-Code", "EntryNotFound".into()),
                ("X-Repo-Commit", commit),
            ];
            respond(&mut out, 404, &h, b"", head)?;
            continue;
        };
        let etag = match fault {
            Fault::EvilEtag => "../../../../../../tmp/gpt2-inspect-evil-etag".to_string(),
            _ => file.etag.clone(),
        };
        if is_lfs(rest[4]) {
            let mut h = vec![
                ("X-Repo-Commit", commit),
                ("X-Linked-Etag", format!("\"{etag}\"")),
                ("X-Linked-Size", file.bytes.len().to_string()),
                (
                    "ETag",
                    "\"0000000000000000000000000000000000000000\"".into(),
                ),
            ];
            if fault != Fault::NoLocation {
                // Another host, as the hub's CDN is: the same server under `localhost`.
                let cdn = endpoint.replace("127.0.0.1", "localhost");
                h.push(("Location", format!("{cdn}/cdn/{}", file.etag)));
            }
            respond(&mut out, 302, &h, b"", head)?;
        } else {
            let start = range_start.unwrap_or(0).min(file.bytes.len());
            let status = if range_start.is_some() { 206 } else { 200 };
            let h = [("X-Repo-Commit", commit), ("ETag", format!("\"{etag}\""))];
            respond(&mut out, status, &h, &file.bytes[start..], head)?;
        }
    }
}

fn respond(
    out: &mut TcpStream,
    status: u16,
    headers: &[(&str, String)],
    body: &[u8],
    head: bool,
) -> std::io::Result<()> {
    let mut s = format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        s.push_str(&format!("{k}: {v}\r\n"));
    }
    s.push_str("\r\n");
    out.write_all(s.as_bytes())?;
    if !head {
        out.write_all(body)?;
    }
    out.flush()
}
