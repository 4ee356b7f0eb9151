//! Downloads from a hub on 127.0.0.1 ([`crate::common::hub_server`]) into an empty cache: the
//! first run downloads, the second is served from the cache without a request, offline
//! works afterwards, revisions resolve, and Python's `huggingface_hub` shares the cache.
//! Then every way a server can misbehave: one clear line (exit 1), nothing half-made in
//! the cache or outside it, and the next run against a good server succeeds.

use std::path::{Path, PathBuf};
use std::process::{Command as Std, Output};
use std::time::{Duration, Instant};

use crate::common::hub_server::{Fault, HubServer, COMMIT_MAIN, COMMIT_V1, REPO};
use crate::common::{model_dir, Scratch};

const TEXT: &str = "The cat sat on the mat";

/// The binary against `endpoint` with the cache under `home`; timeouts of 1 s.
fn run(endpoint: &str, home: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = assert_cmd::Command::cargo_bin("gpt2-inspect").unwrap();
    c.env_remove("HF_HUB_CACHE")
        .env_remove("HF_TOKEN")
        .env_remove("HF_HUB_OFFLINE")
        .env("HF_HOME", home)
        .env("HF_ENDPOINT", endpoint)
        .env("HF_HUB_ETAG_TIMEOUT", "1")
        .env("HF_HUB_DOWNLOAD_TIMEOUT", "1")
        .timeout(Duration::from_secs(60))
        .args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok(o: &Output) -> serde_json::Value {
    assert!(o.status.success(), "{}", stderr(o));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// Exit 1 with one `error:` line that holds every needle, no panic.
fn failed(o: &Output, needles: &[&str]) -> String {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "one error line: {err}");
    for n in needles {
        assert!(errors[0].contains(n), "error lacks {n:?}: {err}");
    }
    err
}

fn repo_dir(home: &Path) -> PathBuf {
    home.join("hub")
        .join(format!("models--{}", REPO.replace('/', "--")))
}

/// What `next` prints for the fixture read from its directory: the reference for runs
/// that read it from the cache.
fn local_next() -> serde_json::Value {
    crate::common::json(&["next", TEXT])
}

fn same_numbers(a: &serde_json::Value, b: &serde_json::Value) {
    assert_eq!(a["predictions"], b["predictions"]);
    assert_eq!(a["input_ids"], b["input_ids"]);
}

/// Every file below `dir`, as paths relative to it.
fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() && !p.is_symlink() {
                stack.push(p.clone());
            }
            out.push(p.strip_prefix(dir).unwrap().display().to_string());
        }
    }
    out.sort();
    out
}

