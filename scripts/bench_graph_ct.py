"""circuit-tracer 0.5.0's attribution graph on the benchmark's model and transcoders, timed.

Random per-layer transcoders for gpt2-size weights in circuit-tracer's format (`make`), and
one `attribute` run on them as its command line runs it (batch_size 256, max_feature_nodes
7500, lazy decoders), its replacement model built from the model directory's Hugging Face
weights with no hub (as scripts/make_graph_fixtures.py builds it). Prints JSON: seconds of
`attribute` (the model and transcoders loaded before), active features, nodes.

    python scripts/bench_graph_ct.py make MODEL_DIR OUT_DIR D_TC
    python scripts/bench_graph_ct.py run MODEL_DIR TRANSCODERS_DIR PROMPT
"""

import json
import os
import sys
import time

import torch
from safetensors.torch import save_file


def make(model_dir, out, d_tc):
    cfg = json.load(open(f"{model_dir}/config.json"))
    n_layers, d = cfg["n_layer"], cfg["n_embd"]
    os.makedirs(out, exist_ok=True)
    gen = torch.Generator().manual_seed(48)
    for layer in range(n_layers):
        # Pre-activations about N(0, 1) on ln2.hook_normalized (norm √d): about 0.4 % fire.
        save_file({
            "W_enc": torch.randn(d_tc, d, generator=gen) / d ** 0.5,
            "W_dec": torch.randn(d_tc, d, generator=gen) * 0.05,
            "b_enc": torch.full((d_tc,), -2.65),
            "b_dec": torch.zeros(d),
        }, f"{out}/layer_{layer}.safetensors")
    with open(f"{out}/config.yaml", "w") as f:
        f.write("model_kind: transcoder_set\nfeature_input_hook: ln2.hook_normalized\n"
                "feature_output_hook: hook_mlp_out\nscan: bench/random\n")


def run(model_dir, tc_dir, prompt):
    from transformer_lens import HookedTransformerConfig
    from transformer_lens.pretrained.weight_conversions.gpt2 import convert_gpt2_weights
    from transformers import AutoTokenizer, GPT2LMHeadModel
    from circuit_tracer import attribute
    from circuit_tracer.replacement_model.replacement_model_transformerlens import (
        TransformerLensReplacementModel,
    )
    from circuit_tracer.transcoder.single_layer_transcoder import load_transcoder_set

    torch.set_num_threads(os.cpu_count())
    hf = GPT2LMHeadModel.from_pretrained(model_dir, attn_implementation="eager").eval()
    c = hf.config
    cfg = HookedTransformerConfig(
        n_layers=c.n_layer, d_model=c.n_embd, n_heads=c.n_head, d_head=c.n_embd // c.n_head,
        d_mlp=4 * c.n_embd, d_vocab=c.vocab_size, n_ctx=c.n_positions, act_fn="gelu_new",
        normalization_type="LN", eps=c.layer_norm_epsilon, positional_embedding_type="standard",
        original_architecture="GPT2LMHeadModel", model_name="gpt2-random", default_prepend_bos=False,
    )
    paths = {i: f"{tc_dir}/layer_{i}.safetensors" for i in range(c.n_layer)}
    tset = load_transcoder_set(paths, scan="bench/random", feature_input_hook="ln2.hook_normalized",
                               feature_output_hook="hook_mlp_out", device=torch.device("cpu"),
                               lazy_encoder=False, lazy_decoder=True)
    model = TransformerLensReplacementModel(cfg, tokenizer=AutoTokenizer.from_pretrained(model_dir))
    model.load_and_process_state_dict(convert_gpt2_weights(hf, cfg), fold_ln=False,
                                      center_writing_weights=False, center_unembed=False,
                                      fold_value_biases=False)
    model._configure_replacement_model(tset)
    del hf
    start = time.perf_counter()
    g = attribute(prompt, model, max_feature_nodes=7500, batch_size=256)
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "active": len(g.active_features),
                      "selected": len(g.selected_features), "nodes": g.adjacency_matrix.shape[0]}))


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        run(sys.argv[2], sys.argv[3], sys.argv[4])
