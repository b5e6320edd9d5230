#!/usr/bin/env python3
"""Writes the safetensors reference fixture with the official `safetensors` package.

tests/fixtures/safetensors/reference.safetensors holds one small tensor of every dtype that
tlora::safetensors supports, plus a 0-dim and a zero-size tensor, and one metadata entry (the
reference writes metadata in hash order, so a single key keeps the file's bytes deterministic).
reference.json lists each tensor's name, dtype, shape and values (flattened, row-major; bools as
0/1) and the metadata, so the C++ reader is checked against an independent writer and the C++
writer against its bytes. Run from the repository root (needs torch and safetensors):

    ~/.cache/tlora/venv/bin/pip install safetensors
    ~/.cache/tlora/venv/bin/python tools/safetensors_fixture.py
"""
import json
import pathlib

import safetensors
import torch
from safetensors.torch import save_file

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "safetensors"

# Values exactly representable in their dtype, including extremes, signed zero, subnormals.
TENSORS = {
    "f64": ("F64", torch.tensor([[1.0, -2.5, 1e-300], [2.0**-1074, -0.0, 1 / 3]],
                                dtype=torch.float64)),
    "f32": ("F32", torch.tensor([0.1, -3.4028234663852886e38, 2.0**-149], dtype=torch.float32)),
    "f16": ("F16", torch.tensor([[0.5, -65504.0], [2.0**-24, 1 / 3]], dtype=torch.float16)),
    "bf16": ("BF16", torch.tensor([1.0, -3.0e38, 0.1, -0.0], dtype=torch.bfloat16)),
    "i64": ("I64", torch.tensor([-(2**63), 2**63 - 1, 0, -1], dtype=torch.int64)),
    "i32": ("I32", torch.tensor([[-(2**31)], [2**31 - 1], [7]], dtype=torch.int32)),
    "i16": ("I16", torch.tensor([-32768, 32767, 3], dtype=torch.int16)),
    "i8": ("I8", torch.tensor([-128, 127, -1], dtype=torch.int8)),
    "u8": ("U8", torch.tensor([0, 255, 17, 200], dtype=torch.uint8)),
    "bool": ("BOOL", torch.tensor([[True, False, True]], dtype=torch.bool)),
    "scalar": ("F32", torch.tensor(-1.5, dtype=torch.float32)),
    "empty": ("I64", torch.zeros((2, 0, 3), dtype=torch.int64)),
}
METADATA = {"format": "pt"}


def values(tensor):
    flat = tensor.reshape(-1)
    if tensor.dtype == torch.bool:
        return [int(v) for v in flat.tolist()]
    if tensor.dtype.is_floating_point:
        return [float(v) for v in flat.double().tolist()]
    return [int(v) for v in flat.tolist()]


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    save_file({name: t for name, (_, t) in TENSORS.items()}, OUT / "reference.safetensors",
              metadata=METADATA)
    listing = {
        "generator": f"safetensors {safetensors.__version__} (tools/safetensors_fixture.py)",
        "metadata": METADATA,
        "tensors": [
            {"name": name, "dtype": dtype, "shape": list(t.shape), "values": values(t)}
            for name, (dtype, t) in TENSORS.items()
        ],
    }
    (OUT / "reference.json").write_text(json.dumps(listing, indent=1) + "\n")


if __name__ == "__main__":
    main()
