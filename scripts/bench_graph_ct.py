"""circuit-tracer 0.5.0's attribution graph on the benchmark's model and transcoders, timed.

Random per-layer transcoders for gpt2-size weights in circuit-tracer's format (`make`), and
one `attribute` run on them as its command line runs it (batch_size 256, max_feature_nodes
7500, lazy decoders), its replacement model built from the model directory's Hugging Face
weights with no hub by scripts/make_graph_fixtures.py's `replacement_model` (its logits
checked against Hugging Face's first). Prints JSON: seconds of
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
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from make_graph_fixtures import replacement_model  # the fixtures' construction, checked
    from circuit_tracer import attribute
    from circuit_tracer.transcoder.single_layer_transcoder import load_transcoder_set

    torch.set_num_threads(os.cpu_count())
    n_layers = json.load(open(f"{model_dir}/config.json"))["n_layer"]
    paths = {i: f"{tc_dir}/layer_{i}.safetensors" for i in range(n_layers)}
    tset = load_transcoder_set(paths, scan="bench/random", feature_input_hook="ln2.hook_normalized",
                               feature_output_hook="hook_mlp_out", device=torch.device("cpu"),
                               lazy_encoder=False, lazy_decoder=True)
    model, _ = replacement_model(model_dir, tset)
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
