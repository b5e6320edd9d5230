#!/usr/bin/env python3
"""The TLoRA study's grid (issue 14): which recipe makes TLoRA learn best, and how it compares per
trainable parameter, under one protocol that never selects on GLUE dev.

Protocol (docs/results.md): every run holds out a validation split of its training set
(tlora-glue --validation-split 0.1, at most 1,000 examples, seeded), which picks the epoch; the
learning rates are picked by the validation score too; dev is reported once, for the selected run,
with the dev-picked epoch beside it (the paper's way). 6 epochs, max length 128, seed 1 in phase 1.

    phase 1a  head-only learning-rate sweep per task: fixes each task's head learning rate
    phase 1b  every method's learning-rate sweep, with the task's head learning rate

The ledger: every finished run's results.json, metrics.jsonl and config.json are copied to
--ledger (results/study/ by default, committed as they land); a run whose files are there is
skipped, an interrupted one resumed from its checkpoint in --runs-dir. Run it from a build of a
fixed commit (--binary), so that rebuilding the tree does not change the binary under running
jobs:

    git worktree add ../study-build HEAD && (cd ../study-build && scripts/build.sh tlora-glue)
    ~/.cache/tlora/venv/bin/python tools/study.py --binary ../study-build/build/examples/glue/tlora-glue --jobs 2
    ~/.cache/tlora/venv/bin/python tools/study.py --report     # the tables of what has landed
"""
import argparse
import concurrent.futures
import json
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TASKS = ["mrpc", "rte", "stsb"]
COMMON = ["--epochs", "6", "--max-seq-length", "128", "--validation-split", "0.1"]
# STS-B's head still improved at the top of each sweep (3e-2, then 0.3), so its sweep goes on upwards.
HEAD_LRS = {"mrpc": [3e-3, 1e-2, 3e-2], "rte": [3e-3, 1e-2, 3e-2], "stsb": [3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0]}
# Phase 1b's sweeps; each method at its tlora-glue defaults otherwise (TLoRA r=32 with dropout
# 0.5 on its output, LoRA r=8, VeRA r=256, LoRA-XS r=32).
SWEEPS = {
    "tlora": [3e-3, 1e-2, 3e-2, 1e-1],
    "lora": [5e-4, 2e-3, 5e-3],
    "loraxs": [1e-3, 3e-3, 1e-2],
    "vera": [4e-3, 1e-2, 2e-2],
    "full": [3e-5],
}
FILES = ["results.json", "metrics.jsonl", "config.json"]


def run_name(task, method, lr, seed):
    return f"{task}-{method}-lr{lr:g}-seed{seed}"


def score(results, key="validation_metrics"):
    metrics = results[key]
    names = {"mrpc": ["accuracy", "f1"], "rte": ["accuracy"], "stsb": ["pearson", "spearman"],
             "cola": ["mcc"], "sst2": ["accuracy"]}[results["task"]]
    return sum(metrics[n] for n in names) / len(names)


