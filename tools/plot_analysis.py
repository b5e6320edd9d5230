#!/usr/bin/env python3
"""Figures from tlora-analyze's JSON and tlora-glue's per-epoch metrics.jsonl.

    python3 tools/plot_analysis.py --analysis analysis.json \\
        [--labels TLoRA LoRA] [--metrics TLoRA=runs/mrpc-tlora/metrics.jsonl ...] \\
        --out-dir docs/figures [--prefix mrpc_]

Writes PNG files into --out-dir (each is skipped when its input is absent):
  <prefix>alpha.png          TLoRA's α per layer (analysis)
  <prefix>alpha_epochs.png   α of every layer over the epochs (metrics), one panel per run
  <prefix>core_epochs.png    ‖M‖_F of every layer over the epochs (metrics; for LoRA the norm of
                             its trainable tensors, "params_fro")
  <prefix>norms.png          heatmaps layer × matrix of ‖ΔW‖_F/‖W0‖_F, the effective rank of ΔW
                             and ‖core‖_F (analysis)
  <prefix>spectra.png        singular values of ΔW per layer, divided by the largest (analysis)
  <prefix>similarity.png     cos(ΔW_a, ΔW_b) and cos(W0+ΔW_a, W0+ΔW_b) per layer, and the mean
                             principal angle of the top-k subspaces (analysis with two adapters)
  <prefix>core_hist.png      histograms of the core entries, raw and standardised per layer,
                             with the normal density (analysis; tensors tlora-analyze wrote
                             the values of, see its --max-values)
Needs matplotlib and numpy (tools/requirements-plots.txt).
"""
import argparse
import json
import math
import pathlib
import re

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

LAYER = re.compile(r"layer\.(\d+)\.(.+)$")
DPI = 110


def split_path(path, order):
    """(layer index, matrix name) of a module path like bert.encoder.layer.3.attention.self.query."""
    match = LAYER.search(path)
    if match is None:
        return order, path
    matrix = match.group(2)
    for prefix in ("attention.self.", "attention."):
        if matrix.startswith(prefix):
            matrix = matrix[len(prefix):]
    return int(match.group(1)), matrix


def label_adapters(analysis, labels):
    """Sets each adapter's "label": from --labels, else its kind (numbered when kinds repeat)."""
    adapters = analysis["adapters"]
    if labels and len(labels) != len(adapters):
        raise SystemExit(f"--labels has {len(labels)} names for {len(adapters)} adapters")
    kinds = [a["kind"] for a in adapters]
    for i, adapter in enumerate(adapters):
        if labels:
            adapter["label"] = labels[i]
        else:
            adapter["label"] = kinds[i] if kinds.count(kinds[i]) == 1 else f"{kinds[i]} #{i + 1}"


def adapter_label(adapter):
    return adapter["label"]


def save(fig, out_dir, name):
    path = out_dir / name
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    print(f"wrote {path}")


def layer_grid(layers, value):
    """A (layers × matrices) array of value(layer) and the axis labels."""
    keys = [split_path(l["path"], i) for i, l in enumerate(layers)]
    rows = sorted({k[0] for k in keys})
    cols = list(dict.fromkeys(k[1] for k in keys))
    grid = np.full((len(rows), len(cols)), np.nan)
    for (row, col), layer in zip(keys, layers):
        v = value(layer)
        grid[rows.index(row), cols.index(col)] = np.nan if v is None else v
    return grid, rows, cols


def plot_alpha(analysis, out_dir, prefix):
    # Only TLoRA learns its scale; the other kinds' is a constant.
    learned = [a for a in analysis["adapters"] if a["kind"] == "tlora"]
    if not learned:
        print("no TLoRA adapter in the analysis: no alpha.png")
        return
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for adapter in learned:
        layers = adapter["layers"]
        labels = [l["path"] for l in layers]
        keys = [split_path(p, i) for i, p in enumerate(labels)]
        for matrix in dict.fromkeys(k[1] for k in keys):
            xs = [k[0] for k in keys if k[1] == matrix]
            ys = [l["alpha"] for k, l in zip(keys, layers) if k[1] == matrix]
            ax.plot(xs, ys, marker="o", label=f"{adapter_label(adapter)} {matrix}")
    ax.set_xlabel("layer")
    ax.set_ylabel("α")
    ax.set_title("TLoRA's learned scale α per layer")
    ax.legend(fontsize=7)
    save(fig, out_dir, f"{prefix}alpha.png")


