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
import pathlib
import sys
import tempfile

from compare_generate import packaged_model
import compare_train
from compare_train import (SIDES, add_run_arguments, finish, new_parser, print_phases,
                           print_settings, print_sides_header, run_rounds, shape_arguments)

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
    return compare_train.run_side(program, precision, binary, common, out, "hf_sft_baseline.py")


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
    print_phases(docs, METHODS)
    print(f"\ngoal (issue 16, reported, not enforced): tlora ≥ {GOAL}× transformers + PEFT tokens/s")
    for r in doc["ratios"]:
        for m, q in r["tlora_over_hf"].items():
            for precision, v in q.items():
                print(f"  {r['batch']}×{r['seq']} {m} {precision}: {v['median']:.2f}× "
                      f"{'met' if v['median'] >= GOAL else 'missed'}")
    s = docs["tlora_fp32"]["settings"]
    print_settings(docs, f"{pathlib.Path(s['model']).name}, loss on {s['loss']} positions, ")
    if "memory" in doc:
        print("\nPeak RSS (MiB) of a process that loads the model and trains one method: during the "
              "training steps (the whole process, loading included, in brackets):\n")
        print_sides_header()
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
    parser = new_parser(__doc__, "tlora-bench-sft")
    parser.add_argument("--model", type=pathlib.Path, default=None,
                        help="a GGUF file or a Hugging Face folder (default: the packaged SmolLM2)")
    parser.add_argument("--shape", action="append", help="B,T (repeatable; default 8,128)")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--loss", choices=("answer", "label", "all"), default="answer",
                        help="positions the loss counts: the second half of every row (default), its last "
                             "two tokens (a one-word answer and the end of turn, as the GLUE tasks as "
                             "instructions), or all")
    add_run_arguments(parser, warmup=1, steps=1, json_default="bench_sft.json")
    args = parser.parse_args()
    shapes = shape_arguments(args)
    settings = ["--model", args.model or packaged_model(), "--loss", args.loss, "--seed", args.seed,
                "--threads", args.threads]

    doc = {}
    with tempfile.TemporaryDirectory(prefix="tlora-bench-sft.") as tmp:
        tmp = pathlib.Path(tmp)
        timing = [*settings, "--warmup", args.warmup, "--steps", args.steps,
                  "--repetitions", args.repetitions, *shapes, "--methods", *args.methods]
        doc["sides"], rounds = run_rounds(args.rounds, lambda r: {
            key: run_side(program, precision, args.binary, timing, tmp / f"{key}-{r}.json")
            for key, program, precision in SIDES})
        if args.rounds > 1:
            doc["rounds"] = rounds
        if args.memory:
            # The model, its optimizer state and one step's activations, on the first shape.
            one = [*settings, "--warmup", 1, "--steps", 1, "--repetitions", 1, *shapes[:2]]
            doc["memory"] = measure_memory(args, one, tmp)

    return finish(doc, args.json, ratios, print_table, losses_agree)


if __name__ == "__main__":
    sys.exit(main())
