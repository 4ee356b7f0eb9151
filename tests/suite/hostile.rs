//! Hostile and broken checkpoints: torch pickles that name other globals (and run nothing),
//! broken zips, storages and views that do not fit, absurd sizes, duplicate names, indexes
//! that point outside their directory or at missing shards. Each is one line, exit 1, no
//! panic; the files are built here.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::common::{fails, fixtures, Scratch};

type View<'a> = (&'a str, Vec<u8>, &'a [u8], &'a [&'a str]);
/// A broken index: its name, how the index and shards are edited, what the error says.
type Edit<'a> = (
    &'a str,
    Box<dyn Fn(&mut serde_json::Value, &mut Vec<(String, Vec<u8>)>) + 'a>,
    Vec<&'a str>,
);

/// A model directory with the formats fixture's config and tokenizer, and `files`.
fn model(s: &Scratch, name: &str, files: &[(&str, Vec<u8>)]) -> PathBuf {
    let dir = s.model(name, &["tokenizer.json"]);
    std::fs::copy(
        fixtures().join("formats/config.json"),
        dir.join("config.json"),
    )
    .unwrap();
    for (f, bytes) in files {
        std::fs::write(dir.join(f), bytes).unwrap();
    }
    dir
}

fn next(dir: &Path) -> assert_cmd::Command {
    let mut c = assert_cmd::Command::cargo_bin("gpt2-inspect").unwrap();
    c.arg("--model").arg(dir).args(["next", " the"]);
    c
}

/// A zip as torch.save writes it: entries stored, under `archive/`.
fn torch_zip(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let stored = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .with_alignment(64);
    for (name, bytes) in entries {
        w.start_file(format!("archive/{name}"), stored).unwrap();
        w.write_all(bytes).unwrap();
    }
    w.finish().unwrap().into_inner()
}

/// A pickle string (BINUNICODE).
fn s(text: &str) -> Vec<u8> {
    let mut v = vec![b'X'];
    v.extend((text.len() as u32).to_le_bytes());
    v.extend(text.as_bytes());
    v
}

/// A pickle integer (LONG1, 8 bytes).
fn int(n: u64) -> Vec<u8> {
    let mut v = vec![0x8a, 8];
    v.extend(n.to_le_bytes());
    v
}

/// The state dict `{name: _rebuild_tensor_v2(storage 0 of numel f32, offset, shape, strides)}`,
/// as torch.save pickles it.
fn state_dict(name: &str, numel: u64, offset: u64, shape: &[u64], strides: &[u64]) -> Vec<u8> {
    let mut p = vec![0x80, 2, b'}', b'('];
    p.extend(s(name));
    p.extend(b"ctorch._utils\n_rebuild_tensor_v2\n(");
    p.extend(b"(");
    p.extend(s("storage"));
    p.extend(b"ctorch\nFloatStorage\n");
    p.extend(s("0"));
    p.extend(s("cpu"));
    p.extend(int(numel));
    p.extend(b"tQ");
    p.extend(int(offset));
    p.push(b'(');
    shape.iter().for_each(|&d| p.extend(int(d)));
    p.push(b't');
    p.push(b'(');
    strides.iter().for_each(|&d| p.extend(int(d)));
    p.push(b't');
    p.extend(b"\x89ccollections\nOrderedDict\n)RtRu.");
    p
}

/// A pickle that runs `os.system(command)` when Python unpickles it.
fn system_pickle(module: &str, name: &str, command: &str) -> Vec<u8> {
    let mut p = vec![0x80, 2];
    p.extend(format!("c{module}\n{name}\n").as_bytes());
    p.extend(s(command));
    p.extend(b"\x85R.");
    p
}

#[test]
fn pickles_naming_other_globals_are_refused_and_run_nothing() {
    let s = Scratch::new("hostile-pickle");
    let marker = s.0.join("created-by-the-pickle");
    let touch = format!("touch {}", marker.display());
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("system", system_pickle("os", "system", &touch), "os.system"),
        (
            "posix",
            system_pickle("posix", "system", &touch),
            "posix.system",
        ),
        (
            "eval",
            system_pickle(
                "builtins",
                "eval",
                &format!("__import__('os').system('{touch}')"),
            ),
            "builtins.eval",
        ),
        (
            "popen",
            system_pickle("subprocess", "Popen", &touch),
            "subprocess.Popen",
        ),
        // REDUCE of what a REDUCE made: only globals may be called.
        (
            "nested",
            b"\x80\x02ccollections\nOrderedDict\n)R)R.".to_vec(),
            "REDUCE of something other than a global",
        ),
        // A storage type torch does not have.
        (
            "storage",
            b"\x80\x02ctorch\nEvilStorage\n.".to_vec(),
            "torch.EvilStorage",
        ),
    ];
    for (name, pkl, needle) in &cases {
        let dir = model(
            &s,
            name,
            &[("pytorch_model.bin", torch_zip(&[("data.pkl", pkl)]))],
        );
        fails(
            &mut next(&dir),
            1,
            &["not a tensor checkpoint", needle, "runs nothing"],
        );
    }
    assert!(!marker.exists(), "a pickle ran");
    // The payload is live: Python's own pickle runs it (when a python3 is on PATH).
    let live = s.0.join("created-by-python");
    let pkl = system_pickle("os", "system", &format!("touch {}", live.display()));
    let path = s.0.join("payload.pkl");
    std::fs::write(&path, pkl).unwrap();
    let code = format!(
        "import pickle; pickle.load(open({:?}, 'rb'))",
        path.display().to_string()
    );
    let python = std::process::Command::new("python3")
        .args(["-c", &code])
        .status();
    if python.is_ok_and(|s| s.success()) {
        assert!(live.exists(), "Python's pickle should have run the payload");
    }
}

