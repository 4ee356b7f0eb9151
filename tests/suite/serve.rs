//! `serve`: the API answers what the command line prints, refuses what it must with a 4xx
//! in the command line's words and goes on serving, answers many clients at once as it
//! answers them one by one, and stops on SIGTERM with the other commands' exit code.
//! Every loop here is bounded in count and time; the server listens on loopback only.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{cmd, model_dir};

/// A server on the fixture model, killed when dropped.
struct Server {
    child: Child,
    addr: String,
}

impl Server {
    fn start() -> Server {
        Server::start_with(&[], &[])
    }

    /// `serve --port 0` with more `args` and environment `env`.
    fn start_with(args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut child = Command::new(assert_cmd::cargo::cargo_bin("gpt2-inspect"))
            .arg("--model")
            .arg(model_dir())
            .args(["serve", "--port", "0"])
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        let stdout = child.stdout.take().unwrap();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let url = line
            .trim()
            .strip_prefix("serving http://")
            .expect("the URL line");
        let addr = url.trim_end_matches('/').to_string();
        Server { child, addr }
    }

    /// One request with `headers` (Host is the server's unless given); the status and body.
    fn raw(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, String) {
        let mut s = TcpStream::connect(&self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
        let mut head = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
        if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
            head += &format!("Host: {}\r\n", self.addr);
        }
        for (k, v) in headers {
            head += &format!("{k}: {v}\r\n");
        }
        if !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        {
            head += &format!("Content-Length: {}\r\n", body.len());
        }
        s.write_all(format!("{head}\r\n").as_bytes()).unwrap();
        // A server may answer (and close) before it reads the body: what it said is read
        // below either way.
        let _ = s.write_all(body);
        let mut response = Vec::new();
        // A reset after the answer (the server closed with bytes unread) keeps what came.
        let read = s.read_to_end(&mut response);
        assert!(
            !response.is_empty(),
            "{method} {path}: no answer ({read:?})"
        );
        let text = String::from_utf8_lossy(&response).into_owned();
        let status = text[9..12].parse().unwrap();
        let (headers, body) = text.split_once("\r\n\r\n").unwrap();
        let body = match headers
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            true => dechunk(body),
            false => body.to_string(),
        };
        (status, body)
    }

    fn post(&self, command: &str, json: &str) -> (u16, String) {
        self.raw("POST", &format!("/api/{command}"), &[], json.as_bytes())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap();
        if n == 0 {
            break;
        }
        out += &rest[..n];
        body = &rest[n + 2..];
    }
    out
}

