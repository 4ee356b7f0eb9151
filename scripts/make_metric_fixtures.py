"""Reference values of patch's and ablate's metrics for the tiny GPT-2 of tests/fixtures:
Hugging Face's GPT2LMHeadModel (eager attention) run with torch hooks on its own modules
(make_edge_fixtures.forward), torch autograd for attribution patching. Writes
tests/fixtures/metrics.safetensors.

Run through scripts/make_fixtures.sh, or alone with the pinned requirements:

    python scripts/make_metric_fixtures.py --fixtures tests/fixtures

Every expected value the Rust tests use comes from here, never from gpt2-inspect. The
metrics are TransformerLens's: the answer's logit, log-probability or probability at the
last position (minus the wrong token's), or the KL divergence KL(reference || run) of the
next-token distribution; an answer of n tokens is teacher-forced (the texts end with its
first n - 1 tokens) and the metric summed over the last n positions.
"""

import argparse
import json

import torch
import torch.nn.functional as F

from make_edge_fixtures import Hooks, forward, reader_hooks, save, writer_values
from make_gradient_fixtures import load

CLEAN, CORRUPT = "The cat sat on the mat", "The dog sat on the mat"
# (name, --metric, --answer or None, --wrong or None)
METRICS = [
    ("logprob", "logprob", " and", None),
    ("prob_diff", "prob", " and", " with"),
    ("kl", "kl", None, None),
    ("logprob2", "logprob", " and the", None),
    ("logit2", "logit", " and the", None),
    ("kl2", "kl", " and the", None),
]
PATH_SENDER = (0, 1)
ABLATE_TEXT = "The cat sat on the mat"
# heads as (layer, head), MLP layers, mode
ABLATIONS = [([(1, 2)], [], "zero"), ([(0, 1), (2, 3)], [0], "mean")]


def metric_of(kind, answer, wrong, ref):
    """metric(logits (n, V)) -> 0-d tensor, differentiable; `ref` the reference run's (n, V)."""
    r = F.log_softmax(ref.detach(), -1)

    def f(logits):
        lp = F.log_softmax(logits, -1)
        if kind == "kl":
            return (r.exp() * (r - lp)).sum()
        q = {"logit": logits, "logprob": lp, "prob": lp.exp()}[kind]
        v = sum(q[i, a] for i, a in enumerate(answer))
        return v - q[0, wrong] if wrong is not None else v

    return f


def record(model, ids, n):
    """Every layer's resid_pre and z of a run, and its last n logits."""
    L = model.config.n_layer
    rec, h = {}, Hooks()
    for l in range(L):
        h.resid_pre[l] = lambda x, l=l: rec.setdefault(("pre", l), x.detach().clone()) * 0 + x
        h.z[l] = lambda z, l=l: rec.setdefault(("z", l), z.detach().clone()) * 0 + z
    with torch.no_grad():
        logits = forward(model, h, ids=ids, tail=n)[0]
    return rec, logits


def exact(model, c_ids, x_ids, m, n, c_rec, ref, p):
    """resid_pre [L][T] and head [L][H]: the corrupt run with one activation clean."""
    cfg = model.config
    L, nh, C = cfg.n_layer, cfg.n_head, cfg.n_embd
    dh, T = C // nh, c_ids.shape[1]

    def run(setup):
        h = Hooks()
        setup(h)
        with torch.no_grad():
            return float(m(forward(model, h, ids=x_ids, tail=n)[0]))

    def put(key, index):
        def f(x):
            v = x.clone()
            v[index] = c_rec[key][index]
            return v

        return f

    resid, head = torch.zeros(L, T), torch.zeros(L, nh)
    for l in range(L):
        for t in range(T):
            resid[l, t] = run(lambda h: h.resid_pre.__setitem__(l, put(("pre", l), (0, t))))
        for hd in range(nh):
            cols = (0, slice(None), slice(hd * dh, (hd + 1) * dh))
            head[l, hd] = run(lambda h: h.z.__setitem__(l, put(("z", l), cols)))
    ref[p + "resid_pre"], ref[p + "head"] = resid, head