#[test]
fn broken_zips_are_refused() {
    let s = Scratch::new("hostile-zip");
    let good = std::fs::read(fixtures().join("formats/bin/pytorch_model.bin")).unwrap();
    let mut cases: Vec<(&str, Vec<u8>, &[&str])> = vec![
        (
            "truncated",
            good[..good.len() / 2].to_vec(),
            &["not a valid torch checkpoint"],
        ),
        (
            "empty",
            Vec::new(),
            &["not a valid torch checkpoint", "not a zip"],
        ),
        (
            "no-pickle",
            torch_zip(&[("data/0", &[0u8; 16])]),
            &["holds no data.pkl"],
        ),
    ];
    // The method of every entry set to deflate (8), in local and central headers alike.
    let mut deflated = good.clone();
    patch_headers(&mut deflated, 8, |h| {
        h[..2].copy_from_slice(&8u16.to_le_bytes())
    });
    cases.push(("compressed", deflated, &["is compressed"]));
    let mut encrypted = good.clone();
    patch_headers(&mut encrypted, 6, |h| h[0] |= 1);
    cases.push(("encrypted", encrypted, &["encrypted"]));
    // Two entries renamed to one name.
    let pkl = state_dict("transformer.wte.weight", 4, 0, &[2, 2], &[2, 1]);
    let mut dup = torch_zip(&[
        ("data.pkl", &pkl),
        ("data/0", &[0u8; 16]),
        ("data/1", &[0u8; 16]),
    ]);
    replace_all(&mut dup, b"archive/data/1", b"archive/data/0");
    cases.push(("duplicate", dup, &["same name"]));
    let legacy = [
        0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, b'.',
    ];
    cases.push(("legacy", legacy.to_vec(), &["before 1.6", "re-save it"]));
    for (name, bytes, needles) in &cases {
        let dir = model(&s, name, &[("pytorch_model.bin", bytes.clone())]);
        fails(&mut next(&dir), 1, needles);
    }
}

#[test]
fn storages_and_views_that_do_not_fit_are_refused() {
    let s = Scratch::new("hostile-views");
    let name = "transformer.wte.weight";
    let big = 1u64 << 62;
    // (case, data.pkl, storage 0, what the error says)
    let cases: Vec<View> = vec![
        // 16 elements declared, 8 bytes stored.
        (
            "short",
            state_dict(name, 16, 0, &[4, 4], &[4, 1]),
            &[0u8; 8],
            &["needs 64 bytes"],
        ),
        // A (4, 4) view from element 4 of a 16-element storage.
        (
            "past",
            state_dict(name, 16, 4, &[4, 4], &[4, 1]),
            &[0u8; 64],
            &["reaches past its storage"],
        ),
        (
            "strides",
            state_dict(name, 16, 0, &[4, 4], &[1, 5]),
            &[0u8; 64],
            &["reaches past its storage"],
        ),
        (
            "absurd-storage",
            state_dict(name, big, 0, &[2, 2], &[2, 1]),
            &[0u8; 16],
            &["absurd storage size"],
        ),
        (
            "absurd-shape",
            state_dict(name, 16, 0, &[big, big], &[1, 1]),
            &[0u8; 64],
            &["absurd shape"],
        ),
    ];
    for (case, pkl, storage, needles) in &cases {
        let zip = torch_zip(&[("data.pkl", pkl), ("data/0", storage)]);
        let dir = model(&s, case, &[("pytorch_model.bin", zip)]);
        fails(&mut next(&dir), 1, needles);
    }
    // A string longer than the pickle: refused before anything is allocated for it.
    let mut pkl = vec![0x80, 2, b'X'];
    pkl.extend(u32::MAX.to_le_bytes());
    let dir = model(
        &s,
        "long-string",
        &[("pytorch_model.bin", torch_zip(&[("data.pkl", &pkl)]))],
    );
    fails(&mut next(&dir), 1, &["ends inside an opcode"]);
    // A well-formed pickle of a tensor whose storage the archive lacks.
    let pkl = state_dict(name, 4, 0, &[2, 2], &[2, 1]);
    let dir = model(
        &s,
        "no-storage",
        &[("pytorch_model.bin", torch_zip(&[("data.pkl", &pkl)]))],
    );
    fails(&mut next(&dir), 1, &["storage 0 is missing"]);
}