/// What `gpt2-inspect ARGS --json` prints.
fn printed(args: &[&str]) -> String {
    let out = cmd().args(args).arg("--json").output().unwrap();
    assert!(out.status.success(), "{args:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// Requests and the command lines that print the same.
fn pairs() -> Vec<(&'static str, &'static str, Vec<&'static str>)> {
    let clean = "The cat sat on the";
    let corrupt = "The dog sat on the";
    vec![
        (
            "tokenize",
            r#"{"text": "The cat sat"}"#,
            vec!["tokenize", "The cat sat"],
        ),
        (
            "next",
            r#"{"text": "The cat sat on the", "top_k": 3}"#,
            vec!["next", clean, "--top-k", "3"],
        ),
        (
            "next",
            r#"{"text": ["The cat", "A dog sat"], "top_k": 2}"#,
            vec!["next", "The cat", "A dog sat", "-k", "2"],
        ),
        (
            "next",
            r#"{"ids": [464, 3797], "prepend_bos": true}"#,
            vec!["next", "--ids", "464,3797", "--prepend-bos"],
        ),
        (
            "attention",
            r#"{"text": "The cat sat", "layer": 1, "head": 2}"#,
            vec!["attention", "The cat sat", "--layer", "1", "--head", "2"],
        ),
        (
            "attention",
            r#"{"text": "The cat sat", "layer": 0, "head": 1, "query": 2, "qkv": true}"#,
            vec![
                "attention",
                "The cat sat",
                "--layer",
                "0",
                "--head",
                "1",
                "--query",
                "2",
                "--qkv",
            ],
        ),
        ("trace", r#"{"text": "The cat"}"#, vec!["trace", "The cat"]),
        ("info", "{}", vec!["info"]),
        (
            "hooks",
            r#"{"seq_len": 4}"#,
            vec!["hooks", "--seq-len", "4"],
        ),
        (
            "attention",
            r#"{"text": "The cat sat", "layer": 1, "head": 3, "stages": true}"#,
            vec![
                "attention",
                "The cat sat",
                "--layer",
                "1",
                "--head",
                "3",
                "--stages",
            ],
        ),
        ("embed", r#"{"text": "The cat"}"#, vec!["embed", "The cat"]),
        (
            "hidden",
            r#"{"text": "The cat", "depth": "2"}"#,
            vec!["hidden", "The cat", "--depth", "2"],
        ),
        (
            "lens",
            r#"{"text": "The cat sat on", "all_positions": true}"#,
            vec!["lens", "The cat sat on", "--all-positions"],
        ),
        ("hooks", "{}", vec!["hooks"]),
        ("info", "", vec!["info"]),
        (
            "score",
            r#"{"text": "The cat sat on the mat"}"#,
            vec!["score", "The cat sat on the mat"],
        ),
        (
            "generate",
            r#"{"text": "The cat", "max_new_tokens": 5}"#,
            vec!["generate", "The cat", "-n", "5"],
        ),
        (
            "patch",
            r#"{"clean": "The cat sat on the", "corrupt": "The dog sat on the", "answer": " mat", "wrong": " rug", "site": "head"}"#,
            vec![
                "patch",
                "--clean",
                clean,
                "--corrupt",
                corrupt,
                "--answer",
                " mat",
                "--wrong",
                " rug",
                "--site",
                "head",
            ],
        ),
        (
            "circuit",
            r#"{"clean": "The cat sat on the", "corrupt": "The dog sat on the", "answer": " mat", "wrong": " rug", "top": 5, "faithfulness": [5, 20]}"#,
            vec![
                "circuit",
                "--clean",
                clean,
                "--corrupt",
                corrupt,
                "--answer",
                " mat",
                "--wrong",
                " rug",
                "--top",
                "5",
                "--faithfulness",
                "5,20",
            ],
        ),
        (
            "ablate",
            r#"{"text": "The cat sat on the", "head": ["1.2", "0.1"]}"#,
            vec!["ablate", clean, "--head", "1.2", "--head", "0.1"],
        ),
        (
            "attribute",
            r#"{"text": "The cat sat on the", "answer": " mat"}"#,
            vec!["attribute", clean, "--answer", " mat"],
        ),
        (
            "saliency",
            r#"{"text": "The cat sat on the", "method": "integrated-gradients", "steps": 8}"#,
            vec![
                "saliency",
                clean,
                "--method",
                "integrated-gradients",
                "--steps",
                "8",
            ],
        ),
        (
            "heads",
            r#"{"seq_len": 10, "seed": 3}"#,
            vec!["heads", "--seq-len", "10", "--seed", "3"],
        ),
    ]
}

/// The fixture SAE, as a path the server and the command line both read.
fn sae() -> String {
    crate::common::fixtures()
        .join("saes/standard")
        .display()
        .to_string()
}

#[test]
fn the_api_answers_what_the_command_line_prints() {
    let sae = sae();
    let tc = crate::common::fixtures()
        .join("graphs/clt")
        .display()
        .to_string();
    let server = Server::start_with(&["--sae", &sae, "--transcoders", &tc], &[]);
    let mut pairs: Vec<(&str, String, Vec<String>)> = (pairs().into_iter())
        .map(|(c, b, a)| (c, b.to_string(), a.iter().map(|s| s.to_string()).collect()))
        .collect();
    pairs.extend(sae_pairs(&sae));
    pairs.push((
        "graph",
        format!(r#"{{"text": "The cat sat", "transcoders": "{tc}", "max_feature_nodes": 40}}"#),
        ([
            "graph",
            "The cat sat",
            "--transcoders",
            &tc,
            "--max-feature-nodes",
            "40",
        ])
        .map(String::from)
        .to_vec(),
    ));
    pairs.push((
        "transcode",
        format!(r#"{{"text": "The cat sat", "transcoders": "{tc}", "per_token": 2}}"#),
        ([
            "transcode",
            "The cat sat",
            "--transcoders",
            &tc,
            "--per-token",
            "2",
        ])
        .map(String::from)
        .to_vec(),
    ));
    for (command, body, args) in &pairs {
        let (body, args) = (
            body.as_str(),
            args.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        let (status, answer) = server.post(command, body);
        assert_eq!(status, 200, "{command} {body}: {answer}");
        assert_eq!(answer, printed(&args), "{command} {body}");
    }
    // Only the transcoders the server was started with, and no file written.
    let (status, answer) = server.post("graph", r#"{"text": "The cat", "transcoders": "/tmp"}"#);
    assert_eq!(status, 400, "{answer}");
    assert!(answer.contains("this server serves"), "{answer}");
    let body = format!(r#"{{"text": "The cat", "transcoders": "{tc}", "raw": "x.st"}}"#);
    let (status, answer) = server.post("graph", &body);
    assert_eq!(status, 400, "{answer}");
    let (status, index) = server.raw("GET", "/api", &[], b"");
    assert_eq!(status, 200);
    let index: serde_json::Value = serde_json::from_str(&index).unwrap();
    assert_eq!(index["transcoders"][0], tc.as_str());
    let names: Vec<&str> = (index["commands"].as_array().unwrap().iter())
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(!names.contains(&"dump") && !names.contains(&"serve"));
    // Every command the API answers is compared above.
    for name in names {
        assert!(pairs.iter().any(|(c, _, _)| *c == name), "{name} untested");
    }
}

/// The commands a server started with `--sae` answers, against the command line.
fn sae_pairs(sae: &str) -> Vec<(&'static str, String, Vec<String>)> {
    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    vec![
        (
            "features",
            format!(r#"{{"text": "The cat sat", "sae": "{sae}", "per_token": 3}}"#),
            strings(&["features", "The cat sat", "--sae", sae, "--per-token", "3"]),
        ),
        (
            "feature",
            format!(r#"{{"features": [3, 5], "text": "The cat sat", "sae": "{sae}", "top_k": 4}}"#),
            strings(&["feature", "3,5", "The cat sat", "--sae", sae, "-k", "4"]),
        ),
        (
            "next",
            format!(r#"{{"text": "The cat sat", "sae": "{sae}", "steer": "3=5", "top_k": 3}}"#),
            strings(&[
                "next",
                "The cat sat",
                "--sae",
                sae,
                "--steer",
                "3=5",
                "-k",
                "3",
            ]),
        ),
    ]
}

#[test]
fn an_sae_the_server_was_not_started_with_is_refused() {
    let server = Server::start();
    let body = format!(r#"{{"text": "The cat", "sae": "{}"}}"#, sae());
    let (status, answer) = server.post("features", &body);
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer.contains("serves no SAE; start it with serve --sae DIR"),
        "{answer}"
    );
    let served = Server::start_with(&["--sae", &sae()], &[]);
    let (status, answer) = served.post("features", r#"{"text": "The cat", "sae": "/tmp"}"#);
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer.contains("this server serves") && answer.contains("saes/standard"),
        "{answer}"
    );
}

#[test]
fn downloads_are_what_the_command_line_writes() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let clean = "The cat sat on the";
    let patch = r#"{"clean": "The cat sat on the", "corrupt": "The dog sat on the", "answer": " mat", "site": "head"}"#;
    let patch_args = [
        "patch",
        "--clean",
        clean,
        "--corrupt",
        "The dog sat on the",
        "--answer",
        " mat",
        "--site",
        "head",
    ];
    for (form, flag) in [("csv", "--csv"), ("tsv", "--tsv")] {
        let (status, answer) = server.raw(
            "POST",
            &format!("/api/patch?as={form}"),
            &[],
            patch.as_bytes(),
        );
        assert_eq!(status, 200, "{answer}");
        let out = cmd().args(patch_args).arg(flag).output().unwrap();
        assert_eq!(answer, String::from_utf8(out.stdout).unwrap(), "{form}");
    }
    let figures: [(&str, &str, Vec<&str>); 3] = [
        (
            "attention",
            r#"{"text": "The cat sat", "layer": 1, "head": 0}"#,
            vec!["attention", "The cat sat", "--layer", "1", "--head", "0"],
        ),
        (
            "lens",
            r#"{"text": "The cat sat", "all_positions": true}"#,
            vec!["lens", "The cat sat", "--all-positions"],
        ),
        ("patch", patch, patch_args.to_vec()),
    ];
    for (command, body, args) in figures {
        let (status, answer) = server.raw(
            "POST",
            &format!("/api/{command}?as=svg"),
            &[],
            body.as_bytes(),
        );
        assert_eq!(status, 200, "{command}: {answer}");
        let file = dir.path().join(format!("{command}.svg"));
        let out = cmd()
            .args(&args)
            .arg("--svg")
            .arg(&file)
            .arg("--json")
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}");
        assert_eq!(answer, std::fs::read_to_string(&file).unwrap(), "{command}");
        assert!(
            answer.starts_with("<svg") || answer.starts_with("<?xml"),
            "{command}"
        );
    }
    let refused = [
        (
            "/api/tokenize?as=svg",
            r#"{"text": "a"}"#,
            "tokenize draws no figure",
        ),
        (
            "/api/next?as=xml",
            r#"{"text": "a"}"#,
            "?as=xml: ask as=json",
        ),
        (
            "/api/lens?as=svg",
            r#"{"text": "a"}"#,
            "required arguments were not provided: --all-positions",
        ),
    ];
    for (path, body, words) in refused {
        let (status, answer) = server.raw("POST", path, &[], body.as_bytes());
        assert_eq!(status, 400, "{path}: {answer}");
        assert!(answer.contains(words), "{path}: {answer}");
    }
}

/// The events of a `text/event-stream` answer: (event, data), in order.
fn events(body: &str) -> Vec<(String, String)> {
    body.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let mut kind = String::new();
            let mut data = Vec::new();
            for line in e.lines() {
                if let Some(k) = line.strip_prefix("event: ") {
                    kind = k.to_string();
                } else if let Some(d) = line.strip_prefix("data: ").or(line.strip_prefix("data:")) {
                    data.push(d);
                }
            }
            (kind, data.join("\n"))
        })
        .collect()
}

#[test]
fn events_stream_progress_and_tokens_then_the_result() {
    let server = Server::start();
    let stream = [("accept", "text/event-stream")];
    let body = br#"{"text": "The cat sat", "max_new_tokens": 6}"#;
    let (status, answer) = server.raw("POST", "/api/generate", &stream, body);
    assert_eq!(status, 200, "{answer}");
    let got = events(&answer);
    let generated = printed(&["generate", "The cat sat", "-n", "6"]);
    let report: serde_json::Value = serde_json::from_str(&generated).unwrap();
    let steps = report["steps"].as_array().unwrap();
    let tokens: Vec<serde_json::Value> = (got.iter())
        .filter(|(k, _)| k == "token")
        .map(|(_, d)| serde_json::from_str(d).unwrap())
        .collect();
    assert_eq!(&tokens, steps, "each token as the report has it, in order");
    assert_eq!(
        got.last().unwrap(),
        &("result".to_string(), generated.trim_end().to_string())
    );
    // Long work: its size first, then each pass done, then the result.
    let patch = br#"{"clean": "The cat sat on the", "corrupt": "The dog sat on the", "answer": " mat", "site": "pattern-dest-src"}"#;
    let (status, answer) = server.raw("POST", "/api/patch", &stream, patch);
    assert_eq!(status, 200, "{answer}");
    let got = events(&answer);
    assert_eq!(got[0].0, "start");
    let start: serde_json::Value = serde_json::from_str(&got[0].1).unwrap();
    let units = start["units"].as_u64().unwrap();
    assert!(units > 0 && start["what"] == "patched runs", "{start}");
    let last_progress = (got.iter().rev()).find(|(k, _)| k == "progress").unwrap();
    let last: serde_json::Value = serde_json::from_str(&last_progress.1).unwrap();
    assert_eq!(
        (last["done"].as_u64(), last["units"].as_u64()),
        (Some(units), Some(units))
    );
    let (kind, result) = got.last().unwrap();
    assert_eq!(kind, "result");
    let args = [
        "patch",
        "--clean",
        "The cat sat on the",
        "--corrupt",
        "The dog sat on the",
        "--answer",
        " mat",
        "--site",
        "pattern-dest-src",
    ];
    assert_eq!(result, printed(&args).trim_end());
    // A feature's pass over texts: the texts counted as they are done.
    let sae = sae();
    let served = Server::start_with(&["--sae", &sae], &[]);
    let body =
        format!(r#"{{"features": [3], "text": ["The cat", "A dog sat", "Hi"], "sae": "{sae}"}}"#);
    let (status, answer) = served.raw("POST", "/api/feature", &stream, body.as_bytes());
    assert_eq!(status, 200, "{answer}");
    let got = events(&answer);
    assert_eq!(
        got[0],
        ("start".into(), r#"{"units":3,"what":"texts"}"#.into())
    );
    let args = ["feature", "3", "The cat", "A dog sat", "Hi", "--sae", &sae];
    assert_eq!(got.last().unwrap().1, printed(&args).trim_end());
    // A failure is an event too, with the status the whole answer would have had.
    let (_, answer) = server.raw(
        "POST",
        "/api/attention",
        &stream,
        br#"{"text": "a", "layer": 9}"#,
    );
    let got = events(&answer);
    assert_eq!(got.len(), 1, "{answer}");
    let e: serde_json::Value = serde_json::from_str(&got[0].1).unwrap();
    assert_eq!(
        (got[0].0.as_str(), e["status"].as_u64()),
        ("error", Some(400))
    );
    assert!(e["error"].as_str().unwrap().contains("0 to"), "{e}");
}

/// A patch of every head's pattern entry on a 72-token pair: about 20 s of work.
fn long_patch() -> String {
    let clean = ["the cat sat on the mat"; 12].join(" ");
    let corrupt = ["the dog sat on the mat"; 12].join(" ");
    format!(
        r#"{{"clean": "{clean}", "corrupt": "{corrupt}", "site": "pattern-dest-src", "metric": "kl"}}"#
    )
}

#[test]
fn a_client_that_goes_away_stops_its_computation() {
    // One worker: the next request is answered only once the abandoned work has stopped.
    let server = Server::start_with(&["--workers", "1"], &[]);
    let body = long_patch();
    for accept in ["application/json", "text/event-stream"] {
        let mut s = TcpStream::connect(&server.addr).unwrap();
        let head = format!(
            "POST /api/patch HTTP/1.1\r\nHost: {}\r\nAccept: {accept}\r\nContent-Length: {}\r\n\r\n",
            server.addr,
            body.len()
        );
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(body.as_bytes()).unwrap();
        std::thread::sleep(Duration::from_millis(800));
        drop(s);
        let t = Instant::now();
        let (status, _) = server.post("tokenize", r#"{"text": "a"}"#);
        assert_eq!(status, 200);
        // The whole patch takes about 20 s; one of its passes well under a second.
        assert!(
            t.elapsed() < Duration::from_secs(8),
            "{accept}: waited {:?}",
            t.elapsed()
        );
    }
}

#[test]
fn slow_headers_are_cut_off_and_block_no_one() {
    let server = Server::start();
    let mut slow = TcpStream::connect(&server.addr).unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: ").unwrap();
    let t = Instant::now();
    // Others are served meanwhile.
    let (status, _) = server.post("tokenize", r#"{"text": "a"}"#);
    assert_eq!(status, 200);
    slow.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut buf = Vec::new();
    let read = slow.read_to_end(&mut buf);
    let waited = t.elapsed();
    assert!(
        read.is_ok(),
        "the connection is closed, not left open: {read:?}"
    );
    assert!(
        waited >= Duration::from_secs(4) && waited < Duration::from_secs(15),
        "closed after {waited:?}"
    );
}

/// A request: method, path, headers and body.
type Req<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>, &'a [u8]);

#[test]
fn hostile_requests_are_refused_in_the_command_lines_words_and_serving_goes_on() {
    let server = Server::start();
    // Declared over the limit: refused before a byte of it is read (none is sent).
    let big = ((1 << 20) + 1).to_string();
    let cases: Vec<(u16, Req, &str)> = vec![
        (
            400,
            ("POST", "/api/next", vec![], b"{bad"),
            "not valid JSON",
        ),
        (
            400,
            ("POST", "/api/next", vec![], b"[1]"),
            "must be a JSON object",
        ),
        (
            400,
            ("POST", "/api/next", vec![], br#"{"text": "a", "nope": 1}"#),
            "unknown option \"nope\"",
        ),
        (
            400,
            (
                "POST",
                "/api/next",
                vec![],
                br#"{"text": "a", "top_k": "x"}"#,
            ),
            "invalid value 'x'",
        ),
        (
            400,
            (
                "POST",
                "/api/attention",
                vec![],
                br#"{"text": "a b", "layer": 9}"#,
            ),
            "has layers 0 to 2",
        ),
        (
            400,
            ("POST", "/api/next", vec![], br#"{"text": "-"}"#),
            "standard input",
        ),
        (400, ("POST", "/api/next", vec![], b"{}"), "needs \"text\""),
        (
            400,
            (
                "POST",
                "/api/next",
                vec![],
                br#"{"text": "a", "svg": "/tmp/x.svg"}"#,
            ),
            "svg: ask POST /api/COMMAND?as=svg",
        ),
        (
            400,
            (
                "POST",
                "/api/lens",
                vec![],
                br#"{"text": "a", "lens": "tuned:/etc"}"#,
            ),
            "--lens tuned:/etc: this server serves logit",
        ),
        (
            400,
            (
                "POST",
                "/api/next",
                vec![],
                br#"{"text": "a", "jlens": "/etc/passwd", "steer_token": " Paris=3", "at": 1}"#,
            ),
            "--lens jlens:/etc/passwd: this server serves logit",
        ),
        (
            400,
            ("POST", "/api/score", vec![], br#"{"file": "/etc/passwd"}"#),
            "reads no file",
        ),
        (
            400,
            (
                "POST",
                "/api/next",
                vec![],
                br#"{"text": "a", "model": "gpt2"}"#,
            ),
            "when the server starts",
        ),
        (
            422,
            (
                "POST",
                "/api/next",
                vec![],
                format!(r#"{{"text": "{}"}}"#, "word ".repeat(1100))
                    .leak()
                    .as_bytes(),
            ),
            "sees at most 1024",
        ),
        (404, ("POST", "/api/nope", vec![], b"{}"), "unknown command"),
        (404, ("GET", "/nowhere", vec![], b""), "no such page"),
        (405, ("GET", "/api/next", vec![], b""), "POST a JSON object"),
        (
            413,
            (
                "POST",
                "/api/next",
                vec![("Content-Length", big.as_str())],
                b"",
            ),
            "over 1048576 bytes",
        ),
        (
            403,
            (
                "POST",
                "/api/next",
                vec![("Host", "evil.example:80")],
                b"{}",
            ),
            "answers requests for",
        ),
        (
            403,
            ("GET", "/", vec![("Host", "attacker.test")], b""),
            "answers requests for",
        ),
        (
            403,
            (
                "POST",
                "/api/next",
                vec![("Origin", "http://evil.example")],
                br#"{"text": "a"}"#,
            ),
            "cross-origin",
        ),
    ];
    for (status, (method, path, headers, body), words) in cases {
        let (got, answer) = server.raw(method, path, &headers, body);
        assert_eq!(got, status, "{method} {path}: {answer}");
        let v: serde_json::Value = serde_json::from_str(&answer).expect("a JSON error");
        let message = v["error"].as_str().unwrap();
        assert!(message.contains(words), "{method} {path}: {message}");
        assert!(!message.contains('\n'), "one line: {message}");
    }
    // A client that vanishes mid-body blocks no one.
    let mut gone = TcpStream::connect(&server.addr).unwrap();
    let head = format!(
        "POST /api/next HTTP/1.1\r\nHost: {}\r\nContent-Length: 100\r\n\r\n{{\"te",
        server.addr
    );
    gone.write_all(head.as_bytes()).unwrap();
    drop(gone);
    let (status, _) = server.post("next", r#"{"text": "The cat"}"#);
    assert_eq!(status, 200, "still serving");
    // The page: offline, with a policy that allows nothing from elsewhere.
    let (status, page) = server.raw("GET", "/", &[], b"");
    assert_eq!(status, 200);
    // SVG's namespace is a name, not an address: the browser test watches the requests.
    let page = page.replace("\"http://www.w3.org/2000/svg\"", "");
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "nothing fetched from elsewhere"
    );
}

#[test]
fn many_clients_at_once_get_what_each_gets_alone() {
    let server = Server::start();
    let requests: Vec<(&str, &str)> = pairs()
        .into_iter()
        .filter(|(c, _, _)| {
            [
                "next",
                "attention",
                "lens",
                "score",
                "attribute",
                "tokenize",
            ]
            .contains(c)
        })
        .map(|(c, b, _)| (c, b))
        .collect();
    let alone: Vec<String> = requests.iter().map(|(c, b)| server.post(c, b).1).collect();
    let started = Instant::now();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..3)
            .flat_map(|_| requests.iter().enumerate())
            .map(|(i, (c, b))| {
                let server = &server;
                s.spawn(move || (i, server.post(c, b)))
            })
            .collect();
        for h in handles {
            let (i, (status, answer)) = h.join().unwrap();
            // A full queue answers 503; every answer given equals the one alone.
            match status {
                200 => assert_eq!(answer, alone[i], "request {i}"),
                503 => assert!(answer.contains("busy")),
                other => panic!("status {other}: {answer}"),
            }
        }
    });
    assert!(started.elapsed() < Duration::from_secs(300));
}

#[cfg(unix)]
#[test]
fn sigterm_stops_the_server_with_143() {
    let mut server = Server::start();
    let (status, _) = server.post("tokenize", r#"{"text": "a"}"#);
    assert_eq!(status, 200);
    let pid = server.child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let code = loop {
        if let Some(s) = server.child.try_wait().unwrap() {
            break s.code();
        }
        assert!(Instant::now() < deadline, "the server did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(code, Some(143));
}

/// `serve --open` hands the URL it prints to the browser (`$BROWSER` here, a script that
/// writes its argument down), and a browser that cannot start leaves the server serving.
#[test]
fn open_hands_the_url_to_the_browser() {
    let scratch = crate::common::Scratch::new("serve-open");
    let (script, seen) = (scratch.0.join("browser.sh"), scratch.0.join("seen"));
    std::fs::write(
        &script,
        format!("#!/bin/sh\necho \"$1\" > '{}'\n", seen.display()),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let server = Server::start_with(&["--open"], &[("BROWSER", script.to_str().unwrap())]);
    let start = Instant::now();
    while !seen.exists() && start.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(100));
    let got = std::fs::read_to_string(&seen).expect("the browser was started");
    assert_eq!(got.trim(), format!("http://{}/", server.addr));
    let missing = Server::start_with(&["--open"], &[("BROWSER", "/nonexistent/browser")]);
    let (status, _) = missing.raw("GET", "/", &[], b"");
    assert_eq!(status, 200, "still serving without a browser");
}

/// The status line and headers of `GET path`, lower-cased.
fn headers_of(server: &Server, path: &str, origin: Option<&str>) -> String {
    let mut s = TcpStream::connect(&server.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let origin = origin
        .map(|o| format!("Origin: {o}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\n{origin}Connection: close\r\n\r\n",
        server.addr
    );
    s.write_all(head.as_bytes()).unwrap();
    let mut response = Vec::new();
    let _ = s.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response).to_ascii_lowercase();
    text.split("\r\n\r\n").next().unwrap().to_string()
}

#[test]
fn the_page_allows_nothing_from_elsewhere_and_shares_with_no_site() {
    let server = Server::start();
    let page = headers_of(&server, "/", Some("http://evil.example"));
    assert!(page.starts_with("http/1.1 200"), "{page}");
    let csp = (page.lines())
        .find_map(|l| l.strip_prefix("content-security-policy: "))
        .expect("a Content-Security-Policy");
    for rule in [
        "default-src 'none'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(rule), "{csp}");
    }
    assert!(!csp.contains("http"), "no other host allowed: {csp}");
    for path in ["/", "/api"] {
        let h = headers_of(&server, path, Some("http://evil.example"));
        assert!(!h.contains("access-control-allow-origin"), "{path}: {h}");
        assert!(h.contains("x-content-type-options: nosniff"), "{path}: {h}");
    }
}

#[test]
fn a_body_that_never_finishes_is_answered_408_and_blocks_no_one() {
    let server = Server::start();
    let mut slow = TcpStream::connect(&server.addr).unwrap();
    let head = format!(
        "POST /api/next HTTP/1.1\r\nHost: {}\r\nContent-Length: 100\r\n\r\n{{\"text\": ",
        server.addr
    );
    slow.write_all(head.as_bytes()).unwrap();
    let t = Instant::now();
    let (status, _) = server.post("tokenize", r#"{"text": "a"}"#);
    assert_eq!(status, 200, "others are served meanwhile");
    slow.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut response = Vec::new();
    let _ = slow.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("the request body took too long"), "{text}");
    assert!(t.elapsed() < Duration::from_secs(25), "{:?}", t.elapsed());
}
