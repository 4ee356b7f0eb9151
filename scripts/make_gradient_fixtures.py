"""Reference gradients for the tiny GPT-2 of tests/fixtures: torch autograd on Hugging Face's
GPT2LMHeadModel (eager attention), and Captum's Saliency, InputXGradient and
IntegratedGradients on inputs_embeds. Writes tests/fixtures/gradients.safetensors.

Run through scripts/make_fixtures.sh (after make_fixtures.py has written the model), or
alone with a Python that has the pinned requirements and captum:

    python scripts/make_gradient_fixtures.py --fixtures tests/fixtures

Every expected value the Rust tests use comes from here, never from gpt2-inspect.
"""

import argparse
import json
import os

import numpy as np
import torch
from captum.attr import InputXGradient, IntegratedGradients, Saliency
from safetensors.torch import save_file
from transformers import GPT2LMHeadModel, PreTrainedTokenizerFast

from make_fixtures import PATCH_PAIRS

# (text, answer or None for the top prediction, wrong or None, position, quantity)
CASES = [
    ("The capital of France is", None, None, -1, "logit"),
    ("When Mary and John went to the store, John gave a drink to", " Mary", " John", -1, "logit"),
    ("The cat sat on the mat", " on", None, 2, "logprob"),
    ("The quick brown fox", None, " dog", -1, "prob"),
]
# Integrated gradients: (case, steps, baseline)
IG_CASES = [(0, 50, "zero"), (1, 50, "zero"), (2, 16, "eos"), (3, 7, "zero")]
# saliency --generate: prompt, new tokens; every row by the gradient method (logit).
GENERATE = ("The quick brown fox", 4)
# saliency --continuation: prompt, continuation.
CONTINUATION = ("The cat", " sat on the mat")
EOS = 50256


def metric_fn(quantity, answer, wrong):
    """The metric of logits (B, V): answer's logit, log-prob or prob, minus wrong's."""

    def f(logits):
        if quantity == "logprob":
            x = torch.log_softmax(logits, -1)
        elif quantity == "prob":
            x = torch.softmax(logits, -1)
        else:
            x = logits
        m = x[:, answer]
        if wrong is not None:
            m = m - x[:, wrong]
        return m

    return f


def hooked(model, ids, embeds):
    """Runs the model on embeds (1, T, C) as inputs_embeds, keeping TransformerLens-named
    activations with retain_grad. Returns (logits, acts)."""
    acts, handles = {}, []
    tr = model.transformer
    cfg = model.config
    nh, dh = cfg.n_head, cfg.n_embd // cfg.n_head

    def keep(name, reshape=None):
        def store(t):
            t.retain_grad()
            acts[name] = (t, reshape)

        return store

    for l, blk in enumerate(tr.h):
        p = f"blocks.{l}."
        heads = lambda t: t.reshape(t.shape[0], t.shape[1], nh, dh)
        handles.append(blk.register_forward_pre_hook(lambda m, a, k, s=keep(p + "hook_resid_pre"): s(a[0] if a else k["hidden_states"]), with_kwargs=True))
        handles.append(blk.ln_1.register_forward_hook(lambda m, i, o, s=keep(p + "ln1.hook_out"): s(o)))
        handles.append(blk.attn.c_attn.register_forward_hook(lambda m, i, o, s=keep(p + "attn.c_attn", None): s(o)))
        handles.append(blk.attn.c_proj.register_forward_pre_hook(lambda m, a, s=keep(p + "attn.hook_z", heads): s(a[0])))
        handles.append(blk.attn.c_proj.register_forward_hook(lambda m, i, o, s=keep(p + "hook_attn_out"): s(o)))
        handles.append(blk.ln_2.register_forward_pre_hook(lambda m, a, s=keep(p + "hook_resid_mid"): s(a[0])))
        handles.append(blk.mlp.c_fc.register_forward_hook(lambda m, i, o, s=keep(p + "mlp.hook_pre"): s(o)))
        handles.append(blk.mlp.c_proj.register_forward_pre_hook(lambda m, a, s=keep(p + "mlp.hook_post"): s(a[0])))
        handles.append(blk.mlp.register_forward_hook(lambda m, i, o, s=keep(p + "hook_mlp_out"): s(o)))
        handles.append(blk.register_forward_hook(lambda m, i, o, s=keep(p + "hook_resid_post"): s(o[0] if isinstance(o, tuple) else o)))
    handles.append(tr.ln_f.register_forward_hook(lambda m, i, o, s=keep("ln_final.hook_out"): s(o)))
    try:
        out = model(inputs_embeds=embeds, output_attentions=True)
    finally:
        for h in handles:
            h.remove()
    for l, a in enumerate(out.attentions):
        a.retain_grad()
        acts[f"blocks.{l}.attn.hook_pattern"] = (a, None)
    return out.logits, acts


