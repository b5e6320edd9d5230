#!/usr/bin/env python3
"""Hugging Face's side of tlora-bench-sft: the same SFT training steps, batch, timing and JSON
layout, with transformers' LlamaForCausalLM (the GGUF dequantized to float32, as transformers
loads it) and PEFT. Prints the JSON; bench/compare_sft.py runs it next to tlora-bench-sft.

Methods, each on q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj and down_proj of every layer:
    lora   PEFT LoRA: r=8, lora_alpha=8, lora_dropout=0
    tlora  hf_train_baseline.TLoRALinear, the paper's formula written as plain PyTorch: r=32,
           α=1, no dropout
Each step: forward on the fixed batch with the labels (transformers' causal-LM loss), backward,
AdamW step, zero_grad. With --precision bf16-autocast the forward and the loss run under
torch.autocast("cpu", dtype=torch.bfloat16), as transformers' users enable mixed precision.
"""
import argparse
import ctypes
import gc
import json
import math
import os
import pathlib
import resource
import sys
import time

# transformers' GGUF loader draws a progress bar with tqdm, which its disable_progress_bar()
# does not reach; set before tqdm is imported.
os.environ.setdefault("TQDM_DISABLE", "1")

import peft
import torch
import transformers
from transformers import AutoModelForCausalLM

from compare_generate import packaged_model
from hf_train_baseline import TLoRALinear, cpu_bf16, cpu_model, method_json, parse_shape

METHODS = ("lora", "tlora")
TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
IGNORE = -100  # transformers' ignore_index: labels the loss does not count


def load_model(path):
    path = pathlib.Path(path)
    if path.is_dir():
        return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="sdpa")
    return AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32,
                                                attn_implementation="sdpa")


def make_model(method, path, seed):
    torch.manual_seed(seed)
    model = load_model(path)
    if method == "lora":
        config = peft.LoraConfig(task_type="CAUSAL_LM", r=8, lora_alpha=8, lora_dropout=0.0,
                                 target_modules=list(TARGETS))
        return peft.get_peft_model(model, config).train()
    model.requires_grad_(False)
    for module in list(model.modules()):
        for target in TARGETS:
            if isinstance(getattr(module, target, None), torch.nn.Linear):
                setattr(module, target, TLoRALinear(getattr(module, target), 32, 0.0))
    return model.train()


class Trainee:
    """A model being trained by one method, with its optimizer and timings (the fields
    hf_train_baseline.method_json reads)."""

    def __init__(self, method, args):
        self.method = method
        self.model = make_model(method, args.model, args.seed)
        trained = [p for p in self.model.parameters() if p.requires_grad]
        self.trainable = sum(p.numel() for p in trained)
        self.total = sum(p.numel() for p in self.model.parameters())
        self.optimizer = torch.optim.AdamW(trained, lr=args.lr, weight_decay=args.weight_decay)
        self.autocast = args.precision == "bf16-autocast"
        self.repetitions = []  # seconds per step of each phase
        self.losses = []

    def step(self, batch, phases):
        """One full training step; adds each phase's seconds to `phases`."""
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.autocast):
            loss = self.model(input_ids=batch["input_ids"], labels=batch["labels"]).loss
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
            sys.exit(f"hf_sft_baseline.py: {self.method}: loss is {value}")
        self.losses.append(value)


def make_batch(batch_size, seq, vocab, seed, loss):
    """tlora-bench-sft's batch: the ids drawn first after seeding (the same LibTorch generator:
    the same ids); with loss "answer" only the second half of every row is predicted."""
    torch.manual_seed(seed)
    ids = torch.randint(vocab, (batch_size, seq))
    first = max(seq // 2, 1) if loss == "answer" else 1  # the first predicted position
    labels = ids.clone()
    labels[:, :first] = IGNORE
    return {"input_ids": ids, "labels": labels}


# The process's peak RSS before the last reset_peak_rss(), which makes the kernel forget it.
peak_before_reset_mib = 0.0


def peak_rss_mib():
    """The process's peak resident set so far, loading included."""
    return max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, peak_before_reset_mib)


def reset_peak_rss():
    """Restarts the kernel's peak-RSS count (VmHWM, and ru_maxrss with it) from the current RSS,
    after handing freed memory back, so that the peak read later is the training steps' and not
    loading's."""
    global peak_before_reset_mib
    peak_before_reset_mib = peak_rss_mib()
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    try:
        pathlib.Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_since_reset_mib():
    for line in pathlib.Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def run_case(batch_size, seq, args):
    """tlora-bench-sft's run_case: the methods' repetitions alternate."""
    trainees = [Trainee(m, args) for m in args.methods]
    batch = make_batch(batch_size, seq, trainees[0].model.config.vocab_size, args.seed, args.loss)
    measured = reset_peak_rss()
    for t in trainees:
        for _ in range(args.warmup):
            t.step(batch, [0.0, 0.0, 0.0])
    for _ in range(args.repetitions):
        for t in trainees:
            phases = [0.0, 0.0, 0.0]
            for _ in range(args.steps):
                t.step(batch, phases)
            t.repetitions.append([p / args.steps for p in phases])
    predicted = batch["labels"][:, 1:]
    counted = predicted != IGNORE
    methods = {}
    for t in trainees:
        methods[t.method] = method_json(t, batch_size, seq)
        methods[t.method]["best_tokens_per_s"] = batch_size * seq / methods[t.method]["min_step_s"]
    return {"batch": batch_size, "seq": seq, "tokens_per_step": batch_size * seq,
            "input_ids_sum": int(batch["input_ids"].sum()), "labels_sum": int((predicted * counted).sum()),
            "loss_tokens": int(counted.sum()),
            "train_peak_rss_mib": peak_rss_since_reset_mib() if measured else None,
            "methods": methods}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=pathlib.Path, default=None,
                        help="a GGUF file or a Hugging Face folder (default: the packaged SmolLM2)")
    parser.add_argument("--shape", type=parse_shape, action="append",
                        help="B,T: batch and sequence length (repeatable; default 8,128)")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--loss", choices=("answer", "all"), default="answer",
                        help="positions the loss counts: the second half of every row, or all")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps per method")
    parser.add_argument("--steps", type=int, default=1, help="steps per timed repetition")
    parser.add_argument("--repetitions", type=int, default=5, help="timed repetitions per method")
    parser.add_argument("--seed", type=int, default=0, help="seed of the batch and the adapters")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--precision", choices=("fp32", "bf16-autocast"), default="fp32",
                        help="fp32, or the forward and loss under torch.autocast with bfloat16")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    args.model = args.model or pathlib.Path(packaged_model())
    args.lr, args.weight_decay = 1e-3, 0.01
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    cases = [run_case(b, s, args) for b, s in (args.shape or [(8, 128)])]
    doc = {
        "implementation": "huggingface",
        "machine": {"cpu": cpu_model(), "cpu_bf16": cpu_bf16(), "torch": torch.__version__,
                    "transformers": transformers.__version__, "peft": peft.__version__,
                    "python": sys.version.split()[0]},
        "settings": {"model": str(args.model), "targets": list(TARGETS), "loss": args.loss,
                     "warmup": args.warmup, "steps": args.steps, "repetitions": args.repetitions,
                     "seed": args.seed, "threads": torch.get_num_threads(), "lr": args.lr,
                     "weight_decay": args.weight_decay, "dtype": args.precision,
                     "clock": "time.perf_counter, wall time"},
        "peak_rss_mib": peak_rss_mib(),
        "cases": cases,
    }
    text = json.dumps(doc, indent=2)
    print(text)
    if args.json:
        pathlib.Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
