"""Hugging Face's outputs for the fixture GPT-2 in f32, bf16 and f16, for the half-precision
fidelity tests (tests/suite/dtypes.rs): in each precision, our distance from HF's f32 logits
must be no larger than HF's own run's in that precision, and our top-1 predictions must be
HF's in that precision.

    python scripts/make_dtype_fixtures.py --fixtures tests/fixtures

Needs torch and transformers (the fixtures venv, or any venv with both). Writes
dtypes/reference.safetensors, per prompt i: `p{i}.ids` (int64); `p{i}.f32.logits_last`
(HF's f32 logits at the last position); and per half precision d (bf16, f16), made by
GPT2LMHeadModel with eager attention cast whole with `.to(dtype)` as a user of transformers
does: `p{i}.{d}.top1` (its top-1 token at every position, int64), `p{i}.{d}.logits_last`
(its last-position logits, stored in d) and `p{i}.{d}.distance_last` ([max |Δ|,
root-mean-square Δ] of those from the f32 run's, in f64). The prompts are in the metadata.
"""

import argparse
import json
import os

import torch
from safetensors.torch import save_file
from transformers import GPT2LMHeadModel, PreTrainedTokenizerFast

PROMPTS = [
    "The quick brown fox",
    "Hello, how are you?",
    "The cat sat on the mat",
    "In 1905, Albert Einstein published four papers that changed physics: "
    "the photoelectric effect, Brownian motion, special relativity, and E=mc².",
    "When Mary and John went to the store, John gave a drink to",
]

DTYPES = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fixtures", required=True)
    args = ap.parse_args()
    model_dir = os.path.join(args.fixtures, "tiny-gpt2")
    tok = PreTrainedTokenizerFast(tokenizer_file=os.path.join(model_dir, "tokenizer.json"))
    out = {}
    f32_last = {}
    for name, dtype in DTYPES.items():
        model = GPT2LMHeadModel.from_pretrained(model_dir, attn_implementation="eager")
        model = model.to(dtype).eval()
        for i, text in enumerate(PROMPTS):
            ids = tok(text, return_tensors="pt")["input_ids"]
            with torch.no_grad():
                logits = model(ids).logits[0].to(torch.float32)  # (T, V)
            if name == "f32":
                out[f"p{i}.ids"] = ids[0].to(torch.int64).contiguous()
                f32_last[i] = logits[-1]
                out[f"p{i}.f32.logits_last"] = logits[-1].contiguous()
                continue
            delta = (logits[-1] - f32_last[i]).to(torch.float64)
            distance = torch.stack([delta.abs().max(), delta.pow(2).mean().sqrt()])
            out[f"p{i}.{name}.top1"] = logits.argmax(-1).to(torch.int64).contiguous()
            out[f"p{i}.{name}.logits_last"] = logits[-1].to(dtype).contiguous()
            out[f"p{i}.{name}.distance_last"] = distance.contiguous()
    dest = os.path.join(args.fixtures, "dtypes")
    os.makedirs(dest, exist_ok=True)
    meta = {
        "prompts": json.dumps(PROMPTS, ensure_ascii=False),
        "torch": torch.__version__,
        "transformers": __import__("transformers").__version__,
    }
    save_file(out, os.path.join(dest, "reference.safetensors"), metadata=meta)


if __name__ == "__main__":
    main()
