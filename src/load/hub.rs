//! Files of a Hugging Face hub repository, in the cache Python's `huggingface_hub` shares.
//!
//! hf-hub gives the cache layout (`models--org--name/{blobs,snapshots,refs}`, the resolve
//! URL); the transfer is done here, because hf-hub 0.5's own cannot be made safe from
//! outside: it has no read timeout, trusts the server's sizes, commit hashes and etags as
//! paths, never verifies what it stored, and panics on a redirect without `Location` or on
//! a machine without a home directory. Here:
//! - every read times out (`HF_HUB_ETAG_TIMEOUT` for the metadata request,
//!   `HF_HUB_DOWNLOAD_TIMEOUT` per read of the body; 10 s each, as in Python);
//! - the body is read up to the size announced, never further, and a file that is not a
//!   checkpoint (`.safetensors`, `.bin`) may be at most [`MAX_SMALL_FILE`] bytes;
//! - the commit hash must be 40 hex digits and the etag a content hash (40 or 64 hex
//!   digits) before either becomes part of a path;
//! - what arrived is checked against the etag (sha256 for LFS files, the git blob sha1 for
//!   the others) in `blobs/<etag>.incomplete`, and only then renamed into `blobs/<etag>`
//!   and linked from the snapshot; a partial download is resumed next time, and discarded
//!   if it does not verify;
//! - a file the repository does not have is remembered as Python remembers it
//!   (`.no_exist/<commit>/<name>`), so that choosing among checkpoint formats asks once.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::units::human_size;
use anyhow::{anyhow, bail, Context, Result};
use hf_hub::{Cache, Repo, RepoType};
use sha2::Digest;

/// Files other than the weights (config.json, tokenizer.json, vocab.json, merges.txt) are
/// a few MB; a server announcing more is not serving a GPT-2 repository.
pub const MAX_SMALL_FILE: u64 = 100 << 20;

const DEFAULT_ENDPOINT: &str = "https://huggingface.co";
const DEFAULT_TIMEOUT: u64 = 10;

/// Where and how the hub is reached, read once from the environment.
#[derive(Debug, Clone)]
pub struct Hub {
    /// The hub cache directory (`.../hub`), or why there is none.
    cache: Result<PathBuf, String>,
    endpoint: String,
    token: Option<String>,
    offline: bool,
    etag_timeout: Duration,
    download_timeout: Duration,
    /// The download bars: one per file, stacked when the tokenizer and the weights come
    /// at once (drawn only when stderr is a terminal).
    progress: indicatif::MultiProgress,
}

impl Hub {
    /// `HF_HUB_CACHE`, else `HF_HOME/hub`, else `XDG_CACHE_HOME/huggingface/hub`, else
    /// `~/.cache/huggingface/hub`, as Python's `huggingface_hub` resolves them; the token
    /// from `HF_TOKEN`, `HF_TOKEN_PATH` or the cached login; `HF_HUB_OFFLINE`.
    pub fn from_env() -> Self {
        Self::from_vars(|k| std::env::var(k).ok().filter(|v| !v.trim().is_empty()))
    }

    fn from_vars(var: impl Fn(&str) -> Option<String>) -> Self {
        let hf_home = var("HF_HOME").map(PathBuf::from).or_else(|| {
            let base = var("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| home_dir(&var).map(|h| h.join(".cache")))?;
            Some(base.join("huggingface"))
        });
        let cache = match (var("HF_HUB_CACHE"), &hf_home) {
            (Some(dir), _) => Ok(PathBuf::from(dir)),
            (None, Some(home)) => Ok(home.join("hub")),
            (None, None) => Err(
                "there is no home directory to keep the Hugging Face cache in (HOME is not set \
                 and this user has no passwd entry); set HF_HOME to a writable directory"
                    .to_string(),
            ),
        };
        let token = var("HF_TOKEN").or_else(|| {
            let path = var("HF_TOKEN_PATH")
                .map(PathBuf::from)
                .or_else(|| hf_home.as_ref().map(|h| h.join("token")))?;
            let t = fs::read_to_string(path).ok()?;
            Some(t.trim().to_string()).filter(|t| !t.is_empty())
        });
        let seconds = |k: &str| {
            let s = var(k).and_then(|v| v.trim().parse::<f64>().ok());
            Duration::from_secs_f64(
                s.filter(|s| *s > 0.0 && *s < 1e6)
                    .unwrap_or(DEFAULT_TIMEOUT as f64),
            )
        };
        Hub {
            progress: indicatif::MultiProgress::new(),
            cache,
            endpoint: var("HF_ENDPOINT")
                .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string())
                .trim_end_matches('/')
                .to_string(),
            token,
            offline: var("HF_HUB_OFFLINE").is_some_and(|v| {
                matches!(
                    v.trim().to_ascii_lowercase().as_str(),
                    "1" | "true" | "yes" | "on"
                )
            }),
            etag_timeout: seconds("HF_HUB_ETAG_TIMEOUT"),
            download_timeout: seconds("HF_HUB_DOWNLOAD_TIMEOUT"),
        }
    }

