//! `dump`: activations into a safetensors file, under their hook names, with the text and
//! token ids in its metadata. The header is laid out from the hook shapes before the
//! forward pass, and each tensor is written as soon as it is computed, so memory holds one
//! layer's activations, not all of them.

use std::collections::HashMap;
use std::io::{BufWriter, Write};

use anyhow::{bail, ensure, Context, Result};
use candle_core::{DType, Tensor};

use crate::analysis::sae::{self, Sae};
use crate::atomic::Output;
use crate::cli::{DumpArgs, SaeOption};
use crate::error::usage;
use crate::model::tap::Recorder;
use crate::model::{CaptureSpec, Config, Gpt2, Hook, Inputs, Logits, Request};
use crate::render::tokens::table;
use crate::reports::{DumpReport, HookRow, Padding};
use crate::session::texts::{padded, Texts};
use crate::session::Session;
use crate::session::Take;

pub fn run(session: &Session, args: &DumpArgs, out: &mut dyn Write) -> Result<()> {
    let to_stdout = crate::atomic::is_stdout(&args.output);
    if to_stdout && std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        return Err(usage(
            "-o -: standard output is a terminal, and a safetensors file is binary; \
             redirect it or give a file name",
        ));
    }
    let cfg = session.config()?;
    let prepared = session.prepare(&args.input, cfg, Take::STRICT)?;
    let Texts {
        texts, cfg, ids, ..
    } = &prepared;
    let hooks = selected(&args.hooks, cfg)?;
    let sae = SaeAt::from_args(session, &args.sae, cfg)?;
    let req = request(&hooks, sae.as_ref(), cfg);
    let model = session.model(cfg, req.blocks_needed(cfg))?;
    let batch = padded(ids, prepared.pad);
    let entries = entries(&hooks, sae.as_ref(), cfg, session.dtype, batch.shape);
    let layout = Layout::new(session, &prepared, &batch, &entries)?;
    if layout.bytes > 64 << 20 {
        eprintln!(
            "writing {} activations ({}) to {}",
            entries.len(),
            crate::units::human_size(layout.bytes),
            args.output.display()
        );
    }
    let mut file = Output::create(&args.output, "-o", &session.temps)?;
    let written = stream(
        &mut file,
        &layout,
        &model,
        &req,
        &prepared,
        &hooks,
        sae.as_ref(),
    )?;
    ensure!(
        written == entries.len(),
        "only {written} of {} activations were computed",
        entries.len()
    );
    file.commit()?;
    if to_stdout {
        // Standard output is the file: no summary after it.
        return Ok(());
    }

    let reports = build(session, args, (texts, ids), &entries, layout.bytes)?;
    prepared.emit(session, out, reports, table::dump)
}

/// What `dump` says it wrote, one report per text: the file, its size and its tensors.
fn build(
    session: &Session,
    args: &DumpArgs,
    (texts, ids): (&[String], &[Vec<u32>]),
    entries: &[Entry],
    bytes: u64,
) -> Result<Vec<DumpReport>> {
    let rows: Vec<HookRow> = (entries.iter())
        .map(|e| HookRow {
            name: e.name.clone(),
            shape: e.shape.iter().map(|&n| Some(n)).collect(),
        })
        .collect();
    (texts.iter().zip(ids))
        .map(|(text, ids)| {
            Ok(DumpReport {
                header: session.header(Some(text))?,
                output: args.output.display().to_string(),
                bytes,
                input_ids: ids.clone(),
                hooks: rows.clone(),
            })
        })
        .collect()
}

/// What the run records: the selected hooks and the SAE's, which is encoded even when it is
/// not written itself.
fn request(hooks: &[Hook], sae: Option<&SaeAt>, cfg: &Config) -> Request {
    let recorded = (Hook::all(cfg).into_iter())
        .filter(|h| hooks.contains(h) || sae.is_some_and(|s| s.hook == *h));
    Request {
        capture: CaptureSpec::new(recorded),
        logits: match hooks.contains(&Hook::Logits) {
            true => Logits::All,
            false => Logits::None,
        },
    }
}

/// The SAE of `--sae`, the hook it reads and whether it reads it centred.
struct SaeAt {
    sae: Sae,
    hook: Hook,
    centered: bool,
}

