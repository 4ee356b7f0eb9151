"""References for the GPT-2 family's exact configs (tests/fixtures/family/*.json): Hugging
Face's GPT2LMHeadModel built from each config (distilgpt2, gpt2-medium, gpt2-large) with the
weights of tests/suite/common/family.rs's formula, which this script computes bit for bit in
numpy, so that the Rust test writes the same checkpoint and no gigabyte is committed. Records
the last position's logits of one prompt, a checksum of every tensor (the test compares its
own), and the parameter count HF reports for every config, gpt2-xl's included (built on the
meta device, without its 6 GB).

    python scripts/make_family_fixture.py --fixtures tests/fixtures
"""

import argparse
import hashlib
import json
import os

import numpy as np
import torch
from safetensors.torch import save_file
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

PROMPT = "The quick brown fox jumps over the lazy dog because"
MODELS = ["distilgpt2", "gpt2-medium", "gpt2-large"]
U32 = np.uint32


def fmix32(h):
    h = h ^ (h >> U32(16))
    h = h * U32(0x85EBCA6B)
    h = h ^ (h >> U32(13))
    h = h * U32(0xC2B2AE35)
    return h ^ (h >> U32(16))


def value(name, t, n):
    seed = fmix32(np.array([t + 1], dtype=U32))[0]
    i = np.arange(n, dtype=U32)
    u = (fmix32(i * U32(0x9E3779B1) + seed) >> U32(8)).astype(np.float32)
    u = u * np.float32(1.0 / (1 << 24)) - np.float32(0.5)
    ln = ".ln_" in name or "ln_f." in name
    if ln and name.endswith(".weight"):
        return np.float32(1.0) + u * np.float32(0.25)
    if ln:
        return u * np.float32(0.25)
    if name.endswith(".weight"):
        return u * np.float32(0.125)
    return u * np.float32(0.03125)


def tensors(cfg):
    d, v, p, layers = cfg["n_embd"], cfg["vocab_size"], cfg["n_positions"], cfg["n_layer"]
    inner = cfg.get("n_inner") or 4 * d
    out = [("wte.weight", (v, d)), ("wpe.weight", (p, d)), ("ln_f.weight", (d,)), ("ln_f.bias", (d,))]
    for l in range(layers):
        for k, s in [
            ("ln_1.weight", (d,)), ("ln_1.bias", (d,)),
            ("attn.c_attn.weight", (d, 3 * d)), ("attn.c_attn.bias", (3 * d,)),
            ("attn.c_proj.weight", (d, d)), ("attn.c_proj.bias", (d,)),
            ("ln_2.weight", (d,)), ("ln_2.bias", (d,)),
            ("mlp.c_fc.weight", (d, inner)), ("mlp.c_fc.bias", (inner,)),
            ("mlp.c_proj.weight", (inner, d)), ("mlp.c_proj.bias", (d,)),
        ]:
            out.append((f"h.{l}.{k}", s))
    return sorted((f"transformer.{k}", s) for k, s in out)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--fixtures", required=True)
    args = ap.parse_args()
    family = os.path.join(args.fixtures, "family")
    tok = PreTrainedTokenizerFast(tokenizer_file=os.path.join(args.fixtures, "tiny-gpt2", "tokenizer.json"))
    ids = tok(PROMPT)["input_ids"]
    ref, meta = {"input_ids": torch.tensor(ids)}, {"prompt": PROMPT}
    params = {}
    for name in MODELS + ["gpt2-xl"]:
        cfg = json.load(open(os.path.join(family, f"{name}.json")))
        with torch.device("meta"):
            params[name] = GPT2LMHeadModel(GPT2Config(**cfg)).num_parameters()
    for name in MODELS:
        cfg = json.load(open(os.path.join(family, f"{name}.json")))
        model = GPT2LMHeadModel(GPT2Config(**cfg)).eval()
        model.config._attn_implementation = "eager"
        state, sums = {}, {}
        for t, (k, shape) in enumerate(tensors(cfg)):
            values = value(k, t, int(np.prod(shape))).reshape(shape)
            sums[k] = hashlib.sha256(values.tobytes()).hexdigest()
            state[k] = torch.from_numpy(values)
        missing, unexpected = model.load_state_dict(state, strict=False)
        assert not unexpected and set(missing) <= {"lm_head.weight"}, (missing, unexpected)
        with torch.no_grad():
            ref[f"{name}.logits"] = model(input_ids=torch.tensor([ids])).logits[0, -1].contiguous()
        meta[f"{name}.sha256"] = json.dumps(sums)
        print(name, "done")
        del model, state
    meta["parameters"] = json.dumps(params)
    meta["torch"] = torch.__version__
    meta["transformers"] = __import__("transformers").__version__
    path = os.path.join(family, "reference.safetensors")
    save_file(ref, path, metadata=meta)
    print("wrote", path)


if __name__ == "__main__":
    main()
