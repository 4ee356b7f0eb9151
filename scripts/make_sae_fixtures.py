"""Sparse autoencoders in SAELens's format, with SAELens's own outputs for each.

Random SAEs (every parameter drawn, biases and thresholds included) of each architecture
SAELens saves (standard, topk, jumprelu, gated) and each activation normalization, made
with SAELens's own classes at a hook of the tiny fixture and saved with `save_model`; one
more written in the pre-6.0 flat config. Each is read back with `SAE.load_from_disk`, and
its `encode` / `decode` run on the activations of Hugging Face's GPT2LMHeadModel recorded
with torch hooks; the reconstruction is spliced back in at the hook for the next-token
loss. Writes tests/fixtures/saes/<name>/{cfg.json,sae_weights.safetensors} (the standard
one with a sparsity.safetensors) and tests/fixtures/saes/reference.safetensors. Run in a venv with sae-lens (it pins its own
transformer-lens):

    python scripts/make_sae_fixtures.py --fixtures tests/fixtures
"""

import argparse
import json
import os
import shutil

import torch
from safetensors.torch import save_file
from sae_lens import SAE
from sae_lens.saes.gated_sae import GatedSAE, GatedSAEConfig
from sae_lens.saes.jumprelu_sae import JumpReLUSAE, JumpReLUSAEConfig
from sae_lens.saes.sae import SAEMetadata
from sae_lens.saes.standard_sae import StandardSAE, StandardSAEConfig
from sae_lens.saes.topk_sae import TopKSAE, TopKSAEConfig
from sae_lens.constants import SPARSITY_FILENAME
from sae_lens.training.sae_trainer import _log_feature_sparsity
from transformers import GPT2LMHeadModel, PreTrainedTokenizerFast

PROMPTS = ["The cat sat on the mat", "When Mary and John went to the store, John gave a drink to"]
LAYER, D_SAE = 1, 64
HOOK = f"blocks.{LAYER}.hook_resid_pre"
STEER = (5, 3.0)  # feature, coefficient
CLAMP = (7, 2.0)
FEATURES = [5, 40]  # whose logit tables are recorded  # feature, value: x + (v − f(x)) · W_dec[f]


def meta():
    return SAEMetadata(hook_name=HOOK, prepend_bos=False, context_size=128, model_name="tiny-gpt2")


SAES = {
    "standard": (StandardSAE, StandardSAEConfig, {}),
    "standard-no-b-dec-in": (StandardSAE, StandardSAEConfig, {"apply_b_dec_to_input": False}),
    "standard-layer-norm": (StandardSAE, StandardSAEConfig, {"normalize_activations": "layer_norm"}),
    "standard-constant-norm": (StandardSAE, StandardSAEConfig, {"normalize_activations": "constant_norm_rescale"}),
    "topk": (TopKSAE, TopKSAEConfig, {"k": 8}),
    "topk-rescaled": (TopKSAE, TopKSAEConfig, {"k": 8, "rescale_acts_by_decoder_norm": True}),
    "jumprelu": (JumpReLUSAE, JumpReLUSAEConfig, {}),
    "gated": (GatedSAE, GatedSAEConfig, {}),
}


def randomize(sae, gen):
    with torch.no_grad():
        for name, p in sae.named_parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * (0.3 if name.startswith("W_") else 0.1))
        if hasattr(sae, "threshold"):
            sae.threshold.copy_(torch.rand(sae.threshold.shape, generator=gen) * 0.5)


def record(model, ids):
    """The residual stream entering block LAYER (TransformerLens's blocks.L.hook_resid_pre)."""
    got = {}
    h = model.transformer.h[LAYER].register_forward_pre_hook(lambda m, a: got.__setitem__("x", a[0].detach().clone()))
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0]
    h.remove()
    return got["x"][0], logits


def spliced(model, ids, replacement):
    """Logits with the input of block LAYER replaced (every position)."""
    h = model.transformer.h[LAYER].register_forward_pre_hook(lambda m, a: (replacement.unsqueeze(0),) + tuple(a[1:]))
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0]
    h.remove()
    return logits


