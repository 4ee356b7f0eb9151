"""Reference patching sites, edge patches and edge attribution scores for the tiny GPT-2
of tests/fixtures: Hugging Face's GPT2LMHeadModel (eager attention) run with torch hooks
on its own modules, and torch autograd for the gradients. Writes
tests/fixtures/edges.safetensors.

Run through scripts/make_fixtures.sh, or alone with the pinned requirements:

    python scripts/make_edge_fixtures.py --fixtures tests/fixtures

Every expected value the Rust tests use comes from here, never from gpt2-inspect. The
definitions are TransformerLens's (patching sites: patching.get_act_patch_*; split q/k/v
inputs: use_split_qkv_input), Syed et al.'s (EAP) and Hanna et al.'s (EAP-IG: their eap
library's input interpolation, k/N for k = 0..N-1).
"""

import argparse
import json
import os

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from transformers.models.gpt2 import modeling_gpt2

from make_fixtures import PATCH_PAIRS
from make_gradient_fixtures import load

IG_STEPS = 5
FAITHFULNESS = [0, 3, 10, 30, 100]
_original_attention = modeling_gpt2.eager_attention_forward


class Hooks:
    """Everything one forward pass changes, keyed by what it changes. Each field is a dict
    from layer to a function; absent layers run as HF runs them."""

    def __init__(self):
        self.pattern = {}  # l -> f(weights (B, nh, T, T)) -> weights
        self.z = {}  # l -> f(z (B, T, C)) -> z, the c_proj input
        self.qkv = {}  # l -> f(resid_pre (B, T, C), qkv (B, T, 3C)) -> qkv
        self.resid_mid = {}  # l -> f(resid_mid) -> replacement, via the attention output
        self.mlp_in = {}  # l -> f(resid_mid) -> the mlp's ln_2 input
        self.attn_out = {}
        self.mlp_out = {}
        self.resid_pre = {}
        self.final = None  # f(ln_f input) -> ln_f input
        self.writers = None  # a list the run appends (name, value) to


