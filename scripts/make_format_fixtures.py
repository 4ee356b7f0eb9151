"""Checkpoint formats and config variants, with Hugging Face's outputs for each.

The model is the tiny fixture cut to a vocabulary of 1000 tokens and 64 positions
(wte[:1000], wpe[:64], the same blocks), so that every format is committed small and the
vocabulary is not GPT-2's 50257. The prompts are texts whose GPT-2 tokens are all below 1000.
Writes tests/fixtures/formats/:

  config.json                     vocab_size 1000, n_positions 64, n_ctx 32 (HF ignores n_ctx)
  safetensors/model.safetensors   save_pretrained
  bin/pytorch_model.bin           torch.save(model.state_dict()): prefixed keys, lm_head.weight
                                  sharing wte's storage
  bin-bare/pytorch_model.bin      bare keys with the attn.bias / attn.masked_bias buffers, as
                                  the original GPT-2 repositories
  bin-f16/, bin-bf16/             half-precision storages
  bin-views/pytorch_model.bin     c_attn / c_fc weights stored as transposed views and wpe at a
                                  storage offset
  sharded-safetensors/            save_pretrained(max_shard_size="100KB")
  sharded-bin/                    torch.save shards and pytorch_model.bin.index.json, as
                                  transformers 4 wrote them (5 writes safetensors only)
  n_inner/model.safetensors       the blocks' MLPs cut to n_inner 48
  wide-mlp/model.safetensors      c_fc weights × 32 and c_proj weights / 32 (exact in f32), so
                                  that pre-activations pass ±10 and the activations' clipped and
                                  saturated ranges are reached (the act-* variants run on both)
  reference.safetensors           HF's logits for each format and each config variant; the
                                  variants' config changes are in its metadata

Every directory is loaded back by GPT2LMHeadModel.from_pretrained (eager attention, f32), and
the f32 ones must give the same logits as the safetensors one.

    python scripts/make_format_fixtures.py --fixtures tests/fixtures
"""

import argparse
import json
import os
import shutil

import torch
from safetensors.torch import load_file, save_file
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

VOCAB, POSITIONS = 1000, 64
PROMPTS = ["The man said that he would not be there", "In the end, he is not one of the most, but it will be the first of all the new"]
ACTIVATIONS = [
    "gelu_new", "gelu_pytorch_tanh", "gelu_python_tanh", "gelu_fast", "gelu_accurate", "gelu",
    "gelu_python", "gelu_10", "quick_gelu", "relu", "relu2", "relu6", "leaky_relu", "silu",
    "swish", "sigmoid", "tanh", "mish", "hardswish", "laplace", "sqrtsoftplus", "linear",
]
VARIANTS = {
    **{f"act-{a}": {"activation_function": a} for a in ACTIVATIONS},
    "no-scale": {"scale_attn_weights": False},
    "inverse-layer-idx": {"scale_attn_by_inverse_layer_idx": True},
    "reorder-and-upcast": {"reorder_and_upcast_attn": True, "scale_attn_by_inverse_layer_idx": True},
    "eps": {"layer_norm_epsilon": 0.01},
}


def small_state(fixtures):
    state = load_file(os.path.join(fixtures, "tiny-gpt2", "model.safetensors"))
    state["transformer.wte.weight"] = state["transformer.wte.weight"][:VOCAB].clone()
    state["transformer.wpe.weight"] = state["transformer.wpe.weight"][:POSITIONS].clone()
    return state


def small_config(fixtures, **changes):
    cfg = json.load(open(os.path.join(fixtures, "tiny-gpt2", "config.json")))
    cfg.update(vocab_size=VOCAB, n_positions=POSITIONS, n_ctx=32, bos_token_id=0, eos_token_id=0)
    cfg.update(changes)
    return cfg