def flat_config(sae_dir):
    """The same SAE's config in the flat form SAELens wrote before 6.0."""
    cfg = json.load(open(os.path.join(sae_dir, "cfg.json")))
    return {
        "model_name": "tiny-gpt2", "hook_point": HOOK, "hook_point_layer": LAYER, "hook_point_head_index": None,
        "d_in": cfg["d_in"], "d_sae": cfg["d_sae"], "dtype": "float32", "device": "cpu",
        "activation_fn_str": "relu", "apply_b_dec_to_input": True, "normalize_activations": False,
        "prepend_bos": False, "context_size": 128, "sae_lens_training_version": "3.12.0",
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--fixtures", required=True)
    args = ap.parse_args()
    root = os.path.join(args.fixtures, "saes")
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    model_dir = os.path.join(args.fixtures, "tiny-gpt2")
    model = GPT2LMHeadModel.from_pretrained(model_dir, attn_implementation="eager").eval()
    tok = PreTrainedTokenizerFast(tokenizer_file=os.path.join(model_dir, "tokenizer.json"))
    gen = torch.Generator().manual_seed(0)
    ref = {}
    runs = []
    for k, text in enumerate(PROMPTS):
        ids = torch.tensor([tok(text)["input_ids"]])
        x, logits = record(model, ids)
        ref[f"prompt{k}.input_ids"] = ids[0]
        ref[f"prompt{k}.{HOOK}"] = x
        ref[f"prompt{k}.logits"] = logits
        runs.append((ids, x))
    for name, (cls, cfg_cls, extra) in SAES.items():
        sae = cls(cfg_cls(d_in=model.config.n_embd, d_sae=D_SAE, metadata=meta(), **extra))
        randomize(sae, gen)
        d = os.path.join(root, name)
        sae.save_model(d)
        loaded = SAE.load_from_disk(d)
        for k, (ids, x) in enumerate(runs):
            with torch.no_grad():
                acts = loaded.encode(x)
                recon = loaded.decode(acts)
                f, alpha = STEER
                steered = x + alpha * loaded.W_dec[f]
            ref[f"{name}.prompt{k}.acts"] = acts.contiguous()
            ref[f"{name}.prompt{k}.recon"] = recon.contiguous()
            ref[f"{name}.prompt{k}.spliced_logits"] = spliced(model, ids, recon)
            ref[f"{name}.prompt{k}.steered_logits"] = spliced(model, ids, steered)
            f, v = CLAMP
            with torch.no_grad():
                clamped = x + (v - acts[:, f]).unsqueeze(-1) * loaded.W_dec[f]
            ref[f"{name}.prompt{k}.clamped_logits"] = spliced(model, ids, clamped)
        # Greedy generation with the steering direction added at every position, cached.
        f, alpha = STEER
        h = model.transformer.h[LAYER].register_forward_pre_hook(lambda m, a: (a[0] + alpha * loaded.W_dec[f],) + tuple(a[1:]))
        with torch.no_grad():
            out = model.generate(runs[0][0], max_new_tokens=5, do_sample=False, pad_token_id=50256)
        h.remove()
        ref[f"{name}.steered_generation"] = out[0, runs[0][0].shape[1]:].contiguous()
        with torch.no_grad():
            for f in FEATURES:
                # The decoder direction through the unembedding (Neuronpedia's logit tables).
                ref[f"{name}.feature{f}.logits"] = (loaded.W_dec[f] @ model.lm_head.weight.T).contiguous()
        if name == "standard":
            # A training run's sparsity file, as SAELens's trainer writes it: log10 of each
            # feature's firing frequency (its own function), from counts over 1e6 tokens.
            counts = torch.randint(0, 100_000, (D_SAE,), generator=torch.Generator().manual_seed(1))
            counts[3] = 0
            log_sparsity = _log_feature_sparsity(counts.float() / 1e6)
            save_file({"sparsity": log_sparsity}, os.path.join(d, SPARSITY_FILENAME))
            flat = os.path.join(root, "standard-flat-config")
            os.makedirs(flat)
            shutil.copy(os.path.join(d, "sae_weights.safetensors"), flat)
            json.dump(flat_config(d), open(os.path.join(flat, "cfg.json"), "w"), indent=2)
            old = SAE.load_from_disk(flat)
            for k, (ids, x) in enumerate(runs):
                with torch.no_grad():
                    assert torch.equal(old.encode(x), ref[f"standard.prompt{k}.acts"])
    metadata = {
        "prompts": json.dumps(PROMPTS),
        "hook": HOOK,
        "steer": json.dumps(STEER),
        "clamp": json.dumps(CLAMP),
        "features": json.dumps(FEATURES),
        "saes": json.dumps(list(SAES)),
        "sae_lens": __import__("sae_lens").__version__,
        "torch": torch.__version__,
        "transformers": __import__("transformers").__version__,
    }
    save_file(ref, os.path.join(root, "reference.safetensors"), metadata=metadata)
    print("wrote", root)


if __name__ == "__main__":
    main()
