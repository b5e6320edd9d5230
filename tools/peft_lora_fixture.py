#!/usr/bin/env python3
"""Writes the PEFT LoRA reference fixture: what Hugging Face PEFT computes for a tiny encoder.

The Python model below has the module paths and the forward of tests/tiny_model.h's TinyEncoder
(encoder.layer.{0,1}.attention.self.{query,key,value}, encoder.layer.N.attention.output,
encoder.layer.N.intermediate, encoder.layer.N.output, classifier; hidden 16, intermediate 24,
2 labels), in float64. PEFT's LoraConfig(r=4, lora_alpha=8, target_modules=["query", "value"],
lora_dropout=0.0, init_lora_weights=True) is applied with get_peft_model; lora_A keeps PEFT's
initialisation and lora_B is set to non-zero random values so that the adapter has an effect.
One forward on a fixed input x, loss = (out * R).sum() for a fixed R, one backward.

tests/fixtures/peft_lora/ then holds (written with the official safetensors package):
  base_model.safetensors  the model's state dict before PEFT ("<path>.weight", "<path>.bias")
  reference.safetensors   "<path>.lora_A" (r×in), "<path>.lora_B" (out×r) for each adapted path;
                          "input", "R", "output" (PEFT's), "base_output" (adapters disabled);
                          "<path>.lora_A.grad", "<path>.lora_B.grad", "input.grad";
                          "<path>.merged_weight" (the weight after PEFT's merge_and_unload)
  config.json             r, lora_alpha, targets, adapted paths, PEFT's trainable and total
                          parameter counts, and the versions of torch, peft and safetensors
tests/lora_peft_test.cpp checks tlora's `lora` adapter kind against these.

Run from the repository root (needs the packages in tools/requirements-fixtures.txt):

    ~/.cache/tlora/venv/bin/pip install -r tools/requirements-fixtures.txt
    ~/.cache/tlora/venv/bin/python tools/peft_lora_fixture.py
"""
import json
import math
import pathlib

import peft
import safetensors
import torch
import torch.nn.functional as F
from peft import LoraConfig, get_peft_model
from safetensors.torch import save_file
from torch import nn

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "peft_lora"

LAYERS, HIDDEN, INTERMEDIATE, LABELS = 2, 16, 24, 2
R_RANK, ALPHA = 4, 8
TARGETS = ["query", "value"]
BATCH, SEQ = 2, 5


# The same modules and forward as tlora::testing::TinyEncoder (tests/tiny_model.h).
class SelfAttention(nn.Module):
    def __init__(self, hidden):
        super().__init__()
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)

    def forward(self, x):
        scores = torch.matmul(self.query(x), self.key(x).transpose(-1, -2)) / math.sqrt(x.size(-1))
        return torch.matmul(torch.softmax(scores, -1), self.value(x))


class Attention(nn.Module):
    def __init__(self, hidden):
        super().__init__()
        self.self = SelfAttention(hidden)
        self.output = nn.Linear(hidden, hidden)

    def forward(self, x):
        return self.output(self.self(x))


class Layer(nn.Module):
    def __init__(self, hidden, intermediate):
        super().__init__()
        self.attention = Attention(hidden)
        self.intermediate = nn.Linear(hidden, intermediate)
        self.output = nn.Linear(intermediate, hidden)

    def forward(self, x):
        h = x + self.attention(x)
        return h + self.output(F.gelu(self.intermediate(h)))


class TinyEncoder(nn.Module):
    def __init__(self, layers=LAYERS, hidden=HIDDEN, intermediate=INTERMEDIATE):
        super().__init__()
        self.encoder = nn.Module()
        self.encoder.layer = nn.ModuleList([Layer(hidden, intermediate) for _ in range(layers)])
        self.classifier = nn.Linear(hidden, LABELS)

    def forward(self, x):
        for block in self.encoder.layer:
            x = block(x)
        return self.classifier(x.mean(1))