impl SaeAt {
    /// The SAE of `--sae`, `None` without it.
    fn from_args(session: &Session, a: &SaeOption, cfg: &Config) -> Result<Option<SaeAt>> {
        let Some(spec) = &a.sae else {
            return Ok(None);
        };
        let revision = a.sae_revision.as_deref();
        let (sae, hook, centered) = session.sae(spec, revision, a.sae_centered, cfg)?;
        Ok(Some(SaeAt {
            sae,
            hook,
            centered,
        }))
    }
}

/// One tensor of the file.
struct Entry {
    name: String,
    shape: Vec<usize>,
    dtype: DType,
}

/// The file's tensors in data-flow order: the selected hooks, and the SAE's feature
/// activations right after the activation they encode.
fn entries(
    hooks: &[Hook],
    sae: Option<&SaeAt>,
    cfg: &Config,
    dtype: DType,
    [b, t]: [usize; 2],
) -> Vec<Entry> {
    let mut out = Vec::new();
    for h in Hook::all(cfg) {
        if hooks.contains(&h) {
            out.push(Entry {
                name: h.to_string(),
                shape: h.shape(cfg, b, t),
                dtype,
            });
        }
        if let Some(s) = sae.filter(|s| s.hook == h) {
            out.push(Entry {
                name: sae_name(h),
                shape: vec![b, t, s.sae.cfg.d_sae],
                dtype: DType::F32,
            });
        }
    }
    out
}

/// SAELens's name for an SAE's feature activations at `hook`.
fn sae_name(hook: Hook) -> String {
    format!("{hook}.hook_sae_acts_post")
}

/// The hooks `--hook` patterns name (all when none), in data-flow order.
fn selected(patterns: &[String], cfg: &Config) -> Result<Vec<Hook>> {
    let all = Hook::all(cfg);
    if patterns.is_empty() {
        return Ok(all);
    }
    for p in patterns {
        let allowed = |c: char| c.is_ascii_alphanumeric() || "._*?".contains(c);
        if let Some(c) = p.chars().find(|&c| !allowed(c)) {
            return Err(usage(format!(
                "--hook {p}: {c:?} is not in a hook pattern, which has letters, digits, '.', '_' \
                 and the wildcards * and ?"
            )));
        }
        if !all.iter().any(|h| glob(p, &h.to_string())) {
            return Err(usage(format!(
                "--hook {p} matches no activation; `gpt2-inspect hooks` lists the names"
            )));
        }
    }
    let wanted = |h: &Hook| patterns.iter().any(|p| glob(p, &h.to_string()));
    Ok(all.into_iter().filter(wanted).collect())
}

/// The file laid out before the forward pass: its header (every tensor's place in the data
/// section, in data-flow order, and the texts in `__metadata__`) and each hook's slot.
struct Layout {
    header: Vec<u8>,
    /// Each tensor's offset in the data section and shape, by name.
    slots: HashMap<String, (u64, Vec<usize>)>,
    /// The whole file's size.
    bytes: u64,
}

impl Layout {
    fn new(
        session: &Session,
        prepared: &Texts,
        batch: &Padding,
        entries: &[Entry],
    ) -> Result<Layout> {
        let mut header = serde_json::Map::new();
        header.insert("__metadata__".into(), metadata(session, prepared, batch)?);
        let mut slots = HashMap::new();
        let mut offset = 0u64;
        for e in entries {
            let st_dtype = match e.dtype {
                DType::F16 => "F16",
                DType::BF16 => "BF16",
                _ => "F32",
            };
            let bytes = (e.shape.iter().product::<usize>() * e.dtype.size_in_bytes()) as u64;
            let entry = serde_json::json!({"dtype": st_dtype, "shape": e.shape, "data_offsets": [offset, offset + bytes]});
            header.insert(e.name.clone(), entry);
            slots.insert(e.name.clone(), (offset, e.shape.clone()));
            offset += bytes;
        }
        let mut header = serde_json::to_vec(&serde_json::Value::Object(header))?;
        header.resize(header.len().next_multiple_of(8), b' ');
        if header.len() > MAX_HEADER {
            bail!(
                "the file's header would be {} bytes, over safetensors' limit of {MAX_HEADER}: dump fewer texts at once",
                header.len()
            );
        }
        let bytes = 8 + header.len() as u64 + offset;
        Ok(Layout {
            header,
            slots,
            bytes,
        })
    }
}

