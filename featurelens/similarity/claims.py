"""Lesson claims: what a preset shows, stated so that a test can check it on the real model.

A lesson line such as "in stage 7 the cat's eye matches the other eye" becomes a claim in the
scenario file, a frozen record with a ``kind``. ``claim.check(evidence)`` computes the map the
page draws — :func:`~featurelens.similarity.layer_views` for one image,
:func:`~featurelens.similarity.image_views` for several, the mean of the strongest channels'
tiles on *Model & layers*, NMF parts — and returns a :class:`ClaimCheck`: whether the claim
holds, and the numbers measured.

Regions are normalised to the image (x to the right, y down, in [0, 1]): a box
``[x0, y0, x1, y1]`` or a polygon ``[[x, y], …]`` of 3 points or more. On a layer's grid a
region is the cells whose centre lies inside it or, when no centre does (a small region on a
coarse grid), the one cell under the region's centre (:func:`region_cells`). The reference
cell is never part of a region: it is always the most similar cell.

>>> region_cells((0.0, 0.0, 0.5, 0.5), (4, 4)).astype(int)
array([[1, 1, 0, 0],
       [1, 1, 0, 0],
       [0, 0, 0, 0],
       [0, 0, 0, 0]])
>>> region_cells(((0.9, 0.9), (1.0, 0.9), (1.0, 1.0)), (2, 2)).astype(int).tolist()   # no centre inside
[[0, 0], [0, 1]]
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Annotated, Any, Callable, ClassVar, Literal, Sequence

import numpy as np
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainValidator, model_validator

from .activations import strongest_channels
from .locations import draw_region
from .metrics import METRICS
from .overlays import normalize_map
from .parts import PartsResult, nmf_parts
from .views import OverlaySettings, image_views, layer_views

__all__ = ["Box", "Polygon", "Region", "ImageRegion", "region_cells", "ClaimCheck", "LessonClaim", "ImageEvidence",
           "MapClaim", "RegionInTop", "BestMatchIn", "MeanGreater", "MapStat", "LayerBrighter", "SharedPart", "TopLabels",
           "LayerShapes", "IMAGE_CLAIMS", "claim_map"]

Unit = Annotated[float, Field(ge=0.0, le=1.0)]
XY = tuple[Unit, Unit]


def _ordered(box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    if not (box[0] < box[2] and box[1] < box[3]):
        raise ValueError(f"a box is [x0, y0, x1, y1] with x0 < x1 and y0 < y1, got {list(box)}")
    return box


def _as_region(value: Any) -> tuple:
    """A box ``(x0, y0, x1, y1)`` or a polygon ``((x, y), …)`` from a scenario file's list."""
    items = list(value) if isinstance(value, (list, tuple)) else []
    if len(items) == 4 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in items):
        box = tuple(float(v) for v in items)
        if all(0 <= v <= 1 for v in box) and box[0] < box[2] and box[1] < box[3]:
            return box
    elif len(items) >= 3 and all(isinstance(p, (list, tuple)) and len(p) == 2 for p in items):
        polygon = tuple((float(x), float(y)) for x, y in items)
        if all(0 <= v <= 1 for point in polygon for v in point):
            return polygon
    raise ValueError("a region is a box [x0, y0, x1, y1] with x0 < x1 and y0 < y1, or a polygon [[x, y], …] of "
                     "3 points or more; every number in [0, 1]")


Box = Annotated[tuple[Unit, Unit, Unit, Unit], AfterValidator(_ordered)]
Polygon = Annotated[tuple[XY, ...], Field(min_length=3)]
Region = Annotated[Box | Polygon, PlainValidator(_as_region)]


def region_cells(region: Region, grid_hw: tuple[int, int]) -> np.ndarray:
    """``(H, W)`` bool: the cells of a ``grid_hw`` layer whose centre lies in ``region``, or
    the cell under the region's centre when no centre does."""
    h, w = int(grid_hw[0]), int(grid_hw[1])
    inside_hw = draw_region(region, (h, w))
    if not inside_hw.any():
        if isinstance(region[0], (tuple, list)):
            centre = np.asarray(region, dtype=np.float64).mean(axis=0)
        else:
            x0, y0, x1, y1 = region
            centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
        inside_hw[min(int(centre[1] * h), h - 1), min(int(centre[0] * w), w - 1)] = True
    return inside_hw


