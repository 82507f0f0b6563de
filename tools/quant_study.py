#!/usr/bin/env python3
"""quant_study: how much importance scores and pruning orders move when the
weights are quantized (docs/quantized-scores.md).

For a reference model and its quantized twins, runs `depthprune score` with
the same calibration data and metrics on each, at block and sublayer
granularity, and prints per twin, metric and granularity: Spearman's rank
correlation of the influences with the reference's, and the overlap of the
first k units removed (k = a quarter and a half of the units).

Usage: tools/quant_study.py --calib FILE [--docs A:B] [--ctx N] [--metrics L]
       [--units block,sublayer] REF.gguf TWIN.gguf ...
Only the standard library; depthprune from ./depthprune (or $DP).
"""
import argparse
import json
import os
import subprocess
import sys


def score(dp, model, args, unit):
    cmd = [dp, "score", "-m", model, "-f", args.calib, "--docs", args.docs, "--ctx", str(args.ctx),
           "--metric", args.metrics, "--unit", unit, "-t", str(args.threads), "--json"]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit("quant_study: %s: %s" % (" ".join(cmd), out.stderr.strip()))
    d = json.loads(out.stdout)
    infl = {}
    for u in d["units"]:
        infl.setdefault(u["metric"], {})[u["unit"]] = u["influence"]
    return infl, d["order"]


def ranks(values):
    """Average ranks (1-based), ties sharing their mean rank."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    r = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            r[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return r


def spearman(a, b):
    ra, rb = ranks(a), ranks(b)
    n = len(a)
    ma, mb = sum(ra) / n, sum(rb) / n
    num = sum((x - ma) * (y - mb) for x, y in zip(ra, rb))
    den = (sum((x - ma) ** 2 for x in ra) * sum((y - mb) ** 2 for y in rb)) ** 0.5
    return num / den if den else float("nan")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--calib", required=True)
    p.add_argument("--docs", default="0:200")
    p.add_argument("--ctx", type=int, default=128)
    p.add_argument("--metrics", default="cosine,rel_l2,loo_loss,loo_logit,banzhaf_loss")
    p.add_argument("--units", default="block,sublayer")
    p.add_argument("-t", "--threads", type=int, default=2)
    p.add_argument("models", nargs="+")
    args = p.parse_args()
    dp = os.environ.get("DP", "./depthprune")
    ref, twins = args.models[0], args.models[1:]
    print("| twin | unit | metric | Spearman | overlap first n/4 | overlap first n/2 |")
    print("|---|---|---|---|---|---|")
    for unit in args.units.split(","):
        r_infl, r_order = score(dp, ref, args, unit)
        for twin in twins:
            t_infl, t_order = score(dp, twin, args, unit)
            for metric in args.metrics.split(","):
                names = sorted(r_infl[metric])
                rho = spearman([r_infl[metric][u] for u in names], [t_infl[metric][u] for u in names])
                n = len(names)
                cells = []
                for k in (max(1, n // 4), max(1, n // 2)):
                    common = len(set(r_order[metric][:k]) & set(t_order[metric][:k]))
                    cells.append("%d/%d" % (common, k))
                print("| %s | %s | %s | %.3f | %s | %s |" % (os.path.basename(twin), unit, metric, rho, cells[0],
                                                         cells[1]))
            sys.stdout.flush()


if __name__ == "__main__":
    main()
