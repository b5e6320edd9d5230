#!/usr/bin/env python3
"""Accuracy of bf16-mixed against fp32 training: the main job (scripts/run.sh's SST-2 run) and
MRPC at the medium budget of tools/glue_results.py (TLoRA, paper preset, 3 epochs, lr 1e-2), each
with three seeds in both precisions. Runs tlora-glue (two runs at once by default, one thread
each; finished runs are reused, interrupted ones resumed), then prints a Markdown table of the
dev scores with the seed spreads and whether bf16-mixed stays within fp32's spread, and writes the
summary as JSON (docs/precision_parity.json by default).

    ~/.cache/tlora/venv/bin/python tools/precision_parity.py --jobs 2
"""
import argparse
import concurrent.futures
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SEEDS = [1, 2, 3]
PRECISIONS = ["fp32", "bf16-mixed"]
# name: (tlora-glue options, metrics to report)
JOBS = {
    "main (SST-2, 4,000 sentences, 1 epoch)": (
        ["--task", "sst2", "--method", "tlora", "--max-train-samples", "4000", "--epochs", "1",
         "--lr", "1e-2", "--max-seq-length", "64"], ["accuracy"]),
    "MRPC (medium budget, 3 epochs)": (
        ["--task", "mrpc", "--method", "tlora", "--preset", "paper", "--epochs", "3", "--lr", "1e-2"],
        ["accuracy", "f1"]),
}


def folder(runs_dir, job, precision, seed):
    task = JOBS[job][0][1]
    return Path(runs_dir) / f"{task}-{precision}-seed{seed}"


def run_one(binary, runs_dir, job, precision, seed, threads):
    out = folder(runs_dir, job, precision, seed)
    results = out / "results.json"
    if not results.exists():
        command = [binary, *JOBS[job][0], "--precision", precision, "--seed", str(seed),
                   "--threads", str(threads), "--output-dir", str(out)]
        if out.exists():
            command.append("--resume")
        log = Path(runs_dir) / f"{out.name}.log"
        with open(log, "w") as f:
            code = subprocess.run(command, stdout=f, stderr=subprocess.STDOUT).returncode
        if code != 0:
            sys.exit(f"precision_parity.py: {' '.join(command)} failed with {code}; see {log}")
    return json.loads(results.read_text())


def cpu_model():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--binary", default=str(REPO / "build/examples/glue/tlora-glue"))
    p.add_argument("--runs-dir", default=str(REPO / "runs/precision"))
    p.add_argument("--jobs", type=int, default=2, help="runs at once (give each a core)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per run")
    p.add_argument("--json", default=str(REPO / "docs/precision_parity.json"))
    args = p.parse_args()
    os.makedirs(args.runs_dir, exist_ok=True)

    keys = [(job, precision, seed) for job in JOBS for precision in PRECISIONS for seed in SEEDS]
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        futures = {k: pool.submit(run_one, args.binary, args.runs_dir, *k, args.threads) for k in keys}
        results = {k: f.result() for k, f in futures.items()}

    summary = {"cpu": cpu_model(), "jobs": args.jobs, "threads": args.threads, "runs": []}
    print("| run | metric | fp32: median (min–max) | bf16-mixed: median (min–max) | bf16-mixed within fp32's spread | train s fp32 / bf16-mixed (median) |")
    print("|---|---|---|---|---|---|")
    for job, (_, metrics) in JOBS.items():
        for metric in metrics:
            scores = {pr: [100 * results[(job, pr, s)]["metrics"][metric] for s in SEEDS] for pr in PRECISIONS}
            seconds = {pr: statistics.median(results[(job, pr, s)]["train_seconds"] for s in SEEDS)
                       for pr in PRECISIONS}
            lo, hi = min(scores["fp32"]), max(scores["fp32"])
            mixed = statistics.median(scores["bf16-mixed"])
            within = lo <= mixed <= hi
            cell = lambda v: f"{statistics.median(v):.1f} ({min(v):.1f}–{max(v):.1f})"
            print(f"| {job} | {metric} | {cell(scores['fp32'])} | {cell(scores['bf16-mixed'])} | "
                  f"{'yes' if within else 'no'} (median {mixed:.1f}) | "
                  f"{seconds['fp32']:.0f} / {seconds['bf16-mixed']:.0f} |")
            summary["runs"].append({"run": job, "metric": metric, "seeds": SEEDS, "scores": scores,
                                    "train_seconds_median": seconds, "bf16_median_within_fp32_range": within})
    Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")
    print(f"\n{summary['cpu']}, {args.jobs} runs at once with {args.threads} thread(s) each; wrote {args.json}")


if __name__ == "__main__":
    main()