def _where(cell_rc: tuple[int, int], grid_hw: tuple[int, int]) -> str:
    """A cell as the normalised ``(x, y)`` of its centre, the way regions are written."""
    return f"({(cell_rc[1] + 0.5) / grid_hw[1]:.2f}, {(cell_rc[0] + 0.5) / grid_hw[0]:.2f})"


def _region_text(region: Region) -> str:
    if isinstance(region[0], (tuple, list)):
        return f"polygon of {len(region)} points"
    return "box [" + ", ".join(f"{v:.2f}" for v in region) + "]"


@dataclass(frozen=True)
class ClaimCheck:
    """One claim checked: ``holds``, the claim in words and the numbers ``measured``."""

    holds: bool
    claim: str
    measured: str

    def __str__(self) -> str:
        return f"{'holds' if self.holds else 'FALSE'}: {self.claim} — measured {self.measured}"


class LessonClaim(BaseModel, ABC):
    """A checkable statement of a lesson. Subclasses set ``kind`` (the scenario file's
    discriminator) and ``evidence`` (``"images"``: an :class:`ImageEvidence`; ``"search"``:
    a :class:`featurelens.search.claims.SearchEvidence`) and implement :meth:`check`.
    ``says``: the lesson's words for it, shown with the numbers."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    evidence: ClassVar[str] = "images"
    says: str = ""

    @abstractmethod
    def describe(self) -> str:
        """The claim in words, with its numbers."""

    @abstractmethod
    def measure(self, evidence: Any) -> tuple[bool, str]:
        """``(holds, measured numbers)`` on ``evidence``."""

    def check(self, evidence: Any) -> ClaimCheck:
        holds, measured = self.measure(evidence)
        words = f"{self.says!r}: {self.describe()}" if self.says else self.describe()
        return ClaimCheck(bool(holds), words, measured)


class ImageEvidence:
    """What the image pages compute, once per (model, image): ``report_for(model, image_id)``
    returns an object with ``feats_hwc`` (``{layer: (H, W, C) float32}``), ``display_hwc_u8``
    and ``predictions`` — :func:`featurelens.models.analyse_image` of the gallery photo, as
    the pages call it. NMF parts are kept too."""

    def __init__(self, report_for: Callable[[str, str], Any]) -> None:
        self._report_for = report_for
        self._reports: dict[tuple[str, str], Any] = {}
        self._parts: dict[tuple, PartsResult] = {}

    def report(self, model: str, image: str) -> Any:
        key = (model, image)
        if key not in self._reports:
            self._reports[key] = self._report_for(model, image)
        return self._reports[key]

    def parts(self, model: str, images: Sequence[str], layer: str, k: int, negative: str) -> PartsResult:
        """NMF parts of ``images`` at ``layer``, as the *Compare images* page factorises them."""
        key = (model, tuple(images), layer, k, negative)
        if key not in self._parts:
            feats = [self.report(model, image).feats_hwc[layer] for image in images]
            self._parts[key] = nmf_parts(feats, k, negative=negative)
        return self._parts[key]


def _known_metric(key: str) -> str:
    if key not in METRICS:
        raise ValueError(f"unknown metric {key!r}; choose one of {list(METRICS)}")
    return key


class MapClaim(LessonClaim):
    """A claim about one map of ``image`` at ``layer``. ``view="similarity"``: similarity (by
    ``metric``) to ``point`` of ``ref_image``, computed over ``images`` together (the *Compare
    images* row; default: the reference and ``image``). ``view="channels"``: the mean of the
    ``channels`` strongest channels, each on its own min–max scale (the tiles of *Model &
    layers*)."""

    model: str
    layer: str
    image: str
    view: Literal["similarity", "channels"] = "similarity"
    ref_image: str = ""
    point: XY | None = None
    images: tuple[str, ...] = ()
    metric: Annotated[str, AfterValidator(_known_metric)] = "cosine"
    channels: int = Field(16, ge=1)

    @model_validator(mode="after")
    def _has_reference(self) -> "MapClaim":
        if self.view == "similarity":
            if self.point is None:
                raise ValueError("a similarity claim needs a reference point: the preset's point, or `point`")
            missing = sorted({self.ref_image or self.image, self.image} - set(self.images))
            if self.images and missing:
                raise ValueError(f"images {list(self.images)} must include {missing}")
        return self

    def _map_words(self, layer: str | None = None) -> str:
        layer = layer or self.layer
        if self.view == "channels":
            return f"{self.image} at {layer}, mean of its {self.channels} strongest channels"
        ref = self.ref_image or self.image
        where = self.image if ref == self.image else f"{self.image}, reference in {ref}"
        return f"{where} at {layer}, {self.metric} to ({self.point[0]:.2f}, {self.point[1]:.2f})"


def claim_map(claim: MapClaim, evidence: ImageEvidence, layer: str | None = None
              ) -> tuple[np.ndarray, tuple[int, int] | None]:
    """The claim's map at ``layer`` (default its own) ``(H, W)`` float32 and the reference
    cell in it (None when the reference is in another image, or for the channels view)."""
    layer = layer or claim.layer
    if claim.view == "channels":
        feats_hwc = evidence.report(claim.model, claim.image).feats_hwc[layer]
        tiles = [normalize_map(feats_hwc[..., int(c)], "adaptive") for c in strongest_channels(feats_hwc, claim.channels)]
        return np.mean(tiles, axis=0).astype(np.float32), None
    ref = claim.ref_image or claim.image
    images = list(claim.images or dict.fromkeys((ref, claim.image)))
    reports = [evidence.report(claim.model, image) for image in images]
    settings = OverlaySettings(metric=claim.metric)
    if len(images) == 1:
        view = layer_views({layer: reports[0].feats_hwc[layer]}, reports[0].display_hwc_u8, claim.point, settings)[layer]
    else:
        view = image_views([r.feats_hwc[layer] for r in reports], [r.display_hwc_u8 for r in reports],
                           images.index(ref), claim.point, settings)[images.index(claim.image)]
    return view.sim_hw, view.ref_cell


def _cells(claim: MapClaim, region: Region, map_hw: np.ndarray, ref_cell: tuple[int, int] | None) -> np.ndarray:
    cells_hw = region_cells(region, map_hw.shape)
    if ref_cell is not None:
        cells_hw[ref_cell] = False
    if not cells_hw.any():
        raise ValueError(f"{_region_text(region)} covers only the reference cell of {claim.layer}; "
                         "make it larger or move it")
    return cells_hw


def _others(map_hw: np.ndarray, ref_cell: tuple[int, int] | None) -> np.ndarray:
    keep_hw = np.ones(map_hw.shape, bool)
    if ref_cell is not None:
        keep_hw[ref_cell] = False
    return keep_hw


class RegionInTop(MapClaim):
    """The region's best cell is among the ``top_fraction`` most similar cells of the image
    (fewer than that fraction of the other cells are more similar)."""

    kind: Literal["region_in_top"] = "region_in_top"
    region: Region
    top_fraction: float = Field(gt=0.0, le=1.0)

    def describe(self) -> str:
        return f"{self._map_words()}: {_region_text(self.region)} is in the top {self.top_fraction:.0%}"

    def measure(self, evidence: ImageEvidence) -> tuple[bool, str]:
        map_hw, ref_cell = claim_map(self, evidence)
        cells_hw = _cells(self, self.region, map_hw, ref_cell)
        best = float(map_hw[cells_hw].max())
        pool = map_hw[_others(map_hw, ref_cell)]
        above = int((pool > best).sum())
        best_rc = np.unravel_index(np.argmax(np.where(cells_hw, map_hw, -np.inf)), map_hw.shape)
        return above / pool.size < self.top_fraction, (
            f"region's best {best:.2f} at {_where(best_rc, map_hw.shape)}; {above} of {pool.size} cells "
            f"({above / pool.size:.1%}) are more similar")


class BestMatchIn(MapClaim):
    """The image's most similar cell (the reference cell left out) lies in the region."""

    kind: Literal["best_match_in"] = "best_match_in"
    region: Region

    def describe(self) -> str:
        return f"{self._map_words()}: the best match lies in {_region_text(self.region)}"

    def measure(self, evidence: ImageEvidence) -> tuple[bool, str]:
        map_hw, ref_cell = claim_map(self, evidence)
        cells_hw = region_cells(self.region, map_hw.shape)
        masked_hw = np.where(_others(map_hw, ref_cell), map_hw, -np.inf)
        best_rc = tuple(int(v) for v in np.unravel_index(np.argmax(masked_hw), map_hw.shape))
        in_region = float(masked_hw[cells_hw].max()) if np.isfinite(masked_hw[cells_hw]).any() else float("nan")
        return bool(cells_hw[best_rc]), (f"best match {masked_hw[best_rc]:.2f} at {_where(best_rc, map_hw.shape)}; "
                                         f"the region's best {in_region:.2f}")


