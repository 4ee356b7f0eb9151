"""Times commands alternately (A B A B ..., or A B C A B C ...), so that all see the same
machine state; writes each one's times as hyperfine's JSON does (results[0]: median, stddev,
min, max, times).

    python3 bench_pair.py RUNS WARMUP OUT_A.json OUT_B.json 'command a' 'command b'
    python3 bench_pair.py RUNS WARMUP OUT_A.json OUT_B.json OUT_C.json 'a' 'b' 'c'
"""

import json
import shlex
import statistics
import subprocess
import sys
import time

runs, warmup = int(sys.argv[1]), int(sys.argv[2])
rest = sys.argv[3:]
n = len(rest) // 2
outs, cmds = rest[:n], [shlex.split(c) for c in rest[n:]]


def once(cmd):
    start = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


for _ in range(warmup):
    for cmd in cmds:
        once(cmd)
times = [[] for _ in cmds]
for _ in range(runs):
    for i, cmd in enumerate(cmds):
        times[i].append(once(cmd))
for out, t in zip(outs, times):
    json.dump({"results": [{"median": statistics.median(t), "stddev": statistics.stdev(t),
                            "min": min(t), "max": max(t), "times": t}]}, open(out, "w"))
