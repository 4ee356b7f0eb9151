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

#[test]
fn the_api_answers_what_the_command_line_prints() {
    let server = Server::start();
    for (command, body, args) in pairs() {
        let (status, answer) = server.post(command, body);
        assert_eq!(status, 200, "{command} {body}: {answer}");
        assert_eq!(answer, printed(&args), "{command} {body}");
    }
    let (status, index) = server.raw("GET", "/api", &[], b"");
    assert_eq!(status, 200);
    let index: serde_json::Value = serde_json::from_str(&index).unwrap();
    let names: Vec<&str> = (index["commands"].as_array().unwrap().iter())
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"next") && names.contains(&"circuit") && !names.contains(&"dump"));
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
            "writes no file",
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