class MeanGreater(MapClaim):
    """The mean of ``region_a`` exceeds that of ``region_b`` (default: every other cell) by
    at least ``margin``; a negative margin says "not more than that below"."""

    kind: Literal["mean_greater"] = "mean_greater"
    region_a: Region
    region_b: Region | None = None
    margin: float = 0.0

    def describe(self) -> str:
        other = _region_text(self.region_b) if self.region_b is not None else "the rest of the image"
        return (f"{self._map_words()}: mean of {_region_text(self.region_a)} exceeds {other} "
                f"by at least {self.margin:+.2f}")

    def measure(self, evidence: ImageEvidence) -> tuple[bool, str]:
        map_hw, ref_cell = claim_map(self, evidence)
        a_hw = _cells(self, self.region_a, map_hw, ref_cell)
        b_hw = _cells(self, self.region_b, map_hw, ref_cell) if self.region_b is not None \
            else _others(map_hw, ref_cell) & ~a_hw
        mean_a, mean_b = float(map_hw[a_hw].mean()), float(map_hw[b_hw].mean())
        return mean_a - mean_b >= self.margin, (f"mean A {mean_a:.3f} (n={int(a_hw.sum())}) − mean B {mean_b:.3f} "
                                                f"(n={int(b_hw.sum())}) = {mean_a - mean_b:+.3f}")


