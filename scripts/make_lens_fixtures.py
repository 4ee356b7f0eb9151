"""A tuned lens for the tiny fixture in tuned-lens's format, with tuned-lens's own prediction
trajectories through it and through its logit lens.

The lens is made with tuned-lens's own `TunedLens.from_model` on Hugging Face's
GPT2LMHeadModel (eager) and its translators drawn at random (seeded; a new lens is the
identity, which would equal the logit lens), then saved with `TunedLens.save` and read back
with `TunedLens.from_model_and_pretrained`. For each prompt, `PredictionTrajectory
.from_lens_and_model` gives every depth's log-probabilities (the last depth is the model's
own), and its statistics: `entropy`, `forward_kl` (KL of the model's final distribution to
the lens's) and `rank` of the targets (the model's final top token at each position; and a
fixed answer token). Writes tests/fixtures/lenses/tuned/{config.json,params.pt} and
tests/fixtures/lenses/reference.safetensors. Run in a venv with tuned-lens:

    python scripts/make_lens_fixtures.py --fixtures tests/fixtures
"""

import argparse
import os

import numpy as np
import torch
from safetensors.torch import save_file
from transformers import GPT2LMHeadModel, PreTrainedTokenizerFast
from tuned_lens.nn.lenses import LogitLens, TunedLens
from tuned_lens.plotting import PredictionTrajectory

PROMPTS = ["The cat sat on the mat", "When Mary and John went to the store, John gave a drink to"]
ANSWER = " Mary"
TOP = 5


def trajectory_tensors(prefix, traj, targets_top, targets_answer, out):
    lp = torch.tensor(np.asarray(traj.log_probs))  # (depths, T, V)
    top = lp.topk(TOP, dim=-1)
    out[f"{prefix}.top_ids"] = top.indices.to(torch.int64).contiguous()
    out[f"{prefix}.top_logprobs"] = top.values.to(torch.float64).contiguous()
    out[f"{prefix}.entropy"] = torch.tensor(np.asarray(traj.entropy().stats), dtype=torch.float64)
    out[f"{prefix}.forward_kl"] = torch.tensor(np.asarray(traj.forward_kl().stats), dtype=torch.float64)
    for name, targets in (("final_rank", targets_top), ("answer_rank", targets_answer)):
        t = PredictionTrajectory(log_probs=traj.log_probs, input_ids=traj.input_ids, targets=targets)
        out[f"{prefix}.{name}"] = torch.tensor(np.asarray(t.rank().stats), dtype=torch.int64)
        # Tokens whose f32 log-probability equals the target's: tuned-lens's argsort orders
        # them arbitrarily, so its rank is defined only up to them.
        target_lp = np.take_along_axis(traj.log_probs, targets[None, :, None], axis=-1)
        ties = (traj.log_probs == target_lp).sum(-1) - 1
        out[f"{prefix}.{name}_ties"] = torch.tensor(ties, dtype=torch.int64)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fixtures", default="tests/fixtures")
    args = ap.parse_args()
    model_dir = os.path.join(args.fixtures, "tiny-gpt2")
    model = GPT2LMHeadModel.from_pretrained(model_dir, attn_implementation="eager").eval()
    model.config.name_or_path = "tiny-gpt2"
    tok = PreTrainedTokenizerFast(tokenizer_file=os.path.join(model_dir, "tokenizer.json"))

    lens = TunedLens.from_model(model)
    gen = torch.Generator().manual_seed(44)
    with torch.no_grad():
        for name, p in lens.layer_translators.named_parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * (0.15 if name.endswith("weight") else 0.3))
    path = os.path.join(args.fixtures, "lenses", "tuned")
    lens.save(path)
    lens = TunedLens.from_model_and_pretrained(model, path).eval()
    logit = LogitLens.from_model(model)

    answer = tok.encode(ANSWER)
    assert len(answer) == 1, answer
    out = {}
    for i, text in enumerate(PROMPTS):
        ids = tok.encode(text)
        out[f"p{i}.input_ids"] = torch.tensor(ids, dtype=torch.int64)
        with torch.no_grad():
            final = model(torch.tensor([ids])).logits[0]
        targets_top = final.argmax(-1).numpy()
        targets_answer = np.full(len(ids), answer[0])
        for name, l in (("tuned", lens), ("logit", logit)):
            traj = PredictionTrajectory.from_lens_and_model(l, model, ids, tokenizer=tok)
            trajectory_tensors(f"p{i}.{name}", traj, targets_top, targets_answer, out)
    save_file(out, os.path.join(args.fixtures, "lenses", "reference.safetensors"),
              metadata={"prompts": "\n".join(PROMPTS), "answer": ANSWER})


main()
