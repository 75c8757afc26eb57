"""The long-format result row shared by the metrics table, MLflow, reports and the policy."""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Literal

Signal = Literal["feature", "prediction", "quality", "performance"]

#: ``slice`` and ``slice_value`` of overall results (every row); see `sparkdrift.core.slices`
OVERALL = "__all__"

#: ``reason`` of a statistic that raised: a visible error state, not an undefined value.
ERROR_PREFIX = "error: "


@dataclass(frozen=True)
class DriftResult:
    """One (window, feature, statistic, reference) measurement.

    ``signal`` says what it measures: feature drift, prediction drift, data
    quality or model performance. ``value`` is NaN (with ``reason``) when the
    statistic is undefined; ``drifted`` is then False.
    """

    monitor: str
    baseline_id: str
    window_start: datetime
    window_end: datetime
    feature: str
    statistic: str
    value: float
    threshold: float | None
    drifted: bool
    signal: Signal = "feature"
    kind: str = "numeric"
    reference: str = "baseline"
    lower: float | None = None
    upper: float | None = None
    p_value: float | None = None
    reference_rows: int = 0
    window_rows: int = 0
    reason: str | None = None
    noise_floor: float | None = None  # what chance reaches at this window size (sparkdrift.core.noise)
    excess: float | None = None  # distance past the noise floor in the breach direction: > 0 is beyond sampling noise
    slice: str = OVERALL  # the slice dimension (OVERALL: every row)
    slice_value: str = OVERALL  # its value (country=DE: slice "country", value "DE")

    @property
    def failed(self) -> bool:
        """The statistic could not be computed although the column had data (an error, never "no drift")."""
        return bool(self.reason) and self.reason.startswith(ERROR_PREFIX)

    @property
    def metric_name(self) -> str:
        """MLflow metric key ``<signal>.<column>/<statistic>``, e.g. feature.age/psi, prediction.score/psi.

        MLflow's run page groups charts into sections by the key's part before
        the first '/', so each column gets its own section, after the window
        verdicts (``drift/...``); comparisons with other references and slices
        are suffixes (``feature.age/psi.vs_previous_window``,
        ``feature.age/psi.slice.country.DE``), so they chart next to the overall value.
        """
        suffix = "" if self.reference == "baseline" else f".vs_{self.reference}"
        where = "" if self.slice == OVERALL else f".slice.{self.slice}.{self.slice_value}"
        return f"{self.signal}.{self.feature}/{self.statistic}{suffix}{where}"

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self)}  # flat: asdict's deep copies cost seconds per run
        for k in ("value", "lower", "upper", "p_value", "threshold", "noise_floor", "excess"):
            v = d[k]
            if v is not None and not math.isfinite(v):
                d[k] = None
        return d
