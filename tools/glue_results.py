#!/usr/bin/env python3
"""Runs the GLUE results grid with tlora-glue and writes docs/results.md from the runs.

Every number in the table comes from a results.json of a run this script started (or found
finished in --runs-dir: rerunning continues an interrupted grid with --resume). The budget sets
how much of the paper's recipe fits the machine; the table says which budget produced it.

    python3 tools/glue_results.py --budget full      # paper recipe: 30 epochs, all data, 3 seeds
    python3 tools/glue_results.py --budget small     # what a 2-core CPU does in about an hour
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SMALL_TASKS = ["cola", "mrpc", "rte", "stsb"]
TASKS = SMALL_TASKS + ["sst2"]

# What each method runs with; TLoRA is the paper preset, LoRA PEFT's r=8 on query,value.
METHODS = {
    "tlora": ["--method", "tlora", "--preset", "paper"],
    "lora": ["--method", "lora", "--rank", "8", "--targets", "query,value"],
    "head-only": ["--method", "head-only"],
    "full": ["--method", "full"],
}

# epochs, max train samples (0: all), seeds for the small tasks, methods.
BUDGETS = {
    "full": dict(epochs=30, samples=0, seeds=[1, 2, 3], methods=["tlora", "lora", "head-only", "full"],
                 extra=[]),
    "small": dict(epochs=2, samples=600, seeds=[1], methods=["tlora", "lora", "head-only"],
                  extra=["--max-seq-length", "64"]),
}

# The paper's Table 3 (RoBERTa-large, dev, single seed): theirs, not ours.
PAPER = {
    "tlora": {"params": "0.049M", "sst2": 95.3, "qnli": 92.1, "rte": 87.5, "mrpc": 89.3},
    "lora": {"params": "0.8M", "sst2": 96.2, "qnli": 94.8, "rte": 85.2, "mrpc": 90.2},
    "vera": {"params": "0.061M", "sst2": 96.1, "qnli": 94.4, "rte": 85.9, "mrpc": 90.9},
}


def run_one(binary, runs_dir, task, method, seed, budget, threads):
    out = runs_dir / f"{task}-{method}-seed{seed}"
    results = out / "results.json"
    if results.exists():
        return json.loads(results.read_text())
    b = BUDGETS[budget]
    args = [str(binary), "--task", task, "--seed", str(seed), "--output-dir", str(out),
            "--epochs", str(b["epochs"]), "--threads", str(threads)] + METHODS[method] + b["extra"]
    if b["samples"]:
        args += ["--max-train-samples", str(b["samples"])]
    if (out / "checkpoint" / "trainer_state.json").exists():
        args.append("--resume")
    print("+", " ".join(args), flush=True)
    with open(runs_dir / f"{task}-{method}-seed{seed}.log", "w") as log:
        code = subprocess.call(args, stdout=log, stderr=subprocess.STDOUT)
    if code != 0:
        print(f"  failed with status {code}; see the log beside {out}", file=sys.stderr)
        return None
    return json.loads(results.read_text())


def cell(values):
    values = [100 * v for v in values]
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.median(values):.1f} ({min(values):.1f}–{max(values):.1f})"


def write_report(path, budget, table, threads):
    b = BUDGETS[budget]
    lines = [
        "# GLUE results",
        "",
        "Produced by `python3 tools/glue_results.py --budget " + budget + "` (rerun it to reproduce; it",
        "continues an interrupted grid). Model: all-MiniLM-L6-v2 (the pip package), dev sets, best epoch.",
        f"Budget `{budget}`: {b['epochs']} epochs, "
        + (f"the first {b['samples']} training examples" if b["samples"] else "all training examples")
        + f", seeds {b['seeds']} (SST-2: seed {b['seeds'][0]}), {threads} CPU thread(s)"
        + (", " + " ".join(b["extra"]) if b["extra"] else "") + ".",
        "Cells: median over seeds (min–max), in %.",
        "",
        "| task | metric | method | trainable params | score | seeds | train s (median) |",
        "|---|---|---|---|---|---|---|",
    ]
    for (task, method), runs in table.items():
        if not runs:
            continue
        for metric in runs[0]["metrics"]:
            seconds = statistics.median(r["train_seconds"] for r in runs)
            lines.append(f"| {task} | {metric} | {method} | {runs[0]['trainable_params']:,} | "
                         f"{cell([r['metrics'][metric] for r in runs])} | {len(runs)} | {seconds:.0f} |")
    lines += ["", "## The paper's numbers (theirs: RoBERTa-large, dev, one seed; Table 3)", "",
              "| method | params | SST-2 | QNLI | RTE | MRPC |", "|---|---|---|---|---|---|"]
    for method, row in PAPER.items():
        lines.append(f"| {method} | {row['params']} | {row['sst2']} | {row['qnli']} | {row['rte']} | {row['mrpc']} |")
    old = path.read_text() if path.exists() else ""
    # Keep the sections other tools own (e.g. training throughput).
    keep = old[old.find("\n## Training throughput"):] if "\n## Training throughput" in old else ""
    path.write_text("\n".join(lines) + "\n" + keep)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--budget", choices=sorted(BUDGETS), default="small")
    p.add_argument("--binary", default=str(REPO / "build/examples/glue/tlora-glue"))
    p.add_argument("--runs-dir", default=str(REPO / "runs/results"))
    p.add_argument("--tasks", default=",".join(TASKS))
    p.add_argument("--methods", default=None, help="comma-separated; default: the budget's")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--report", default=str(REPO / "docs/results.md"))
    a = p.parse_args()
    runs_dir = Path(a.runs_dir)
    runs_dir.mkdir(parents=True, exist_ok=True)
    b = BUDGETS[a.budget]
    methods = a.methods.split(",") if a.methods else b["methods"]
    table = {}
    for task in a.tasks.split(","):
        seeds = b["seeds"] if task in SMALL_TASKS else b["seeds"][:1]
        for method in methods:
            runs = [run_one(a.binary, runs_dir, task, method, s, a.budget, a.threads) for s in seeds]
            table[(task, method)] = [r for r in runs if r]
            write_report(Path(a.report), a.budget, table, a.threads)
    print(f"wrote {a.report}")


if __name__ == "__main__":
    main()
