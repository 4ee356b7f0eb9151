"""TransformerLens 4.3.0's `JacobianLens.fit` on the benchmark checkpoint, timed: the
peer's row for `lens fit` in bench/results.md. Prints {"seconds": s, "prompts": n} as JSON.
The model is booted from the local directory (raw weights, no hub); prompts are the
corpus's lines, each with BOS (its `to_tokens`), cut to --max-seq-len.

    python scripts/bench_jlens_tl.py MODEL_DIR CORPUS [--max-seq-len 128]
"""

import argparse
import json
import time

import torch
from transformer_lens.model_bridge import TransformerBridge
from transformer_lens.tools.analysis import JacobianLens

ap = argparse.ArgumentParser()
ap.add_argument("model")
ap.add_argument("corpus")
ap.add_argument("--max-seq-len", type=int, default=128)
args = ap.parse_args()
torch.set_num_threads(torch.get_num_threads())
model = TransformerBridge.boot_transformers(args.model, device="cpu")
model.eval()
prompts = [line.rstrip("\n") for line in open(args.corpus) if line.strip()]
start = time.perf_counter()
lens = JacobianLens.fit(model, prompts, corpus="bench", max_seq_len=args.max_seq_len, show_progress=False)
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "prompts": lens.n_prompts, "threads": torch.get_num_threads()}))