def read_metrics(spec):
    label, _, path = spec.rpartition("=")
    path = pathlib.Path(path)
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return (label or path.parent.name), rows


def plot_epochs(runs, fields, out_dir, name):
    """One panel per run: the first of `fields` (key, label) that the run logs, per layer over epochs."""
    fig, axes = plt.subplots(1, len(runs), figsize=(5 * len(runs), 3.5), squeeze=False)
    for ax, (label, rows) in zip(axes[0], runs):
        logged = [r.get("adapters", {}) for r in rows]
        present = [(key, text) for key, text in fields if any(key in layer for a in logged for layer in a.values())]
        if not present:
            ax.axis("off")
            ax.text(0.5, 0.5, f"{label}: no {' or '.join(t for _, t in fields)} logged", ha="center", va="center")
            continue
        field, ylabel = present[0]
        epochs = [r["epoch"] for r in rows]
        paths = list(dict.fromkeys(p for a in logged for p in a))
        depth = [split_path(p, i)[0] for i, p in enumerate(paths)]
        top = max(depth) if depth else 1
        for p, d in zip(paths, depth):
            ys = [a.get(p, {}).get(field, math.nan) for a in logged]
            style = "-" if "value" not in p else "--"
            ax.plot(epochs, ys, style, color=plt.cm.viridis(d / max(top, 1)), linewidth=1)
        ax.set_title(f"{label}: {ylabel} per layer (colour: depth; dashed: value)", fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
    save(fig, out_dir, name)


def plot_norms(analysis, out_dir, prefix):
    adapters = analysis["adapters"]
    measures = [("‖ΔW‖_F / ‖W0‖_F", lambda l: l["relative_delta"]),
                ("effective rank of ΔW", lambda l: l["effective_rank"]),
                ("‖core‖_F", lambda l: l["core"]["fro"])]
    fig, axes = plt.subplots(len(adapters), len(measures), figsize=(4 * len(measures), 3.2 * len(adapters)),
                             squeeze=False)
    for row, adapter in enumerate(adapters):
        for col, (title, value) in enumerate(measures):
            ax = axes[row][col]
            if title == "‖core‖_F" and adapter["kind"] not in ("tlora", "loraxs"):
                ax.axis("off")
                ax.text(0.5, 0.5, f"{adapter['kind']} has no trained core", ha="center", va="center", fontsize=9)
                continue
            grid, rows, cols = layer_grid(adapter["layers"], value)
            image = ax.imshow(grid, aspect="auto", cmap="magma")
            ax.set_xticks(range(len(cols)), cols, fontsize=8)
            ax.set_yticks(range(len(rows)), rows, fontsize=8)
            ax.set_ylabel("layer")
            ax.set_title(f"{adapter_label(adapter)}: {title}", fontsize=9)
            fig.colorbar(image, ax=ax)
    save(fig, out_dir, f"{prefix}norms.png")


def plot_spectra(analysis, out_dir, prefix):
    adapters = analysis["adapters"]
    fig, axes = plt.subplots(1, len(adapters), figsize=(5 * len(adapters), 3.5), squeeze=False)
    for ax, adapter in zip(axes[0], adapters):
        layers = adapter["layers"]
        for i, layer in enumerate(layers):
            s = np.asarray(layer["singular_values"], dtype=float)
            if s.size and s[0] > 0:
                ax.semilogy(np.arange(1, s.size + 1), s / s[0], color=plt.cm.viridis(i / max(len(layers) - 1, 1)),
                            linewidth=1)
        ranks = [l["effective_rank"] for l in layers]
        ax.set_title(f"{adapter_label(adapter)}: σ_i/σ_1 (mean effective rank {np.mean(ranks):.1f} "
                     f"of {layers[0]['rank']})", fontsize=9)
        ax.set_xlabel("i")
    save(fig, out_dir, f"{prefix}spectra.png")


def plot_similarity(analysis, out_dir, prefix):
    layers = analysis["comparison"]["layers"]
    names = [".".join(map(str, split_path(l["path"], i))) for i, l in enumerate(layers)]
    x = np.arange(len(layers))
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    cos = [math.nan if l["cosine"] is None else l["cosine"] for l in layers]
    full = [math.nan if l["full_weight_cosine"] is None else l["full_weight_cosine"] for l in layers]
    axes[0].bar(x - 0.2, cos, 0.4, label="cos(ΔW_a, ΔW_b)")
    axes[0].bar(x + 0.2, full, 0.4, label="cos(W0+ΔW_a, W0+ΔW_b)", alpha=0.6)
    axes[0].set_ylim(-1, 1.05)
    axes[0].set_title("cosine similarity per layer", fontsize=9)
    degrees = [lambda l: np.degrees(np.mean(l["left_angles"])) if l["left_angles"] else math.nan,
               lambda l: np.degrees(np.mean(l["right_angles"])) if l["right_angles"] else math.nan]
    axes[1].bar(x - 0.2, [degrees[0](l) for l in layers], 0.4, label="left (output) subspaces")
    axes[1].bar(x + 0.2, [degrees[1](l) for l in layers], 0.4, label="right (input) subspaces")
    axes[1].axhline(90, color="grey", linewidth=0.5)
    axes[1].set_ylim(0, 92)
    k = max((l["k"] for l in layers), default=0)
    axes[1].set_title(f"mean principal angle of the top-{k} singular subspaces (degrees)", fontsize=9)
    labels = " vs ".join(adapter_label(a) for a in analysis["adapters"])
    for ax in axes:
        ax.set_xticks(x, names, rotation=90, fontsize=7)
        ax.legend(fontsize=7)
    fig.suptitle(labels, fontsize=9)
    save(fig, out_dir, f"{prefix}similarity.png")


def plot_core_histograms(analysis, out_dir, prefix):
    panels = []
    for adapter in analysis["adapters"]:
        raw, standard = [], []
        for layer in adapter["layers"]:
            entry = layer["entries"].get("core")
            if entry is None or "values" not in entry or not entry["std"]:
                continue
            v = np.asarray(entry["values"], dtype=float)
            raw.append(v)
            standard.append((v - entry["mean"]) / entry["std"])
        if raw:
            panels.append((adapter, np.concatenate(raw), np.concatenate(standard)))
    if not panels:
        print("no core values in the analysis (only TLoRA and LoRA-XS have a core; see --max-values)")
        return
    fig, axes = plt.subplots(len(panels), 2, figsize=(9, 3.2 * len(panels)), squeeze=False)
    grid = np.linspace(-4, 4, 200)
    for row, (adapter, raw, standard) in enumerate(panels):
        axes[row][0].hist(raw, bins=60, color="tab:blue")
        axes[row][0].set_title(f"{adapter_label(adapter)}: core entries, all layers", fontsize=9)
        axes[row][1].hist(standard, bins=60, range=(-4, 4), density=True, color="tab:orange")
        axes[row][1].plot(grid, np.exp(-grid**2 / 2) / math.sqrt(2 * math.pi), "k", linewidth=1, label="N(0, 1)")
        axes[row][1].set_title("standardised per layer", fontsize=9)
        axes[row][1].legend(fontsize=7)
    save(fig, out_dir, f"{prefix}core_hist.png")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--analysis", type=pathlib.Path, help="JSON written by tlora-analyze")
    parser.add_argument("--metrics", action="append", default=[],
                        help="[LABEL=]PATH of a metrics.jsonl written by tlora-glue (repeatable)")
    parser.add_argument("--out-dir", type=pathlib.Path, required=True)
    parser.add_argument("--prefix", default="", help="prefix of every file name, e.g. mrpc_")
    parser.add_argument("--labels", nargs="+", help="names of the analysis' adapters in the figures "
                        "(default: their kinds)")
    args = parser.parse_args()
    if args.analysis is None and not args.metrics:
        parser.error("give --analysis, --metrics or both")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    if args.analysis is not None:
        analysis = json.loads(args.analysis.read_text())
        label_adapters(analysis, args.labels)
        plot_alpha(analysis, args.out_dir, args.prefix)
        plot_norms(analysis, args.out_dir, args.prefix)
        plot_spectra(analysis, args.out_dir, args.prefix)
        if "comparison" in analysis:
            plot_similarity(analysis, args.out_dir, args.prefix)
        plot_core_histograms(analysis, args.out_dir, args.prefix)
    if args.metrics:
        runs = [read_metrics(spec) for spec in args.metrics]
        plot_epochs(runs, [("alpha", "α")], args.out_dir, f"{args.prefix}alpha_epochs.png")
        # LoRA has no core: tlora-glue logs the norm of all its trainable tensors instead.
        plot_epochs(runs, [("core_fro", "‖M‖_F"), ("params_fro", "‖trainable‖_F")], args.out_dir,
                    f"{args.prefix}core_epochs.png")


if __name__ == "__main__":
    main()
