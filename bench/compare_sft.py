#!/usr/bin/env python3
"""tlora's supervised fine-tuning throughput on a LLaMA-family decoder against transformers +
PEFT on one CPU, in one run, in float32 and in bfloat16 mixed precision: runs tlora-bench-sft
(--precision fp32 and bf16-mixed), then bench/hf_sft_baseline.py (fp32 and under torch.autocast
with bfloat16), one after the other, never at the same time, with the same model (by default the
packaged SmolLM2-135M-Instruct GGUF), batch shapes, methods, threads and repetitions; checks that
every side trained on the same batch (sums of the ids and of the predicted ids) with the same
number of trainable parameters per method and started from the same loss; prints a table
(Markdown) of tokens/s with the ratios tlora/HF and writes one JSON with every side. Exits 1 when
the check fails (the JSON is written all the same). With --memory it also runs each method of
each side in each precision in a process of its own, for its peak resident memory.

    scripts/bench-deps.sh    # once per machine: peft and gguf into ~/.cache/tlora/venv
    ~/.cache/tlora/venv/bin/python bench/compare_sft.py --threads 2 --memory --json bench_sft.json
"""
import argparse
import json
import pathlib
import subprocess
import sys
import tempfile

from compare_generate import packaged_model
from compare_train import SIDES, parity, run

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent
METHODS = ("lora", "tlora")
# The goal: tlora's tokens/s at least this many times transformers + PEFT's, per
# precision, as (ours, theirs).
GOAL = 1.5
PAIRS = {"fp32": ("tlora_fp32", "hf_fp32"), "bf16": ("tlora_bf16", "hf_bf16")}
# How far the sides' first losses (the base model's: both adapters start at ΔW = 0) may differ:
# the same model, batch and loss give the same value up to rounding.
LOSS_TOLERANCE = {"fp32": 1e-3, "bf16": 5e-2}


def run_side(program, precision, binary, common, out):
    """One side's JSON: tlora-bench-sft or hf_sft_baseline.py in `precision`."""
    command = [binary] if program == "tlora" else [sys.executable, HERE / "hf_sft_baseline.py"]
    # Their stdout is the table or the JSON they also write to the file.
    run([*command, *common, "--precision", precision, "--json", out], stdout=subprocess.DEVNULL)
    return json.loads(out.read_text())


def losses_agree(docs):
    """Problems where a pair of sides started from different losses (a different model or loss)."""
    problems = []
    for precision, (ours, theirs) in PAIRS.items():
        for a, b in zip(docs[ours]["cases"], docs[theirs]["cases"]):
            for m in a["methods"].keys() & b["methods"].keys():
                la, lb = a["methods"][m]["loss_first"], b["methods"][m]["loss_first"]
                if abs(la - lb) > LOSS_TOLERANCE[precision]:
                    problems.append(f"{a['batch']}x{a['seq']} {m}: first loss {la:.5f} in {ours}, "
                                    f"{lb:.5f} in {theirs} (tolerance {LOSS_TOLERANCE[precision]})")
            if a["loss_tokens"] != b["loss_tokens"]:
                problems.append(f"{a['batch']}x{a['seq']}: {a['loss_tokens']} predicted tokens in "
                                f"{ours}, {b['loss_tokens']} in {theirs}")
    return problems


def tokens_per_s(docs, key, case, method, field="tokens_per_s"):
    return docs[key]["cases"][case]["methods"][method][field]


def ratios(docs):
    """Per case, method and precision: ours over theirs in tokens/s, from the medians and the best
    repetitions."""
    out = []
    for c, case in enumerate(docs["tlora_fp32"]["cases"]):
        per_method = {
            m: {precision: {"median": tokens_per_s(docs, ours, c, m) / tokens_per_s(docs, theirs, c, m),
                            "best": tokens_per_s(docs, ours, c, m, "best_tokens_per_s")
                            / tokens_per_s(docs, theirs, c, m, "best_tokens_per_s")}
                for precision, (ours, theirs) in PAIRS.items()}
            for m in case["methods"]}
        out.append({"batch": case["batch"], "seq": case["seq"], "tlora_over_hf": per_method})
    return out