def hf(cfg, state):
    model = GPT2LMHeadModel(GPT2Config(**cfg)).eval()
    model.config._attn_implementation = "eager"
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and all(k.endswith((".attn.bias", ".attn.masked_bias")) or k == "lm_head.weight" for k in missing), (missing, unexpected)
    assert model.lm_head.weight.data_ptr() == model.transformer.wte.weight.data_ptr(), "the head must be tied"
    return model


def logits(model, prompts_ids):
    with torch.no_grad():
        return [model(input_ids=torch.tensor([ids])).logits[0].float().contiguous() for ids in prompts_ids]


def from_dir(path):
    return GPT2LMHeadModel.from_pretrained(path, attn_implementation="eager", dtype=torch.float32).eval()


def write_bin_shards(state, out, per_shard=4):
    """torch.save shards and the index transformers 4's save_pretrained(safe_serialization=False) wrote."""
    names = sorted(state)
    chunks = [names[i:i + len(names) // per_shard + 1] for i in range(0, len(names), len(names) // per_shard + 1)]
    weight_map, total = {}, 0
    for k, chunk in enumerate(chunks):
        fname = f"pytorch_model-{k + 1:05d}-of-{len(chunks):05d}.bin"
        torch.save({n: state[n].clone() for n in chunk}, os.path.join(out, fname))
        for n in chunk:
            weight_map[n] = fname
            total += state[n].numel() * state[n].element_size()
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    json.dump(index, open(os.path.join(out, "pytorch_model.bin.index.json"), "w"), indent=2)


def bare(state, n_layer):
    out = {k.removeprefix("transformer."): v.clone() for k, v in state.items() if k != "lm_head.weight"}
    mask = torch.tril(torch.ones(POSITIONS, POSITIONS, dtype=torch.uint8)).view(1, 1, POSITIONS, POSITIONS)
    for l in range(n_layer):
        out[f"h.{l}.attn.bias"] = mask.clone()
        out[f"h.{l}.attn.masked_bias"] = torch.tensor(-1e4)
    return out


def views(state):
    """The same values, stored as views: c_attn and c_fc weights transposed in storage,
    wpe behind two rows of other values in its storage."""
    out = {}
    for k, v in state.items():
        if k.endswith(("c_attn.weight", "c_fc.weight")):
            out[k] = v.t().contiguous().t()
            assert not out[k].is_contiguous()
        elif k.endswith("wpe.weight"):
            out[k] = torch.cat([torch.full((2, v.shape[1]), 7.0), v])[2:]
            assert out[k].storage_offset() > 0
        else:
            out[k] = v.clone()
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--fixtures", required=True)
    args = ap.parse_args()
    root = os.path.join(args.fixtures, "formats")
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    tok = PreTrainedTokenizerFast(tokenizer_file=os.path.join(args.fixtures, "tiny-gpt2", "tokenizer.json"))
    prompts_ids = [tok(p)["input_ids"] for p in PROMPTS]
    assert all(max(ids) < VOCAB for ids in prompts_ids), prompts_ids
    cfg = small_config(args.fixtures)
    state = small_state(args.fixtures)
    model = hf(cfg, state)
    json.dump(cfg, open(os.path.join(root, "config.json"), "w"), indent=2)
    ref, meta = {}, {"prompts": json.dumps(PROMPTS)}
    for k, ids in enumerate(prompts_ids):
        ref[f"prompt{k}.input_ids"] = torch.tensor(ids)

    def save_dir(name, write):
        d = os.path.join(root, name)
        os.makedirs(d)
        write(d)
        shutil.copy(os.path.join(root, "config.json"), d)
        out = logits(from_dir(d), prompts_ids)
        os.remove(os.path.join(d, "config.json"))
        return out

    sd = model.state_dict()
    f32 = {
        "safetensors": save_dir("safetensors", lambda d: model.save_pretrained(d)),
        "bin": save_dir("bin", lambda d: torch.save(sd, os.path.join(d, "pytorch_model.bin"))),
        "bin-bare": save_dir("bin-bare", lambda d: torch.save(bare(sd, cfg["n_layer"]), os.path.join(d, "pytorch_model.bin"))),
        "bin-views": save_dir("bin-views", lambda d: torch.save(views(sd), os.path.join(d, "pytorch_model.bin"))),
        "sharded-safetensors": save_dir("sharded-safetensors", lambda d: model.save_pretrained(d, max_shard_size="100KB")),
        "sharded-bin": save_dir("sharded-bin", lambda d: write_bin_shards(sd, d)),
    }
    for d in ("safetensors", "sharded-safetensors"):
        for f in os.listdir(os.path.join(root, d)):
            if f in ("config.json", "generation_config.json"):
                os.remove(os.path.join(root, d, f))
    assert len([f for f in os.listdir(os.path.join(root, "sharded-safetensors")) if f.endswith(".safetensors")]) > 1
    for name, out in f32.items():
        for a, b in zip(out, f32["safetensors"]):
            assert torch.equal(a, b), name
    for k, out in enumerate(f32["safetensors"]):
        ref[f"prompt{k}.logits"] = out
    for dtype, tname in ((torch.float16, "f16"), (torch.bfloat16, "bf16")):
        half = {k: v.to(dtype) for k, v in sd.items()}
        out = save_dir(f"bin-{tname}", lambda d: torch.save(half, os.path.join(d, "pytorch_model.bin")))
        for k, o in enumerate(out):
            ref[f"prompt{k}.{tname}.logits"] = o
    variants(args.fixtures, state, prompts_ids, ref, meta, root)
    meta["variants"] = json.dumps(VARIANTS)
    meta["torch"] = torch.__version__
    meta["transformers"] = __import__("transformers").__version__
    save_file(ref, os.path.join(root, "reference.safetensors"), metadata=meta)
    print("wrote", root)


def variants(fixtures, state, prompts_ids, ref, meta, root):
    """HF's logits for each config variant on the same weights (the activations on wide-mlp's);
    n_inner 48 on the MLPs cut."""
    scale = {"mlp.c_fc.weight": 32.0, "mlp.c_proj.weight": 1 / 32}
    wide = {k: next((v * f for end, f in scale.items() if k.endswith(end)), v) for k, v in state.items()}
    model = hf(small_config(fixtures), wide)
    d = os.path.join(root, "wide-mlp")
    model.save_pretrained(d)
    for f in ("config.json", "generation_config.json"):
        os.remove(os.path.join(d, f))
    for name, changes in VARIANTS.items():
        out = logits(hf(small_config(fixtures, **changes), state), prompts_ids)
        for k, o in enumerate(out):
            ref[f"prompt{k}.variant.{name}"] = o[-1].clone()
        if name.startswith("act-"):
            out = logits(hf(small_config(fixtures, **changes), wide), prompts_ids)
            for k, o in enumerate(out):
                ref[f"prompt{k}.wide.{name}"] = o[-1].clone()
    cut = dict(state)
    for k in list(cut):
        if k.endswith("mlp.c_fc.weight"):
            cut[k] = cut[k][:, :48].clone()
        elif k.endswith("mlp.c_fc.bias"):
            cut[k] = cut[k][:48].clone()
        elif k.endswith("mlp.c_proj.weight"):
            cut[k] = cut[k][:48].clone()
    model = hf(small_config(fixtures, n_inner=48), cut)
    d = os.path.join(root, "n_inner")
    model.save_pretrained(d)
    for f in ("config.json", "generation_config.json"):
        os.remove(os.path.join(d, f))
    for k, o in enumerate(logits(model, prompts_ids)):
        ref[f"prompt{k}.variant.n_inner"] = o[-1].clone()
    # eos: the greedy next token of prompt 0, so that generation stops after one token.
    greedy = int(ref["prompt0.logits"][-1].argmax())
    meta["eos_greedy"] = str(greedy)


if __name__ == "__main__":
    main()