def gradients_at_hooks(model, ids, pos, metric, ref, p):
    """∂metric/∂(every kept activation) and ∂metric/∂hook_embed for ids (1, T)."""
    cfg = model.config
    nh, dh, c = cfg.n_head, cfg.n_embd // cfg.n_head, cfg.n_embd
    embeds = model.transformer.wte(ids).detach().clone().requires_grad_(True)
    logits, acts = hooked(model, ids, embeds)
    m = metric(logits[:, pos])
    m.sum().backward()
    ref[p + "metric"] = m.detach()[0].reshape(())
    ref[p + "grad.hook_embed"] = embeds.grad[0]
    for name, (t, reshape) in acts.items():
        g = t.grad
        if name.endswith("attn.c_attn"):
            l = name.split(".")[1]
            g4 = g.reshape(g.shape[0], g.shape[1], 3, nh, dh)
            for i, qkv in enumerate("qkv"):
                ref[p + f"grad.blocks.{l}.attn.hook_{qkv}"] = g4[0, :, i]
            continue
        if reshape is not None:
            g = reshape(g)
        ref[p + "grad." + name] = g[0]


def captum_scores(model, ids, pos, metric, ref, p):
    """Captum's Saliency (L2 over d_model) and InputXGradient (summed) on inputs_embeds."""
    embeds = model.transformer.wte(ids).detach().clone()
    f = lambda e: metric(model(inputs_embeds=e).logits[:, pos])
    sal = Saliency(f).attribute(embeds, abs=False)
    ref[p + "gradient"] = sal[0].norm(dim=-1)
    ixg = InputXGradient(f).attribute(embeds)
    ref[p + "input_x_gradient"] = ixg[0].sum(-1)


def captum_ig(model, ids, pos, metric, steps, baseline, ref, p):
    embeds = model.transformer.wte(ids).detach().clone()
    if baseline == "zero":
        base = torch.zeros_like(embeds)
    else:
        base = model.transformer.wte(torch.tensor([[EOS]])).detach().expand_as(embeds).clone()
    f = lambda e: metric(model(inputs_embeds=e).logits[:, pos])
    ig = IntegratedGradients(f)
    attr, delta = ig.attribute(
        embeds, baselines=base, n_steps=steps, method="gausslegendre", return_convergence_delta=True
    )
    ref[p + "scores"] = attr[0].sum(-1).detach()
    ref[p + "delta"] = delta.detach().reshape(())
    with torch.no_grad():
        ref[p + "baseline_metric"] = f(base).reshape(())


def rollout(model, ids):
    """Abnar & Zuidema's rollout in numpy (float64) from HF's attention weights."""
    with torch.no_grad():
        att = model(input_ids=ids, output_attentions=True).attentions
    t = ids.shape[1]
    r = np.eye(t)
    for a in att:
        a = a[0].double().numpy().mean(0)
        a = 0.5 * a + 0.5 * np.eye(t)
        a = a / a.sum(-1, keepdims=True)
        r = a @ r
    return torch.tensor(r[-1])


