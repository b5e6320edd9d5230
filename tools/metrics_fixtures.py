#!/usr/bin/env python3
"""Reference values of the GLUE metrics from scikit-learn and SciPy.

Writes tests/fixtures/glue_metrics.json: seeded inputs (binary and 3-class labels, real scores
with heavy ties, degenerate cases) with accuracy_score, f1_score, matthews_corrcoef, pearsonr
and spearmanr of each, for tests/glue_metrics_test.cpp. Run from the repository root:

    python3 tools/metrics_fixtures.py
"""
import json
import math
import pathlib
import warnings

import numpy as np
import scipy
import scipy.stats
import sklearn
import sklearn.metrics


def classification(name, predictions, labels):
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    case = {
        "name": name,
        "predictions": predictions.tolist(),
        "labels": labels.tolist(),
        "accuracy": sklearn.metrics.accuracy_score(labels, predictions),
        "matthews_corrcoef": sklearn.metrics.matthews_corrcoef(labels, predictions),
    }
    if set(np.unique(np.concatenate([labels, predictions]))) <= {0, 1}:
        case["f1"] = sklearn.metrics.f1_score(labels, predictions)
    return case


def correlation(name, x, y):
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    pearson = scipy.stats.pearsonr(x, y).statistic
    spearman = scipy.stats.spearmanr(x, y).statistic
    # JSON has no NaN: null stands for it.
    return {
        "name": name,
        "x": x.tolist(),
        "y": y.tolist(),
        "pearson": None if math.isnan(pearson) else float(pearson),
        "spearman": None if math.isnan(spearman) else float(spearman),
    }


def main():
    rng = np.random.default_rng(20240601)
    binary = rng.integers(0, 2, 500)
    flips = rng.random(500) < 0.2
    three = rng.integers(0, 3, 300)
    three_noisy = np.where(rng.random(300) < 0.3, rng.integers(0, 3, 300), three)
    scores = np.round(rng.uniform(0, 5, 400), 1)
    noisy_scores = np.clip(np.round(scores + rng.normal(0, 1, 400), 1), 0, 5)
    x = rng.normal(3.0, 2.0, 200)
    y = 0.5 * x + rng.normal(0, 1, 200)
    with warnings.catch_warnings():
        # sklearn and SciPy warn on the degenerate cases, whose values are the point here.
        warnings.simplefilter("ignore")
        cases = {
            "classification": [
                classification("binary_500_noisy", np.where(flips, 1 - binary, binary), binary),
                classification("binary_2", [1, 0], [1, 1]),
                classification("three_class_300", three_noisy, three),
                classification("perfect", binary[:50], binary[:50]),
                classification("inverted", 1 - binary[:50], binary[:50]),
                classification("all_negative", [0] * 10, [0] * 10),
                classification("predictions_one_class", [1] * 20, binary[:20]),
                classification("labels_one_class", binary[:20], [1] * 20),
            ],
            "correlation": [
                correlation("normal_200", x, y),
                correlation("stsb_ties_400", noisy_scores, scores),
                correlation("two_points", [0.5, 2.0], [3.0, 1.0]),
                correlation("perfect", x[:30], 2.0 * x[:30] + 1.0),
                correlation("inverted_ranks", x[:30], -np.exp(x[:30])),
                correlation("constant_y", x[:10], [2.5] * 10),
                correlation("large_offset", 1e6 + x[:50], y[:50]),
            ],
        }
    out = {
        "versions": {"numpy": np.__version__, "scipy": scipy.__version__, "sklearn": sklearn.__version__},
        **cases,
    }
    path = pathlib.Path("tests/fixtures/glue_metrics.json")
    path.write_text(json.dumps(out, separators=(",", ":")) + "\n")


if __name__ == "__main__":
    main()
