"""Lesson claims of the *Few-shot segmentation* scenario, checked on the real model the way
the page computes them: every layer's features of the gallery photos (``image_report``), the
support mask drawn from ``support_region`` at the support's display size, the query's mask at
its display size, scored against ``query_region`` (a hand-drawn outline of the object).

Regions are normalised boxes ``[x0, y0, x1, y1]`` or polygons ``[[x, y], …]``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from ..similarity.claims import ImageEvidence, LessonClaim, Region
from .methods import SEG_METHODS
from .segment import SegmentationResult, draw_region, iou, segment

__all__ = ["FewShotIoU", "FewShotBetter", "SEGMENTATION_CLAIMS", "claim_segmentation"]

Threshold = Literal["otsu", "natural"] | float


class _FewShotClaim(LessonClaim):
    evidence: ClassVar[str] = "images"
    model: str
    support: str
    support_region: Region
    query: str
    query_region: Region
    method: Literal[tuple(SEG_METHODS)] = "prototype"  # type: ignore[valid-type]
    layers: tuple[str, ...] = Field(min_length=1)
    threshold: Threshold = "otsu"

    def _words(self, method: str | None = None, layers: tuple[str, ...] | None = None) -> str:
        where = "self-similarity" if self.support == self.query else f"{self.support} → {self.query}"
        return f"{where}, {method or self.method} at {'+'.join(layers or self.layers)}, threshold {self.threshold}"

    def _iou(self, evidence: ImageEvidence, method: str | None = None,
             layers: tuple[str, ...] | None = None) -> tuple[float, SegmentationResult]:
        result = claim_segmentation(self, evidence, method, layers)
        truth_hw = draw_region(self.query_region, result.mask_hw.shape)
        return iou(result.mask_hw, truth_hw), result


def claim_segmentation(claim: _FewShotClaim, evidence: ImageEvidence, method: str | None = None,
                       layers: tuple[str, ...] | None = None) -> SegmentationResult:
    """The query's segmentation as the page computes it (display size)."""
    support, query = evidence.report(claim.model, claim.support), evidence.report(claim.model, claim.query)
    mode, value = (claim.threshold, None) if isinstance(claim.threshold, str) else ("manual", claim.threshold)
    return segment(support.feats_hwc, draw_region(claim.support_region, support.display_hwc_u8.shape[:2]),
                   query.feats_hwc, method=method or claim.method, layers=layers or claim.layers, threshold=mode,
                   value=value, out_hw=query.display_hwc_u8.shape[:2])


class FewShotIoU(_FewShotClaim):
    """The query mask's IoU with ``query_region`` lies within bounds."""

    kind: Literal["few_shot_iou"] = "few_shot_iou"
    at_least: float | None = None
    at_most: float | None = None

    @model_validator(mode="after")
    def _has_bound(self) -> "FewShotIoU":
        if self.at_least is None and self.at_most is None:
            raise ValueError("few_shot_iou needs at_least, at_most or both")
        return self

    def describe(self) -> str:
        bounds = " and ".join(b for b in (f"≥ {self.at_least:g}" if self.at_least is not None else "",
                                           f"≤ {self.at_most:g}" if self.at_most is not None else "") if b)
        return f"{self._words()}: IoU {bounds}"

    def measure(self, evidence: Any) -> tuple[bool, str]:
        value, result = self._iou(evidence)
        holds = (self.at_least is None or value >= self.at_least) and (self.at_most is None or value <= self.at_most)
        return holds, f"IoU {value:.3f} (threshold {result.threshold:.3f}, mask covers {result.coverage:.0%})"


class FewShotBetter(_FewShotClaim):
    """The IoU of this claim's method and layers exceeds that of ``than_method`` / ``than_layers``
    (default: the same) by at least ``margin``."""

    kind: Literal["few_shot_better"] = "few_shot_better"
    than_method: Literal[tuple(SEG_METHODS)] | None = None  # type: ignore[valid-type]
    than_layers: tuple[str, ...] = ()
    margin: float = 0.0

    def describe(self) -> str:
        other = self._words(self.than_method, self.than_layers or None)
        return f"{self._words()} beats {other} by at least {self.margin:+.2f} IoU"

    def measure(self, evidence: Any) -> tuple[bool, str]:
        mine, _ = self._iou(evidence)
        theirs, _ = self._iou(evidence, self.than_method, self.than_layers or None)
        return mine - theirs >= self.margin, f"IoU {mine:.3f} − {theirs:.3f} = {mine - theirs:+.3f}"


SEGMENTATION_CLAIMS = (FewShotIoU, FewShotBetter)
"""The claim kinds checked on few-shot segmentations (``evidence = "images"``)."""
