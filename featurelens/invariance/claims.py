"""Lesson claims of the *Rotation & scale invariance* scenario, checked on the real model the
way the page computes them: the gallery photo at display size (as ``image_report`` gives it),
transformed by the sweep, every transformed image through the model, the reference's
similarity to its corresponding cell (:func:`~featurelens.invariance.invariance_table`).

A sweep is ``transform`` (``rotate``/``zoom``/``flip``) with ``values`` (default: the page's
default sweep) and, for zooms, ``center``. The identity (0°, 1×, not flipped) is left out of
means: it is always 1.
"""

from __future__ import annotations

from typing import Any, Callable, ClassVar, Literal

import numpy as np
import pandas as pd
from pydantic import Field, model_validator

from ..similarity.claims import XY, LessonClaim
from .sweep import invariance_table, sweep_features
from .transforms import DEFAULT_SWEEPS, Transform, parse_transforms

__all__ = ["SweepEvidence", "SweepMeanGreater", "SweepValue", "SweepGaps", "SWEEP_CLAIMS"]


class SweepEvidence:
    """Sweeps computed once each: ``model_for(name)`` gives a loaded
    :class:`~featurelens.models.FeatureModel`, ``display_for(model, image_id)`` the photo as the
    page shows it (``ImageReport.display_hwc_u8``)."""

    def __init__(self, model_for: Callable[[str], Any], display_for: Callable[[str, str], np.ndarray]) -> None:
        self._model_for, self._display_for = model_for, display_for
        self._sweeps: dict[tuple, tuple] = {}

    def table(self, claim: "_SweepClaim", refs: dict[str, XY]) -> pd.DataFrame:
        """The invariance table of ``claim``'s sweep at its layer for ``refs`` (the sweep's
        features are computed once, whatever the references)."""
        key = (claim.model, claim.image, claim.transform, claim.values, claim.center, claim.layer)
        if key not in self._sweeps:
            display = self._display_for(claim.model, claim.image)
            transforms = parse_transforms(claim.transform, claim.values or DEFAULT_SWEEPS[claim.transform],
                                          claim.center)
            swept = sweep_features(self._model_for(claim.model), display, transforms, [claim.layer])
            self._sweeps[key] = (display.shape, transforms, swept)
        shape, transforms, swept = self._sweeps[key]
        return invariance_table(swept.original, swept.feats, transforms, refs, image_wh=(shape[1], shape[0]),
                                valid_hws=[i.valid_hw for i in swept.images])


class _SweepClaim(LessonClaim):
    evidence: ClassVar[str] = "sweeps"
    model: str
    image: str
    layer: str
    transform: Literal["rotate", "zoom", "flip"]
    values: tuple[float, ...] = ()
    center: XY = (0.5, 0.5)
    point: XY

    def _sweep_words(self) -> str:
        values = ", ".join(f"{v:g}" for v in (self.values or DEFAULT_SWEEPS[self.transform]))
        where = f" towards ({self.center[0]:.2f}, {self.center[1]:.2f})" if self.transform == "zoom" else ""
        return f"{self.image} {self.transform} [{values}]{where} at {self.layer}"

    @staticmethod
    def _series(table: pd.DataFrame, ref: str) -> pd.Series:
        rows = table[table["reference"] == ref]
        return pd.Series(rows["similarity"].to_numpy(), index=rows["parameter"].to_numpy())


def _moved(series: pd.Series, transform: str) -> pd.Series:
    return series[[not Transform(transform, float(v)).is_identity for v in series.index]]


class SweepMeanGreater(_SweepClaim):
    """Over the sweep (identity left out, gaps skipped) the mean similarity of ``point`` to its
    corresponding cell exceeds that of ``than_point`` by at least ``margin`` (negative: "not
    more than that below")."""

    kind: Literal["sweep_mean_greater"] = "sweep_mean_greater"
    than_point: XY
    margin: float = 0.0

    def describe(self) -> str:
        return (f"{self._sweep_words()}: mean similarity of ({self.point[0]:.2f}, {self.point[1]:.2f}) exceeds that "
                f"of ({self.than_point[0]:.2f}, {self.than_point[1]:.2f}) by at least {self.margin:+.2f}")

    def measure(self, evidence: SweepEvidence) -> tuple[bool, str]:
        table = evidence.table(self, {"a": self.point, "b": self.than_point})
        a, b = (_moved(self._series(table, r), self.transform) for r in ("a", "b"))
        mean_a, mean_b = float(a.mean()), float(b.mean())
        return mean_a - mean_b >= self.margin, (f"mean A {mean_a:.3f} (n={a.notna().sum()}) − mean B {mean_b:.3f} "
                                                f"(n={b.notna().sum()}) = {mean_a - mean_b:+.3f}")


class SweepValue(_SweepClaim):
    """The similarity of ``point`` to its corresponding cell at transform value ``at`` lies
    within bounds."""

    kind: Literal["sweep_value"] = "sweep_value"
    at: float
    at_least: float | None = None
    at_most: float | None = None

    @model_validator(mode="after")
    def _has_bound(self) -> "SweepValue":
        if self.at_least is None and self.at_most is None:
            raise ValueError("sweep_value needs at_least, at_most or both")
        return self

    def describe(self) -> str:
        bounds = " and ".join(b for b in (f"≥ {self.at_least:g}" if self.at_least is not None else "",
                                           f"≤ {self.at_most:g}" if self.at_most is not None else "") if b)
        return f"{self._sweep_words()}: ({self.point[0]:.2f}, {self.point[1]:.2f}) at {self.at:g} is {bounds}"

    def measure(self, evidence: SweepEvidence) -> tuple[bool, str]:
        series = self._series(evidence.table(self, {"a": self.point}), "a")
        if self.at not in series.index:
            raise ValueError(f"{self.at:g} is not in the sweep {list(series.index)}; add it to values")
        value = float(series[self.at])
        holds = np.isfinite(value) and (self.at_least is None or value >= self.at_least) and \
            (self.at_most is None or value <= self.at_most)
        return bool(holds), "similarity " + ", ".join(f"{k:g}: {v:.2f}" for k, v in series.items())


class SweepGaps(_SweepClaim):
    """``point`` leaves the frame (no value, a gap in the chart) exactly at ``gaps``."""

    kind: Literal["sweep_gaps"] = "sweep_gaps"
    gaps: tuple[float, ...] = Field(default=())

    def describe(self) -> str:
        return f"{self._sweep_words()}: ({self.point[0]:.2f}, {self.point[1]:.2f}) has gaps at {list(self.gaps)}"

    def measure(self, evidence: SweepEvidence) -> tuple[bool, str]:
        series = self._series(evidence.table(self, {"a": self.point}), "a")
        found = tuple(float(k) for k, v in series.items() if not np.isfinite(v))
        return sorted(found) == sorted(self.gaps), f"gaps at {list(found)}"


SWEEP_CLAIMS = (SweepMeanGreater, SweepValue, SweepGaps)
"""The claim kinds checked on transform sweeps (``evidence = "sweeps"``)."""
