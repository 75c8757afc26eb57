"""Time the simulated noise floors (psi, js, hellinger, chi2, tv, linf): per floor, and one window's slice tests.

    python bench/noise_floors.py [--repeat 3]

Slices: 3 slice columns of 20 values (Zipf shares) x 25 columns (20 numeric with
10 coarse / 1 000 fine bins, 5 categorical of 20 Zipf categories), each value's
baseline of share x 10M rows shifted from the others, its window share x 1M rows
(10k-280k): ~1 100 (value, column) tests. Prints ms per floor and the count of
tests per `noise.method`.
"""
from __future__ import annotations

import argparse
import collections
import time

import numpy as np
from scipy import stats as st

from sparkdrift.core import noise
from sparkdrift.core.profile import FeatureProfile, Histogram

ALPHA = 0.01 / 26 / 7 / 3  # slice level: budget / tests / slices
CATEGORIES = tuple(f"c{i}" for i in range(20))
ZIPF = 1.0 / np.arange(1, 21) ** 1.1 / np.sum(1.0 / np.arange(1, 21) ** 1.1)
EDGES = tuple(st.norm.ppf(np.arange(1, 1000) / 1000))  # 1 000 fine bins of the overall baseline


def numeric(name: str, m: int, shift: float, scale: float, rng: np.random.Generator) -> FeatureProfile:
    cdf = st.norm.cdf((np.r_[-np.inf, EDGES, np.inf] - shift) / scale)
    counts = rng.multinomial(m, np.diff(cdf))
    return FeatureProfile(name=name, kind="numeric", role="feature", edges=EDGES, coarse=tuple(range(0, 999, 100)),
                          baseline=Histogram(counts=counts))


def categorical(name: str, m: int, rng: np.random.Generator) -> FeatureProfile:
    counts = rng.multinomial(m, rng.dirichlet(ZIPF * 200))
    return FeatureProfile(name=name, kind="categorical", dtype="string", categories=CATEGORIES, tracked=(),
                          baseline=Histogram(counts=np.r_[counts, 0]))


def window(profile: FeatureProfile, n: int) -> Histogram:
    counts = np.zeros_like(profile.baseline.counts)
    counts[0] = n  # only the size matters to a floor
    return Histogram(counts=counts)


def names(profile: FeatureProfile) -> tuple[str, ...]:
    return ("psi", "js", "hellinger") if profile.kind == "numeric" else ("psi", "js", "hellinger", "chi2", "tv", "linf")


def slice_tests(seed: int = 1) -> list[tuple[FeatureProfile, int]]:
    rng = np.random.default_rng(seed)
    shares = ZIPF
    tests = []
    for s in range(3):
        for v, share in enumerate(shares):
            m, n = int(share * 10_000_000), int(share * 1_000_000)
            for c in range(25):
                name = f"s{s}v{v}c{c}"
                prof = (numeric(name, m, rng.uniform(-0.8, 0.8), rng.uniform(0.6, 1.2), rng) if c < 20
                        else categorical(name, m, rng))
                tests.append((prof, n))
    return tests[:1100]


def time_floors(cases: list[tuple[FeatureProfile, int]]) -> float:
    """Seconds for every simulated floor of ``cases``, from an empty cache."""
    noise._simulated.cache_clear()
    start = time.perf_counter()
    for prof, n in cases:
        for name in names(prof):
            noise.noise_floor(name, prof, window(prof, n), prof.baseline, ALPHA)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3, help="best of this many runs")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    single = {"numeric 10 coarse bins": numeric("x", 200_000, 0.0, 1.0, rng),
              "categorical 20 Zipf": categorical("c", 200_000, rng)}
    for label, prof in single.items():
        cells = []
        for n in (1_000, 10_000, 100_000):
            ms = min(time_floors([(prof, n)]) for _ in range(args.repeat)) * 1e3
            how = noise.method(noise.null_cells(prof, "coarse"), noise.bucket(n), noise.bucket(200_000)) \
                if hasattr(noise, "method") else "bootstrap"
            cells.append(f"n={n}: {ms:.1f} ms ({how})")
        print(f"{label:24s}", "  ".join(cells))
    tests = slice_tests()
    seconds = min(time_floors(tests) for _ in range(args.repeat))
    print(f"{len(tests)} slice tests: {seconds:.2f} s, {seconds / len(tests) * 1e3:.1f} ms per (value, column)")
    if hasattr(noise, "method"):
        hows = collections.Counter(noise.method(noise.null_cells(p, "coarse"), noise.bucket(n),
                                                noise.bucket(p.baseline.n_valid)) for p, n in tests)
        print("methods:", dict(hows))


if __name__ == "__main__":
    main()