#[test]
fn download_then_cache_then_offline() {
    let server = HubServer::start(&model_dir(), Fault::None);
    let home = Scratch::new("hub-home");
    let args = ["--json", "next", TEXT];
    let first = run(&server.endpoint, &home.0, &args, &[]);
    same_numbers(&ok(&first), &local_next());
    assert!(stderr(&first).contains("downloading model.safetensors"));
    // Not a terminal: plain lines, no progress bar's carriage returns or escapes.
    assert!(stderr(&first).contains("downloaded model.safetensors"));
    assert!(
        !stderr(&first).contains(['\r', '\x1b']),
        "{:?}",
        stderr(&first)
    );

    // The layout Python's huggingface_hub keeps.
    let repo = repo_dir(&home.0);
    let commit = std::fs::read_to_string(repo.join("refs/main")).unwrap();
    assert_eq!(commit, COMMIT_MAIN);
    let etag = HubServer::etag(&model_dir(), "model.safetensors");
    let link = repo
        .join("snapshots")
        .join(COMMIT_MAIN)
        .join("model.safetensors");
    assert_eq!(
        std::fs::read_link(&link).unwrap(),
        Path::new("../../blobs").join(&etag)
    );
    assert_eq!(
        std::fs::read(&link).unwrap(),
        std::fs::read(model_dir().join("model.safetensors")).unwrap()
    );
    let leftovers: Vec<String> = tree(&repo)
        .into_iter()
        .filter(|p| p.ends_with(".incomplete") || p.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // From the cache: no request at all.
    let asked = server.requests();
    let second = run(&server.endpoint, &home.0, &args, &[]);
    same_numbers(&ok(&second), &local_next());
    assert_eq!(server.requests(), asked, "{:?}", server.log());
    assert!(!stderr(&second).contains("downloading"));

    // Offline, with the hub gone.
    drop(server);
    let offline = run(
        "http://127.0.0.1:9",
        &home.0,
        &args,
        &[("HF_HUB_OFFLINE", "1")],
    );
    same_numbers(&ok(&offline), &local_next());
    // A commit hash as the revision names its snapshot directly.
    let pinned = run(
        "http://127.0.0.1:9",
        &home.0,
        &["--revision", COMMIT_MAIN, "--json", "next", TEXT],
        &[("HF_HUB_OFFLINE", "1")],
    );
    same_numbers(&ok(&pinned), &local_next());
}

#[test]
fn revisions_resolve_to_their_commit() {
    let server = HubServer::start(&model_dir(), Fault::None);
    let home = Scratch::new("hub-revision");
    let o = run(
        &server.endpoint,
        &home.0,
        &["--revision", "v1", "--json", "next", TEXT],
        &[],
    );
    let v = ok(&o);
    same_numbers(&v, &local_next());
    // Every JSON object names the commit the revision resolved to.
    assert_eq!(v["revision"], COMMIT_V1);
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    let repo = repo_dir(&home.0);
    assert_eq!(
        std::fs::read_to_string(repo.join("refs/v1")).unwrap(),
        COMMIT_V1
    );
    assert!(repo
        .join("snapshots")
        .join(COMMIT_V1)
        .join("config.json")
        .is_file());
    // The blob is shared: the second revision downloads no weights again.
    let o = run(&server.endpoint, &home.0, &["--json", "next", TEXT], &[]);
    ok(&o);
    assert!(
        !stderr(&o).contains("downloading model.safetensors"),
        "{}",
        stderr(&o)
    );
    // A revision the hub does not know, and one that would climb out of the cache.
    let o = run(
        &server.endpoint,
        &home.0,
        &["--revision", "nope", "next", TEXT],
        &[],
    );
    failed(&o, &["no such revision", "--revision"]);
    let o = run(
        &server.endpoint,
        &home.0,
        &["--revision", "../../x", "next", TEXT],
        &[],
    );
    failed(&o, &["not a branch, tag or commit"]);
}

/// `huggingface_hub` from PyPI, when it is installed (.ci/run installs it and sets
/// GPT2_INSPECT_REQUIRE_PYTHON_HUB=1, so there the test cannot skip).
fn python_hub() -> Option<PathBuf> {
    let python = std::env::var("GPT2_INSPECT_PYTHON").unwrap_or("python3".into());
    let works = Std::new(&python)
        .args(["-c", "import huggingface_hub"])
        .output()
        .is_ok_and(|o| o.status.success());
    if works {
        return Some(PathBuf::from(python));
    }
    assert!(
        std::env::var_os("GPT2_INSPECT_REQUIRE_PYTHON_HUB").is_none(),
        "huggingface_hub is required here but {python} cannot import it"
    );
    eprintln!("skipped: {python} has no huggingface_hub (pip install huggingface_hub)");
    None
}

#[test]
fn python_huggingface_hub_shares_the_cache() {
    let Some(python) = python_hub() else { return };
    let server = HubServer::start(&model_dir(), Fault::None);

    // We download; Python finds every file without the network.
    let ours = Scratch::new("hub-ours");
    ok(&run(
        &server.endpoint,
        &ours.0,
        &["--json", "next", TEXT],
        &[],
    ));
    let script = format!(
        "from huggingface_hub import try_to_load_from_cache as t\n\
         for f in ['config.json', 'tokenizer.json', 'model.safetensors']:\n\
         \x20   p = t('{REPO}', f)\n\
         \x20   assert isinstance(p, str), (f, p)\n\
         \x20   print(p)\n"
    );
    let o = Std::new(&python)
        .args(["-c", &script])
        .env("HF_HOME", &ours.0)
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout).lines().count(), 3);

    // Python downloads from the same server; we run offline on what it cached.
    let theirs = Scratch::new("hub-theirs");
    let script = format!(
        "from huggingface_hub import hf_hub_download as d\n\
         for f in ['config.json', 'tokenizer.json', 'model.safetensors']:\n\
         \x20   d('{REPO}', f)\n"
    );
    let o = Std::new(&python)
        .args(["-c", &script])
        .env("HF_HOME", &theirs.0)
        .env("HF_ENDPOINT", &server.endpoint)
        .env_remove("HF_HUB_OFFLINE")
        .env("HF_HUB_DISABLE_XET", "1")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = run(
        "http://127.0.0.1:9",
        &theirs.0,
        &["--json", "next", TEXT],
        &[("HF_HUB_OFFLINE", "1")],
    );
    same_numbers(&ok(&o), &local_next());
}