    fn cache_dir(&self) -> Result<&Path> {
        self.cache.as_deref().map_err(|why| anyhow!("{why}"))
    }

    /// Path of `name` in `repo_id` at `revision`: from the cache when it is there, else
    /// downloaded into it (unless offline).
    pub fn file(&self, repo_id: &str, revision: &str, name: &str) -> Result<PathBuf> {
        let local = self.local(repo_id, revision)?;
        match local.cached(name) {
            Some(p) => Ok(p),
            None => self.fetch(&local, name),
        }
    }

    /// Where `repo_id` at `revision` lives in the cache (the revision checked first).
    fn local(&self, repo_id: &str, revision: &str) -> Result<Local> {
        check_revision(revision)?;
        let repo = Repo::with_revision(repo_id.to_string(), RepoType::Model, revision.into());
        let dir = self.cache_dir()?;
        Ok(Local {
            cache: Cache::new(dir.to_path_buf()).repo(repo.clone()),
            repo_dir: dir.join(repo.folder_name()),
            dir: dir.to_path_buf(),
            repo_id: repo_id.to_string(),
            revision: revision.to_string(),
            repo,
        })
    }

    /// Downloads `name`, which the cache does not hold, into it (refused offline).
    fn fetch(&self, local: &Local, name: &str) -> Result<PathBuf> {
        let Local {
            repo_id, revision, ..
        } = local;
        let fix = || how_to_fix(repo_id, &local.dir);
        if self.offline {
            bail!(
                "{name} of model {repo_id} (revision {revision}) is not in the cache and \
                 HF_HUB_OFFLINE is set; {}",
                fix()
            );
        }
        let what = format!("{name} of model {repo_id} (revision {revision})");
        (self.download(&local.repo, &local.cache, &local.repo_dir, name)).map_err(|e| {
            match e.downcast_ref::<NoNetwork>() {
                Some(_) => anyhow!("cannot download {what}: {e:#}; {}", fix()),
                None => e.context(format!("cannot download {what}")),
            }
        })
    }

    /// The first of `names` that `repo_id` holds at `revision`, and where it is: as
    /// transformers picks a checkpoint: in order, each from the cache, else (unless offline)
    /// one request, until one exists. A name the repository is known not to hold is skipped.
    pub fn first_of(
        &self,
        repo_id: &str,
        revision: &str,
        names: &[&str],
    ) -> Result<(usize, PathBuf)> {
        for (i, name) in names.iter().enumerate() {
            if let Some(p) = self.optional(repo_id, revision, name)? {
                return Ok((i, p));
            }
        }
        let how = match self.offline {
            true => format!(
                "in the cache (HF_HUB_OFFLINE is set); {}",
                how_to_fix(repo_id, self.cache_dir()?)
            ),
            false => "on the hub".to_string(),
        };
        bail!(
            "model {repo_id} (revision {revision}) has no checkpoint {how}: none of {}",
            names.join(", ")
        )
    }

    /// Path of `name` in `repo_id` at `revision`, or `None` when the repository does not
    /// hold it (or, offline, when the cache does not): from the cache, else one request,
    /// whose answer "no such file" is remembered in the cache as Python's client does.
    pub fn optional(&self, repo_id: &str, revision: &str, name: &str) -> Result<Option<PathBuf>> {
        let local = self.local(repo_id, revision)?;
        if let Some(p) = local.cached(name) {
            return Ok(Some(p));
        }
        let repo_dir = &local.repo_dir;
        let commit = cached_commit(repo_dir, &local.repo);
        let known_missing =
            (commit.as_ref()).is_some_and(|c| no_exist(repo_dir, c, name).is_file());
        if self.offline || known_missing {
            return Ok(None);
        }
        match self.fetch(&local, name) {
            Ok(p) => Ok(Some(p)),
            Err(e) => match e.downcast_ref::<Missing>() {
                Some(Missing {
                    commit: Some(c), ..
                }) => {
                    // Best effort, as in Python: a cache we cannot write only costs a request.
                    let marker = no_exist(repo_dir, c, name);
                    let _ = marker.parent().map(fs::create_dir_all);
                    let _ = File::create(&marker);
                    Ok(None)
                }
                Some(_) => Ok(None),
                None => Err(e),
            },
        }
    }

