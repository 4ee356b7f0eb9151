"""Attribution graphs on the tiny fixture, made by circuit-tracer 0.5.0 itself.

Random per-layer transcoder sets in circuit-tracer's on-disk format (`config.yaml` with
`model_kind: transcoder_set`; `layer_{i}.safetensors` with W_enc [d_tc, d_model], W_dec
[d_tc, d_model], b_enc, b_dec, and for the second set `activation_function.threshold`
(JumpReLU) and W_skip [d_model, d_model]), each loaded with circuit-tracer's own
`load_transcoder_set`. The model is circuit-tracer's `TransformerLensReplacementModel` built
from a `HookedTransformerConfig` (no hub, as circuit-tracer's own tests build theirs) with the
fixture's Hugging Face weights converted by TransformerLens's `convert_gpt2_weights`; its
logits are checked against Hugging Face's `GPT2LMHeadModel` first.

For each set, `replacement_fit` records the replacement model's fidelity (what `gpt2-inspect
transcode` reports) with circuit-tracer's own transcoder objects on TransformerLens hooks.

For each case, `attribute` (circuit-tracer's defaults, or a feature budget with a small
batch size and update interval so that the ranking is refreshed several times) gives the
unpruned `Graph`; `prune_graph` at two threshold pairs, `compute_graph_scores`, and
`create_graph_files` (the JSON Neuronpedia opens) are recorded. Position-embedding edges
(ours alone; circuit-tracer has no such node) are computed with circuit-tracer's own
attribution context on the same frozen model: the gradient at `hook_pos_embed` of every
row's injection, dotted with W_pos[p].

A third set is a JumpReLU cross-layer transcoder (`model_kind: cross_layer_transcoder`) in the
files circuit-tracer's `load_clt` reads, each feature writing to its own layer and every later
one.

Writes tests/fixtures/graphs/{relu,jumprelu-skip,clt}/ and tests/fixtures/graphs/reference.safetensors
(+ one JSON per case). Run in a venv of its own (circuit-tracer pins transformers <= 4.57.3):

    pip install circuit-tracer==0.5.0 'transformers<=4.57.3'
    python scripts/make_graph_fixtures.py --fixtures tests/fixtures
"""

import argparse
import json
from functools import partial
import os
import shutil
import tempfile

import torch
from safetensors.torch import save_file
from transformer_lens import HookedTransformerConfig
from transformer_lens.pretrained.weight_conversions.gpt2 import convert_gpt2_weights
from transformers import AutoTokenizer, GPT2LMHeadModel

from circuit_tracer import attribute
from circuit_tracer.graph import compute_graph_scores, prune_graph
from circuit_tracer.replacement_model.replacement_model_transformerlens import (
    TransformerLensReplacementModel,
)
from circuit_tracer.transcoder.cross_layer_transcoder import CrossLayerTranscoder, load_clt
from circuit_tracer.transcoder.single_layer_transcoder import load_transcoder_set
from circuit_tracer.utils.create_graph_files import create_graph_files

D_TC = 48
PROMPTS = {
    "a": "When Mary and John went to the store, John gave a drink to",
    "b": "The cat sat on the mat because it was",
}
# name: (transcoder set, prompt, max_feature_nodes, batch_size, update_interval)
CASES = {
    "relu-a": ("relu", "a", None, 512, 4),
    "relu-b-budget": ("relu", "b", 40, 8, 2),
    "skip-a": ("jumprelu-skip", "a", None, 512, 4),
    "skip-b-budget": ("jumprelu-skip", "b", 60, 16, 1),
    "clt-a": ("clt", "a", None, 512, 4),
    "clt-b-budget": ("clt", "b", 50, 8, 2),
}
THRESHOLDS = {"default": (0.8, 0.98), "tight": (0.6, 0.9)}


def transcoder_files(folder, n_layers, d_model, gen, jump_skip):
    os.makedirs(folder, exist_ok=True)
    for layer in range(n_layers):
        t = {
            "W_enc": torch.randn(D_TC, d_model, generator=gen) * 0.4,
            "W_dec": torch.randn(D_TC, d_model, generator=gen) * 0.3,
            "b_enc": torch.randn(D_TC, generator=gen) * 0.3 - 1.0,
            "b_dec": torch.randn(d_model, generator=gen) * 0.1,
        }
        if jump_skip:
            t["activation_function.threshold"] = torch.rand(D_TC, generator=gen) * 0.3
            t["W_skip"] = torch.randn(d_model, d_model, generator=gen) * 0.05
        save_file({k: v.contiguous() for k, v in t.items()}, f"{folder}/layer_{layer}.safetensors")
    cfg = [
        "model_kind: transcoder_set",
        "feature_input_hook: ln2.hook_normalized",
        "feature_output_hook: hook_mlp_out",
        f"scan: tiny-gpt2/{os.path.basename(folder)}",
    ]
    with open(f"{folder}/config.yaml", "w") as f:
        f.write("\n".join(cfg) + "\n")