/// A faulty server: the run fails in bounded time with one line, no blob or snapshot is
/// made, nothing appears outside the cache, and a good server then succeeds.
fn fault_case(fault: Fault, needles: &[&str]) -> (Scratch, String) {
    let home = Scratch::new(&format!("hub-fault-{fault:?}").replace([' ', '(', ')', ',', '"'], ""));
    let server = HubServer::start(&model_dir(), fault);
    let started = Instant::now();
    let o = run(&server.endpoint, &home.0, &["--json", "next", TEXT], &[]);
    let err = failed(&o, needles);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{fault:?} took {:?}",
        started.elapsed()
    );
    drop(server);
    let repo = repo_dir(&home.0);
    let stored: Vec<String> = tree(&repo)
        .into_iter()
        .filter(|p| p.starts_with("snapshots/") && p.ends_with("model.safetensors"))
        .collect();
    assert!(stored.is_empty(), "{fault:?} stored {stored:?}");
    for evil in [
        "/tmp/gpt2-inspect-evil-commit",
        "/tmp/gpt2-inspect-evil-etag",
    ] {
        assert!(!Path::new(evil).exists(), "{fault:?} wrote {evil}");
    }
    let good = HubServer::start(&model_dir(), Fault::None);
    let o = run(&good.endpoint, &home.0, &["--json", "next", TEXT], &[]);
    same_numbers(&ok(&o), &local_next());
    (home, err)
}

#[test]
fn a_server_that_never_answers_times_out() {
    fault_case(Fault::Hang, &["no answer from", "within 1 s"]);
}

#[test]
fn a_body_that_stalls_times_out_and_resumes() {
    let (home, _) = fault_case(
        Fault::StallBody,
        &["sent nothing for 1 s", "run the command again"],
    );
    drop(home);
}

#[test]
fn a_body_that_never_ends_stops_at_the_announced_size() {
    // Zeros past the size: what arrived is cut at the size, fails its sha256, is discarded.
    fault_case(
        Fault::Endless,
        &["model.safetensors was discarded", "content hash"],
    );
}

#[test]
fn a_truncated_body_is_resumed_not_stored() {
    fault_case(
        Fault::Truncated,
        &["broke off after", "run the command again"],
    );
}

#[test]
fn a_garbage_partial_file_is_discarded() {
    let server = HubServer::start(&model_dir(), Fault::None);
    let home = Scratch::new("hub-garbage");
    // config.json first, so the blobs directory exists; then plant the garbage.
    ok(&run(
        &server.endpoint,
        &home.0,
        &["--json", "tokenize", TEXT],
        &[],
    ));
    let etag = HubServer::etag(&model_dir(), "model.safetensors");
    let blobs = repo_dir(&home.0).join("blobs");
    std::fs::write(blobs.join(format!("{etag}.incomplete")), vec![7u8; 1000]).unwrap();
    let o = run(&server.endpoint, &home.0, &["--json", "next", TEXT], &[]);
    same_numbers(&ok(&o), &local_next());
    assert!(stderr(&o).contains("did not verify"), "{}", stderr(&o));
    assert!(!blobs.join(format!("{etag}.incomplete")).exists());
}

