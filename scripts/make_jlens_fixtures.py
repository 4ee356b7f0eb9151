"""Jacobian-lens references for the tiny fixture, made by TransformerLens 4.3.0 itself.

TransformerLens's `JacobianLens.fit` runs on a `TransformerBridge` booted from the fixture
directory (raw weights, as it requires; no hub), over tests/fixtures/lenses/corpus.txt (one
prompt per line, BOS prepended by `to_tokens`; one line is too short and is skipped), with
its defaults (skip 16, max_seq_len 128, dim_batch 8) and with other settings (skip 3,
max_seq_len 20, dim_batch 5). The default fit is saved with `JacobianLens.save` in its
default float16 (the published artifacts' format) and read back with `JacobianLens.load`;
that lens's `readout` (full logits) gives every layer's top 10 and the statistics at every
position of two prompts, and `lens_vectors` gives the steering direction: the logits of a
run with alpha times a token's J-lens vector added at one block's output (`blocks.L.hook_out`,
every position), and its greedy continuation. Writes tests/fixtures/lenses/jlens/tl-default.pt
and tests/fixtures/lenses/jlens/reference.safetensors. Run in a venv with transformer-lens==4.3.0:

    HF_HUB_OFFLINE=1 python scripts/make_jlens_fixtures.py --fixtures tests/fixtures
"""

import argparse
import os
import warnings

import torch
from safetensors.torch import save_file
from transformer_lens.model_bridge import TransformerBridge
from transformer_lens.tools.analysis import JacobianLens

PROMPTS = ["The cat sat on the mat", "When Mary and John went to the store, John gave a drink to"]
STEER = {"token": " Paris", "alpha": 3.0, "layer": 1}
SCORE = "The river rose over its banks in the spring."
GENERATE = 6
TOP = 10


def stats(logits, final):
    """KL(final || q), the entropy of q and the rank of final's top token, per position."""
    lq = logits.log_softmax(-1).double()
    lp = final.log_softmax(-1).double()
    kl = (lp.exp() * (lp - lq)).sum(-1)
    entropy = -(lq.exp() * lq).sum(-1)
    top = final.argmax(-1)
    own = logits.gather(-1, top[:, None])
    rank = 1 + (logits > own).sum(-1)
    return kl, entropy, rank


def fits(model, prompts, out, path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        default = JacobianLens.fit(model, prompts, corpus="corpus.txt", show_progress=False)
    assert any("skipping prompt" in str(w.message) for w in caught), "the short line is skipped"
    other = JacobianLens.fit(model, prompts, corpus="corpus.txt", skip_first_positions=3,
                             max_seq_len=20, dim_batch=5, show_progress=False)
    for name, lens in (("default", default), ("other", other)):
        out[f"fit.{name}.n_prompts"] = torch.tensor([lens.n_prompts])
        for layer, j in lens.jacobians.items():
            out[f"fit.{name}.J.{layer}"] = j.float().contiguous()
    default.save(path)  # float16, as TransformerLens saves by default
    return JacobianLens.load(path)


def readouts(model, lens, out):
    for i, text in enumerate(PROMPTS):
        r = lens.readout(model, text, return_full_logits=True)
        out[f"p{i}.input_ids"] = r.tokens.to(torch.int64)
        final = r.model_logits
        for layer, logits in r.lens_logits.items():
            top = logits.log_softmax(-1).topk(TOP, dim=-1)
            out[f"p{i}.layer{layer}.top_ids"] = top.indices.to(torch.int64).contiguous()
            out[f"p{i}.layer{layer}.top_probs"] = top.values.exp().contiguous()
            kl, entropy, rank = stats(logits, final)
            out[f"p{i}.layer{layer}.kl"] = kl
            out[f"p{i}.layer{layer}.entropy"] = entropy
            out[f"p{i}.layer{layer}.final_rank"] = rank.to(torch.int64)


def steering(model, lens, out):
    v = lens.lens_vectors(model, STEER["token"], STEER["layer"])[0]
    out["steer.vector"] = v.contiguous()

    def add(activation, hook):
        return activation + STEER["alpha"] * v

    hooks = [(f"blocks.{STEER['layer']}.hook_out", add)]
    with torch.no_grad():
        for i, text in enumerate(PROMPTS):
            logits = model.run_with_hooks(model.to_tokens(text, prepend_bos=False), fwd_hooks=hooks)
            top = logits[0, -1].log_softmax(-1).topk(TOP)
            out[f"steer.p{i}.top_ids"] = top.indices.to(torch.int64).contiguous()
            out[f"steer.p{i}.top_probs"] = top.values.exp().contiguous()
        ids = model.to_tokens(SCORE, prepend_bos=False)
        lp = model.run_with_hooks(ids, fwd_hooks=hooks)[0].log_softmax(-1)
        out["steer.score.logprobs"] = lp[:-1].gather(-1, ids[0, 1:, None])[:, 0].contiguous()
        ids = model.to_tokens(PROMPTS[0], prepend_bos=False)
        for _ in range(GENERATE):
            nxt = model.run_with_hooks(ids, fwd_hooks=hooks)[0, -1].argmax()
            ids = torch.cat([ids, nxt.view(1, 1)], dim=1)
        out["steer.generated"] = ids[0].to(torch.int64).contiguous()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fixtures", default="tests/fixtures")
    args = ap.parse_args()
    model = TransformerBridge.boot_transformers(os.path.join(args.fixtures, "tiny-gpt2"), device="cpu")
    model.eval()
    with open(os.path.join(args.fixtures, "lenses", "corpus.txt")) as f:
        prompts = [line.rstrip("\n") for line in f if line.strip()]
    out = {}
    path = os.path.join(args.fixtures, "lenses", "jlens", "tl-default.pt")
    lens = fits(model, prompts, out, path)
    readouts(model, lens, out)
    steering(model, lens, out)
    meta = {"prompts": "\n".join(PROMPTS), "steer_token": STEER["token"],
            "steer_alpha": str(STEER["alpha"]), "steer_layer": str(STEER["layer"]),
            "score": SCORE, "generate": str(GENERATE)}
    save_file(out, os.path.join(args.fixtures, "lenses", "jlens", "reference.safetensors"), metadata=meta)


main()
