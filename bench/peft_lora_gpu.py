#!/usr/bin/env python3
"""Hugging Face PEFT's LoRA on tlora-bench-linear's CUDA shapes: what users run today, timed the
same way on the same GPU, so the two JSON files can be read side by side.

For each case (N tokens, in -> out) one training step of
    base       the frozen torch.nn.Linear: forward plus the input-gradient backward
    peft_lora  the same Linear wrapped by peft.get_peft_model(LoraConfig(r, lora_alpha=2r,
               lora_dropout=0)): forward plus the backward to x, lora_A and lora_B
with a fixed dL/dy, in bf16 by default. torch.autograd.grad rather than .backward(), so that
nothing accumulates into .grad (as in tlora-bench-linear). Each repetition times a batch of
steps between two device synchronisations; the median and minimum of the repetitions are
reported in ms per step, with the peak bytes the caching allocator holds during one step and
the bytes autograd keeps between forward and backward.

    python3 bench/peft_lora_gpu.py --json peft_lora_gpu.json
"""
import argparse
import json
import statistics
import sys
import time

import peft
import torch

CASES = [(8192, 4096, 4096), (8192, 4096, 11008), (4096, 1024, 1024), (4096, 768, 768)]
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


class Layer(torch.nn.Module):
    """A module holding one Linear, the shape PEFT's target_modules matching expects."""

    def __init__(self, n_in, n_out):
        super().__init__()
        self.proj = torch.nn.Linear(n_in, n_out)

    def forward(self, x):
        return self.proj(x)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_step(step, device, repetitions, batch):
    for _ in range(3):
        step()
    times = []
    for _ in range(repetitions):
        sync(device)
        start = time.perf_counter()
        for _ in range(batch):
            step()
        sync(device)
        times.append((time.perf_counter() - start) * 1e3 / batch)
    return {"median_ms": statistics.median(times), "min_ms": min(times)}


def memory(step_forward, grad, inputs, device):
    """(peak bytes during one step above what was held before, bytes kept after the forward)."""
    if device.type != "cuda":
        return None, None
    sync(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    y = step_forward()
    kept = torch.cuda.memory_allocated(device) - before - y.untyped_storage().nbytes()
    torch.autograd.grad([y], inputs, [grad])
    del y
    sync(device)
    return torch.cuda.max_memory_allocated(device) - before, kept


def run_case(tokens, n_in, n_out, rank, dtype, device, repetitions, batch):
    torch.manual_seed(0)
    base = Layer(n_in, n_out).to(device, dtype)
    for p in base.parameters():
        p.requires_grad_(False)
    x = torch.randn(tokens, n_in, device=device, dtype=dtype, requires_grad=True)
    grad = torch.randn(tokens, n_out, device=device, dtype=dtype)

    def base_forward():
        return base(x)

    # PEFT wraps the module in place, so the frozen base is timed first.
    contenders = {"base": (base_forward, [x])}
    result = {"tokens": tokens, "in": n_in, "out": n_out, "rank": rank,
              "median_ms": {}, "min_ms": {}, "peak_step_bytes": {}, "saved_bytes": {}}
    timed = {}
    for name, (forward, inputs) in contenders.items():
        timed[name] = time_step(lambda: torch.autograd.grad([forward()], inputs, [grad]),
                                device, repetitions, batch)
        result["peak_step_bytes"][name], result["saved_bytes"][name] = memory(forward, grad, inputs, device)

    config = peft.LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0, target_modules=["proj"])
    model = peft.get_peft_model(base, config)
    lora = [p for p in model.parameters() if p.requires_grad]
    with torch.no_grad():  # lora_B starts at zero; make it non-zero, as after a few steps
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.02)
    inputs = [x] + lora

    def lora_forward():
        return model(x)

    timed["peft_lora"] = time_step(lambda: torch.autograd.grad([lora_forward()], inputs, [grad]),
                                   device, repetitions, batch)
    result["peak_step_bytes"]["peft_lora"], result["saved_bytes"]["peft_lora"] = memory(
        lora_forward, grad, inputs, device)
    for name, t in timed.items():
        result["median_ms"][name] = t["median_ms"]
        result["min_ms"][name] = t["min_ms"]
    result["peft_lora_over_base"] = timed["peft_lora"]["median_ms"] / timed["base"]["median_ms"]
    return result


def parse_case(text):
    parts = [int(v) for v in text.split(",")]
    if len(parts) != 3 or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"--case: expected N,in,out, got '{text}'")
    return tuple(parts)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="bf16", choices=sorted(DTYPES))
    parser.add_argument("--rank", type=int, default=32)
    parser.add_argument("--case", type=parse_case, action="append",
                        help="N,in,out (repeatable; replaces the default cases)")
    parser.add_argument("--repetitions", type=int, default=7)
    parser.add_argument("--batch", type=int, default=10, help="steps per timed repetition")
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("peft_lora_gpu.py: --device cuda, but no CUDA device is available")
    cases = []
    for tokens, n_in, n_out in args.case or CASES:
        c = run_case(tokens, n_in, n_out, args.rank, DTYPES[args.dtype], device, args.repetitions,
                     args.batch)
        c["dtype"] = args.dtype
        cases.append(c)
        print(f"{tokens}x{n_in}->{n_out} r{args.rank} {args.dtype}: base "
              f"{c['median_ms']['base']:.3f} ms, peft_lora {c['median_ms']['peft_lora']:.3f} ms "
              f"({c['peft_lora_over_base']:.3f}x)", flush=True)
    doc = {"machine": {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                       "torch": torch.__version__, "peft": peft.__version__},
           "settings": {"repetitions": args.repetitions, "batch": args.batch},
           "cases": cases}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
