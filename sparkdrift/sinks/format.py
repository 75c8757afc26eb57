"""How the report and its charts write numbers: readable, never "nan"."""
from __future__ import annotations

import math
from typing import Any

import numpy as np


def num(x: float | None, digits: int = 4) -> str:
    """4 significant digits, thousands separated; missing is a dash, infinities a symbol."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    if isinstance(x, float) and math.isinf(x):
        return "∞" if x > 0 else "-∞"
    if isinstance(x, (int, np.integer)) and not isinstance(x, bool):
        return f"{int(x):,}"
    if 1e4 <= abs(x) < 1e12:
        return f"{float(x):,.0f}"
    return f"{float(x):.{digits}g}"


def as_float(x: Any) -> float:
    """float(x), NaN when x is not a number."""
    try:
        f = float(x)
    except (TypeError, ValueError):
        return math.nan
    return f
