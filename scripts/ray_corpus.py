"""Runs a gpt2-inspect corpus pass in shards on a Ray cluster, then merges them: prints what
the single run `PATH ARGS…` prints, and writes what it writes.

    python scripts/ray_corpus.py --binary PATH --shards N [--address ADDR] [--workdir DIR] -- ARGS…

For instance `… --shards 8 -- --model gpt2 --prepend-bos lens fit --file corpus.txt --lines
-o lens.pt`. Without --address a local Ray cluster is started (on a laptop); with one, the
driver connects to it (`ray start --head` on a cluster, or a managed offering's address).
Each shard is one task, `PATH ARGS… --shard K/N --partial FILE` without the output flags
(-o, --html) and the output format (--json, --jsonl, --csv, --tsv); a failed task is retried
(--retries). Its partial comes back through Ray's object store, so the nodes need not share
a file system, only PATH, the model and the corpus at the same paths. The partials are kept
in --workdir (default ./ray-partials): run the job
again after a failure and each finished shard is handed back to its task, where the binary
sees it holds that shard with the same settings and skips the work (resume). Then `PATH
merge PARTIAL… ` with the output flags runs here and its stdout is this script's.
"""

import argparse
import os
import subprocess
import sys
import tempfile

import ray

# Flags of the single run that say where its result goes, with the values they take: the
# merge writes them; a shard must not.
OUTPUT_FLAGS = {"-o": 1, "--output": 1, "--html": 1}
FORMAT_FLAGS = {"--json", "--jsonl", "--csv", "--tsv"}


def split(args):
    """ARGS → (what each shard runs, what the merge is given)."""
    shard, merge, i = [], [], 0
    while i < len(args):
        a = args[i]
        name, eq, _ = a.partition("=")
        if name in OUTPUT_FLAGS:
            take = 1 if eq else 1 + OUTPUT_FLAGS[name]
            merge += args[i:i + take]
            i += take
        elif a in FORMAT_FLAGS:
            merge.append(a)
            i += 1
        else:
            shard.append(a)
            i += 1
    return shard, merge


@ray.remote
def run_shard(binary, args, k, n, done):
    """Runs shard k of n; returns its partial's bytes and whether the binary kept `done`, a
    partial from an earlier run of the job (resume; None when there is none)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, f"part-{k}-of-{n}.safetensors")
        if done is not None:
            with open(path, "wb") as f:
                f.write(done)
        cmd = [binary, *args, "--shard", f"{k}/{n}", "--partial", path]
        r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"shard {k}/{n}: {r.stderr.strip()}")
        with open(path, "rb") as f:
            return f.read(), "; kept" in r.stderr


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--binary", required=True, help="the gpt2-inspect binary, at this path on every node")
    ap.add_argument("--shards", type=int, required=True, help="N: how many shards")
    ap.add_argument("--address", help="a Ray cluster's address; omitted: a local cluster")
    ap.add_argument("--workdir", help="where the partials are kept (and found again on a rerun)")
    ap.add_argument("--retries", type=int, default=3, help="tries again a failed shard's task")
    ap.add_argument("args", nargs=argparse.REMAINDER, help="-- then the single run's arguments")
    opts = ap.parse_args()
    args = opts.args[1:] if opts.args[:1] == ["--"] else opts.args
    if opts.shards < 1 or not args:
        ap.error("give --shards N ≥ 1 and, after --, the single run's arguments")
    shard_args, merge_args = split(args)
    binary = os.path.abspath(opts.binary)
    workdir = opts.workdir or "ray-partials"
    os.makedirs(workdir, exist_ok=True)
    n = opts.shards
    paths = [os.path.join(workdir, f"part-{k}-of-{n}.safetensors") for k in range(n)]

    ray.init(address=opts.address, include_dashboard=False, logging_level="ERROR",
             log_to_driver=False)
    task = run_shard.options(max_retries=opts.retries, retry_exceptions=True)
    done = [open(p, "rb").read() if os.path.exists(p) else None for p in paths]
    futures = [task.remote(binary, shard_args, k, n, done[k]) for k in range(n)]
    for k, fut in enumerate(futures):
        data, kept = ray.get(fut)
        print(f"shard {k}/{n}: {'kept from an earlier run' if kept else 'done'}", file=sys.stderr)
        tmp = paths[k] + ".tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, paths[k])
    ray.shutdown()
    # Global flags (the model's) belong to the shards; the merge reads the partials.
    r = subprocess.run([binary, "merge", *paths, *merge_args], stdout=sys.stdout, stderr=sys.stderr)
    sys.exit(r.returncode)


if __name__ == "__main__":
    main()