#[test]
fn redirects_without_location_and_hostile_hashes_are_refused() {
    fault_case(Fault::NoLocation, &["without a Location header"]);
    fault_case(
        Fault::EvilCommit,
        &["commit hash that is not 40 hex digits"],
    );
    fault_case(Fault::EvilEtag, &["etag that is not a content hash"]);
}

#[test]
fn http_errors_say_what_to_do() {
    for (fault, needles) in [
        (
            Fault::Status(401, "RepoNotFound"),
            vec!["no such repository", "HF_TOKEN"],
        ),
        (Fault::Status(403, "GatedRepo"), vec!["gated", "HF_TOKEN"]),
        (
            Fault::Status(404, "EntryNotFound"),
            vec!["has no file config.json"],
        ),
        (Fault::Status(503, ""), vec!["HTTP 503", "try again later"]),
    ] {
        let server = HubServer::start(&model_dir(), fault);
        let home = Scratch::new("hub-status");
        let o = run(&server.endpoint, &home.0, &["next", TEXT], &[]);
        failed(&o, &needles);
    }
}

#[test]
fn no_home_directory_asks_for_hf_home() {
    // A uid without a passwd entry and no HOME, as `docker run --user 12345`.
    let setpriv = Path::new("/usr/bin/setpriv");
    let root = Std::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout == b"0\n");
    if !root || !setpriv.exists() {
        eprintln!("skipped: needs root and setpriv to run as a uid without a passwd entry");
        return;
    }
    let bin = assert_cmd::cargo::cargo_bin("gpt2-inspect");
    let o = Std::new(setpriv)
        .args(["--reuid", "54321", "--regid", "54321", "--clear-groups"])
        .arg(&bin)
        .args(["next", "hi"])
        .env_clear()
        .env("HF_ENDPOINT", "http://127.0.0.1:9")
        .output()
        .unwrap();
    failed(&o, &["HF_HOME"]);
}

/// A directory holding the tokenizer, the formats fixture's config.json and the files of
/// the format directories `weights`.
fn format_repo(scratch: &Scratch, name: &str, weights: &[&str]) -> PathBuf {
    let dir = scratch.model(name, &["tokenizer.json"]);
    let formats = crate::common::fixtures().join("formats");
    std::fs::copy(formats.join("config.json"), dir.join("config.json")).unwrap();
    for w in weights {
        for f in std::fs::read_dir(formats.join(w)).unwrap() {
            let f = f.unwrap().path();
            std::fs::copy(&f, dir.join(f.file_name().unwrap())).unwrap();
        }
    }
    dir
}

const FORMAT_TEXT: &str = "The man said that he would not be there";