def forward(model, hooks, ids=None, embeds=None, tail=None):
    """Last-position logits (B, V) of HF's forward with `hooks` on its modules; with `tail`,
    the last `tail` positions' (B, tail, V)."""
    cfg = model.config
    nh, C = cfg.n_head, cfg.n_embd
    dh = C // nh
    tr = model.transformer
    handles, state = [], {}

    def attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kw):
        l = module.layer_idx
        if l not in hooks.pattern:
            return _original_attention(module, query, key, value, attention_mask, scaling, dropout, **kw)
        # HF's eager_attention_forward, line for line, with the weights replaced.
        w = torch.matmul(query, key.transpose(-1, -2)) * (scaling if scaling is not None else query.size(-1) ** -0.5)
        if attention_mask is not None:
            w = w + attention_mask
        w = F.softmax(w, dim=-1).type(value.dtype)
        w = hooks.pattern[l](w)
        return torch.matmul(w, value).transpose(1, 2), w

    for l, blk in enumerate(tr.h):

        def pre_block(m, args, kwargs, l=l):
            x = args[0] if args else kwargs["hidden_states"]
            state[("pre", l)] = x
            if l == 0 and hooks.writers is not None:
                hooks.writers.append(("embed", x))
            if l in hooks.resid_pre:
                x = hooks.resid_pre[l](x)
                if args:
                    return (x,) + tuple(args[1:]), kwargs
                kwargs = dict(kwargs, hidden_states=x)
                return args, kwargs

        handles.append(blk.register_forward_pre_hook(pre_block, with_kwargs=True))

        def c_attn_out(m, inputs, out, l=l):
            if l in hooks.qkv:
                return hooks.qkv[l](state[("pre", l)], out)

        handles.append(blk.attn.c_attn.register_forward_hook(c_attn_out))

        def c_proj_in(m, args, l=l, proj=blk.attn.c_proj):
            z = args[0]
            if l in hooks.z:
                z = hooks.z[l](z)
            if hooks.writers is not None:
                w_o = proj.weight.view(nh, dh, C)
                result = torch.einsum("bthd,hdc->bthc", z.view(*z.shape[:-1], nh, dh), w_o)
                for h in range(nh):
                    hooks.writers.append((f"L{l}H{h}", result[:, :, h]))
            return (z,)

        handles.append(blk.attn.c_proj.register_forward_pre_hook(c_proj_in))

        def attn_out(m, inputs, out, l=l):
            a = out[0]
            if l in hooks.attn_out:
                a = hooks.attn_out[l](a)
            if l in hooks.resid_mid:
                # resid_mid = resid_pre + attn_out: replace it through the attention output.
                pre = state[("pre", l)]
                a = hooks.resid_mid[l](pre + a) - pre
            return (a,) + tuple(out[1:])

        handles.append(blk.attn.register_forward_hook(attn_out))

        def ln2_in(m, args, l=l):
            state[("mid", l)] = args[0]

        handles.append(blk.ln_2.register_forward_pre_hook(ln2_in))

        def mlp_in(m, args, l=l, ln=blk.ln_2):
            if l in hooks.mlp_in:
                x = hooks.mlp_in[l](state[("mid", l)])
                return (F.layer_norm(x, (C,), ln.weight, ln.bias, ln.eps),)

        handles.append(blk.mlp.register_forward_pre_hook(mlp_in))

        def mlp_out(m, inputs, out, l=l):
            if l in hooks.mlp_out:
                out = hooks.mlp_out[l](out)
            if hooks.writers is not None:
                hooks.writers.append((f"mlp{l}", out))
            return out

        handles.append(blk.mlp.register_forward_hook(mlp_out))

    def final(m, args):
        if hooks.final is not None:
            return (hooks.final(args[0]),)

    handles.append(tr.ln_f.register_forward_pre_hook(final))
    modeling_gpt2.eager_attention_forward = attention
    try:
        if embeds is not None:
            out = model(inputs_embeds=embeds)
        else:
            out = model(input_ids=ids)
    finally:
        modeling_gpt2.eager_attention_forward = _original_attention
        for h in handles:
            h.remove()
    return out.logits[:, -1] if tail is None else out.logits[:, -tail:]


def split_qkv(blk, inputs):
    """c_attn's output (B, T, 3C) with each head's query, key and value computed from its own
    residual input: inputs(x, h) -> (B, T, C) for x in 0, 1, 2 (q, k, v)."""
    ln, m = blk.ln_1, blk.attn.c_attn
    C = m.weight.shape[0]
    nh = blk.attn.num_heads
    dh = C // nh
    cols = []
    for x in range(3):
        for h in range(nh):
            r = F.layer_norm(inputs(x, h), (C,), ln.weight, ln.bias, ln.eps)
            sl = slice(x * C + h * dh, x * C + (h + 1) * dh)
            cols.append(r @ m.weight[:, sl] + m.bias[sl])
    return torch.cat(cols, dim=-1)


def names(L, nh):
    writers = ["embed"]
    readers = []
    for l in range(L):
        writers += [f"L{l}H{h}" for h in range(nh)] + [f"mlp{l}"]
        for h in range(nh):
            readers += [f"L{l}H{h}.{x}" for x in "qkv"]
        readers.append(f"mlp{l}")
    readers.append("logits")
    return writers, readers


def step_w(name):
    if name == "embed":
        return 0
    if name.startswith("mlp"):
        return 2 * int(name[3:]) + 2
    return 2 * int(name[1:].split("H")[0]) + 1


def step_r(name, L):
    if name == "logits":
        return 2 * L + 1
    if name.startswith("mlp"):
        return 2 * int(name[3:]) + 2
    return 2 * int(name[1:].split("H")[0]) + 1