def estimates(model, x_ids, m, n, c_rec, ref, p):
    """Attribution patching at resid_pre and head: metric(corrupt) + (clean - corrupt) .
    d metric / d act at the corrupt run, summed over what each cell patches."""
    cfg = model.config
    L, nh, C = cfg.n_layer, cfg.n_head, cfg.n_embd
    acts, h = {}, Hooks()

    def keep(key):
        def f(x):
            x.retain_grad()
            acts[key] = x
            return x

        return f

    for l in range(L):
        h.resid_pre[l] = keep(("pre", l))
        h.z[l] = keep(("z", l))
    embeds = model.transformer.wte(x_ids).detach().clone().requires_grad_(True)
    v = m(forward(model, h, embeds=embeds, tail=n)[0])
    v.backward()
    score = {k: ((c_rec[k] - a.detach()) * a.grad)[0] for k, a in acts.items()}
    resid = torch.stack([score[("pre", l)].sum(-1) for l in range(L)])
    head = torch.stack([score[("z", l)].view(-1, nh, C // nh).sum(dim=(0, 2)) for l in range(L)])
    ref[p + "estimate.resid_pre"] = float(v) + resid
    ref[p + "estimate.head"] = float(v) + head


def path(model, c_ids, x_ids, m, n, ref, p):
    """Path patching from PATH_SENDER: to the logits alone, and to each later head's v."""
    cfg = model.config
    L, nh = cfg.n_layer, cfg.n_head
    sl, sh = PATH_SENDER
    name = f"L{sl}H{sh}"
    delta = writer_values(model, ids=c_ids)[name] - writer_values(model, ids=x_ids)[name]

    def run(reader):
        h = Hooks()
        reader_hooks(model, h, lambda r, resid: delta if r == reader else None)
        with torch.no_grad():
            return float(m(forward(model, h, ids=x_ids, tail=n)[0]))

    ref[p + "path.logits"] = torch.tensor(run("logits"))
    v = torch.full((L, nh), float("nan"))
    for l in range(sl + 1, L):
        for hd in range(nh):
            v[l, hd] = run(f"L{l}H{hd}.v")
    ref[p + "path.v"] = v


def ablated(model, ids, heads, mlps, mode, n, rec):
    """The last n logits with `heads` and `mlps` removed (zero, or their mean over the
    text's positions in the unablated run `rec`)."""
    cfg = model.config
    dh = cfg.n_embd // cfg.n_head
    h = Hooks()
    mlp_rec = {}
    if mode == "mean":
        r = Hooks()
        for l in mlps:
            r.mlp_out[l] = lambda o, l=l: mlp_rec.setdefault(l, o.detach().clone()) * 0 + o
        with torch.no_grad():
            forward(model, r, ids=ids)

    def fill(x, saved):
        return torch.zeros_like(x) if mode == "zero" else saved.mean(dim=1, keepdim=True).expand_as(x)

    by_layer = {}
    for l, hd in heads:
        by_layer.setdefault(l, []).append(hd)
    for l, hds in by_layer.items():

        def z(x, l=l, hds=hds):
            x = x.clone()
            for hd in hds:
                cols = slice(hd * dh, (hd + 1) * dh)
                x[..., cols] = fill(x[..., cols], rec[("z", l)][..., cols])
            return x

        h.z[l] = z
    for l in mlps:
        h.mlp_out[l] = lambda o, l=l: fill(o, mlp_rec.get(l))
    with torch.no_grad():
        return forward(model, h, ids=ids, tail=n)[0]


def ablations(model, ids_of, kind, answer, wrong, ref, p):
    """Each ABLATIONS case's metric before and after, and the zero sweep's changes [L][H]."""
    cfg = model.config
    forced = answer[:-1]
    ids = torch.tensor([ids_of(ABLATE_TEXT) + forced])
    n = max(len(answer), 1)
    rec, before = record(model, ids, n)
    m = metric_of(kind, answer, wrong, before)
    with torch.no_grad():
        base = float(m(before))
        ref[p + "ablate.before"] = torch.tensor(base)
        for k, (heads, mlps, mode) in enumerate(ABLATIONS):
            ref[p + f"ablate{k}.after"] = torch.tensor(float(m(ablated(model, ids, heads, mlps, mode, n, rec))))
        sweep = torch.zeros(cfg.n_layer, cfg.n_head)
        for l in range(cfg.n_layer):
            for hd in range(cfg.n_head):
                sweep[l, hd] = float(m(ablated(model, ids, [(l, hd)], [], "zero", n, rec))) - base
        ref[p + "ablate.sweep"] = sweep


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--fixtures", required=True)
    args = ap.parse_args()
    model, tok = load(args.fixtures)
    ids_of = lambda t: tok(t)["input_ids"]
    ref = {}
    for name, kind, answer_text, wrong_text in METRICS:
        answer = ids_of(answer_text) if answer_text else []
        wrong = ids_of(wrong_text)[0] if wrong_text else None
        n = max(len(answer), 1)
        forced = answer[:-1]
        c_ids = torch.tensor([ids_of(CLEAN) + forced])
        x_ids = torch.tensor([ids_of(CORRUPT) + forced])
        c_rec, c_logits = record(model, c_ids, n)
        _, x_logits = record(model, x_ids, n)
        m = metric_of(kind, answer, wrong, c_logits)
        p = f"{name}."
        ref[p + "clean"] = torch.tensor(float(m(c_logits)))
        ref[p + "corrupt"] = torch.tensor(float(m(x_logits)))
        exact(model, c_ids, x_ids, m, n, c_rec, ref, p)
        estimates(model, x_ids, m, n, c_rec, ref, p)
        path(model, c_ids, x_ids, m, n, ref, p)
        if answer:
            ablations(model, ids_of, kind, answer, wrong, ref, p)
    metadata = {
        "clean": CLEAN,
        "corrupt": CORRUPT,
        "metrics": json.dumps(METRICS),
        "path_sender": json.dumps(PATH_SENDER),
        "ablate_text": ABLATE_TEXT,
        "ablations": json.dumps(ABLATIONS),
    }
    save(ref, args.fixtures, "metrics.safetensors", metadata)


if __name__ == "__main__":
    main()