/// The header's `__metadata__`: what the model ran on (a text cut by --truncate is stored
/// cut). One text keeps its plain values; a batch stores lists, and the attention mask.
fn metadata(session: &Session, prepared: &Texts, batch: &Padding) -> Result<serde_json::Value> {
    let Texts {
        texts, tokens, ids, ..
    } = prepared;
    let computed: Vec<String> = (texts.iter().zip(tokens))
        .map(|(text, tokens)| match (tokens.first(), tokens.last()) {
            (Some(a), Some(b)) => {
                String::from_utf8_lossy(&text.as_bytes()[a.start..b.end]).into_owned()
            }
            _ => String::new(),
        })
        .collect();
    Ok(match computed.as_slice() {
        [text] => serde_json::json!({
            "format": "pt",
            "model": session.model_name,
            "text": text,
            "input_ids": serde_json::to_string(&ids[0])?,
        }),
        _ => serde_json::json!({
            "format": "pt",
            "model": session.model_name,
            "text": serde_json::to_string(&computed)?,
            "input_ids": serde_json::to_string(&batch.input_ids)?,
            "attention_mask": serde_json::to_string(&batch.attention_mask)?,
        }),
    })
}

/// Writes the header, then runs the model and writes each activation as it is computed:
/// they arrive in data-flow order, the order of the header, one after another, so a FIFO
/// or a device works as well as a file. Returns how many were written.
fn stream(
    file: &mut Output,
    layout: &Layout,
    model: &Gpt2,
    req: &Request,
    prepared: &Texts,
    hooks: &[Hook],
    sae: Option<&SaeAt>,
) -> Result<usize> {
    let what = file.what();
    let mut w = BufWriter::with_capacity(1 << 20, file.file());
    let header = &layout.header;
    w.write_all(&(header.len() as u64).to_le_bytes())
        .context(what.clone())?;
    w.write_all(header).context(what.clone())?;
    let (mut at, mut written) = (0u64, 0);
    let all: Vec<usize> = (0..prepared.ids.len()).collect();
    let (input, lengths) = prepared.padded_input(&all, model.device())?; // (B, T)
    let inputs = Inputs {
        lengths: (all.len() > 1).then_some(lengths.as_slice()),
        ..Inputs::new(&input)
    };
    let mut put = |name: String, tensor: &Tensor| -> Result<()> {
        let (offset, shape) = &layout.slots[&name];
        if tensor.dims() != shape.as_slice() {
            bail!("{name} has shape {:?}, expected {shape:?}", tensor.dims());
        }
        if *offset != at {
            bail!("{name} was computed out of data-flow order");
        }
        tensor.write_bytes(&mut w).context(what.clone())?;
        at += (tensor.elem_count() * tensor.dtype().size_in_bytes()) as u64;
        written += 1;
        Ok(())
    };
    let mut recorder = Recorder::new(&req.capture, |hook: Hook, tensor: Tensor| {
        if hooks.contains(&hook) {
            put(hook.to_string(), &tensor)?;
        }
        if let Some(s) = sae.filter(|s| s.hook == hook) {
            let (b, t, d) = tensor.dims3()?;
            let acts = sae::encode_at(&s.sae, &tensor.reshape((b * t, d))?, s.centered)?;
            put(sae_name(hook), &acts.reshape((b, t, s.sae.cfg.d_sae))?)?;
        }
        Ok(())
    });
    model.run(inputs, req, &mut recorder)?;
    w.flush().context(what)?;
    Ok(written)
}

/// safetensors readers refuse headers longer than this.
const MAX_HEADER: usize = 100_000_000;

/// Shell-style glob: `*` matches any run of characters (dots included), `?` one character.
fn glob(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    // Classic two-pointer match with backtracking to the last `*`.
    let (mut i, mut j, mut star, mut mark) = (0, 0, None, 0);
    while j < n.len() {
        if i < p.len() && (p[i] == '?' || p[i] == n[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some(i);
            mark = j;
            i += 1;
        } else if let Some(s) = star {
            i = s + 1;
            mark += 1;
            j = mark;
        } else {
            return false;
        }
    }
    p[i..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::glob;

    #[test]
    fn globs() {
        assert!(glob(
            "blocks.*.attn.hook_pattern",
            "blocks.11.attn.hook_pattern"
        ));
        assert!(!glob("blocks.*.attn.hook_pattern", "blocks.1.attn.hook_z"));
        assert!(glob("*", "logits"));
        assert!(glob("blocks.?.hook_resid_*", "blocks.3.hook_resid_mid"));
        assert!(!glob("blocks.?.hook_resid_*", "blocks.10.hook_resid_mid"));
        assert!(glob("hook_embed", "hook_embed") && !glob("hook_embed", "hook_embed2"));
    }
}
