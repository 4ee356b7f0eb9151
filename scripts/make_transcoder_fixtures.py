"""Transcoders in SAELens's and EleutherAI sparsify's formats, written and computed by those
libraries themselves, on the tiny fixture.

Sets for the graph (each the same function as one of circuit-tracer's sets in
tests/fixtures/graphs/, so that `graph` on it must equal circuit-tracer's reference there):
- saelens-relu/: SAELens `Transcoder`s (ReLU) with the `relu` set's weights (SAELens stores
  W_enc as [d_in, d_sae]), one folder a layer, `blocks.{i}.ln2.hook_normalized` to
  `blocks.{i}.hook_mlp_out`, written by `save_model`;
- saelens-skip/: `JumpReLUSkipTranscoder`s with the `jumprelu-skip` set's weights;
- sparsify-relu/: sparsify `SparseCoder`s (`transcode`, top-k with k = d_sae, which is ReLU)
  in `h.{i}.mlp/`, written by `save_to_disk`. sparsify's transcoder reads the MLP's input,
  ln_2's output x = n * g + b (n = ln2.hook_normalized), so the `relu` set's encoder is folded
  through ln_2: encoder.weight = W_enc / g, encoder.bias = b_enc - (W_enc / g) b.

Sets for encode/decode parity (random, no circuit-tracer counterpart):
- sparsify-topk/: top-k (k = 4) with a skip connection, 64 latents;
- sparsify-groupmax/: group-max (k = 8 groups), 64 latents.

For every set and layer, on random inputs X (7 positions), the reference holds the library's
own dense activations (`encode`, sparsify's top_acts scattered at top_indices) and output
(`forward`: decode plus the skip connection, for sparsify `decode(...) + x @ W_skip.mT`).

Writes tests/fixtures/transcoders/. Run in a venv with sae-lens and eai-sparsify:

    pip install sae-lens==6.54.12 eai-sparsify==1.3.3
    python scripts/make_transcoder_fixtures.py --fixtures tests/fixtures
"""

import argparse
import json
import os
import shutil

import torch

os.environ.setdefault("SPARSIFY_DISABLE_TRITON", "1")  # the CPU has no triton driver
from safetensors.torch import load_file, save_file

from sae_lens import SAE
from sae_lens.saes.sae import SAEMetadata
from sae_lens.saes.transcoder import (
    JumpReLUSkipTranscoder,
    JumpReLUSkipTranscoderConfig,
    Transcoder,
    TranscoderConfig,
)
from sparsify import SparseCoder
from sparsify.config import SparseCoderConfig

N_POS = 7


def saelens_set(folder, ct_folder, n_layers, d_model, jump_skip):
    for i in range(n_layers):
        ct = load_file(f"{ct_folder}/layer_{i}.safetensors")
        meta = SAEMetadata(
            hook_name=f"blocks.{i}.ln2.hook_normalized", hook_name_out=f"blocks.{i}.hook_mlp_out"
        )
        kw = dict(d_in=d_model, d_sae=ct["b_enc"].shape[0], d_out=d_model, dtype="float32",
                  device="cpu", apply_b_dec_to_input=False, metadata=meta)
        if jump_skip:
            tc = JumpReLUSkipTranscoder(JumpReLUSkipTranscoderConfig(**kw))
        else:
            tc = Transcoder(TranscoderConfig(**kw))
        with torch.no_grad():
            tc.W_enc.copy_(ct["W_enc"].T)
            tc.W_dec.copy_(ct["W_dec"])
            tc.b_enc.copy_(ct["b_enc"])
            tc.b_dec.copy_(ct["b_dec"])
            if jump_skip:
                tc.threshold.copy_(ct["activation_function.threshold"])
                tc.W_skip.copy_(ct["W_skip"])
        tc.save_model(f"{folder}/blocks.{i}.ln2.hook_normalized")


