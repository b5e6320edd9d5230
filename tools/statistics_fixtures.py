#!/usr/bin/env python3
"""Reference values of the entry statistics from NumPy and SciPy.

Writes tests/fixtures/entry_statistics.json: seeded samples (normal, uniform, Laplace,
exponential, Student t, of sizes from 8 to 1024, one with a large mean) with numpy.mean,
numpy.std, scipy.stats.skew, kurtosis, jarque_bera, skewtest, kurtosistest and normaltest of
each, for tests/analysis_test.cpp. Run from the repository root:

    python3 tools/statistics_fixtures.py
"""
import json
import pathlib

import numpy as np
import scipy
import scipy.stats


def case(name, values):
    # Nine significant digits keep the file small; the statistics are of the rounded values.
    x = np.asarray([float(f"{v:.9g}") for v in values], dtype=np.float64)
    jb = scipy.stats.jarque_bera(x)
    k2 = scipy.stats.normaltest(x)
    return {
        "name": name,
        "values": x.tolist(),
        "mean": float(np.mean(x)),
        "std": float(np.std(x)),
        "skewness": float(scipy.stats.skew(x)),
        "excess_kurtosis": float(scipy.stats.kurtosis(x)),
        "jarque_bera": float(jb.statistic),
        "jarque_bera_p": float(jb.pvalue),
        "skew_z": float(scipy.stats.skewtest(x).statistic),
        "kurtosis_z": float(scipy.stats.kurtosistest(x).statistic),
        "k2": float(k2.statistic),
        "k2_p": float(k2.pvalue),
    }


def main():
    rng = np.random.default_rng(20260601)
    cases = [
        case("normal-64", rng.normal(0.0, 0.02, 64)),  # an 8×8 core
        case("normal-1024", rng.normal(0.1, 1.0, 1024)),  # a 32×32 core
        case("normal-8", rng.normal(0.0, 1.0, 8)),  # the smallest sample skewtest accepts
        case("uniform-256", rng.uniform(-1.0, 1.0, 256)),  # light tails: negative kurtosis
        case("laplace-256", rng.laplace(0.0, 1.0, 256)),  # heavy tails
        case("exponential-1024", rng.exponential(1.0, 1024)),  # skewed: p-values underflow to 0
        case("student-t3-512", rng.standard_t(3, 512)),
        case("offset-100", 1e2 + rng.normal(0.0, 1e-2, 100)),  # mean 1e4 x the spread: one-pass moments fail
    ]
    out = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "entry_statistics.json"
    document = {"generator": f"tools/statistics_fixtures.py, numpy {np.__version__}, scipy {scipy.__version__}",
                "cases": cases}
    out.write_text(json.dumps(document, indent=1) + "\n")
    print(f"wrote {out} ({len(cases)} cases)")


if __name__ == "__main__":
    main()