def print_table(doc):
    docs = doc["sides"]
    print("\nTraining tokens/s (median repetition); tlora/HF from the medians, the best repetitions' in brackets:\n")
    print("| B×T | method | tlora fp32 | HF fp32 | tlora/HF fp32 | tlora bf16-mixed | HF bf16 autocast "
          "| tlora/HF bf16 |")
    print("|---|---|---|---|---|---|---|---|")
    for c, r in enumerate(doc["ratios"]):
        for m, q in r["tlora_over_hf"].items():
            cells = []
            for precision, (ours, theirs) in PAIRS.items():
                cells += [f"{tokens_per_s(docs, ours, c, m):.1f}", f"{tokens_per_s(docs, theirs, c, m):.1f}",
                          f"{q[precision]['median']:.2f}× ({q[precision]['best']:.2f}×)"]
            print(f"| {r['batch']}×{r['seq']} | {m} | " + " | ".join(cells) + " |")
    print("\nMedian seconds per step by phase (forward incl. loss / backward / AdamW step + zero_grad):")
    for c, case in enumerate(docs["tlora_fp32"]["cases"]):
        for m in case["methods"]:
            cells = []
            for key, _, _ in SIDES:
                p = docs[key]["cases"][c]["methods"][m]["phase_median_s"]
                cells.append(f"{key} " + "/".join(f"{p[k]:.3f}" for k in ("forward", "backward", "optimizer")))
            print(f"  {case['batch']}×{case['seq']} {m:<5} " + " | ".join(cells))
    print(f"\ngoal (issue 16, reported, not enforced): tlora ≥ {GOAL}× transformers + PEFT tokens/s")
    for r in doc["ratios"]:
        for m, q in r["tlora_over_hf"].items():
            for precision, v in q.items():
                print(f"  {r['batch']}×{r['seq']} {m} {precision}: {v['median']:.2f}× "
                      f"{'met' if v['median'] >= GOAL else 'missed'}")
    ours, hf = docs["tlora_fp32"], docs["hf_fp32"]
    s = ours["settings"]
    print(f"settings: {pathlib.Path(s['model']).name}, loss on {s['loss']} positions, {s['threads']} torch "
          f"threads, {s['warmup']} warmup steps, {s['repetitions']} repetitions of {s['steps']} steps per "
          f"method; cpu {ours['machine']['cpu']} (bf16 instructions: "
          f"{', '.join(ours['machine']['cpu_bf16']) or 'none'}); torch {hf['machine']['torch']}, "
          f"transformers {hf['machine']['transformers']}, peft {hf['machine']['peft']}")
    if "memory" in doc:
        print("\nPeak RSS (MiB) of a process that loads the model and trains one method: during the "
              "training steps (the whole process, loading included, in brackets):\n")
        print("| method | " + " | ".join(key for key, _, _ in SIDES) + " |")
        print("|---|" + "---|" * len(SIDES))
        for m, row in doc["memory"].items():
            cells = [f"{'?' if row[key]['train'] is None else round(row[key]['train'])} "
                     f"({row[key]['process']:.0f})" for key, _, _ in SIDES]
            print(f"| {m} | " + " | ".join(cells) + " |")
    for p in doc["parity"]["problems"]:
        print(f"parity FAILED: {p}")


def measure_memory(args, common_one, tmp):
    """Per method and side, a process of its own: one warmup step and one timed step."""
    memory = {}
    for m in args.methods:
        memory[m] = {}
        for key, program, precision in SIDES:
            side = run_side(program, precision, args.binary, [*common_one, "--methods", m],
                            tmp / f"{key}-{m}.json")
            train = side["cases"][0]["train_peak_rss_mib"]
            # ru_maxrss can trail VmHWM by a few hundred kB (the kernel batches RSS counts).
            memory[m][key] = {"train": train, "process": max(side["peak_rss_mib"], train or 0)}
    return memory


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", type=pathlib.Path,
                        default=REPO / "build" / "bench" / "tlora-bench-sft",
                        help="tlora-bench-sft (default: build/bench/tlora-bench-sft)")
    parser.add_argument("--model", type=pathlib.Path, default=None,
                        help="a GGUF file or a Hugging Face folder (default: the packaged SmolLM2)")
    parser.add_argument("--shape", action="append", help="B,T (repeatable; default 8,128)")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--loss", choices=("answer", "all"), default="answer",
                        help="positions the loss counts: the second half of every row (default), or all")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps per method")
    parser.add_argument("--steps", type=int, default=1, help="steps per timed repetition")
    parser.add_argument("--repetitions", type=int, default=5, help="timed repetitions per method")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2,
                        help="torch intra-op threads of every side (default 2)")
    parser.add_argument("--memory", action="store_true",
                        help="also measure each method's peak RSS in a process of its own")
    parser.add_argument("--json", type=pathlib.Path, default=pathlib.Path("bench_sft.json"),
                        help="the combined results (default: bench_sft.json)")
    args = parser.parse_args()
    shapes = []
    for shape in args.shape or []:
        shapes += ["--shape", shape]
    settings = ["--model", args.model or packaged_model(), "--loss", args.loss, "--seed", args.seed,
                "--threads", args.threads]

    doc = {"sides": {}}
    with tempfile.TemporaryDirectory(prefix="tlora-bench-sft.") as tmp:
        tmp = pathlib.Path(tmp)
        timing = [*settings, "--warmup", args.warmup, "--steps", args.steps,
                  "--repetitions", args.repetitions, *shapes, "--methods", *args.methods]
        for key, program, precision in SIDES:
            doc["sides"][key] = run_side(program, precision, args.binary, timing, tmp / f"{key}.json")
        if args.memory:
            # The model, its optimizer state and one step's activations, on the first shape.
            one = [*settings, "--warmup", 1, "--steps", 1, "--repetitions", 1, *shapes[:2]]
            doc["memory"] = measure_memory(args, one, tmp)

    doc["ratios"] = ratios(doc["sides"])
    doc["parity"] = parity(doc["sides"])
    doc["parity"]["problems"] += losses_agree(doc["sides"])
    doc["parity"]["ok"] = not doc["parity"]["problems"]
    args.json.write_text(json.dumps(doc, indent=2) + "\n")
    print_table(doc)
    print(f"wrote {args.json}")
    return 0 if doc["parity"]["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
