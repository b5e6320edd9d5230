#!/usr/bin/env python3
"""The decoder results of docs/results.md (issue 16): tlora-sft on GLUE tasks written as chat
instructions (tools/glue_to_sft.py), TLoRA against LoRA, several seeds, on the packaged
SmolLM2-135M-Instruct. Runs go to runs/sft-grid/<name> and resume after a kill (tlora-sft
--resume); each finished run's results.json is copied to results/sft/<name>.json, which is
committed, so a new machine skips what is done. --report prints the table from results/sft.

    python3 tools/glue_to_sft.py --task sst2 --out data/sft     # and mrpc, rte
    python3 tools/sft_grid.py --binary build/examples/sft/tlora-sft --threads 2
    python3 tools/sft_grid.py --report
"""
import argparse
import json
import pathlib
import statistics
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
# (method, rank, lr, scale): TLoRA at the example's defaults, LoRA as PEFT users run it.
METHODS = {"tlora": ("tlora", 32, 1e-2, 1.0), "lora": ("lora", 8, 1e-3, 16.0)}
# (task, training examples, seeds): three seeds on SST-2, one on MRPC and RTE (machine time).
TASKS = (("sst2", 1000, (1, 2, 3)), ("mrpc", 1000, (1,)), ("rte", 1000, (1,)))
# tlora-sft --max-length per task: RTE's premises fill tlora-sft's default 256 tokens.
MAX_LENGTH = {"rte": 512}
# Dev examples scored per run: the first 400 of SST-2's 872 keep a run near five minutes on two
# cores (greedy generation of every answer costs as much as the training).
MAX_VALIDATION = 400


def runs():
    for task, examples, seeds in TASKS:
        for seed in seeds:
            for method in METHODS:
                yield f"{task}-{method}-seed{seed}", task, examples, method, seed


def run(binary, name, task, examples, method, seed, threads, data):
    kind, rank, lr, scale = METHODS[method]
    out = REPO / "runs" / "sft-grid" / name
    args = [binary, "--train", str(data / f"{task}_train.jsonl"), "--validation", str(data / f"{task}_dev.jsonl"),
            "--max-validation", str(MAX_VALIDATION), "--max-examples", str(examples), "--method", kind, "--rank", str(rank),
            "--lr", str(lr), "--scale", str(scale), "--seed", str(seed), "--threads", str(threads),
            "--output-dir", str(out)]
    if task in MAX_LENGTH:
        args += ["--max-length", str(MAX_LENGTH[task])]
    if (method, seed) != ("tlora", 1):  # the zero-shot score is the same for every run of a task
        args += ["--score-before", "false"]
    if (out / "checkpoint").exists() or (out / "config.json").exists():
        args.append("--resume")
    start = time.time()
    with open(REPO / "runs" / "sft-grid" / f"{name}.log", "a") as log:
        rc = subprocess.call(args, stdout=log, stderr=subprocess.STDOUT)
    if rc != 0:
        print(f"{name}: tlora-sft exited {rc} (log: runs/sft-grid/{name}.log)", file=sys.stderr)
        return False
    result = json.loads((out / "results.json").read_text())
    result["wall_seconds"] = round(time.time() - start, 1)
    (REPO / "results" / "sft" / f"{name}.json").write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    print(f"{name}: accuracy {result.get('accuracy_before', float('nan')):.3f} -> {result['accuracy_after']:.3f}, "
          f"{result['train_seconds']:.0f} s", flush=True)
    return True


def report():
    rows, before = {}, {}
    for file in sorted((REPO / "results" / "sft").glob("*.json")):
        r = json.loads(file.read_text())
        task, method, _ = file.stem.split("-")
        rows.setdefault((task, method), []).append(r)
        if "accuracy_before" in r:
            before[task] = 100 * r["accuracy_before"]
    print("| task | method | trainable | seeds | dev accuracy zero-shot | after: median (min–max) | train s (median) |")
    print("|---|---|---|---|---|---|---|")
    for (task, method), rs in sorted(rows.items()):
        after = [100 * r["accuracy_after"] for r in rs]
        spread = f" ({min(after):.1f}–{max(after):.1f})" if len(rs) > 1 else ""
        print(f"| {task} | {method} r={rs[0]['rank']} | {rs[0]['trainable_params']:,} | {len(rs)} | "
              f"{before.get(task, float('nan')):.1f} | "
              f"{statistics.median(after):.1f}{spread} | {statistics.median(r['train_seconds'] for r in rs):.0f} |")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--binary", default=str(REPO / "build/examples/sft/tlora-sft"))
    p.add_argument("--data", default=str(REPO / "data/sft"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--report", action="store_true")
    a = p.parse_args()
    if a.report:
        report()
        return
    (REPO / "runs" / "sft-grid").mkdir(parents=True, exist_ok=True)
    (REPO / "results" / "sft").mkdir(parents=True, exist_ok=True)
    failed = False
    for name, task, examples, method, seed in runs():
        if (REPO / "results" / "sft" / f"{name}.json").exists():
            continue
        failed |= not run(a.binary, name, task, examples, method, seed, a.threads, pathlib.Path(a.data))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