/// A repository with only pytorch_model.bin (as many fine-tunes' main branches), one with
/// sharded safetensors, and a conversion branch `refs/pr/1` with model.safetensors: each
/// picked in transformers' order, only the shards the index names fetched, and the next run
/// served from the cache without a request (the formats not held are remembered as Python
/// remembers them, in `.no_exist`).
#[test]
fn torch_checkpoints_shards_and_conversion_branches_from_the_hub() {
    let s = Scratch::new("hub-formats");
    let bin = format_repo(&s, "bin", &["bin"]);
    let sharded = format_repo(&s, "sharded", &["sharded-safetensors"]);
    // A stray shard the index does not name must not be fetched.
    std::fs::copy(
        sharded.join("model-00001-of-00003.safetensors"),
        sharded.join("model-00009-of-00009.safetensors"),
    )
    .unwrap();
    let pr = format_repo(&s, "pr", &["safetensors"]);
    let pr_commit = "3333333333333333333333333333333333333333";
    let server = HubServer::start_repos(
        &[
            ("tiny/bin-only", "main", COMMIT_MAIN, &bin),
            ("tiny/sharded", "main", COMMIT_MAIN, &sharded),
            ("tiny/bin-only", "refs/pr/1", pr_commit, &pr),
        ],
        Fault::None,
    );
    let home = Scratch::new("hub-formats-home");
    let want = crate::common::json_on(&bin, &["next", FORMAT_TEXT]);
    for (repo, revision, format) in [
        ("tiny/bin-only", "main", "torch zip (torch.save)"),
        ("tiny/sharded", "main", "sharded safetensors"),
        ("tiny/bin-only", "refs/pr/1", "safetensors"),
    ] {
        let model = ["--model", repo, "--revision", revision, "--json"];
        let info = ok(&run(
            &server.endpoint,
            &home.0,
            &[&model[..], &["info"]].concat(),
            &[],
        ));
        assert_eq!(info["format"], format, "{repo}@{revision}");
        let next = [&model[..], &["next", FORMAT_TEXT]].concat();
        same_numbers(&ok(&run(&server.endpoint, &home.0, &next, &[])), &want);
        let before = server.requests();
        same_numbers(&ok(&run(&server.endpoint, &home.0, &next, &[])), &want);
        assert_eq!(
            server.requests(),
            before,
            "{repo}@{revision}: the second run asks nothing"
        );
        let offline = [("HF_HUB_OFFLINE", "1")];
        same_numbers(&ok(&run(&server.endpoint, &home.0, &next, &offline)), &want);
    }
    let log = server.log();
    assert!(!log.iter().any(|l| l.contains("model-00009")), "{log:?}");
    for shard in 1..=3 {
        let name = format!("tiny/sharded/resolve/main/model-0000{shard}-of-00003.safetensors");
        assert!(log.iter().any(|l| l.contains(&name)), "{name}: {log:?}");
    }
    let probes: Vec<&String> = log
        .iter()
        .filter(|l| l.ends_with("bin-only/resolve/main/model.safetensors"))
        .collect();
    assert_eq!(
        probes.len(),
        1,
        "one request for a file the repository lacks: {log:?}"
    );
    let marker = home
        .0
        .join("hub/models--tiny--bin-only/.no_exist")
        .join(COMMIT_MAIN)
        .join("model.safetensors");
    assert!(marker.is_file(), "{}", marker.display());
}

/// `--sae ORG/NAME/FOLDER`: an SAE in a folder of a hub repository (as SAELens's releases
/// are), fetched through the same cache, then served from it without a request.
#[test]
fn saes_come_from_a_hub_repository_folder() {
    let s = Scratch::new("hub-sae");
    let folder = s.0.join("repo").join("blocks.1.hook_resid_pre");
    std::fs::create_dir_all(&folder).unwrap();
    let local = crate::common::fixtures().join("saes/topk");
    for f in ["cfg.json", "sae_weights.safetensors"] {
        std::fs::copy(local.join(f), folder.join(f)).unwrap();
    }
    // A second folder with a sparsity.safetensors.
    let standard = s.0.join("repo").join("standard");
    std::fs::create_dir_all(&standard).unwrap();
    let with_sparsity = crate::common::fixtures().join("saes/standard");
    for f in [
        "cfg.json",
        "sae_weights.safetensors",
        "sparsity.safetensors",
    ] {
        std::fs::copy(with_sparsity.join(f), standard.join(f)).unwrap();
    }
    let server = HubServer::start_repos(
        &[
            (REPO, "main", COMMIT_MAIN, &model_dir()),
            ("someone/tiny-saes", "main", COMMIT_MAIN, &s.0.join("repo")),
        ],
        Fault::None,
    );
    let home = Scratch::new("hub-sae-home");
    let want = crate::common::json(&["features", TEXT, "--sae", local.to_str().unwrap()]);
    let args = [
        "--json",
        "features",
        TEXT,
        "--sae",
        "someone/tiny-saes/blocks.1.hook_resid_pre",
    ];
    let got = ok(&run(&server.endpoint, &home.0, &args, &[]));
    for field in ["features", "l0", "mse", "ce_spliced"] {
        assert_eq!(got[field], want[field], "{field}");
    }
    let before = server.requests();
    ok(&run(&server.endpoint, &home.0, &args, &[]));
    assert_eq!(server.requests(), before, "the second run asks nothing");
    let log = server.log();
    assert!(
        log.iter()
            .any(|l| l.contains("someone/tiny-saes/resolve/main/blocks.1.hook_resid_pre/cfg.json")),
        "{log:?}"
    );
    // sparsity.safetensors is fetched when the folder has it (and its absence above is
    // remembered: the second run asked nothing).
    let local = crate::common::fixtures().join("saes/standard");
    let want = crate::common::json(&["feature", "3,9", "--sae", local.to_str().unwrap()]);
    let args = [
        "--json",
        "feature",
        "3,9",
        "--sae",
        "someone/tiny-saes/standard",
    ];
    let got = ok(&run(&server.endpoint, &home.0, &args, &[]));
    for f in 0..2 {
        let d = &got["features"][f]["log10_training_density"];
        assert!(d.is_number() && *d == want["features"][f]["log10_training_density"]);
    }
    let bad = [
        "--json",
        "features",
        TEXT,
        "--sae",
        "someone/tiny-saes/../x",
    ];
    failed(
        &run(&server.endpoint, &home.0, &bad, &[]),
        &["--sae", "no such directory"],
    );
}

