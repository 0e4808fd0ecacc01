"""Parts: non-negative matrix factorisation of feature vectors across images (ISO).

All positions of all images, ``feats_nhwc`` ``(N, H, W, C)``, are stacked into one
``(N·H·W, C)`` matrix ``X`` and factorised as ``X ≈ W·H`` with ``k`` parts: every
position gets ``k`` non-negative part strengths (``maps_nhwk``) and every part a
non-negative channel profile (``components_kc``). Because the parts are shared, picking a
part shows where "the same thing" occurs in every image.

NMF needs non-negative input; most layers taken before their activation have negative
values. :data:`NEGATIVE_HANDLING` lists the ways to deal with them (default ``split``,
which keeps all information by doubling the channels).

>>> feats_nhwc = np.abs(np.random.default_rng(0).normal(size=(2, 4, 4, 6))).astype(np.float32)
>>> result = nmf_parts(feats_nhwc, 3)
>>> result.maps_nhwk.shape, result.components_kc.shape, result.had_negative
((2, 4, 4, 3), (3, 6), False)
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Callable, Literal

import numpy as np

from .overlays import BaseMode, UpsampleMode, base_image, blend, upsample_map

__all__ = [
    "NegativeHandling",
    "NEGATIVE_HANDLING",
    "PartsResult",
    "nmf_parts",
    "part_colors",
    "render_parts",
]


def _split(x_pc: np.ndarray) -> np.ndarray:
    return np.concatenate([np.maximum(x_pc, 0), np.maximum(-x_pc, 0)], axis=1)


def _clip(x_pc: np.ndarray) -> np.ndarray:
    return np.maximum(x_pc, 0)


def _shift(x_pc: np.ndarray) -> np.ndarray:
    return x_pc - x_pc.min()


@dataclass(frozen=True)
class NegativeHandling:
    """A way to make features non-negative. ``fn(x_pc) -> x_pc'``; ``doubles_channels``:
    components then have ``2·C`` channels (positive parts first, then negated negatives)."""

    key: str
    display_name: str
    note: str
    doubles_channels: bool
    fn: Callable[[np.ndarray], np.ndarray]


NEGATIVE_HANDLING: dict[str, NegativeHandling] = {h.key: h for h in (
    NegativeHandling("split", "Split signs",
                     "Negative values were kept as separate channels (relu(x) and relu(−x)), so no "
                     "information was lost.", True, _split),
    NegativeHandling("clip", "Clip at zero",
                     "Negative values were set to zero (relu), as the next activation would do; "
                     "differences among negative values are ignored.", False, _clip),
    NegativeHandling("shift", "Shift by minimum",
                     "The global minimum was subtracted from all values so they start at zero; "
                     "zero no longer means 'inactive'.", False, _shift),
)}


@dataclass(frozen=True)
class PartsResult:
    """NMF parts of a set of images (arrays are read-only).

    ``maps_nhwk``: float32 ``(N, H, W, k)`` non-negative part strengths per position.
    ``components_kc``: float32 ``(k, C')`` non-negative channel profiles; ``C' = 2·C``
    for ``split`` on data with negatives, else ``C``.
    ``negative_handling``: the requested key; ``had_negative``: whether the input had any
    negative value (if not, it was factorised unchanged); ``note``: a sentence for the UI.
    ``relative_error``: ``‖X − W·H‖_F / ‖X‖_F`` on the matrix that was factorised.
    """

    maps_nhwk: np.ndarray
    components_kc: np.ndarray
    negative_handling: str
    had_negative: bool
    note: str
    relative_error: float

    def __post_init__(self) -> None:
        if self.maps_nhwk.ndim != 4 or self.components_kc.ndim != 2:
            raise ValueError("maps_nhwk must be (N, H, W, k) and components_kc (k, C)")
        if self.maps_nhwk.shape[3] != self.components_kc.shape[0]:
            raise ValueError(f"maps have {self.maps_nhwk.shape[3]} parts but components {self.components_kc.shape[0]}")
        self.maps_nhwk.setflags(write=False)
        self.components_kc.setflags(write=False)

    @property
    def k(self) -> int:
        """Number of parts."""
        return int(self.components_kc.shape[0])

    def max_strength(self, part: int | None = None) -> float:
        """The strongest value over all images, of one ``part`` or of any part: pass it to
        :func:`render_parts` so every image shares one scale (per part when highlighting,
        so a weak part still shows where it is strongest)."""
        maps = self.maps_nhwk if part is None else self.maps_nhwk[..., part]
        return float(maps.max())


def _nonnegative(x_pc: np.ndarray, negative: str) -> tuple[np.ndarray, bool, str]:
    """Apply a registered negative handling → (non-negative matrix, had_negative, note)."""
    if negative not in NEGATIVE_HANDLING:
        raise ValueError(f"unknown negative handling {negative!r}; choose one of {list(NEGATIVE_HANDLING)}")
    if x_pc.min() >= 0:
        return x_pc, False, "The features are non-negative, so they were factorised as they are."
    handling = NEGATIVE_HANDLING[negative]
    return handling.fn(x_pc), True, f"This layer has negative values. {handling.note}"


def nmf_parts(feats_nhwc: Any, k: int, *, seed: int = 0, negative: str = "split",
              max_iter: int = 400, tol: float = 1e-4, init: Literal["nndsvda", "random"] = "nndsvda") -> PartsResult:
    """Factorise all positions of all images into ``k`` shared parts with scikit-learn's NMF
    (coordinate descent, Frobenius loss).

    ``feats_nhwc``: float ``(N, H, W, C)``, or a list of N same-shaped ``feats_hwc`` (one
    layer; pass ``feats_hwc[None]`` for one image). ``negative``: a key of :data:`NEGATIVE_HANDLING`. ``init="nndsvda"`` (default)
    starts from an SVD and needs no randomness; ``init="random"`` draws the start from
    ``seed``. Either way equal inputs and seed give bit-identical results on one machine.
    Convergence warnings are suppressed; check ``relative_error``.
    """
    from sklearn.decomposition import NMF

    feats = np.asarray(feats_nhwc.detach().cpu() if hasattr(feats_nhwc, "detach") else feats_nhwc)
    if feats.ndim != 4:
        raise ValueError(f"expected features (N, H, W, C); got shape {feats.shape}. For one image pass feats_hwc[None].")
    if init not in ("nndsvda", "random"):
        raise ValueError(f"unknown init {init!r}; use 'nndsvda' (deterministic SVD start) or 'random' (uses seed)")
    n_positions = feats.shape[0] * feats.shape[1] * feats.shape[2]
    x_pc, had_negative, note = _nonnegative(feats.reshape(n_positions, -1).astype(np.float32), negative)
    if not 1 <= k <= min(x_pc.shape):
        raise ValueError(f"k={k} parts is not possible for {x_pc.shape[0]} positions and {x_pc.shape[1]} channels; "
                         "pick a k between 1 and about 10")
    x_norm = float(np.linalg.norm(x_pc))
    if x_norm == 0:
        raise ValueError("all features are zero, so there are no parts to find; pick another layer or image")
    model = NMF(n_components=k, init=init, solver="cd", max_iter=max_iter, tol=tol, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=Warning)  # ConvergenceWarning: error is reported instead
        w_pk = model.fit_transform(x_pc)
    h_kc = model.components_
    error = float(np.linalg.norm(x_pc - w_pk @ h_kc) / x_norm)
    return PartsResult(w_pk.astype(np.float32).reshape(*feats.shape[:3], k), h_kc.astype(np.float32),
                       negative, had_negative, note, error)


def part_colors(k: int) -> np.ndarray:
    """``(k, 3)`` uint8 distinct colours: matplotlib ``tab10`` up to 10 parts, ``tab20`` up to
    20, then evenly spaced hues.

    >>> part_colors(2)
    array([[ 31, 119, 180],
           [255, 127,  14]], dtype=uint8)
    """
    from matplotlib import colormaps
    from matplotlib.colors import hsv_to_rgb

    if k < 1:
        raise ValueError(f"need at least one part; got k={k}")
    if k <= 20:
        table = colormaps["tab10" if k <= 10 else "tab20"].colors
        rgb_k3 = np.asarray(table[:k], dtype=np.float64)
    else:
        hsv_k3 = np.stack([np.arange(k) / k, np.full(k, 0.75), np.full(k, 0.95)], axis=1)
        rgb_k3 = hsv_to_rgb(hsv_k3)
    return np.round(rgb_k3 * 255).astype(np.uint8)


def _dominant_rgb_alpha(maps_hwk: np.ndarray, size_hw: tuple[int, int], max_strength: float | None,
                        upsample: UpsampleMode) -> tuple[np.ndarray, np.ndarray]:
    """Colour of each pixel's strongest part ``(H, W, 3)`` uint8 and its relative strength ``(H, W)``."""
    strength_hw = maps_hwk.max(axis=2)
    top = float(max_strength) if max_strength is not None else float(strength_hw.max())
    rel_hw = np.clip(strength_hw / top, 0.0, 1.0) if top > 0 else np.zeros_like(strength_hw)
    dominant_hw = upsample_map(maps_hwk.argmax(axis=2).astype(np.float32), size_hw, "nearest").astype(np.intp)
    return part_colors(maps_hwk.shape[2])[dominant_hw], upsample_map(rel_hw, size_hw, upsample)


def render_parts(image_hwc_u8: Any, maps_hwk: Any, *, opacity: float = 0.7, highlight: int | None = None,
                 max_strength: float | None = None, base: BaseMode = "gray",
                 upsample: UpsampleMode = "nearest") -> np.ndarray:
    """Parts of one image over its photo → uint8 ``(H, W, 3)``.

    ``maps_hwk``: float ``(h, w, k)`` strengths, e.g. ``result.maps_nhwk[i]``. Without
    ``highlight`` each pixel takes the colour of its strongest part (:func:`part_colors`),
    blended with opacity ``opacity × strength / max_strength``. With ``highlight=j`` only part
    ``j`` is drawn, in its own colour, with opacity ``opacity × strength / max_strength``. Pass
    ``max_strength=float(result.maps_nhwk.max())`` to compare images; default: this image's max.

    >>> maps_hwk = np.zeros((2, 2, 2), np.float32); maps_hwk[0, 0, 1] = 1.0
    >>> out = render_parts(np.zeros((4, 4, 3), np.uint8), maps_hwk, opacity=1.0)
    >>> out[0, 0].tolist() == part_colors(2)[1].tolist(), out[3, 3].tolist()
    (True, [0, 0, 0])
    """
    base_hwc_u8 = base_image(image_hwc_u8, base)  # validates the image
    size_hw = base_hwc_u8.shape[:2]
    maps = np.asarray(maps_hwk, dtype=np.float32)
    if maps.ndim != 3:
        raise ValueError(f"expected one image's part maps (h, w, k); got shape {maps.shape}. Use result.maps_nhwk[i].")
    if not 0 <= opacity <= 1:
        raise ValueError(f"opacity must lie in [0, 1]; got {opacity}")
    if highlight is not None:
        if not 0 <= highlight < maps.shape[2]:
            raise IndexError(f"part {highlight} does not exist; parts are 0..{maps.shape[2] - 1}")
        top = float(max_strength) if max_strength is not None else float(maps.max())
        rel_hw = np.clip(maps[:, :, highlight] / max(top, 1e-12), 0.0, 1.0)
        color_hw3 = np.broadcast_to(part_colors(maps.shape[2])[highlight], (*size_hw, 3))
        return blend(base_hwc_u8, color_hw3, upsample_map(rel_hw, size_hw, upsample) * opacity)
    colors_hw3, rel_hw = _dominant_rgb_alpha(maps, size_hw, max_strength, upsample)
    return blend(base_hwc_u8, colors_hw3, np.clip(rel_hw * opacity, 0.0, 1.0))