def main():
    torch.set_default_dtype(torch.float64)
    torch.manual_seed(0)
    model = TinyEncoder()
    base_state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}

    config = LoraConfig(r=R_RANK, lora_alpha=ALPHA, target_modules=TARGETS, lora_dropout=0.0,
                        init_lora_weights=True)
    peft_model = get_peft_model(model, config)

    # PEFT's LoRA layers, keyed by our module path.
    prefix = "base_model.model."
    lora_layers = {name[len(prefix):]: m for name, m in peft_model.named_modules()
                   if isinstance(m, peft.tuners.lora.LoraLayer)}
    paths = sorted(lora_layers)
    expected_paths = sorted(f"encoder.layer.{i}.attention.self.{t}"
                            for i in range(LAYERS) for t in TARGETS)
    assert paths == expected_paths, paths

    trainable, total = peft_model.get_nb_trainable_parameters()
    expected_trainable = LAYERS * len(TARGETS) * R_RANK * (HIDDEN + HIDDEN)
    assert trainable == expected_trainable, (trainable, expected_trainable)
    assert total == sum(v.numel() for v in base_state.values()) + expected_trainable, total

    gen = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        for path in paths:
            layer = lora_layers[path]
            assert layer.scaling["default"] == ALPHA / R_RANK, layer.scaling
            a = layer.lora_A["default"].weight
            bound = 1.0 / math.sqrt(a.size(1))  # kaiming_uniform_(a=√5) on r×in
            assert a.abs().max() <= bound and layer.lora_B["default"].weight.abs().max() == 0
            layer.lora_B["default"].weight.copy_(
                torch.randn(layer.lora_B["default"].weight.shape, generator=gen) * 0.2)

    x = torch.randn(BATCH, SEQ, HIDDEN, generator=gen).requires_grad_(True)
    R = torch.randn(BATCH, LABELS, generator=gen)
    with peft_model.disable_adapter():
        base_out = peft_model(x).detach().clone()
    out = peft_model(x)
    assert not torch.allclose(out, base_out), "the adapter has no effect"
    (out * R).sum().backward()

    tensors = {"input": x.detach().clone(), "R": R, "output": out.detach().clone(),
               "base_output": base_out, "input.grad": x.grad.clone()}
    for path in paths:
        layer = lora_layers[path]
        for name, mod in (("lora_A", layer.lora_A["default"]), ("lora_B", layer.lora_B["default"])):
            tensors[f"{path}.{name}"] = mod.weight.detach().clone()
            tensors[f"{path}.{name}.grad"] = mod.weight.grad.clone()

    merged = peft_model.merge_and_unload()
    merged_state = merged.state_dict()
    for path in paths:
        tensors[f"{path}.merged_weight"] = merged_state[f"{path}.weight"].detach().clone()

    OUT.mkdir(parents=True, exist_ok=True)
    # Deterministic bytes: tensors sorted by name, a single metadata key.
    save_file(base_state, OUT / "base_model.safetensors", metadata={"format": "pt"})
    save_file({k: v.contiguous() for k, v in tensors.items()}, OUT / "reference.safetensors",
              metadata={"format": "pt"})
    info = {
        "generator": "tools/peft_lora_fixture.py",
        "r": R_RANK,
        "lora_alpha": ALPHA,
        "scaling": ALPHA / R_RANK,
        "target_modules": TARGETS,
        "lora_dropout": 0.0,
        "init_lora_weights": True,
        "dtype": "float64",
        "model": {"layers": LAYERS, "hidden": HIDDEN, "intermediate": INTERMEDIATE,
                  "labels": LABELS},
        "input_shape": [BATCH, SEQ, HIDDEN],
        "loss": "(output * R).sum()",
        "adapted_paths": paths,
        "trainable_params": trainable,
        "all_params": total,
        "versions": {"torch": torch.__version__, "peft": peft.__version__,
                     "safetensors": safetensors.__version__},
    }
    (OUT / "config.json").write_text(json.dumps(info, indent=1) + "\n")
    print(f"wrote {OUT}: trainable params {trainable} of {total}")


if __name__ == "__main__":
    main()