#[test]
fn indexes_that_leave_their_directory_or_lose_shards_are_refused() {
    let s = Scratch::new("hostile-index");
    let shards = fixtures().join("formats/sharded-safetensors");
    let index: serde_json::Value = serde_json::from_slice(
        &std::fs::read(shards.join("model.safetensors.index.json")).unwrap(),
    )
    .unwrap();
    let files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&shards)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    let outside = s.0.join("outside.safetensors");
    std::fs::write(&outside, &files[0].1).unwrap();
    const WTE: &str = "transformer.wte.weight";
    let wte = WTE;
    let home_of_wte = index["weight_map"][wte].as_str().unwrap().to_string();
    let other = files
        .iter()
        .map(|f| f.0.clone())
        .find(|f| *f != home_of_wte)
        .unwrap();
    let edits: Vec<Edit> = vec![
        (
            "dotdot",
            Box::new(|i, _| i["weight_map"][wte] = "../outside.safetensors".into()),
            vec!["../outside.safetensors", "not a file beside it"],
        ),
        (
            "absolute",
            Box::new(move |i, _| i["weight_map"][wte] = outside.display().to_string().into()),
            vec!["not a file beside it"],
        ),
        (
            "subdir",
            Box::new(|i, _| i["weight_map"][wte] = "sub/x.safetensors".into()),
            vec!["not a file beside it"],
        ),
        (
            "missing",
            Box::new(|_, f| f.retain(|(n, _)| !n.starts_with("model-00002"))),
            vec!["shard model-00002-of-00003.safetensors", "is missing"],
        ),
        (
            "wrong-shard",
            Box::new(move |i, _| i["weight_map"][wte] = other.clone().into()),
            vec!["does not hold it", wte],
        ),
        ("two-shards", Box::new(two_shards), vec!["is in two shards"]),
        (
            "not-json",
            Box::new(|i, _| *i = serde_json::json!({"no": "map"})),
            vec!["not a valid checkpoint index"],
        ),
    ];
    for (case, edit, needles) in &edits {
        let mut index = index.clone();
        let mut files = files.clone();
        edit(&mut index, &mut files);
        let mut all: Vec<(&str, Vec<u8>)> =
            files.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
        let text = index.to_string().into_bytes();
        all.push(("model.safetensors.index.json", text));
        let dir = model(&s, case, &all);
        fails(&mut next(&dir), 1, needles);
    }
}

/// A copy of a shard that holds several tensors, named by the index for one of them: the
/// others are then in two shards.
fn two_shards(index: &mut serde_json::Value, files: &mut Vec<(String, Vec<u8>)>) {
    let map = index["weight_map"].as_object().unwrap().clone();
    let count = |f: &str| map.values().filter(|v| *v == f).count();
    let (name, bytes) = files.iter().find(|(n, _)| count(n) > 1).unwrap().clone();
    let copy = name.replace("-of-", "-copy-of-");
    let tensor = map.iter().find(|(_, v)| **v == name).unwrap().0.clone();
    index["weight_map"][&tensor] = copy.clone().into();
    files.push((copy, bytes));
}

/// Applies `edit` to the field at `offset` of every local (PK\3\4) and central (PK\1\2)
/// header: `offset` counts from the local header's version field (8: method, 6: flags);
/// central headers have two more bytes before it.
fn patch_headers(zip: &mut [u8], offset: usize, edit: impl Fn(&mut [u8])) {
    let mut i = 0;
    while i + 4 <= zip.len() {
        let at = match &zip[i..i + 4] {
            b"PK\x03\x04" => Some(i + 4 + offset - 4),
            b"PK\x01\x02" => Some(i + 6 + offset - 4),
            _ => None,
        };
        if let Some(at) = at.filter(|&a| a + 2 <= zip.len()) {
            edit(&mut zip[at..at + 2]);
        }
        i += 1;
    }
}

fn replace_all(bytes: &mut [u8], from: &[u8], to: &[u8]) {
    assert_eq!(from.len(), to.len());
    let mut i = 0;
    while i + from.len() <= bytes.len() {
        if &bytes[i..i + from.len()] == from {
            bytes[i..i + from.len()].copy_from_slice(to);
        }
        i += 1;
    }
}