/// Lenses from the hub, as SAEs are: a Jacobian lens's file at a path in a repository
/// (`jlens:ORG/NAME/PATH`) and a tuned lens's folder (`tuned:ORG/NAME/FOLDER`), fetched once
/// into the cache and read as the same files on disk are; a second run asks nothing.
#[test]
fn lenses_come_from_the_hub_through_the_cache() {
    let fixtures = model_dir().parent().unwrap().to_path_buf();
    let repo = Scratch::new("hub-lens-repo");
    let jdir = repo.0.join("gpt2-small/jlens");
    std::fs::create_dir_all(&jdir).unwrap();
    std::fs::copy(
        fixtures.join("lenses/jlens/tl-default.pt"),
        jdir.join("lens.pt"),
    )
    .unwrap();
    let tdir = repo.0.join("lens/tiny");
    std::fs::create_dir_all(&tdir).unwrap();
    for f in ["config.json", "params.pt"] {
        std::fs::copy(fixtures.join("lenses/tuned").join(f), tdir.join(f)).unwrap();
    }
    let server = HubServer::start_repos(
        &[
            (REPO, "main", COMMIT_MAIN, &model_dir()),
            ("lenses/jacobian-lens", "main", COMMIT_MAIN, &repo.0),
        ],
        Fault::None,
    );
    let home = Scratch::new("hub-lens-home");
    let model = model_dir().display().to_string();
    let cases = [
        (
            "jlens:lenses/jacobian-lens/gpt2-small/jlens/lens.pt",
            format!(
                "jlens:{}",
                fixtures.join("lenses/jlens/tl-default.pt").display()
            ),
        ),
        (
            "tuned:lenses/jacobian-lens/lens/tiny",
            format!("tuned:{}", fixtures.join("lenses/tuned").display()),
        ),
    ];
    for (hub, local) in cases {
        let args = |lens: &str| {
            let lens = lens.to_string();
            vec![
                "--model".to_string(),
                model.clone(),
                "--json".into(),
                "lens".into(),
                TEXT.into(),
                "--lens".into(),
                lens,
            ]
        };
        let from_hub = args(hub);
        let from_hub: Vec<&str> = from_hub.iter().map(String::as_str).collect();
        let got = ok(&run(&server.endpoint, &home.0, &from_hub, &[]));
        let on_disk = args(&local);
        let on_disk: Vec<&str> = on_disk.iter().map(String::as_str).collect();
        // json_on adds --model and --json itself.
        let want = crate::common::json_on(&model_dir(), &on_disk[3..]);
        assert_eq!(got["depths"], want["depths"], "{hub}");
        let before = server.requests();
        ok(&run(&server.endpoint, &home.0, &from_hub, &[]));
        assert_eq!(
            server.requests(),
            before,
            "{hub}: the second run asks nothing"
        );
    }
    let missing = [
        "--model",
        &model,
        "lens",
        TEXT,
        "--lens",
        "jlens:lenses/jacobian-lens/none.pt",
    ];
    failed(
        &run(&server.endpoint, &home.0, &missing, &[]),
        &["--lens jlens:lenses/jacobian-lens/none.pt"],
    );
}