class Grid:
    def __init__(self, args):
        self.args = args
        self.ledger = Path(args.ledger)
        self.runs = Path(args.runs_dir)
        self.runs.mkdir(parents=True, exist_ok=True)

    def landed(self, name):
        path = self.ledger / name / "results.json"
        return json.loads(path.read_text()) if path.exists() else None

    def run(self, name, options):
        """Runs one configuration (or finds it in the ledger) and returns its results.json."""
        if (done := self.landed(name)) is not None:
            return done
        out = self.runs / name
        command = [self.args.binary, *options, *COMMON, "--precision", self.args.precision,
                   "--threads", str(self.args.threads), "--output-dir", str(out)]
        if (out / "checkpoint").exists():
            command.append("--resume")
        elif out.exists():
            shutil.rmtree(out)  # started but never checkpointed: start again
        log = self.runs / f"{name}.log"
        print(f"start {name}", flush=True)
        with open(log, "w") as f:
            code = subprocess.run([str(c) for c in command], stdout=f, stderr=subprocess.STDOUT).returncode
        if code != 0:
            print(f"FAILED {name} (exit {code}); see {log}", flush=True)
            return None
        target = self.ledger / name
        target.mkdir(parents=True, exist_ok=True)
        for file in FILES:
            shutil.copy(out / file, target / file)
        results = json.loads((target / "results.json").read_text())
        print(f"done {name}: validation {score(results):.4f}, dev {score(results, 'metrics'):.4f}, "
              f"{results['train_seconds']:.0f} s", flush=True)
        return results

    def run_all(self, jobs):
        with concurrent.futures.ThreadPoolExecutor(self.args.jobs) as pool:
            futures = {name: pool.submit(self.run, name, options) for name, options in jobs}
            return {name: f.result() for name, f in futures.items()}

    def head_lrs(self):
        """Phase 1a: each task's head learning rate, by head-only validation score."""
        jobs = [(run_name(t, "head-only", lr, 1), ["--task", t, "--method", "head-only", "--lr", str(lr), "--seed", "1"])
                for t in TASKS for lr in HEAD_LRS[t]]
        results = self.run_all(jobs)
        chosen = {}
        for t in TASKS:
            done = [(score(results[run_name(t, "head-only", lr, 1)]), lr) for lr in HEAD_LRS[t]
                    if results[run_name(t, "head-only", lr, 1)] is not None]
            if len(done) == len(HEAD_LRS[t]):
                chosen[t] = max(done)[1]
        return chosen

    def sweep(self, head_lrs):
        """Phase 1b: every method's learning rates at the task's head learning rate."""
        jobs = [(run_name(t, m, lr, 1),
                 ["--task", t, "--method", m, "--lr", str(lr), "--head-lr", str(head_lrs[t]), "--seed", "1"])
                for t in TASKS if t in head_lrs for m, lrs in SWEEPS.items() for lr in lrs]
        return self.run_all(jobs)


def report(ledger):
    """Phase 1's tables from the ledger: validation and dev scores per learning rate."""
    rows = []
    for path in sorted(Path(ledger).glob("*/results.json")):
        r = json.loads(path.read_text())
        config = json.loads((path.parent / "config.json").read_text())
        rows.append((r["task"], r["method"], config["lr"], config["head_lr"], r["trainable_params"],
                     score(r), r["best_epoch"], score(r, "metrics"), r["best_dev_epoch"],
                     score(r, "best_dev_metrics"), r["train_seconds"]))
    print("| task | method | lr | head lr | trainable | validation score (epoch) | dev at that epoch | "
          "dev, epoch picked on dev (paper's way) | train s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for t, m, lr, hlr, n, v, e, d, de, dd, s in rows:
        print(f"| {t} | {m} | {lr:g} | {hlr:g} | {n:,} | {100 * v:.1f} ({e}) | {100 * d:.1f} | "
              f"{100 * dd:.1f} ({de}) | {s:.0f} |")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--binary", default=str(REPO / "build/examples/glue/tlora-glue"))
    p.add_argument("--runs-dir", default=str(REPO / "runs/study"))
    p.add_argument("--ledger", default=str(REPO / "results/study"))
    p.add_argument("--jobs", type=int, default=2, help="runs at once (give each a core)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per run")
    p.add_argument("--precision", default="bf16-mixed",
                   help="tlora-glue --precision (bf16-mixed: docs/results.md shows it scores as fp32)")
    p.add_argument("--report", action="store_true", help="print the tables of the ledger and stop")
    args = p.parse_args()
    if args.report:
        report(args.ledger)
        return 0
    grid = Grid(args)
    head_lrs = grid.head_lrs()
    print(f"head learning rates: {head_lrs}", flush=True)
    grid.sweep(head_lrs)
    report(args.ledger)
    return 0


if __name__ == "__main__":
    sys.exit(main())
