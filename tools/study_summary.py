#!/usr/bin/env python3
"""The study's summary (issue 14): per task, the table of every configuration that ran with
several seeds, TLoRA's design space (its rank sweep and the one-factor runs), and the Pareto
figure, from the ledger tools/study.py writes.

    ~/.cache/tlora/venv/bin/python tools/study_summary.py [--ledger results/study] \\
        [--figures docs/figures] > summary.md

Scores are dev at the epoch the validation split picked (the protocol's number), in %, median of
the seeds with min-max; "paper's way" is dev at the epoch dev picked. Trainable parameters include
the classifier head. Writes docs/figures/pareto_<task>.png: dev score against trainable parameters
(log axis), one marker per method and rank at the median of its seeds with min-max bars, and
TLoRA's rank sweep (seed 1, each rank at its learning rate picked on validation) as a line.
Needs matplotlib (tools/requirements-plots.txt).
"""
import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path

from study import FINAL_TASKS, TASKS, describe, score

REPO = Path(__file__).resolve().parent.parent
MARKERS = {"tlora": "o", "lora": "s", "loraxs": "D", "vera": "^", "full": "*", "head-only": "v"}


def load(ledger):
    """{task: {(configuration, lr): [(seed, results), ...]}} of every landed run."""
    runs = defaultdict(lambda: defaultdict(list))
    for path in sorted(Path(ledger).glob("*/results.json")):
        results = json.loads(path.read_text())
        config = json.loads((path.parent / "config.json").read_text())
        epochs = "" if config["epochs"] == 6 else f", {config['epochs']} epochs"
        preset = ", paper preset" if config.get("preset") == "paper" else ""
        key = (describe(config) + epochs + preset, config["lr"])
        runs[results["task"]][key].append((config["seed"], results))
    return runs


def spread(values):
    return statistics.median(values), min(values), max(values)


def fmt(values):
    med, lo, hi = spread([100 * v for v in values])
    return f"{med:.1f}" if len(values) == 1 else f"{med:.1f} ({lo:.1f}–{hi:.1f})"


def table(task, groups, min_seeds):
    print()
    print("| configuration | lr | trainable | seeds | validation | dev (protocol) | dev, epoch picked on dev "
          "(paper's way) | train s |")
    print("|---|---|---|---|---|---|---|---|")
    rows = [(k, v) for k, v in groups.items() if len(v) >= min_seeds]
    for (name, lr), seeds in sorted(rows, key=lambda kv: kv[1][0][1]["trainable_params"]):
        res = [r for _, r in seeds]
        print(f"| {name} | {lr:g} | {res[0]['trainable_params']:,} | {len(res)} | "
              f"{fmt([score(r) for r in res])} | {fmt([score(r, 'metrics') for r in res])} | "
              f"{fmt([score(r, 'best_dev_metrics') for r in res])} | "
              f"{statistics.median(r['train_seconds'] for r in res):.0f} |")


def rank_sweep(groups):
    """TLoRA on query,value as in phase 1b/3: per rank, the seed-1 run with the best validation."""
    best = {}
    for (name, lr), seeds in groups.items():
        parts = name.split()
        if parts[0] != "tlora" or len(parts) != 2 or "epochs" in name:
            continue
        rank = int(parts[1].removeprefix("r="))
        for seed, r in seeds:
            if seed == 1 and (rank not in best or score(r) > score(best[rank][1])):
                best[rank] = (lr, r)
    return dict(sorted(best.items()))


def design_factors(groups):
    """Phase 3's one-factor-at-a-time TLoRA runs (seed 1): every configuration beyond a rank."""
    rows = []
    for (name, lr), seeds in groups.items():
        parts = name.split()
        if parts[0] != "tlora" or len(parts) <= 2 or "epochs" in name or "preset" in name:
            continue
        rows += [(name, lr, r) for seed, r in seeds if seed == 1]
    return sorted(rows, key=lambda row: -score(row[2]))


def figure(task, groups, out, min_seeds):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for (name, lr), seeds in groups.items():
        if len(seeds) < min_seeds:
            continue
        med, lo, hi = spread([100 * score(r, "metrics") for _, r in seeds])
        n = seeds[0][1]["trainable_params"]
        method = name.split()[0]
        ax.errorbar(n, med, yerr=[[med - lo], [hi - med]], marker=MARKERS.get(method, "x"), capsize=3,
                    linestyle="none", label=f"{name} (lr {lr:g}, {len(seeds)} seeds)")
    sweep = rank_sweep(groups)
    if len(sweep) > 1:
        xs = [r["trainable_params"] for _, r in sweep.values()]
        ys = [100 * score(r, "metrics") for _, r in sweep.values()]
        ax.plot(xs, ys, "o--", color="grey", alpha=0.7, label="TLoRA q,v rank sweep (seed 1)")
        for rank, x, y in zip(sweep, xs, ys):
            ax.annotate(f"r={rank}", (x, y), textcoords="offset points", xytext=(4, -10), fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("trainable parameters (head included)")
    ax.set_ylabel("dev score at the validation-picked epoch (%)")
    ax.set_title(f"{task.upper()}: score against trainable parameters (MiniLM-L6, 6 epochs)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=6, loc="best")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ledger", default=str(REPO / "results/study"))
    p.add_argument("--figures", default=str(REPO / "docs/figures"), help="where pareto_<task>.png go ('' for none)")
    args = p.parse_args()
    runs = load(args.ledger)
    for task in [*TASKS, *FINAL_TASKS]:
        if task not in runs:
            continue
        groups = runs[task]
        # Phase 5's tasks ran seed 1 only: every configuration is shown there.
        min_seeds = 2 if task in TASKS else 1
        print(f"\n### {task.upper()}: " + ("configurations with several seeds" if min_seeds > 1 else "seed 1"))
        table(task, groups, min_seeds)
        sweep = rank_sweep(groups)
        if sweep:
            print(f"\nTLoRA on query,value by rank (seed 1, learning rate picked on validation):\n")
            print("| rank | lr | trainable | validation | dev (protocol) | train s |")
            print("|---|---|---|---|---|---|")
            for rank, (lr, r) in sweep.items():
                print(f"| {rank} | {lr:g} | {r['trainable_params']:,} | {100 * score(r):.1f} | "
                      f"{100 * score(r, 'metrics'):.1f} | {r['train_seconds']:.0f} |")
        factors = design_factors(groups)
        if factors:
            print("\nTLoRA's design factors, one at a time from the best rank and rate (seed 1):\n")
            print("| configuration | lr | trainable | validation | dev (protocol) | train s |")
            print("|---|---|---|---|---|---|")
            for name, lr, r in factors:
                print(f"| {name} | {lr:g} | {r['trainable_params']:,} | {100 * score(r):.1f} | "
                      f"{100 * score(r, 'metrics'):.1f} | {r['train_seconds']:.0f} |")
        if args.figures:
            Path(args.figures).mkdir(parents=True, exist_ok=True)
            figure(task, groups, Path(args.figures) / f"pareto_{task}.png", min_seeds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
