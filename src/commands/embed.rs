//! `embed`: each token's token embedding, position embedding and their sum (the input of
//! block 0), and optionally its nearest neighbours in wte by cosine similarity.

use std::io::Write;

use anyhow::Result;
use candle_core::{DType, Tensor, D};

use crate::cli::EmbedArgs;
use crate::dist;
use crate::model::{Activations, BlockHook, CaptureSpec, Gpt2, Hook, NoLogits, Request};
use crate::render::tokens::table;
use crate::reports::{EmbedReport, EmbedToken, Neighbour};
use crate::session::texts::{Computed, Texts};
use crate::session::Take;
use crate::session::{decoded, matrix, Session};
use crate::tokenizer::Tokenizer;

pub fn run(session: &Session, args: &EmbedArgs, out: &mut dyn Write) -> Result<()> {
    let cfg = session.config()?;
    if let Some(n) = args.nearest {
        // Every other row of wte at most: a token is not its own neighbour.
        let others = cfg.vocab_size - 1;
        if n as usize > others {
            return Err(crate::error::usage(format!(
                "--nearest {n} is out of range: {} has {} other tokens, so 1 to {others}",
                session.model_name, others
            )));
        }
    }
    let (prepared, model) = session.prepare_and_load(&args.input, cfg, 0, Take::EACH)?;
    let Texts { tokenizer, .. } = &prepared;
    let sum = Hook::Block(0, BlockHook::ResidPre);
    let req = Request {
        capture: CaptureSpec::new([Hook::Embed, Hook::PosEmbed, sum]),
        logits: NoLogits,
    };
    let build = |Computed {
                     text, ids, output, ..
                 }| {
        build(
            session,
            &model,
            tokenizer,
            args,
            text,
            ids,
            &output.activations,
        )
    };
    prepared.run(session, out, &model, &req, build, table::embed)
}

fn build(
    session: &Session,
    model: &Gpt2,
    tokenizer: &Tokenizer,
    args: &EmbedArgs,
    text: &str,
    ids: &[u32],
    acts: &Activations,
) -> Result<EmbedReport> {
    let sum = Hook::Block(0, BlockHook::ResidPre);
    let tok = acts.get(Hook::Embed)?.squeeze(0)?; // (T, C)
    let pos = acts.get(Hook::PosEmbed)?.squeeze(0)?; // (T, C)
    let emb = acts.get(sum)?.squeeze(0)?; // (T, C)
    let (tok_n, pos_n, emb_n) = (
        dist::row_norms(&tok)?,
        dist::row_norms(&pos)?,
        dist::row_norms(&emb)?,
    );
    let mut nearest = match args.nearest {
        Some(n) => Some(nearest(model, tokenizer, &tok, ids, n as usize)?),
        None => None,
    };
    let texts = decoded(tokenizer, ids)?;
    let tokens = (0..ids.len())
        .map(|i| EmbedToken {
            position: i,
            id: ids[i],
            token: texts[i].clone(),
            token_norm: tok_n[i],
            position_norm: pos_n[i],
            embedding_norm: emb_n[i],
            nearest: nearest.as_mut().map(|n| std::mem::take(&mut n[i])),
        })
        .collect();
    Ok(EmbedReport {
        header: session.header(Some(text))?,
        wte_shape: {
            let (v, c) = model.wte().dims()?;
            vec![v, c]
        },
        wpe_shape: model.wpe().dims().to_vec(),
        tokens,
        token_embeddings: matrix(&tok)?,
        position_embeddings: matrix(&pos)?,
        embeddings: matrix(&emb)?,
    })
}

/// For each token, the `n` wte rows closest to its own by cosine similarity, itself excluded.
fn nearest(
    model: &Gpt2,
    tokenizer: &Tokenizer,
    tok: &Tensor,
    ids: &[u32],
    n: usize,
) -> Result<Vec<Vec<Neighbour>>> {
    let unit = |t: &Tensor| -> Result<Tensor> {
        let t = t.to_dtype(DType::F32)?;
        Ok(t.broadcast_div(&t.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?)?)
    };
    let wte = unit(&model.wte().tensor()?)?; // (V, C)
    let cos = unit(tok)?.matmul(&wte.t()?)?; // (T, V)
    let cos: Vec<Vec<f32>> = cos.to_vec2()?;
    cos.iter()
        .zip(ids)
        .map(|(row, &own)| {
            // One more than asked, less the token itself.
            dist::top_k(row, n + 1)
                .into_iter()
                .filter(|&j| j != own as usize)
                .take(n)
                .map(|j| {
                    Ok(Neighbour {
                        id: j as u32,
                        token: tokenizer.token_text(j as u32)?,
                        cosine: row[j],
                    })
                })
                .collect()
        })
        .collect()
}
