#!/usr/bin/env python3
"""The measures behind docs/analysis.md's verdicts on the paper's claims, from tlora-analyze's
JSON (the TLoRA adapter first, optionally a second adapter it was compared with) and the TLoRA
run's metrics.jsonl; prints Markdown bullets. Needs SciPy for the pooled normality test.

    ~/.cache/tlora/venv/bin/python tools/analysis_summary.py --analysis runs/mrpc.json --metrics runs/mrpc-tlora/metrics.jsonl
"""
import argparse
import json
import math
import statistics

import scipy.stats


def span(values, digits=3):
    return f"{min(values):.{digits}f}–{max(values):.{digits}f} (mean {statistics.mean(values):.{digits}f})"


def core_lines(layers):
    stats = [l["entries"]["core"] for l in layers]
    n = len(stats)
    normal = sum(s["normaltest"]["p"] > 0.05 for s in stats)
    jb = sum(s["jarque_bera"]["p"] > 0.05 for s in stats)
    lines = [
        f"core entries ({stats[0]['count']} per layer): D'Agostino–Pearson p > 0.05 in {normal} of {n} "
        f"layers, Jarque–Bera p > 0.05 in {jb} of {n}; median p "
        f"{statistics.median(s['normaltest']['p'] for s in stats):.2g}",
        f"skewness {span([s['skewness'] for s in stats])}; excess kurtosis "
        f"{span([s['excess_kurtosis'] for s in stats])}",
    ]
    if all("values" in s for s in stats):
        pooled = []
        for s in stats:
            pooled += [(v - s["mean"]) / s["std"] for v in s["values"]]
        # Standardising each layer first, since the layers' scales differ (see core_hist.png).
        test = scipy.stats.normaltest(pooled)
        lines.append(f"pooled standardised entries ({len(pooled)}): D'Agostino–Pearson K² "
                     f"{test.statistic:.1f}, p {test.pvalue:.2g}")
    return lines


def epoch_lines(metrics_path):
    epochs = [json.loads(line) for line in open(metrics_path) if line.strip()]
    tlora = [e for e in epochs if any("core_fro" in a for a in e["adapters"].values())]
    if not tlora:
        return []
    lines = []
    norms = [[a["core_fro"] for a in e["adapters"].values()] for e in tlora]
    alphas = [[a["alpha"] for a in e["adapters"].values()] for e in tlora]
    lines.append("mean ‖M‖_F by epoch: " + ", ".join(f"{statistics.mean(n):.3f}" for n in norms))
    for k in range(1, len(norms)):
        growth = [b / a - 1 for a, b in zip(norms[k - 1], norms[k])]
        lines.append(f"‖M‖_F from epoch {k} to {k + 1}: {100 * min(growth):+.1f}% to {100 * max(growth):+.1f}% "
                     f"per layer (mean {100 * statistics.mean(growth):+.1f}%)")
    lines.append("α by epoch: " + "; ".join(f"{min(a):.3f}–{max(a):.3f}" for a in alphas))
    return lines


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--analysis", required=True, help="tlora-analyze's JSON, TLoRA adapter first")
    p.add_argument("--metrics", help="the TLoRA run's metrics.jsonl")
    a = p.parse_args()
    doc = json.load(open(a.analysis))
    out = []
    for adapter in doc["adapters"]:
        layers = adapter["layers"]
        label = adapter["kind"]
        if adapter["kind"] == "tlora":
            alphas = [l["alpha"] for l in layers]
            out.append(f"{label} α per layer: {span(alphas)}, max/min {max(alphas) / min(alphas):.2f}, "
                       f"std {statistics.pstdev(alphas):.3f}")
            out += [f"{label} " + line for line in core_lines(layers)]
            out.append(f"{label} ‖M‖_F per layer: {span([l['core']['fro'] for l in layers])}")
        out.append(f"{label} ‖ΔW‖_F/‖W0‖_F: {span([l['relative_delta'] for l in layers])}")
        out.append(f"{label} effective rank of ΔW (of r = {layers[0]['rank']}): "
                   f"{span([l['effective_rank'] for l in layers], 1)}")
    if a.metrics:
        out += ["tlora " + line for line in epoch_lines(a.metrics)]
    comparison = doc.get("comparison")
    if comparison:
        layers = comparison["layers"]
        cos = [l["cosine"] for l in layers]
        noise = 1 / math.sqrt(doc["adapters"][0]["layers"][0]["in_features"] *
                              doc["adapters"][0]["layers"][0]["out_features"])
        out.append(f"cos(ΔW_a, ΔW_b): {span(cos)}, positive in {sum(c > 0 for c in cos)} of {len(cos)} "
                   f"layers; noise level 1/√(out·in) = {noise:.4f}")
        out.append(f"full-weight cosine cos(W0 + ΔW_a, W0 + ΔW_b): "
                   f"{span([l['full_weight_cosine'] for l in layers], 4)}")
        for side in ("left", "right"):
            angles = [math.degrees(t) for l in layers for t in l[f"{side}_angles"]]
            smallest = [math.degrees(min(l[f"{side}_angles"])) for l in layers]
            out.append(f"{side} principal angles (top-{layers[0]['k']}): mean {statistics.mean(angles):.1f}°, "
                       f"smallest {min(smallest):.1f}°")
    print("\n".join(f"- {line}" for line in out))


if __name__ == "__main__":
    main()
