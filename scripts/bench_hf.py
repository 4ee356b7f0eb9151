"""The benchmark's work done by Hugging Face transformers (GPT2LMHeadModel, eager attention),
for scripts/bench.sh --with-hf. One-shot modes do what one gpt2-inspect command does, in a
new process; `inproc` prints `key<TAB>seconds` lines with the keys bench_forward prints."""

import statistics
import sys
import time

import torch
from transformers import GPT2LMHeadModel, GPT2TokenizerFast


def load(d):
    return GPT2LMHeadModel.from_pretrained(d, attn_implementation="eager").eval()


def main():
    mode, d = sys.argv[1], sys.argv[2]
    torch.set_grad_enabled(mode in ("saliency", "ig"))
    if mode == "tokenize":
        tok = GPT2TokenizerFast.from_pretrained(d)
        print(tok(sys.argv[3])["input_ids"])
    elif mode == "next":
        tok, model = GPT2TokenizerFast.from_pretrained(d), load(d)
        ids = tok(sys.argv[3], return_tensors="pt")["input_ids"]
        out = model(ids, output_attentions=True)
        probs = out.logits[0, -1].softmax(-1)
        print(probs.topk(5))
    elif mode == "score":
        # A corpus scored as a Python user would batch it: sorted by length, 16 a batch,
        # right-padded; every token's log-probability and the model's top guess.
        tok, model = GPT2TokenizerFast.from_pretrained(d), load(d)
        lines = [l for l in open(sys.argv[3]).read().split("\n") if l.strip()]
        ids = sorted((tok(l)["input_ids"] for l in lines), key=len)
        total = 0.0
        for i in range(0, len(ids), 16):
            batch = ids[i:i + 16]
            t = max(map(len, batch))
            x = torch.tensor([b + [50256] * (t - len(b)) for b in batch])
            mask = torch.tensor([[1] * len(b) + [0] * (t - len(b)) for b in batch])
            logp = model(x, attention_mask=mask).logits.log_softmax(-1)[:, :-1]
            got = logp.gather(-1, x[:, 1:, None])[..., 0] * mask[:, 1:]
            logp.argmax(-1)  # the top guess, as `score` reports it: its cost is part of the comparison
            total += float(got.sum())
        print(total)
    elif mode == "generate":
        tok, model = GPT2TokenizerFast.from_pretrained(d), load(d)
        ids = tok(sys.argv[3], return_tensors="pt")["input_ids"]
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=int(sys.argv[4]),
                             do_sample=False, pad_token_id=50256)
        print(tok.decode(out[0]))
    elif mode == "attention":
        tok, model = GPT2TokenizerFast.from_pretrained(d), load(d)
        text = open(sys.argv[3]).read()
        ids = tok(text, return_tensors="pt")["input_ids"]
        print(model(ids, output_attentions=True).attentions[0][0, 0].shape)
    elif mode == "patch":
        # Activation patching as TransformerLens users write it: one forward pass per
        # (layer, position), a hook replacing the residual stream entering the block.
        clean, corrupt, answer, wrong = sys.argv[3:7]
        tok, model = GPT2TokenizerFast.from_pretrained(d), load(d)
        c_ids = tok(clean, return_tensors="pt")["input_ids"]
        x_ids = tok(corrupt, return_tensors="pt")["input_ids"]
        a, w = tok(answer)["input_ids"][0], tok(wrong)["input_ids"][0]
        resid = {}
        hooks = [blk.register_forward_pre_hook(
            lambda m, args, kw, l=l: resid.__setitem__(l, (args[0] if args else kw["hidden_states"]).clone()),
            with_kwargs=True) for l, blk in enumerate(model.transformer.h)]
        model(c_ids)
        for h in hooks:
            h.remove()
        grid = torch.zeros(len(model.transformer.h), c_ids.shape[1])
        for l, blk in enumerate(model.transformer.h):
            for p in range(c_ids.shape[1]):
                def put(m, args, kw, l=l, p=p):
                    x = (args[0] if args else kw["hidden_states"]).clone()
                    x[0, p] = resid[l][0, p]
                    return ((x,) + tuple(args[1:]), kw) if args else (args, {**kw, "hidden_states": x})
                h = blk.register_forward_pre_hook(put, with_kwargs=True)
                logits = model(x_ids).logits[0, -1]
                h.remove()
                grid[l, p] = logits[a] - logits[w]
        print(grid)
    elif mode in ("saliency", "ig"):
        # What `saliency` does: the top prediction's logit at the last position, explained by
        # the token embeddings; Captum's Saliency (L2 over d_model) or IntegratedGradients
        # (Gauss-Legendre, zero baseline) on inputs_embeds.
        from captum.attr import IntegratedGradients, Saliency

        tok, model = GPT2TokenizerFast.from_pretrained(d), load(d)
        ids = tok(sys.argv[3], return_tensors="pt")["input_ids"]
        embeds = model.transformer.wte(ids).detach()
        with torch.no_grad():
            answer = model(ids).logits[0, -1].argmax()
        f = lambda e: model(inputs_embeds=e).logits[:, -1, answer]
        if mode == "saliency":
            print(Saliency(f).attribute(embeds, abs=False)[0].norm(dim=-1))
        else:
            ig = IntegratedGradients(f)
            attr, delta = ig.attribute(embeds, baselines=torch.zeros_like(embeds), n_steps=int(sys.argv[4]),
                                       method="gausslegendre", return_convergence_delta=True)
            print(attr[0].sum(-1), delta)
    elif mode == "inproc":
        start = time.perf_counter()
        model = load(d)
        print(f"load\t{time.perf_counter() - start:.6f}")
        for t in [1, 8, 32, 128, 512, 1024]:
            ids = (torch.arange(t) * 7919 % 50000).unsqueeze(0)
            runs = 3 if t >= 512 else 10
            f = lambda: model(ids, output_attentions=(t == 8), logits_to_keep=1)
            f()
            times = []
            for _ in range(runs):
                s = time.perf_counter()
                f()
                times.append(time.perf_counter() - s)
            print(f"forward_{t}\t{statistics.median(times):.6f}")
        ids = (torch.arange(8) * 7919 % 50000).unsqueeze(0)
        for key, cache in [("generate_cache", True), ("generate_nocache", False)]:
            s = time.perf_counter()
            model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=64,
                           min_new_tokens=64, do_sample=False, use_cache=cache, pad_token_id=50256)
            print(f"{key}\t{time.perf_counter() - s:.6f}")
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