/// `graph --transcoders ORG/NAME/FOLDER`: a transcoder set in a hub repository's folder (its
/// config.yaml, then each layer's file), fetched through the same cache and served from it
/// the second time; the same graph as from the local folder, its scan named as
/// circuit-tracer names a hub set's.
#[test]
fn transcoders_come_from_a_hub_repository() {
    let s = Scratch::new("hub-tc");
    let folder = s.0.join("repo").join("relu");
    std::fs::create_dir_all(&folder).unwrap();
    let local = crate::common::fixtures().join("graphs/relu");
    for f in [
        "config.yaml",
        "layer_0.safetensors",
        "layer_1.safetensors",
        "layer_2.safetensors",
    ] {
        std::fs::copy(local.join(f), folder.join(f)).unwrap();
    }
    copy_tree(
        &crate::common::fixtures().join("graphs/clt"),
        &s.0.join("repo/clt"),
    );
    copy_tree(
        &crate::common::fixtures().join("transcoders/sparsify-relu"),
        &s.0.join("repo/sparsify"),
    );
    copy_tree(
        &crate::common::fixtures().join("transcoders/saelens-skip"),
        &s.0.join("repo/saelens"),
    );
    // No scan in the hub's config: circuit-tracer's name for the set is used.
    let cfg = std::fs::read_to_string(folder.join("config.yaml")).unwrap();
    let cfg: String = cfg
        .lines()
        .filter(|l| !l.starts_with("scan"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(folder.join("config.yaml"), cfg).unwrap();
    let server = HubServer::start_repos(
        &[
            (REPO, "main", COMMIT_MAIN, &model_dir()),
            (
                "someone/tiny-transcoders",
                "main",
                COMMIT_MAIN,
                &s.0.join("repo"),
            ),
        ],
        Fault::None,
    );
    let home = Scratch::new("hub-tc-home");
    let want = crate::common::json(&["graph", TEXT, "--transcoders", local.to_str().unwrap()]);
    let args = [
        "--json",
        "graph",
        TEXT,
        "--transcoders",
        "someone/tiny-transcoders/relu",
    ];
    let got = ok(&run(&server.endpoint, &home.0, &args, &[]));
    for field in [
        "active_features",
        "replacement_score",
        "completeness_score",
        "top_nodes",
        "kept",
    ] {
        assert_eq!(got[field], want[field], "{field}");
    }
    assert_eq!(got["scan"], "someone/tiny-transcoders//relu");
    let before = server.requests();
    ok(&run(&server.endpoint, &home.0, &args, &[]));
    assert_eq!(server.requests(), before, "the second run asks nothing");
    let log = server.log();
    assert!(
        log.iter()
            .any(|l| l.contains("someone/tiny-transcoders/resolve/main/relu/layer_2.safetensors")),
        "{log:?}"
    );
    // A cross-layer transcoder, a sparsify set and a SAELens set (no config.yaml: h.{i}.mlp/
    // or blocks.{i}.ln2.hook_normalized/ fetched by name) give the same graphs as their local
    // folders.
    for (sub, local) in [
        ("clt", "graphs/clt"),
        ("sparsify", "transcoders/sparsify-relu"),
        ("saelens", "transcoders/saelens-skip"),
    ] {
        let local = crate::common::fixtures().join(local);
        let want = crate::common::json(&["graph", TEXT, "--transcoders", local.to_str().unwrap()]);
        let spec = format!("someone/tiny-transcoders/{sub}");
        let got = ok(&run(
            &server.endpoint,
            &home.0,
            &["--json", "graph", TEXT, "--transcoders", &spec],
            &[],
        ));
        for field in ["active_features", "replacement_score", "top_nodes", "kept"] {
            assert_eq!(got[field], want[field], "{sub} {field}");
        }
    }
    let bad = run(
        &server.endpoint,
        &home.0,
        &["graph", TEXT, "--transcoders", "someone/../x"],
        &[],
    );
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    assert!(
        stderr(&bad).contains("no such directory"),
        "{}",
        stderr(&bad)
    );
}

/// A copy of the folder `from` (and its folders) at `to`.
fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let dst = to.join(p.file_name().unwrap());
        match p.is_dir() {
            true => copy_tree(&p, &dst),
            false => drop(std::fs::copy(&p, &dst).unwrap()),
        }
    }
}