def clt_files(folder, n_layers, d_model, gen):
    """A JumpReLU cross-layer transcoder as circuit-tracer's `to_safetensors` writes one:
    W_enc_{i}.safetensors (W_enc_{i} [d_tc, d_model], b_enc_{i}, b_dec_{i}, threshold_{i}) and
    W_dec_{i}.safetensors (W_dec_{i} [d_tc, n_layers - i, d_model])."""
    os.makedirs(folder, exist_ok=True)
    for i in range(n_layers):
        enc = {
            f"W_enc_{i}": torch.randn(D_TC, d_model, generator=gen) * 0.4,
            f"b_enc_{i}": torch.randn(D_TC, generator=gen) * 0.3 - 1.0,
            f"b_dec_{i}": torch.randn(d_model, generator=gen) * 0.1,
            f"threshold_{i}": torch.rand(D_TC, generator=gen) * 0.3,
        }
        dec = {f"W_dec_{i}": torch.randn(D_TC, n_layers - i, d_model, generator=gen) * 0.2}
        save_file(enc, f"{folder}/W_enc_{i}.safetensors")
        save_file(dec, f"{folder}/W_dec_{i}.safetensors")
    cfg = [
        "model_kind: cross_layer_transcoder",
        "feature_input_hook: ln2.hook_normalized",
        "feature_output_hook: hook_mlp_out",
        f"scan: tiny-gpt2/{os.path.basename(folder)}",
    ]
    with open(f"{folder}/config.yaml", "w") as f:
        f.write("\n".join(cfg) + "\n")


def replacement_model(fixture, tset):
    hf = GPT2LMHeadModel.from_pretrained(fixture, attn_implementation="eager").eval()
    c = hf.config
    cfg = HookedTransformerConfig(
        n_layers=c.n_layer, d_model=c.n_embd, n_heads=c.n_head, d_head=c.n_embd // c.n_head,
        d_mlp=4 * c.n_embd, d_vocab=c.vocab_size, n_ctx=c.n_positions, act_fn="gelu_new",
        normalization_type="LN", eps=c.layer_norm_epsilon, positional_embedding_type="standard",
        original_architecture="GPT2LMHeadModel", model_name="tiny-gpt2", default_prepend_bos=False,
    )
    tok = AutoTokenizer.from_pretrained(fixture)
    model = TransformerLensReplacementModel(cfg, tokenizer=tok)
    model.load_and_process_state_dict(
        convert_gpt2_weights(hf, cfg), fold_ln=False, center_writing_weights=False,
        center_unembed=False, fold_value_biases=False,
    )
    model._configure_replacement_model(tset)
    model.cfg.tokenizer_name = fixture  # create_graph_files loads the tokenizer by this name
    ids = tok(PROMPTS["a"], return_tensors="pt").input_ids
    with torch.no_grad():
        diff = (model(ids) - hf(ids).logits).abs().max().item()
    assert diff < 1e-4, f"TransformerLens's logits differ from HF's by {diff}"
    return model, diff


def position_edges(model, ids, graph, batch):
    """Rows as the graph orders them (selected features, then logits) × positions."""
    ctx = model.setup_attribution(ids)
    pos_grads = []

    def enable(acts, hook):
        acts.requires_grad_(True)
        return acts

    def capture(grad, hook):
        pos_grads.append(grad.detach().clone())

    n_layers, n_pos = model.cfg.n_layers, len(ids)
    feats = graph.active_features[graph.selected_features]
    layers = torch.cat([feats[:, 0], torch.full((len(graph.logit_targets),), n_layers)])
    positions = torch.cat([feats[:, 1], torch.full((len(graph.logit_targets),), n_pos - 1)])
    logit_vecs = logit_vectors(model, graph)
    vecs = torch.cat([ctx.encoder_vecs[graph.selected_features], logit_vecs])
    w_pos = model.W_pos[:n_pos].detach()
    rows = []
    with model.hooks(fwd_hooks=[("hook_pos_embed", enable)], bwd_hooks=[("hook_pos_embed", capture)]):
        model.run_forward_pass(ids, batch, ctx)
        for i in range(0, len(layers), batch):
            pos_grads.clear()
            n = len(layers[i : i + batch])
            ctx.compute_batch(layers[i : i + batch], positions[i : i + batch], vecs[i : i + batch])
            g = pos_grads[0][:n]  # (n, n_pos, d)
            rows.append(torch.einsum("bpd,pd->bp", g, w_pos))
    return torch.cat(rows)