def sparsify_folded(folder, ct_folder, hf, n_layers, d_model):
    for i in range(n_layers):
        ct = load_file(f"{ct_folder}/layer_{i}.safetensors")
        g, b = hf[f"h.{i}.ln_2.weight"], hf[f"h.{i}.ln_2.bias"]
        d_sae = ct["b_enc"].shape[0]
        cfg = SparseCoderConfig(num_latents=d_sae, k=d_sae, transcode=True)
        sc = SparseCoder(d_model, cfg)
        w = ct["W_enc"] / g
        with torch.no_grad():
            sc.encoder.weight.copy_(w)
            sc.encoder.bias.copy_(ct["b_enc"] - w @ b)
            sc.W_dec.copy_(ct["W_dec"])
            sc.b_dec.copy_(ct["b_dec"])
        sc.save_to_disk(f"{folder}/h.{i}.mlp")


def sparsify_random(folder, n_layers, d_model, gen, activation, k, skip):
    for i in range(n_layers):
        cfg = SparseCoderConfig(num_latents=64, k=k, activation=activation, transcode=True,
                                skip_connection=skip)
        sc = SparseCoder(d_model, cfg)
        with torch.no_grad():
            sc.encoder.weight.copy_(torch.randn(64, d_model, generator=gen) * 0.3)
            sc.encoder.bias.copy_(torch.randn(64, generator=gen) * 0.2)
            sc.W_dec.copy_(torch.randn(64, d_model, generator=gen) * 0.3)
            sc.b_dec.copy_(torch.randn(d_model, generator=gen) * 0.1)
            if skip:
                sc.W_skip.copy_(torch.randn(d_model, d_model, generator=gen) * 0.05)
        sc.save_to_disk(f"{folder}/h.{i}.mlp")


def saelens_reference(name, folder, n_layers, x, out):
    for i in range(n_layers):
        tc = SAE.load_from_disk(f"{folder}/blocks.{i}.ln2.hook_normalized", device="cpu")
        with torch.no_grad():
            out[f"{name}.{i}.acts"] = tc.encode(x).contiguous()
            out[f"{name}.{i}.out"] = tc.forward(x).contiguous()


def sparsify_reference(name, folder, n_layers, x, out):
    for i in range(n_layers):
        sc = SparseCoder.load_from_disk(f"{folder}/h.{i}.mlp")
        with torch.no_grad():
            top_acts, top_indices, _ = sc.encode(x)
            dense = torch.zeros(x.shape[0], sc.num_latents).scatter(1, top_indices, top_acts)
            y = sc.decode(top_acts, top_indices)
            if sc.W_skip is not None:
                y = y + x @ sc.W_skip.mT
        out[f"{name}.{i}.acts"] = dense.contiguous()
        out[f"{name}.{i}.out"] = y.contiguous()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fixtures", default="tests/fixtures")
    args = ap.parse_args()
    root = f"{args.fixtures}/transcoders"
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    hf_cfg = json.load(open(f"{args.fixtures}/tiny-gpt2/config.json"))
    n_layers, d_model = hf_cfg["n_layer"], hf_cfg["n_embd"]
    hf = load_file(f"{args.fixtures}/tiny-gpt2/model.safetensors")
    hf = {k.removeprefix("transformer."): v for k, v in hf.items()}
    graphs = f"{args.fixtures}/graphs"
    gen = torch.Generator().manual_seed(4646)
    saelens_set(f"{root}/saelens-relu", f"{graphs}/relu", n_layers, d_model, False)
    saelens_set(f"{root}/saelens-skip", f"{graphs}/jumprelu-skip", n_layers, d_model, True)
    sparsify_folded(f"{root}/sparsify-relu", f"{graphs}/relu", hf, n_layers, d_model)
    sparsify_random(f"{root}/sparsify-topk", n_layers, d_model, gen, "topk", 4, True)
    sparsify_random(f"{root}/sparsify-groupmax", n_layers, d_model, gen, "groupmax", 8, False)
    x = torch.randn(N_POS, d_model, generator=gen)
    out = {"x": x}
    for name in ("saelens-relu", "saelens-skip"):
        saelens_reference(name, f"{root}/{name}", n_layers, x, out)
    for name in ("sparsify-relu", "sparsify-topk", "sparsify-groupmax"):
        sparsify_reference(name, f"{root}/{name}", n_layers, x, out)
    import sae_lens
    import sparsify
    meta = {"sae_lens": sae_lens.__version__, "sparsify": sparsify.__version__}
    save_file(out, f"{root}/reference.safetensors", metadata=meta)
    print({k: tuple(v.shape) for k, v in out.items() if k.endswith(".0.acts")})


if __name__ == "__main__":
    main()