def reader_hooks(model, hooks, addend):
    """Gives each reader's input resid + addend(reader) (None: unchanged)."""
    cfg = model.config
    L, nh = cfg.n_layer, cfg.n_head
    tr = model.transformer
    for l in range(L):
        blk = tr.h[l]

        def qkv(resid, out, l=l, blk=blk):
            def inputs(x, h):
                a = addend(f"L{l}H{h}.{'qkv'[x]}", resid)
                return resid if a is None else resid + a

            return split_qkv(blk, inputs)

        hooks.qkv[l] = qkv

        def mlp(resid, l=l):
            a = addend(f"mlp{l}", resid)
            return resid if a is None else resid + a

        hooks.mlp_in[l] = mlp

    def final(resid):
        a = addend("logits", resid)
        return resid if a is None else resid + a

    hooks.final = final


def writer_values(model, ids=None, embeds=None):
    h = Hooks()
    h.writers = []
    with torch.no_grad():
        forward(model, h, ids=ids, embeds=embeds)
    return {n: v.detach().clone() for n, v in h.writers}


def observe(hooks, L, store):
    """Hands every layer's resid_mid, z, c_attn output (q, k, v) and pattern to
    store(key, value) as the run passes them, unchanged."""

    def at(key):
        def f(x, *rest):
            v = rest[-1] if rest else x
            store(key, v)
            return v

        return f

    for l in range(L):
        hooks.resid_mid[l] = at(("mid", l))
        hooks.z[l] = at(("z", l))
        hooks.qkv[l] = at(("qkv", l))
        hooks.pattern[l] = at(("pattern", l))


def sites(model, c_ids, x_ids, diff, ref, p):
    """Exact patching at the sites TransformerLens has beyond patch's first four."""
    cfg = model.config
    L, nh, C = cfg.n_layer, cfg.n_head, cfg.n_embd
    dh = C // nh
    T = c_ids.shape[1]
    clean = Hooks()
    rec = {}

    # Record the clean run's resid_mid, z, q/k/v (c_attn output) and pattern.
    observe(clean, L, lambda key, v: rec.__setitem__(key, v.detach().clone()))
    with torch.no_grad():
        forward(model, clean, ids=c_ids)

    def run(setup):
        h = Hooks()
        setup(h)
        with torch.no_grad():
            return diff(forward(model, h, ids=x_ids)[0])

    def put(key, index):
        def f(x, *rest):
            v = (rest[-1] if rest else x).clone()
            v[index] = rec[key][index]
            return v

        return f

    out = {
        "resid_mid": torch.zeros(L, T),
        "head_by_pos": torch.zeros(L, T, nh),
        "pattern": torch.zeros(L, nh),
        "pattern_by_pos": torch.zeros(L, nh, T),
        "pattern_dest_src": torch.full((L, nh, T, T), float("nan")),
    }
    for x in "qkv":
        out[x] = torch.zeros(L, nh)
        out[x + "_by_pos"] = torch.zeros(L, T, nh)
    for l in range(L):
        for t in range(T):
            out["resid_mid"][l, t] = run(lambda h: h.resid_mid.__setitem__(l, put(("mid", l), (0, t))))
            for hd in range(nh):
                cols = slice(hd * dh, (hd + 1) * dh)
                out["head_by_pos"][l, t, hd] = run(lambda h: h.z.__setitem__(l, put(("z", l), (0, t, cols))))
                for i, x in enumerate("qkv"):
                    qc = slice(i * C + hd * dh, i * C + (hd + 1) * dh)
                    out[x + "_by_pos"][l, t, hd] = run(lambda h: h.qkv.__setitem__(l, put(("qkv", l), (0, t, qc))))
        for hd in range(nh):
            for i, x in enumerate("qkv"):
                qc = slice(i * C + hd * dh, i * C + (hd + 1) * dh)
                out[x][l, hd] = run(lambda h: h.qkv.__setitem__(l, put(("qkv", l), (0, slice(None), qc))))
            out["pattern"][l, hd] = run(lambda h: h.pattern.__setitem__(l, put(("pattern", l), (0, hd))))
            for d in range(T):
                out["pattern_by_pos"][l, hd, d] = run(lambda h: h.pattern.__setitem__(l, put(("pattern", l), (0, hd, d))))
                for s in range(d + 1):
                    out["pattern_dest_src"][l, hd, d, s] = run(
                        lambda h: h.pattern.__setitem__(l, put(("pattern", l), (0, hd, d, s)))
                    )
    for k, v in out.items():
        ref[p + "site." + k] = v
    return rec