def logit_vectors(model, graph):
    w_u = model.unembed.W_U.detach()  # (d_model, d_vocab)
    idx = graph.logit_token_ids
    return (w_u[:, idx] - w_u.mean(dim=1, keepdim=True)).T


def interventions(name, model, graph, out):
    """circuit-tracer's feature_intervention (attention frozen, its default) on two features
    of the graph: the last position's most active layer-0 feature set to 0, and a layer-1
    feature at position 5 set to three times its activation; the last position's logits."""
    feats, acts = graph.active_features, graph.activation_values
    last = len(graph.input_tokens) - 1
    at = lambda l, p: [i for i in range(len(feats)) if feats[i, 0] == l and feats[i, 1] == p]
    a = max(at(0, last), key=lambda i: acts[i])
    b = max(at(1, 5), key=lambda i: acts[i])
    chosen = [(int(feats[a, 0]), int(feats[a, 1]), int(feats[a, 2]), 0.0),
              (int(feats[b, 0]), int(feats[b, 1]), int(feats[b, 2]), 3.0 * float(acts[b]))]
    logits, _ = model.feature_intervention(graph.input_tokens, chosen)
    out[f"{name}.intervention.features"] = torch.tensor([c[:3] for c in chosen])
    out[f"{name}.intervention.values"] = torch.tensor([c[3] for c in chosen])
    out[f"{name}.intervention.logits"] = logits[0, -1].detach().contiguous()
    with torch.no_grad():
        out[f"{name}.clean_logits"] = model(graph.input_tokens.unsqueeze(0))[0, -1].contiguous()


def replacement_fit(set_name, model, ids, out):
    """The replacement model's fidelity, with circuit-tracer's own transcoder objects on every
    layer: the clean run's feature activations (every position) and each MLP output's
    reconstruction error, and the next-token losses of the clean run, of the run with every
    MLP's output replaced by its transcoder's (each reading that run's ln2.hook_normalized),
    and of the run with every MLP's output zeroed."""
    tc, n_layers = model.transcoders, model.cfg.n_layers
    clt = isinstance(tc, CrossLayerTranscoder)
    encode = (lambda x, l: tc.encode_layer(x, l)) if clt else (lambda x, l: tc[l].encode(x))

    def decode(l, xs, acts):
        if not clt:
            return tc[l].decode(acts[l], xs[l])
        writes = [acts[i] @ tc._get_decoder_vectors(i)[:, l - i] for i in range(l + 1)]
        return sum(writes) + tc.b_dec[l]

    ids = ids.unsqueeze(0)
    loss = lambda logits: torch.nn.functional.cross_entropy(logits[0, :-1], ids[0, 1:], reduction="none")
    with torch.no_grad():
        logits, cache = model.run_with_cache(ids)
        xs = [cache[f"blocks.{l}.ln2.hook_normalized"][0] for l in range(n_layers)]
        acts = [encode(xs[l], l) for l in range(n_layers)]
        errors = [cache[f"blocks.{l}.hook_mlp_out"][0] - decode(l, xs, acts) for l in range(n_layers)]
        run = {"xs": [None] * n_layers, "acts": [None] * n_layers}

        def read(x, hook, l):
            run["xs"][l] = x[0]
            run["acts"][l] = encode(x[0], l)
            return x

        def replace(y, hook, l):
            return decode(l, run["xs"], run["acts"]).unsqueeze(0)

        hooks = [(f"blocks.{l}.ln2.hook_normalized", partial(read, l=l)) for l in range(n_layers)]
        hooks += [(f"blocks.{l}.hook_mlp_out", partial(replace, l=l)) for l in range(n_layers)]
        replaced = model.run_with_hooks(ids, fwd_hooks=hooks)
        zero = [(f"blocks.{l}.hook_mlp_out", lambda y, hook: torch.zeros_like(y)) for l in range(n_layers)]
        zeroed = model.run_with_hooks(ids, fwd_hooks=zero)
    out[f"{set_name}.fit.input_ids"] = ids[0].to(torch.int64)
    out[f"{set_name}.fit.acts"] = torch.stack(acts).contiguous()
    out[f"{set_name}.fit.errors"] = torch.stack(errors).contiguous()
    out[f"{set_name}.fit.losses"] = torch.stack([loss(logits), loss(replaced), loss(zeroed)]).contiguous()