def load(fixtures):
    """The fixture model (eager attention, its weights constants) and its tokenizer."""
    model_dir = os.path.join(fixtures, "tiny-gpt2")
    model = GPT2LMHeadModel.from_pretrained(model_dir, attn_implementation="eager").eval()
    for prm in model.parameters():
        prm.requires_grad_(False)
    tok = PreTrainedTokenizerFast(tokenizer_file=os.path.join(model_dir, "tokenizer.json"))
    return model, tok


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--fixtures", required=True)
    args = ap.parse_args()
    model, tok = load(args.fixtures)
    ids_of = lambda t: torch.tensor([tok(t)["input_ids"]])
    one = lambda t: None if t is None else tok(t)["input_ids"][0]
    ref = {}
    metrics = []
    for k, (text, answer, wrong, pos, quantity) in enumerate(CASES):
        ids = ids_of(text)
        pos = pos % ids.shape[1]
        ids = ids[:, : pos + 1]  # later tokens cannot change the prediction at pos
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0, -1]
        a = one(answer) if answer is not None else int(logits.argmax())
        metric = metric_fn(quantity, a, one(wrong))
        metrics.append(metric)
        p = f"case{k}."
        ref[p + "input_ids"] = ids[0]
        ref[p + "answer"] = torch.tensor(a)
        gradients_at_hooks(model, ids, -1, metric, ref, p)
        captum_scores(model, ids, -1, metric, ref, p)
        ref[p + "rollout"] = rollout(model, ids)
    for k, (case, steps, baseline) in enumerate(IG_CASES):
        ids = ref[f"case{case}.input_ids"][None]
        captum_ig(model, ids, -1, metrics[case], steps, baseline, ref, f"ig{k}.")

    prompt, n = GENERATE
    ids = ids_of(prompt)
    with torch.no_grad():
        gen = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=n, pad_token_id=EOS)
    generation_rows(model, gen[0], ids.shape[1], ref, "generate.")
    prompt, cont = CONTINUATION
    full = torch.cat([ids_of(prompt)[0], ids_of(cont)[0]])
    generation_rows(model, full, ids_of(prompt).shape[1], ref, "continuation.")

    attribution_patching(model, tok, ref)

    ref = {k: (v.float() if v.is_floating_point() else v).detach().clone().contiguous() for k, v in ref.items()}
    metadata = {
        "cases": json.dumps(CASES),
        "ig_cases": json.dumps(IG_CASES),
        "generate": json.dumps(GENERATE),
        "continuation": json.dumps(CONTINUATION),
        "patch_pairs": json.dumps(PATCH_PAIRS),
        "torch": torch.__version__,
        "transformers": __import__("transformers").__version__,
        "captum": __import__("captum").__version__,
    }
    save_file(ref, os.path.join(args.fixtures, "gradients.safetensors"), metadata=metadata)
    print("wrote", os.path.join(args.fixtures, "gradients.safetensors"), len(ref), "tensors")


SITES = {
    "resid_pre": "hook_resid_pre",
    "attn_out": "hook_attn_out",
    "mlp_out": "hook_mlp_out",
    "head": "attn.hook_z",
}


def attribution_patching(model, tok, ref):
    """patch --method attribution: metric(corrupt) + (clean − corrupt) · ∂metric/∂act at
    the corrupt run, summed over d_model (or over positions and d_head of a head's z)."""
    L = model.config.n_layer
    for k, (clean, corrupt, answer, wrong) in enumerate(PATCH_PAIRS):
        c_ids, x_ids = (torch.tensor([tok(t)["input_ids"]]) for t in (clean, corrupt))
        a, w = tok(answer)["input_ids"][0], tok(wrong)["input_ids"][0]
        wte = model.transformer.wte
        _, clean_acts = hooked(model, c_ids, wte(c_ids).detach().clone().requires_grad_(True))
        embeds = wte(x_ids).detach().clone().requires_grad_(True)
        logits, acts = hooked(model, x_ids, embeds)
        m = logits[0, -1, a] - logits[0, -1, w]
        m.backward()
        for site, suffix in SITES.items():
            rows = []
            for l in range(L):
                name = f"blocks.{l}.{suffix}"
                t, reshape = acts[name]
                g, x, c = t.grad, t.detach(), clean_acts[name][0].detach()
                score = ((c - x) * g)[0]  # (T, C)
                if site == "head":
                    score = reshape(score[None])[0].sum(dim=(0, 2))  # (nh,)
                else:
                    score = score.sum(-1)  # (T,)
                rows.append(float(m) + score)
            ref[f"attribution{k}.{site}"] = torch.stack(rows).detach()
        ref[f"attribution{k}.corrupt"] = m.detach().reshape(())


def generation_rows(model, all_ids, n0, ref, p):
    """Row i: the gradient method's scores of tokens 0..p-1 for logit[token p], p = n0 + i;
    NaN from p on."""
    t = len(all_ids)
    rows = torch.full((t - n0, t), float("nan"))
    for i, pos in enumerate(range(n0, t)):
        ids = all_ids[None, :pos]
        embeds = model.transformer.wte(ids).detach().clone()
        f = metric_fn("logit", int(all_ids[pos]), None)
        sal = Saliency(lambda e: f(model(inputs_embeds=e).logits[:, -1])).attribute(embeds, abs=False)
        rows[i, :pos] = sal[0].norm(dim=-1)
    ref[p + "input_ids"] = all_ids
    ref[p + "matrix"] = rows


if __name__ == "__main__":
    main()
