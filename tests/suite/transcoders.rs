//! Transcoders in SAELens's and sparsify's formats against those libraries' own `encode`
//! and `decode` (scripts/make_transcoder_fixtures.py): every activation and every
//! reconstruction, per layer, within 1e-4 of the largest.

use gpt2_inspect::analysis::transcoder::TranscoderSet;
use gpt2_inspect::model::Config;

use crate::common::{fixture_file, fixtures, flat, model_dir};

/// Largest |got − want| relative to want's largest entry.
fn relative(got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    let d = (got.iter().zip(want)).fold(0f32, |m, (g, w)| m.max((g - w).abs()));
    d / scale
}

#[test]
fn saelens_and_sparsify_transcoders_encode_and_decode_as_their_libraries() {
    let (cfg, _) = Config::from_file(&model_dir().join("config.json")).unwrap();
    let (r, _) = fixture_file("transcoders/reference.safetensors");
    let x = &r["x"];
    for set in [
        "saelens-relu",
        "saelens-skip",
        "sparsify-relu",
        "sparsify-topk",
        "sparsify-groupmax",
    ] {
        let tset = TranscoderSet::load(&fixtures().join("transcoders").join(set), &cfg).unwrap();
        for (l, tc) in tset.layers.iter().enumerate() {
            let acts = tc.encode(x).unwrap();
            let want = flat(&r[&format!("{set}.{l}.acts")]);
            let got = flat(&acts);
            assert!(relative(&got, &want) < 1e-4, "{set} layer {l}: activations");
            let active = |v: &[f32]| v.iter().filter(|a| **a != 0.0).count();
            assert_eq!(
                active(&got),
                active(&want),
                "{set} layer {l}: active features"
            );
            assert!(active(&want) > 0, "{set} layer {l}: some feature is active");
            let out = flat(&tc.decode(&acts, x).unwrap());
            let want = flat(&r[&format!("{set}.{l}.out")]);
            assert!(
                relative(&out, &want) < 1e-4,
                "{set} layer {l}: reconstruction"
            );
        }
    }
}

/// A copy of the fixture set `set` with the JSON config of folder `layer` edited.
fn edited(
    scratch: &crate::common::Scratch,
    set: &str,
    name: &str,
    layer: &str,
    edit: impl FnOnce(&mut serde_json::Value),
) -> std::path::PathBuf {
    let dir = scratch.0.join(name);
    for folder in std::fs::read_dir(fixtures().join("transcoders").join(set)).unwrap() {
        let folder = folder.unwrap().path();
        let to = dir.join(folder.file_name().unwrap());
        std::fs::create_dir_all(&to).unwrap();
        for f in std::fs::read_dir(&folder).unwrap() {
            let f = f.unwrap().path();
            std::fs::copy(&f, to.join(f.file_name().unwrap())).unwrap();
        }
    }
    let cfg = dir.join(layer).join("cfg.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(&cfg, v.to_string()).unwrap();
    dir
}

/// SAELens and sparsify folders that are not transcoders of this model's MLPs, or do not
/// cover its layers, are refused with one line before a graph is made.
#[test]
fn hostile_saelens_and_sparsify_sets_are_refused() {
    let scratch = crate::common::Scratch::new("transcoder-formats");
    let run = |dir: &std::path::Path, needles: &[&str]| {
        let mut c = crate::common::cmd();
        c.args(["graph", "The cat sat", "--transcoders"]).arg(dir);
        crate::common::fails(&mut c, 1, needles);
    };
    let sl = "blocks.1.ln2.hook_normalized";
    let hook = edited(&scratch, "saelens-relu", "hook", sl, |v| {
        v["metadata"]["hook_name"] = "blocks.1.hook_resid_mid".into();
    });
    run(&hook, &["blocks.1.hook_resid_mid", "ln2.hook_normalized"]);
    let sae = edited(&scratch, "saelens-relu", "sae", sl, |v| {
        v["architecture"] = "standard".into();
    });
    run(&sae, &["architecture standard", "not a SAELens transcoder"]);
    let norm = edited(&scratch, "saelens-skip", "norm", sl, |v| {
        v["normalize_activations"] = "layer_norm".into();
    });
    run(&norm, &["normalize_activations layer_norm"]);
    let missing = edited(&scratch, "saelens-relu", "missing", sl, |_| {});
    std::fs::remove_dir_all(missing.join("blocks.2.ln2.hook_normalized")).unwrap();
    run(&missing, &["layers [0, 1]", "3 layers"]);
    let sae = edited(&scratch, "sparsify-topk", "autoencoder", "h.0.mlp", |v| {
        v["transcode"] = false.into();
    });
    run(&sae, &["h.0.mlp", "not a transcoder"]);
    let k = edited(&scratch, "sparsify-topk", "k", "h.2.mlp", |v| {
        v["k"] = 65.into();
    });
    run(&k, &["k = 65", "64 features"]);
    let wide = edited(&scratch, "sparsify-groupmax", "wide", "h.1.mlp", |v| {
        v["d_in"] = 768.into();
    });
    run(&wide, &["d_in 768", "32 wide"]);
}
