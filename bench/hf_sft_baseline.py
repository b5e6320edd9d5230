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
import os
import pathlib
import resource

# transformers' GGUF loader draws a progress bar with tqdm, which its disable_progress_bar()
# does not reach; set before tqdm is imported.
os.environ.setdefault("TQDM_DISABLE", "1")

import peft
import torch
from transformers import AutoModelForCausalLM

from compare_generate import packaged_model
import hf_train_baseline
from hf_train_baseline import (TLoRALinear, add_run_arguments, method_json, parse_shape, setup,
                               time_repetitions, write_results)

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


class Trainee(hf_train_baseline.Trainee):
    """hf_train_baseline's trainee, with transformers' causal-LM loss on the labels."""

    def loss(self, batch):
        return self.model(input_ids=batch["input_ids"], labels=batch["labels"]).loss

    def failure(self, value):
        """What the program exits with when the loss is not finite."""
        return f"hf_sft_baseline.py: {self.method}: loss is {value}"


def make_batch(batch_size, seq, vocab, seed, loss):
    """tlora-bench-sft's batch: the ids drawn first after seeding (the same LibTorch generator:
    the same ids); with loss "answer" only the second half of every row is predicted, with
    "label" only its last two tokens."""
    torch.manual_seed(seed)
    ids = torch.randint(vocab, (batch_size, seq))
    first = {"answer": max(seq // 2, 1), "label": max(seq - 2, 1)}.get(loss, 1)  # the first predicted position
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
    trainees = [Trainee(m, make_model(m, args.model, args.seed), args) for m in args.methods]
    batch = make_batch(batch_size, seq, trainees[0].model.config.vocab_size, args.seed, args.loss)
    measured = reset_peak_rss()
    time_repetitions(trainees, batch, args)
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
    parser.add_argument("--loss", choices=("answer", "label", "all"), default="answer",
                        help="positions the loss counts: the second half of every row, its last two tokens "
                             "(a one-word answer and the end of turn), or all")
    add_run_arguments(parser, warmup=1, steps=1, seed_help="seed of the batch and the adapters")
    args = parser.parse_args()
    args.model = args.model or pathlib.Path(packaged_model())
    setup(args)

    cases = [run_case(b, s, args) for b, s in (args.shape or [(8, 128)])]
    write_results(args, {"model": str(args.model), "targets": list(TARGETS), "loss": args.loss},
                  peak_rss_mib(), cases)


if __name__ == "__main__":
    main()