def run_case(name, model, tok, prompt, budget, batch, interval, out, json_dir):
    graph = attribute(prompt, model, max_feature_nodes=budget, batch_size=batch,
                      update_interval=interval)
    p = f"{name}."
    out[p + "input_ids"] = graph.input_tokens.to(torch.int64)
    out[p + "active_features"] = graph.active_features.to(torch.int64).contiguous()
    out[p + "activation_values"] = graph.activation_values.contiguous()
    out[p + "selected_features"] = graph.selected_features.to(torch.int64)
    out[p + "logit_tokens"] = graph.logit_token_ids.to(torch.int64)
    out[p + "logit_probabilities"] = graph.logit_probabilities.contiguous()
    out[p + "adjacency_matrix"] = graph.adjacency_matrix.contiguous()
    out[p + "settings"] = torch.tensor([budget or 0, batch, interval])
    replacement, completeness = compute_graph_scores(graph)
    out[p + "scores"] = torch.tensor([replacement, completeness], dtype=torch.float64)
    for tname, (node_t, edge_t) in THRESHOLDS.items():
        node_mask, edge_mask, cumulative = prune_graph(graph, node_t, edge_t)
        out[f"{p}{tname}.node_mask"] = node_mask.to(torch.uint8)
        out[f"{p}{tname}.edge_mask"] = edge_mask.to(torch.uint8).contiguous()
        out[f"{p}{tname}.cumulative"] = cumulative.contiguous()
    out[p + "position_edges"] = position_edges(model, graph.input_tokens, graph, 64).contiguous()
    if budget is None:
        interventions(name, model, graph, out)
    with tempfile.TemporaryDirectory() as d:
        create_graph_files(graph, name, d, scan=model.scan)
        shutil.copy(f"{d}/{name}.json", f"{json_dir}/{name}.json")
    return graph


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fixtures", default="tests/fixtures")
    args = ap.parse_args()
    fixture = f"{args.fixtures}/tiny-gpt2"
    root = f"{args.fixtures}/graphs"
    os.makedirs(root, exist_ok=True)
    hf_cfg = json.load(open(f"{fixture}/config.json"))
    n_layers, d_model = hf_cfg["n_layer"], hf_cfg["n_embd"]
    gen = torch.Generator().manual_seed(46)
    out, models = {}, {}
    tok = AutoTokenizer.from_pretrained(fixture)
    for set_name, jump_skip in (("relu", False), ("jumprelu-skip", True)):
        folder = f"{root}/{set_name}"
        transcoder_files(folder, n_layers, d_model, gen, jump_skip)
        paths = {i: f"{folder}/layer_{i}.safetensors" for i in range(n_layers)}
        tset = load_transcoder_set(
            paths, scan=f"tiny-gpt2/{set_name}", feature_input_hook="ln2.hook_normalized",
            feature_output_hook="hook_mlp_out", device=torch.device("cpu"),
            lazy_encoder=False, lazy_decoder=False,
        )
        models[set_name], diff = replacement_model(fixture, tset)
        out[f"{set_name}.hf_logit_diff"] = torch.tensor([diff])
    # After the per-layer sets, so that their random weights are unchanged by it.
    clt_files(f"{root}/clt", n_layers, d_model, gen)
    clt = load_clt(
        f"{root}/clt", feature_input_hook="ln2.hook_normalized", feature_output_hook="hook_mlp_out",
        scan="tiny-gpt2/clt", device=torch.device("cpu"), dtype=torch.float32, lazy_decoder=True,
    )
    models["clt"], diff = replacement_model(fixture, clt)
    out["clt.hf_logit_diff"] = torch.tensor([diff])
    for name, (set_name, prompt, budget, batch, interval) in CASES.items():
        g = run_case(name, models[set_name], tok, PROMPTS[prompt], budget, batch, interval, out, root)
        print(name, "active", len(g.active_features), "selected", len(g.selected_features),
              "logits", len(g.logit_targets), "N", g.adjacency_matrix.shape[0])
    for set_name, model in models.items():
        replacement_fit(set_name, model, tok(PROMPTS["a"], return_tensors="pt").input_ids[0], out)
    import circuit_tracer
    meta = {"circuit_tracer": circuit_tracer.__version__, "cases": json.dumps(list(CASES)),
            "prompts": json.dumps(PROMPTS)}
    save_file(out, f"{root}/reference.safetensors", metadata=meta)


if __name__ == "__main__":
    main()