def site_estimates(model, c_rec, x_ids, a, w, ref, p):
    """Attribution patching at the same sites: (clean − corrupt) · ∂metric/∂act at the
    corrupt run, summed over what each cell patches."""
    cfg = model.config
    L, nh, C = cfg.n_layer, cfg.n_head, cfg.n_embd
    dh = C // nh
    h = Hooks()
    acts = {}

    def keep(key, v):
        v.retain_grad()
        acts[key] = v

    observe(h, L, keep)
    embeds = model.transformer.wte(x_ids).detach().clone().requires_grad_(True)
    logits = forward(model, h, embeds=embeds)
    m = logits[0, a] - logits[0, w]
    m.backward()
    score = {key: ((c_rec[key] - v.detach()) * v.grad)[0] for key, v in acts.items()}
    est = {k: [] for k in ["resid_mid", "head_by_pos", "q", "k", "v", "q_by_pos", "k_by_pos", "v_by_pos", "pattern", "pattern_by_pos", "pattern_dest_src"]}
    for l in range(L):
        est["resid_mid"].append(score[("mid", l)].sum(-1))
        z = score[("z", l)].view(-1, nh, dh)
        est["head_by_pos"].append(z.sum(-1))
        qkv = score[("qkv", l)].view(-1, 3, nh, dh)
        for i, x in enumerate("qkv"):
            est[x].append(qkv[:, i].sum(dim=(0, 2)))
            est[x + "_by_pos"].append(qkv[:, i].sum(-1))
        pat = score[("pattern", l)]  # (nh, T, T)
        est["pattern"].append(pat.sum(dim=(1, 2)))
        est["pattern_by_pos"].append(pat.sum(-1))
        T = pat.shape[-1]
        masked = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
        est["pattern_dest_src"].append(pat.masked_fill(masked, float("nan")))
    for k, v in est.items():
        ref[p + "estimate." + k] = float(m) + torch.stack(v)


def eap(model, c_ids, x_ids, a, w, steps, ref, p):
    """Edge scores [W][R] (NaN where no edge): Δwriter · mean over the IG points of
    ∂metric/∂(reader's input), each reader's input its own copy (split q/k/v inputs)."""
    cfg = model.config
    L, nh = cfg.n_layer, cfg.n_head
    W, R = names(L, nh)
    wte = model.transformer.wte
    clean_w = writer_values(model, ids=c_ids)
    corrupt_w = writer_values(model, ids=x_ids)
    c_emb, x_emb = wte(c_ids).detach(), wte(x_ids).detach()
    grads = {r: 0 for r in R}
    metric0 = None
    for k in range(steps):
        zeros = {}

        def addend(r, resid):
            if r not in zeros:
                zeros[r] = torch.zeros_like(resid).requires_grad_(True)
            return zeros[r]

        h = Hooks()
        reader_hooks(model, h, addend)
        emb = x_emb + (k / steps) * (c_emb - x_emb)
        logits = forward(model, h, embeds=emb)
        m = logits[0, a] - logits[0, w]
        if k == 0:
            metric0 = float(m)
        m.backward()
        for r in R:
            grads[r] = grads[r] + zeros[r].grad[0] / steps
    scores = torch.full((len(W), len(R)), float("nan"))
    for i, wn in enumerate(W):
        d = (clean_w[wn] - corrupt_w[wn])[0]
        for j, rn in enumerate(R):
            if step_w(wn) < step_r(rn, L):
                scores[i, j] = (d * grads[rn]).sum()
    ref[p + f"eap{steps}"] = scores
    ref[p + f"eap{steps}.corrupt"] = torch.tensor(metric0)
    return scores, clean_w, corrupt_w


