"""Reference logits for an untied GPT-2 (config.json's tie_word_embeddings: false): the tiny
fixture model with its own LM head, lm_head.weight[i] = 0.5 · wte[(i · 7919) mod V] (7919 is
prime to V = 50257, so every row of wte is used once). Hugging Face's GPT2LMHeadModel built
untied from the same tensors computes them. Writes tests/fixtures/untied.safetensors; the
Rust test writes the same checkpoint (the same tensors plus lm_head.weight) into a scratch
directory, so the 6 MB head is not committed twice.

    python scripts/make_untied_fixture.py --fixtures tests/fixtures
"""

import argparse
import json
import os

import torch
from safetensors.torch import load_file, save_file
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

PROMPTS = ["The cat sat on the mat", "When Mary and John went to the store, John gave a drink to"]
STRIDE = 7919


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--fixtures", required=True)
    args = ap.parse_args()
    model_dir = os.path.join(args.fixtures, "tiny-gpt2")
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    cfg["tie_word_embeddings"] = False
    model = GPT2LMHeadModel(GPT2Config(**cfg)).eval()
    model.config._attn_implementation = "eager"
    state = load_file(os.path.join(model_dir, "model.safetensors"))
    wte = state["transformer.wte.weight"]
    V = wte.shape[0]
    lm_head = 0.5 * wte[(torch.arange(V) * STRIDE) % V]
    missing, unexpected = model.load_state_dict({**state, "lm_head.weight": lm_head}, strict=False)
    assert not unexpected and all(k.endswith((".attn.bias", ".attn.masked_bias")) for k in missing), (missing, unexpected)
    assert model.lm_head.weight.data_ptr() != model.transformer.wte.weight.data_ptr(), "the head must be untied"
    tied = GPT2LMHeadModel.from_pretrained(model_dir, attn_implementation="eager").eval()
    tok = PreTrainedTokenizerFast(tokenizer_file=os.path.join(model_dir, "tokenizer.json"))
    ref = {}
    for k, text in enumerate(PROMPTS):
        ids = torch.tensor([tok(text)["input_ids"]])
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0, -1]
        ref[f"prompt{k}.input_ids"] = ids[0]
        ref[f"prompt{k}.logits"] = logits.clone().contiguous()
        # The same file read with the head tied (config.json's default): lm_head.weight unused.
        with torch.no_grad():
            ref[f"prompt{k}.tied_logits"] = tied(input_ids=ids).logits[0, -1].clone().contiguous()
    meta = {
        "prompts": json.dumps(PROMPTS),
        "lm_head": f"0.5 * wte[(i * {STRIDE}) % V]",
        "stride": str(STRIDE),
        "torch": torch.__version__,
        "transformers": __import__("transformers").__version__,
    }
    path = os.path.join(args.fixtures, "untied.safetensors")
    save_file(ref, path, metadata=meta)
    print("wrote", path)


if __name__ == "__main__":
    main()