_STATS: dict[str, Callable[[np.ndarray], Any]] = {"min": np.min, "mean": np.mean, "median": np.median, "max": np.max}


class MapStat(MapClaim):
    """A statistic of the whole map (every cell, as the view shows it) lies within bounds."""

    kind: Literal["map_stat"] = "map_stat"
    stat: Literal["min", "mean", "median", "max"]
    at_least: float | None = None
    at_most: float | None = None

    @model_validator(mode="after")
    def _has_bound(self) -> "MapStat":
        if self.at_least is None and self.at_most is None:
            raise ValueError("map_stat needs at_least, at_most or both")
        return self

    def describe(self) -> str:
        bounds = " and ".join(b for b in (f"≥ {self.at_least:g}" if self.at_least is not None else "",
                                           f"≤ {self.at_most:g}" if self.at_most is not None else "") if b)
        return f"{self._map_words()}: {self.stat} {bounds}"

    def measure(self, evidence: ImageEvidence) -> tuple[bool, str]:
        map_hw, _ = claim_map(self, evidence)
        value = float(_STATS[self.stat](map_hw))
        holds = (self.at_least is None or value >= self.at_least) and (self.at_most is None or value <= self.at_most)
        return holds, f"{self.stat} {value:.3f} (range {map_hw.min():.2f} to {map_hw.max():.2f})"


class LayerBrighter(MapClaim):
    """The mean of the map at ``layer`` exceeds the mean at layer ``than`` by ``margin``: with
    the fixed colour scale (the metric's range) ``layer`` looks brighter."""

    kind: Literal["layer_brighter"] = "layer_brighter"
    than: str
    margin: float = 0.0

    def describe(self) -> str:
        return f"{self._map_words()}: mean exceeds that of {self.than} by at least {self.margin:+.2f}"

    def measure(self, evidence: ImageEvidence) -> tuple[bool, str]:
        mean, mean_than = (float(claim_map(self, evidence, layer)[0].mean()) for layer in (self.layer, self.than))
        return mean - mean_than >= self.margin, (f"mean {self.layer} {mean:.3f} − mean {self.than} {mean_than:.3f} "
                                                 f"= {mean - mean_than:+.3f}")


