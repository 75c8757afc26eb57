"""A Bloom filter of ALL a wide categorical column's baseline values.

Why: a column with more than ``top_k + max_tracked_categories`` distinct
baseline values keeps no list of its non-top-K values (``tracked`` is None),
so without this a production value outside the top K could be a known
``other`` or a never-seen ``unseen`` and would always count as ``other``.
The filter answers "was it in the baseline?" in a fixed number of bits: a
value it never saw is called known with probability about
``(1 - e^{-k n / m})^k`` (n values in m bits, k hashes), and a value it saw
is always called known (no false ``unseen``).

Layout: m bits in ``m / 64`` int64 words, bit ``p`` is bit ``p & 63`` of word
``p >> 6``. A value's k positions are ``pmod(xxhash64(i, value), m)`` for
``i = 0 .. k-1``, computed by Spark in both the baseline and the production
pass (`sparkdrift.spark.membership`), so both hash a value identically.
Sizing: ``m = ceil(n * BITS_PER_VALUE / 64) * 64`` capped at `MAX_BITS`, with
``k = HASHES``; below the cap that is a 1 % false-known rate, above it the
rate grows as the formula says (e.g. ~4.8 % at 2.5 million values).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Target false-known rate below the size cap.
TARGET_FPR = 0.01
#: Bits per baseline value for `TARGET_FPR` with the best k: -ln(p) / ln(2)^2 (9.59 for 1 %).
BITS_PER_VALUE = -math.log(TARGET_FPR) / math.log(2) ** 2
#: Hash functions: the best k for `TARGET_FPR`, round(BITS_PER_VALUE * ln 2).
HASHES = round(BITS_PER_VALUE * math.log(2))
#: Largest filter: 2^24 bits = 2 MiB per column, ~1.75 million values at `TARGET_FPR`.
MAX_BITS = 1 << 24


@dataclass(frozen=True, eq=False)
class Membership:
    """The filter's int64 ``words`` (``m = 64 * len(words)`` bits), its ``hashes`` k and ``values`` n."""

    words: np.ndarray
    hashes: int
    values: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "words", np.asarray(self.words, dtype=np.int64))

    @property
    def bits(self) -> int:
        return 64 * int(self.words.size)

    def false_positive_rate(self) -> float:
        """Chance that a never-seen value is called known: (1 - e^{-kn/m})^k."""
        return (1.0 - math.exp(-self.hashes * self.values / self.bits)) ** self.hashes