    fn agent(&self, read_timeout: Duration) -> ureq::Agent {
        ureq::Agent::config_builder()
            .max_redirects(0)
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_per_read(Some(read_timeout))
            .timeout_recv_response(Some(read_timeout))
            .user_agent(concat!("gpt2-inspect/", env!("CARGO_PKG_VERSION")))
            .build()
            .into()
    }

    fn download(
        &self,
        repo: &Repo,
        cache: &hf_hub::CacheRepo,
        repo_dir: &Path,
        name: &str,
    ) -> Result<PathBuf> {
        let url = format!(
            "{}/{}/resolve/{}/{name}",
            self.endpoint,
            repo.url(),
            repo.url_revision()
        );
        let meta = self.metadata(&url, name)?;
        let blob = cache.blob_path(&meta.etag);
        let blobs = blob.parent().context("blob path has a parent")?;
        fs::create_dir_all(blobs).with_context(|| format!("cannot create {}", blobs.display()))?;

        // One download per blob at a time, here and in Python (whose filelock also flocks
        // `<blob>.lock`); released when the process ends, however it ends.
        let lock_path = with_suffix(&blob, ".lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .with_context(|| format!("cannot create {}", lock_path.display()))?;
        lock.lock()
            .with_context(|| format!("cannot lock {}", lock_path.display()))?;

        let have = fs::metadata(&blob).map(|m| m.len()).ok();
        if have != Some(meta.size) {
            self.fetch_blob(&meta, &blob, name)?;
        }
        drop(lock);

        let link = cache.pointer_path(&meta.commit).join(name);
        link_into_snapshot(&blob, &link)?;
        if repo.revision() != meta.commit {
            write_ref(repo_dir, repo.revision(), &meta.commit)?;
        }
        Ok(link)
    }

    /// The commit, etag and size of a file: a HEAD request, following the hub's own
    /// relative redirects (a renamed repository) but not the absolute one to its CDN.
    fn metadata(&self, url: &str, name: &str) -> Result<Meta> {
        let agent = self.agent(self.etag_timeout);
        let mut url = url.to_string();
        let mut download_url = None;
        for _ in 0..10 {
            let mut req = agent.head(&url).header("Accept-Encoding", "identity");
            if let Some(t) = &self.token {
                req = req.header("Authorization", format!("Bearer {t}"));
            }
            let resp = req
                .call()
                .map_err(|e| self.transport_error(e, self.etag_timeout))?;
            let status = resp.status().as_u16();
            let header = |k: &str| resp.headers().get(k).and_then(|v| v.to_str().ok());
            if (300..400).contains(&status) {
                let location = header("location").ok_or_else(|| {
                    anyhow!("the hub answered HTTP {status} (a redirect) without a Location header")
                })?;
                if location.starts_with('/') && !location.starts_with("//") {
                    url = format!("{}{location}", origin(&self.endpoint));
                    continue;
                }
                download_url = Some(location.to_string());
            } else if status >= 400 {
                let e = status_error(status, header("x-error-code"), name);
                return Err(with_commit(e, header("x-repo-commit")));
            }
            let commit = header("x-repo-commit")
                .ok_or_else(|| anyhow!("the hub's answer has no X-Repo-Commit header"))?;
            if !is_hex(commit, &[40]) {
                bail!("the hub sent a commit hash that is not 40 hex digits: {commit:?}");
            }
            let etag = header("x-linked-etag")
                .or_else(|| header("etag"))
                .ok_or_else(|| anyhow!("the hub's answer has no ETag header"))?;
            let etag = etag.trim_start_matches("W/").trim_matches('"');
            if !is_hex(etag, &[40, 64]) {
                bail!("the hub sent an etag that is not a content hash (40 or 64 hex digits): {etag:?}");
            }
            let size = header("x-linked-size")
                .or_else(|| header("content-length"))
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or_else(|| anyhow!("the hub did not say how large {name} is"))?;
            if !is_weights(name) && size > MAX_SMALL_FILE {
                bail!(
                    "the hub announces {name} as {size} bytes; a GPT-2 repository's {name} is at most {MAX_SMALL_FILE}"
                );
            }
            return Ok(Meta {
                url: download_url.unwrap_or(url),
                commit: commit.to_string(),
                etag: etag.to_ascii_lowercase(),
                size,
            });
        }
        bail!("the hub redirected more than 10 times")
    }

    /// Downloads into `<blob>.incomplete` (resuming what an earlier run left), verifies it,
    /// and renames it into place. One retry from the start when a resumed file fails to
    /// verify.
    fn fetch_blob(&self, meta: &Meta, blob: &Path, name: &str) -> Result<()> {
        let part = with_suffix(blob, ".incomplete");
        for attempt in 0..2 {
            let resumed = self.transfer(meta, &part, name)?;
            if let Err(e) = verify(&part, meta) {
                let _ = fs::remove_file(&part);
                if resumed && attempt == 0 {
                    self.say(&format!("{name}: the partial download left by an earlier run did not verify; starting again"));
                    continue;
                }
                return Err(e.context(format!("{name} was discarded")));
            }
            fs::rename(&part, blob).with_context(|| format!("cannot rename {}", part.display()))?;
            return Ok(());
        }
        unreachable!("the second attempt returns")
    }

    /// Appends the rest of the file to `part`. Returns whether it resumed earlier bytes.
    fn transfer(&self, meta: &Meta, part: &Path, name: &str) -> Result<bool> {
        let (mut file, start) = open_part(part, meta.size)?;
        if start == meta.size {
            return Ok(true);
        }
        let resp = self.request(meta, start)?;
        // A server that does not resume sends the whole file: start over.
        let start = match resp.status().as_u16() {
            206 if start > 0 => start,
            200 | 206 => {
                file.set_len(0)?;
                0
            }
            416 => {
                file.set_len(0)?;
                bail!("the server refused to resume {name} (HTTP 416); the partial file was removed, run the command again");
            }
            s => {
                let code = resp
                    .headers()
                    .get("x-error-code")
                    .and_then(|v| v.to_str().ok());
                return Err(status_error(s, code, name));
            }
        };
        let want = meta.size - start;
        let announced = (resp.headers().get("content-length"))
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if let Some(n) = announced.filter(|&n| n != want) {
            bail!("the server sends {n} bytes of {name} where {want} were expected");
        }
        file.seek(SeekFrom::Start(start))?;
        match start {
            0 => self.say(&format!("downloading {name} ({})", human_size(meta.size))),
            _ => self.say(&format!(
                "resuming {name} at {} of {}",
                human_size(start),
                human_size(meta.size)
            )),
        }
        let bar = self.bar(meta.size, start, name)?;
        // Never more than announced, however long the server goes on.
        let body = bar.wrap_read(resp.into_body().into_reader().take(want));
        let copied = copy(body, &mut file, part);
        bar.finish_and_clear();
        let (copied, broke) = copied?;
        let got = format!("{} of {} bytes", start + copied, meta.size);
        match broke {
            Some(e) if e.kind() == io::ErrorKind::TimedOut || e.to_string().contains("timeout") => bail!(
                "the server sent nothing for {} s (HF_HUB_DOWNLOAD_TIMEOUT) after {got}; run the command again to resume",
                self.download_timeout.as_secs_f64()
            ),
            Some(e) => bail!("the transfer broke off after {got} ({e}); run the command again to resume"),
            None if copied < want => {
                bail!("the transfer broke off after {got}; run the command again to resume")
            }
            None => {}
        }
        self.say(&format!("downloaded {name}"));
        Ok(start > 0)
    }

    /// The GET for the file's bytes from `start` on.
    fn request(&self, meta: &Meta, start: u64) -> Result<ureq::http::Response<ureq::Body>> {
        let agent = self.agent(self.download_timeout);
        let mut req = agent.get(&meta.url).header("Accept-Encoding", "identity");
        if start > 0 {
            req = req.header("Range", format!("bytes={start}-"));
        }
        // The token goes to the hub only, never to the CDN it redirects to.
        let to_hub = origin(&meta.url) == origin(&self.endpoint);
        if let Some(t) = self.token.as_ref().filter(|_| to_hub) {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        req.call()
            .map_err(|e| self.transport_error(e, self.download_timeout))
    }

    /// One bar per file on a terminal (drawn by indicatif only when stderr is one, and
    /// cleared however the transfer ends); elsewhere the plain lines around it are all
    /// that is said.
    fn bar(&self, size: u64, start: u64, name: &str) -> Result<indicatif::ProgressBar> {
        let bar = (self.progress)
            .add(indicatif::ProgressBar::new(size).with_position(start))
            .with_finish(indicatif::ProgressFinish::AndClear);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .map_err(|e| anyhow!("{e}"))?
            .progress_chars("=> "),
        );
        bar.set_message(name.to_string());
        Ok(bar)
    }

    /// A line on stderr, above the download bars when they are drawn.
    fn say(&self, line: &str) {
        if self.progress.is_hidden() || self.progress.println(line).is_err() {
            eprintln!("{line}");
        }
    }

    fn transport_error(&self, e: ureq::Error, timeout: Duration) -> anyhow::Error {
        let why = match e {
            ureq::Error::Timeout(_) => format!(
                "no answer from {} within {} s (no network, or the server stalls)",
                self.endpoint,
                timeout.as_secs_f64()
            ),
            ureq::Error::Io(e) if e.kind() == io::ErrorKind::TimedOut => format!(
                "no answer from {} within {} s (no network, or the server stalls)",
                self.endpoint,
                timeout.as_secs_f64()
            ),
            e => format!("cannot reach {} (no network?): {e}", self.endpoint),
        };
        NoNetwork(why).into()
    }
}

/// The hub could not be reached or did not answer: the cache is the way out.
#[derive(Debug)]
struct NoNetwork(String);

impl std::fmt::Display for NoNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NoNetwork {}

/// The repository does not hold a file (HTTP 404 `EntryNotFound`), at `commit` when the
/// hub said which.
#[derive(Debug)]
struct Missing {
    message: String,
    commit: Option<String>,
}

impl std::fmt::Display for Missing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Missing {}

/// A [`Missing`] error with the commit the hub looked in (for the `.no_exist` marker);
/// any other error as it is.
fn with_commit(e: anyhow::Error, commit: Option<&str>) -> anyhow::Error {
    match e.downcast::<Missing>() {
        Ok(missing) => anyhow::Error::new(Missing {
            commit: commit.filter(|c| is_hex(c, &[40])).map(str::to_string),
            ..missing
        }),
        Err(e) => e,
    }
}

/// Checkpoint files, which may be large; every other file is small.
fn is_weights(name: &str) -> bool {
    name.ends_with(".safetensors") || name.ends_with(".bin")
}

/// Python's marker of a file the repository does not have at `commit`.
fn no_exist(repo_dir: &Path, commit: &str, name: &str) -> PathBuf {
    repo_dir.join(".no_exist").join(commit).join(name)
}

/// The commit the cache holds for the revision: the revision itself when it is a commit
/// hash, else what `refs/<revision>` says, when that is a commit hash.
fn cached_commit(repo_dir: &Path, repo: &Repo) -> Option<String> {
    if is_hex(repo.revision(), &[40]) {
        return Some(repo.revision().to_string());
    }
    let r = fs::read_to_string(repo_dir.join("refs").join(repo.revision())).ok()?;
    let r = r.trim().to_string();
    is_hex(&r, &[40]).then_some(r)
}

/// What the hub says of one file.
struct Meta {
    /// Where the bytes are (the hub, or the CDN it redirects to).
    url: String,
    commit: String,
    etag: String,
    size: u64,
}

/// One repository at one revision in the hub cache.
struct Local {
    repo: Repo,
    cache: hf_hub::CacheRepo,
    /// `dir/models--org--name`.
    repo_dir: PathBuf,
    /// The cache's root.
    dir: PathBuf,
    repo_id: String,
    revision: String,
}

impl Local {
    /// `name` as the cache holds it at the revision's commit, if it does.
    fn cached(&self, name: &str) -> Option<PathBuf> {
        cached(&self.cache, &self.repo_dir, &self.repo, name)
    }
}

/// The cached file, if every step to it is sound: a revision that is a commit hash names
/// its snapshot directly (Python writes no ref for it); a branch or tag goes through
/// `refs/<revision>`, whose content must be a commit hash.
fn cached(cache: &hf_hub::CacheRepo, repo_dir: &Path, repo: &Repo, name: &str) -> Option<PathBuf> {
    let commit = cached_commit(repo_dir, repo)?;
    let p = cache.pointer_path(&commit).join(name);
    p.is_file().then_some(p)
}

/// A branch, tag or commit: refs may hold `/` (`refs/pr/1`) but never climb out.
fn check_revision(revision: &str) -> Result<()> {
    let bad = revision.is_empty()
        || revision.starts_with('/')
        || revision.contains('\\')
        || revision.contains('\0')
        || revision
            .split('/')
            .any(|p| p.is_empty() || p == "." || p == "..");
    if bad {
        bail!("revision {revision:?} is not a branch, tag or commit name");
    }
    Ok(())
}

fn is_hex(s: &str, lens: &[usize]) -> bool {
    lens.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn with_suffix(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// `scheme://host[:port]` of a URL.
fn origin(url: &str) -> &str {
    let after = url.find("://").map_or(0, |i| i + 3);
    match url[after..].find('/') {
        Some(i) => &url[..after + i],
        None => url,
    }
}

/// Checks the file against its etag: the sha256 of the content (LFS files), or git's blob
/// id, sha1 of `blob <len>\0` + content (files kept in git itself).
fn verify(path: &Path, meta: &Meta) -> Result<()> {
    let mut file = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let len = file.metadata()?.len();
    if len != meta.size {
        bail!("it has {len} bytes, the hub announced {}", meta.size);
    }
    let mut buf = vec![0u8; 1 << 20];
    let mut feed = |update: &mut dyn FnMut(&[u8])| -> Result<()> {
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                return Ok(());
            }
            update(&buf[..n]);
        }
    };
    let got = if meta.etag.len() == 64 {
        let mut h = sha2::Sha256::new();
        feed(&mut |b| h.update(b))?;
        hex(&h.finalize())
    } else {
        let mut h = sha1::Sha1::new();
        h.update(format!("blob {len}\0").as_bytes());
        feed(&mut |b| h.update(b))?;
        hex(&h.finalize())
    };
    if got != meta.etag {
        bail!(
            "its content hash is {got}, the hub's etag says {}",
            meta.etag
        );
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `snapshots/<commit>/<name>` → `../../blobs/<etag>`, relative as Python makes it, put in
/// place by a rename so a reader never sees a half-made link.
fn link_into_snapshot(blob: &Path, link: &Path) -> Result<()> {
    let dir = link.parent().context("snapshot path has a parent")?;
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let depth = link
        .strip_prefix(
            blob.parent()
                .and_then(Path::parent)
                .unwrap_or(Path::new("")),
        )
        .map(|p| p.components().count() - 1)
        .unwrap_or(2);
    let mut target = PathBuf::new();
    for _ in 0..depth {
        target.push("..");
    }
    target.push("blobs");
    target.push(blob.file_name().context("blob has a name")?);
    let tmp = with_suffix(link, &format!(".{}.tmp", std::process::id()));
    let _ = fs::remove_file(&tmp);
    #[cfg(unix)]
    let made = std::os::unix::fs::symlink(&target, &tmp);
    #[cfg(not(unix))]
    let made = fs::copy(blob, &tmp).map(|_| ());
    made.with_context(|| format!("cannot create {}", tmp.display()))?;
    fs::rename(&tmp, link).with_context(|| format!("cannot create {}", link.display()))
}

/// `refs/<revision>` holds the commit the revision resolved to; written whole or not at all.
fn write_ref(repo_dir: &Path, revision: &str, commit: &str) -> Result<()> {
    let path = repo_dir.join("refs").join(revision);
    let dir = path.parent().context("ref path has a parent")?;
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    tmp.write_all(commit.as_bytes())?;
    tmp.persist(&path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

fn status_error(status: u16, code: Option<&str>, name: &str) -> anyhow::Error {
    match (status, code) {
        (_, Some("GatedRepo")) => anyhow!(
            "the repository is gated (HTTP {status}): accept its conditions on the hub and set \
             HF_TOKEN to a token of that account"
        ),
        (_, Some("RepoNotFound")) | (401, None) => anyhow!(
            "no such repository, or it is private (HTTP {status}): check the model id, or set \
             HF_TOKEN to a token that can read it"
        ),
        (_, Some("RevisionNotFound")) => {
            anyhow!("the repository has no such revision (HTTP {status}): check --revision")
        }
        (_, Some("EntryNotFound")) | (404, None) => anyhow::Error::new(Missing {
            message: format!(
                "the repository has no file {name} at this revision (HTTP {status}); a GPT-2 \
                 repository holds config.json, a checkpoint (model.safetensors or \
                 pytorch_model.bin) and tokenizer.json"
            ),
            commit: None,
        }),
        (403, _) => anyhow!(
            "access denied (HTTP 403): set HF_TOKEN to a token that can read this repository"
        ),
        (s, _) if s >= 500 => {
            anyhow!("the hub has a problem (HTTP {s}); try again later")
        }
        (s, _) => anyhow!("the hub answered HTTP {s}"),
    }
}

fn how_to_fix(repo_id: &str, dir: &Path) -> String {
    format!(
        "looked in the Hugging Face cache at {}; download it where you have network \
         (e.g. `huggingface-cli download {repo_id}`), or use a local model directory \
         holding config.json, a checkpoint and tokenizer.json (for a first try offline, \
         a checkout of gpt2-inspect has a tiny one: --model tests/fixtures/tiny-gpt2)",
        dir.display()
    )
}

/// `HOME`, else the passwd entry (as Python's `expanduser`).
fn home_dir(var: &impl Fn(&str) -> Option<String>) -> Option<PathBuf> {
    match var("HOME") {
        Some(h) => Some(PathBuf::from(h)),
        // Reads the passwd entry; `None` for a uid that has none.
        #[allow(deprecated)]
        None => std::env::home_dir().filter(|p| !p.as_os_str().is_empty()),
    }
}

/// The partial file and how many of its bytes count: none when it is longer than the
/// whole file (not ours to trust).
fn open_part(part: &Path, size: u64) -> Result<(File, u64)> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(part)
        .with_context(|| format!("cannot create {}", part.display()))?;
    let mut start = file.metadata()?.len();
    if start > size {
        file.set_len(0)?;
        start = 0;
    }
    Ok((file, start))
}

/// Copies `body` to `file` (already at its place) and syncs it: how many bytes came, and
/// the read error that ended it early, if one did. Errors are writing's.
fn copy(mut body: impl Read, file: &mut File, part: &Path) -> Result<(u64, Option<io::Error>)> {
    let cannot = || format!("cannot write {}", part.display());
    let mut out = io::BufWriter::with_capacity(1 << 20, &mut *file);
    let mut buf = vec![0u8; 1 << 16];
    let mut copied = 0u64;
    let broke = loop {
        match body.read(&mut buf) {
            Ok(0) => break None,
            Ok(n) => {
                out.write_all(&buf[..n]).with_context(cannot)?;
                copied += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => break Some(e),
        }
    };
    out.flush().with_context(cannot)?;
    drop(out);
    file.sync_all().with_context(cannot)?;
    Ok((copied, broke))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revisions_cannot_climb_out() {
        for bad in ["..", "../x", "a/../b", "/etc", "a//b", "", "a\\b"] {
            assert!(check_revision(bad).is_err(), "{bad:?}");
        }
        for good in [
            "main",
            "refs/pr/1",
            "v1.0",
            "0123456789abcdef0123456789abcdef01234567",
        ] {
            assert!(check_revision(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn etags_and_commits_must_be_hashes() {
        assert!(is_hex(&"a".repeat(40), &[40]));
        assert!(!is_hex("../../../../tmp/x", &[40, 64]));
        assert!(!is_hex(&format!("{}/", "a".repeat(39)), &[40]));
    }

    #[test]
    fn cache_dir_follows_python() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let hub = Hub::from_vars(vars(&[("HF_HOME", "/h")]));
        assert_eq!(hub.cache.unwrap(), PathBuf::from("/h/hub"));
        let hub = Hub::from_vars(vars(&[("HF_HOME", "/h"), ("HF_HUB_CACHE", "/c")]));
        assert_eq!(hub.cache.unwrap(), PathBuf::from("/c"));
        let hub = Hub::from_vars(vars(&[("XDG_CACHE_HOME", "/x")]));
        assert_eq!(hub.cache.unwrap(), PathBuf::from("/x/huggingface/hub"));
        let hub = Hub::from_vars(vars(&[("HOME", "/home/u")]));
        assert_eq!(
            hub.cache.unwrap(),
            PathBuf::from("/home/u/.cache/huggingface/hub")
        );
    }

    #[test]
    fn origins() {
        assert_eq!(origin("http://127.0.0.1:8080/a/b"), "http://127.0.0.1:8080");
        assert_eq!(origin("https://huggingface.co"), "https://huggingface.co");
    }
}