class ImageRegion(BaseModel):
    """A region of one image."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    image: str
    region: Region


class SharedPart(LessonClaim):
    """NMF with ``k`` parts over ``images`` at ``layer`` (negative values handled by
    ``negative``, the page's default ``split``): every region in ``regions`` has the same
    strongest part (by its mean strength over the region's cells), and no region in ``unlike``
    has that part."""

    kind: Literal["shared_part"] = "shared_part"
    model: str
    layer: str
    images: tuple[str, ...] = Field(min_length=1)
    k: int = Field(4, ge=2)
    negative: str = "split"
    regions: tuple[ImageRegion, ...] = Field(min_length=2)
    unlike: tuple[ImageRegion, ...] = ()

    @model_validator(mode="after")
    def _regions_in_images(self) -> "SharedPart":
        outside = sorted({r.image for r in (*self.regions, *self.unlike)} - set(self.images))
        if outside:
            raise ValueError(f"regions name images {outside} that are not in images {list(self.images)}")
        return self

    def describe(self) -> str:
        return (f"NMF k={self.k} of {', '.join(self.images)} at {self.layer}: {len(self.regions)} regions share their "
                f"strongest part" + (f", {len(self.unlike)} others do not" if self.unlike else ""))

    def _strongest(self, parts: PartsResult, where: ImageRegion) -> int:
        maps_hwk = parts.maps_nhwk[self.images.index(where.image)]
        return int(np.argmax(maps_hwk[region_cells(where.region, maps_hwk.shape[:2])].mean(axis=0)))

    def measure(self, evidence: ImageEvidence) -> tuple[bool, str]:
        parts = evidence.parts(self.model, self.images, self.layer, self.k, self.negative)
        shared = [self._strongest(parts, r) for r in self.regions]
        unlike = [self._strongest(parts, r) for r in self.unlike]
        holds = len(set(shared)) == 1 and shared[0] not in unlike
        return holds, (f"strongest part per region: {shared}" + (f", unlike regions: {unlike}" if unlike else "")
                       + f" (relative error {parts.relative_error:.2f})")


class TopLabels(LessonClaim):
    """The model's first ``top_k`` ImageNet labels for ``image`` are all among ``labels``."""

    kind: Literal["top_labels"] = "top_labels"
    model: str
    image: str
    top_k: int = Field(ge=1, le=5)
    labels: tuple[str, ...] = Field(min_length=1)

    def describe(self) -> str:
        return f"{self.image}: the top {self.top_k} labels are among {', '.join(self.labels)}"

    def measure(self, evidence: ImageEvidence) -> tuple[bool, str]:
        predictions = evidence.report(self.model, self.image).predictions
        top = [p.label for p in predictions[: self.top_k]]
        return len(top) == self.top_k and set(top) <= set(self.labels), "top labels " + ", ".join(
            f"{p.label} {p.probability:.1%}" for p in predictions)


class LayerShapes(LessonClaim):
    """Feature grids ``{layer: [H, W]}`` and channel counts ``{layer: C}`` of ``image``."""

    kind: Literal["layer_shapes"] = "layer_shapes"
    model: str
    image: str
    grids: dict[str, tuple[int, int]] = {}
    channels: dict[str, int] = {}

    def describe(self) -> str:
        grids = ", ".join(f"{layer} {h}×{w}" for layer, (h, w) in self.grids.items())
        channels = ", ".join(f"{layer} {c}" for layer, c in self.channels.items())
        return f"{self.image}: " + "; ".join(f"{what} {text}" for what, text in (("grids", grids), ("channels", channels))
                                             if text)

    def measure(self, evidence: ImageEvidence) -> tuple[bool, str]:
        feats = evidence.report(self.model, self.image).feats_hwc
        shapes = {layer: feats[layer].shape for layer in dict.fromkeys([*self.grids, *self.channels])}
        holds = all(shapes[l][:2] == tuple(g) for l, g in self.grids.items()) and \
            all(shapes[l][2] == c for l, c in self.channels.items())
        return holds, ", ".join(f"{layer} {'×'.join(map(str, shape))}" for layer, shape in shapes.items())


IMAGE_CLAIMS = (RegionInTop, BestMatchIn, MeanGreater, MapStat, LayerBrighter, SharedPart, TopLabels, LayerShapes)
"""The claim kinds checked on images (``evidence = "images"``)."""
