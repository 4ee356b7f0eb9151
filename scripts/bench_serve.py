#!/usr/bin/env python3
"""The explorer's server on a full-size GPT-2, as scripts/bench.sh --only-serve measures it.

Usage: bench_serve.py BIN MODEL LONG_TEXT OUT.json

- start: from the process's start to the URL line, and to the first answer;
- the first view of a 32-token prompt, as the page asks for it (tokenize; then next, one
  head's attention and the logit lens at once), wall time until the next-token table and
  until every view, against `next`, `attention` and `lens` run one-shot (new processes, the
  same options, --json); the same at 1,024 tokens;
- latency of a mix of requests (next, one head's attention, the lens, tokenize, saliency)
  from 1 client and from 4 at once: p50 and p95;
- the server's resident memory at rest (after start) and its peak after the load.
Medians of several runs; every loop is bounded. The server listens on loopback only.
"""
import json
import statistics
import subprocess
import sys
import threading
import time
import urllib.request

BIN, MODEL, LONG, OUT = sys.argv[1:5]
P32 = ("When Mary and John went to the store, John gave a cold drink to the girl who had "
       "been waiting outside in the sun for a long time, and she")


def post(url, command, options):
    body = json.dumps(options).encode()
    req = urllib.request.Request(url + "api/" + command, data=body, method="POST")
    t = time.perf_counter()
    with urllib.request.urlopen(req, timeout=600) as r:
        data = r.read()
    return time.perf_counter() - t, data


def first_view(url, text):
    """The page's first requests for a prompt, as it sends them (tokenize; then next, one
    head's attention and the logit lens at once, each drawn when it comes): the wall times
    until the next-token table and until every view."""
    t = time.perf_counter()
    post(url, "tokenize", {"text": text})
    done = {}

    def ask(command, options):
        post(url, command, options)
        done[command] = time.perf_counter() - t

    threads = [threading.Thread(target=ask, args=a)
               for a in (("next", {"text": text, "top_k": 10}),
                         ("attention", {"text": text, "layer": 0, "head": 0}),
                         ("lens", {"text": text, "all_positions": True}))]
    for th in threads:
        th.start()
        time.sleep(0.001)  # in the page's order
    for th in threads:
        th.join()
    return done["next"], max(done.values())


def one_shot(text):
    t = time.perf_counter()
    for args in (["next", text, "-k", "10"], ["attention", text, "--layer", "0", "--head", "0"],
                 ["lens", text, "--all-positions"]):
        subprocess.run([BIN, "--model", MODEL] + args + ["--json"], check=True,
                       stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


MIX = [("next", {"text": P32, "top_k": 10}), ("attention", {"text": P32, "layer": 5, "head": 1}),
       ("lens", {"text": P32, "all_positions": True}), ("tokenize", {"text": P32}),
       ("saliency", {"text": P32})]


def latencies(url, clients, per_client):
    got, lock = [], threading.Lock()

    def client(k):
        for i in range(per_client):
            c, o = MIX[(i + k) % len(MIX)]
            dt, _ = post(url, c, o)
            with lock:
                got.append(dt)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    t = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - t
    got.sort()
    return {"p50": statistics.median(got), "p95": got[int(0.95 * (len(got) - 1))],
            "requests": len(got), "wall": wall}


def memory(pid):
    fields = {}
    for line in open(f"/proc/{pid}/status"):
        k, _, v = line.partition(":")
        if k in ("VmRSS", "VmHWM"):
            fields[k] = int(v.split()[0]) / 1024
    return fields


def main():
    long_text = open(LONG).read()
    t0 = time.perf_counter()
    server = subprocess.Popen([BIN, "--model", MODEL, "serve", "--port", "0"],
                              stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        line = server.stdout.readline().decode()
        listening = time.perf_counter() - t0
        url = line.strip().removeprefix("serving ")
        post(url, "tokenize", {"text": "a"})
        first = time.perf_counter() - t0
        rest = memory(server.pid)["VmRSS"]
        n32 = len(json.loads(post(url, "tokenize", {"text": P32})[1])["tokens"])
        first_view(url, P32)
        views = [first_view(url, P32) for _ in range(10)]
        next32 = statistics.median(v[0] for v in views)
        view32 = statistics.median(v[1] for v in views)
        oneshot32 = statistics.median(one_shot(P32) for _ in range(5))
        first_view(url, long_text)
        views = [first_view(url, long_text) for _ in range(3)]
        next1024 = statistics.median(v[0] for v in views)
        view1024 = statistics.median(v[1] for v in views)
        oneshot1024 = statistics.median(one_shot(long_text) for _ in range(3))
        alone = latencies(url, 1, 25)
        four = latencies(url, 4, 25)
        mem = memory(server.pid)
        result = {"listening": listening, "first_answer": first, "tokens32": n32,
                  "next32": next32, "view32": view32, "next1024": next1024, "oneshot32": oneshot32, "view1024": view1024,
                  "oneshot1024": oneshot1024, "alone": alone, "four": four,
                  "rss_rest": rest, "rss_after": mem["VmRSS"], "rss_peak": mem["VmHWM"]}
    finally:
        server.terminate()
        server.wait(timeout=30)
    json.dump(result, open(OUT, "w"), indent=1)
    print(json.dumps(result, indent=1))


main()