def exact_edges(model, x_ids, diff, clean_w, corrupt_w, ref, p):
    """Every edge patched alone: the reader's input given the writer's clean − corrupt."""
    cfg = model.config
    L, nh = cfg.n_layer, cfg.n_head
    W, R = names(L, nh)
    out = torch.full((len(W), len(R)), float("nan"))
    for i, wn in enumerate(W):
        delta = clean_w[wn] - corrupt_w[wn]
        for j, rn in enumerate(R):
            if step_w(wn) >= step_r(rn, L):
                continue
            h = Hooks()
            reader_hooks(model, h, lambda r, resid, rn=rn: delta if r == rn else None)
            with torch.no_grad():
                out[i, j] = diff(forward(model, h, ids=x_ids)[0])
    ref[p + "edges.exact"] = out


def faithfulness(model, c_ids, scores, corrupt_w, diff, ref, p):
    """The clean run with only the top K edges (by |EAP score|) carrying this run's writer
    values; every other edge the writer's corrupt value."""
    cfg = model.config
    L, nh = cfg.n_layer, cfg.n_head
    W, R = names(L, nh)
    edges = [(i, j) for i in range(len(W)) for j in range(len(R)) if not torch.isnan(scores[i, j])]
    # By |score| descending, ties in data-flow order (reader, then writer), as the tool.
    order = sorted(edges, key=lambda e: (-abs(float(scores[e])), e[1], e[0]))
    values = []
    for K in FAITHFULNESS:
        kept = set(order[:K])
        h = Hooks()
        h.writers = []

        def addend(r, resid, kept=kept, h=h):
            j = R.index(r)
            off = 0
            for wn, v in h.writers:
                i = W.index(wn)
                if step_w(wn) < step_r(r, L) and (i, j) not in kept:
                    off = off + (v - corrupt_w[wn])
            return -off if torch.is_tensor(off) else None

        reader_hooks(model, h, addend)
        with torch.no_grad():
            values.append(diff(forward(model, h, ids=c_ids)[0]))
    ref[p + "faithfulness"] = torch.tensor(values)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--fixtures", required=True)
    args = ap.parse_args()
    model, tok = load(args.fixtures)
    ids_of = lambda t: torch.tensor([tok(t)["input_ids"]])
    ref = {}
    for k, (clean, corrupt, answer, wrong) in enumerate(PATCH_PAIRS):
        c_ids, x_ids = ids_of(clean), ids_of(corrupt)
        a, w = tok(answer)["input_ids"][0], tok(wrong)["input_ids"][0]
        diff = lambda logits: float(logits[a] - logits[w])
        p = f"pair{k}."
        rec = sites(model, c_ids, x_ids, diff, ref, p)
        site_estimates(model, rec, x_ids, a, w, ref, p)
        scores, clean_w, corrupt_w = eap(model, c_ids, x_ids, a, w, 1, ref, p)
        eap(model, c_ids, x_ids, a, w, IG_STEPS, ref, p)
        exact_edges(model, x_ids, diff, clean_w, corrupt_w, ref, p)
        faithfulness(model, c_ids, scores, corrupt_w, diff, ref, p)
    W, R = names(model.config.n_layer, model.config.n_head)
    metadata = {
        "patch_pairs": json.dumps(PATCH_PAIRS),
        "writers": json.dumps(W),
        "readers": json.dumps(R),
        "ig_steps": str(IG_STEPS),
        "faithfulness": json.dumps(FAITHFULNESS),
    }
    save(ref, args.fixtures, "edges.safetensors", metadata)


def save(ref, fixtures, name, metadata):
    """Writes `ref` as float32 to fixtures/name, with `metadata` and the versions that made
    it."""
    ref = {k: v.float().detach().clone().contiguous() for k, v in ref.items()}
    versions = {"torch": torch.__version__, "transformers": __import__("transformers").__version__}
    path = os.path.join(fixtures, name)
    save_file(ref, path, metadata=dict(metadata, **versions))
    print("wrote", path, len(ref), "tensors")


if __name__ == "__main__":
    main()
