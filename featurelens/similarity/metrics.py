"""Similarity maps: how close every feature position is to a reference vector.

Features are channels-last float arrays: one image's layer ``feats_hwc`` ``(H, W, C)``
or many images ``feats_nhwc`` ``(N, H, W, C)`` (float32 or float16; torch tensors are
accepted and copied to numpy). Every metric has one call shape::

    fn(feats_..hwc, ref_c) -> sim_..hw   # float32, the leading shape of feats without C

Metrics live in the :data:`METRICS` registry; each entry carries a display name and
capability flags (``bounded``, ``value_range``, ``scale_invariant``) so a page can list
them and pick a colour scale without if/else chains.

>>> feats_hwc = np.zeros((2, 3, 4), np.float32); feats_hwc[..., 0] = 1.0
>>> feats_hwc[1, 2] = [0.0, 1.0, 0.0, 0.0]
>>> ref_c = feats_hwc[0, 0]
>>> similarity_map(feats_hwc, ref_c)
array([[1., 1., 1.],
       [1., 1., 0.]], dtype=float32)
>>> similarity_map(feats_hwc, ref_c, "angular")[1, 2]
np.float32(0.0)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Literal

import numpy as np

__all__ = [
    "Metric",
    "METRICS",
    "DEFAULT_METRIC",
    "get_metric",
    "list_metrics",
    "similarity_map",
    "cosine_similarity",
    "angular_similarity",
    "angular_variant",
    "neg_euclidean_similarity",
    "dot_similarity",
    "describe_metric_choice",
]

AngularVariant = Literal["nonneg", "signed"]
MetricFn = Callable[[Any, Any], np.ndarray]

DEFAULT_METRIC = "cosine"


# --------------------------------------------------------------------------- helpers


def _to_numpy(x: Any) -> np.ndarray:
    """numpy array or torch tensor (any device) → numpy array, without copying numpy input."""
    if hasattr(x, "detach"):  # torch.Tensor, without importing torch here
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _flatten(feats: Any, ref_c: Any) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """Validate and flatten: ``(..., C)`` feats → float32 ``(P, C)``, float32 ``(C,)`` ref,
    leading shape ``(...)``."""
    feats_pc = _to_numpy(feats)
    ref = _to_numpy(ref_c)
    if feats_pc.ndim < 2:
        raise ValueError(
            f"features must be channels-last (H, W, C) or (N, H, W, C); got shape {feats_pc.shape}"
        )
    if ref.ndim != 1 or ref.shape[0] != feats_pc.shape[-1]:
        raise ValueError(
            f"reference must be a (C,) vector with C={feats_pc.shape[-1]} to match the features' "
            f"last axis; got shape {ref.shape}. Build it with reference_vector() or region_reference() "
            "from the same layer."
        )
    lead = feats_pc.shape[:-1]
    flat = feats_pc.reshape(-1, feats_pc.shape[-1]).astype(np.float32, copy=False)
    return flat, ref.astype(np.float32, copy=False), lead


def _cosine_flat(flat_pc: np.ndarray, ref_c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cosine of each row with ``ref_c``, clipped to [-1, 1] and 0 where either norm is 0,
    and a mask of the rows that have no direction (zero row or zero reference)."""
    dots_p = flat_pc @ ref_c
    denom_p = np.sqrt(np.einsum("pc,pc->p", flat_pc, flat_pc)) * np.float32(np.linalg.norm(ref_c))
    cos_p = np.zeros_like(dots_p)
    undefined_p = ~(denom_p > 0)
    np.divide(dots_p, denom_p, out=cos_p, where=~undefined_p)
    return np.clip(cos_p, -1.0, 1.0, out=cos_p), undefined_p


# --------------------------------------------------------------------------- metrics


def cosine_similarity(feats: Any, ref_c: Any) -> np.ndarray:
    """Cosine similarity ``a·b / (|a| |b|)`` of every position with ``ref_c``.

    ``feats`` ``(..., C)`` float, ``ref_c`` ``(C,)`` → float32 ``(...)`` in [-1, 1].
    A zero vector (at a position or as the reference) has no direction: its value is 0.

    >>> cosine_similarity(np.array([[1.0, 0.0], [-2.0, 0.0], [0.0, 0.0]]), np.array([3.0, 0.0]))
    array([ 1., -1.,  0.], dtype=float32)
    """
    flat_pc, ref, lead = _flatten(feats, ref_c)
    return _cosine_flat(flat_pc, ref)[0].reshape(lead)


def angular_variant(feats: Any, ref_c: Any) -> AngularVariant:
    """Which IFeaLiD angular formula applies: ``"nonneg"`` when features and reference have
    no negative value (angles lie in [0, π/2]), else ``"signed"`` (angles in [0, π]).

    Decide once per layer: pass all images of the layer together so they share a variant.

    >>> angular_variant(np.ones((2, 2, 3)), np.ones(3))
    'nonneg'
    >>> angular_variant(np.ones((2, 2, 3)), -np.ones(3))
    'signed'
    """
    feats_a, ref = _to_numpy(feats), _to_numpy(ref_c)
    has_negative = (feats_a.size and feats_a.min() < 0) or (ref.size and ref.min() < 0)
    return "signed" if has_negative else "nonneg"


def angular_similarity(feats: Any, ref_c: Any, variant: AngularVariant | None = None) -> np.ndarray:
    """IFeaLiD's angular similarity of every position with ``ref_c``, in [0, 1].

    ``1 − θ/(π/2)`` for non-negative features, ``1 − θ/π`` when there are negative values
    (``θ`` is the angle between the vectors; cosine is clipped to [-1, 1] before arccos).
    ``variant`` forces a formula; ``None`` picks it with :func:`angular_variant`.
    A zero vector gives 0 (least similar). ``feats`` ``(..., C)`` → float32 ``(...)``.

    >>> angular_similarity(np.array([[1.0, 0.0], [1.0, 1.0]]), np.array([1.0, 0.0]))
    array([1. , 0.5], dtype=float32)
    >>> angular_similarity(np.array([[1.0, 0.0], [-1.0, 0.0]]), np.array([1.0, 0.0]))
    array([1., 0.], dtype=float32)
    """
    flat_pc, ref, lead = _flatten(feats, ref_c)
    if variant is None:
        variant = angular_variant(flat_pc, ref)
    if variant not in ("nonneg", "signed"):
        raise ValueError(f"unknown angular variant {variant!r}; use 'nonneg', 'signed' or None (automatic)")
    half_turns = np.float32(math.pi / 2 if variant == "nonneg" else math.pi)
    cos_p, undefined_p = _cosine_flat(flat_pc, ref)
    sim_p = np.clip(1.0 - np.arccos(cos_p) / half_turns, 0.0, 1.0).astype(np.float32)
    sim_p[undefined_p] = 0.0
    return sim_p.reshape(lead)


def neg_euclidean_similarity(feats: Any, ref_c: Any) -> np.ndarray:
    """Negative Euclidean distance ``−|a − b|`` (0 at the reference, unbounded below).

    Computed from the differences, not the ``|a|² − 2a·b + |b|²`` expansion, so the reference
    position gets exactly 0. ``feats`` ``(..., C)`` → float32 ``(...)``.

    >>> neg_euclidean_similarity(np.array([[3.0, 4.0], [0.0, 0.0]]), np.array([0.0, 0.0]))
    array([-5., -0.], dtype=float32)
    """
    flat_pc, ref, lead = _flatten(feats, ref_c)
    diff_pc = flat_pc - ref
    return (-np.sqrt(np.einsum("pc,pc->p", diff_pc, diff_pc))).reshape(lead)


def dot_similarity(feats: Any, ref_c: Any) -> np.ndarray:
    """Dot product ``a·b`` (unbounded; grows with activation magnitude).

    >>> dot_similarity(np.array([[1.0, 2.0]]), np.array([3.0, 4.0]))
    array([11.], dtype=float32)
    """
    flat_pc, ref, lead = _flatten(feats, ref_c)
    return (flat_pc @ ref).reshape(lead)


@dataclass(frozen=True)
class Metric:
    """One similarity metric and what a page needs to know about it.

    ``bounded``: has a fixed natural range ``value_range`` (use it for a fixed colour scale).
    ``scale_invariant``: multiplying all features by a positive number leaves the map unchanged.
    ``fn(feats_..hwc, ref_c) -> sim_..hw`` float32.
    """

    key: str
    display_name: str
    description: str
    bounded: bool
    value_range: tuple[float, float] | None
    scale_invariant: bool
    fn: MetricFn

    def __post_init__(self) -> None:
        if self.bounded != (self.value_range is not None):
            raise ValueError(f"metric {self.key!r}: bounded metrics need a value_range and unbounded ones none")


METRICS: dict[str, Metric] = {}


def _register(metric: Metric) -> Metric:
    if metric.key in METRICS:
        raise ValueError(f"metric {metric.key!r} is already registered; pick another key")
    METRICS[metric.key] = metric
    return metric


_register(Metric(
    "cosine", "Cosine similarity",
    "Cosine of the angle between feature vectors (ISO's default): direction only, magnitude ignored.",
    True, (-1.0, 1.0), True, cosine_similarity))
_register(Metric(
    "angular", "Angular similarity",
    "1 − angle/(π/2) for non-negative features, 1 − angle/π otherwise (IFeaLiD): "
    "like cosine, but linear in the angle, which spreads out nearly-parallel vectors.",
    True, (0.0, 1.0), True, angular_similarity))
_register(Metric(
    "neg_euclidean", "Negative Euclidean distance",
    "Minus the straight-line distance: 0 at the reference, more negative further away; "
    "sensitive to activation magnitude.",
    False, None, False, neg_euclidean_similarity))
_register(Metric(
    "dot", "Dot product",
    "Sum of element-wise products: large where vectors point the same way and are strongly active.",
    False, None, False, dot_similarity))


def list_metrics() -> list[str]:
    """Registered metric keys, default first.

    >>> list_metrics()
    ['cosine', 'angular', 'neg_euclidean', 'dot']
    """
    return list(METRICS)


def get_metric(key: str | Metric) -> Metric:
    """The registered :class:`Metric` for ``key`` (a :class:`Metric` is returned unchanged).

    >>> get_metric("angular").value_range
    (0.0, 1.0)
    """
    if isinstance(key, Metric):
        return key
    try:
        return METRICS[key]
    except (KeyError, TypeError):
        raise KeyError(
            f"unknown similarity metric {key!r}; choose one of {list_metrics()} (see featurelens.similarity.METRICS)"
        ) from None


def similarity_map(feats: Any, ref_c: Any, metric: str | Metric = DEFAULT_METRIC) -> np.ndarray:
    """Similarity of every position of ``feats`` ``(..., H, W, C)`` with ``ref_c`` ``(C,)``
    using a registered metric → float32 ``(..., H, W)``.

    >>> similarity_map(np.ones((1, 2, 2, 3)), np.ones(3), "dot").shape
    (1, 2, 2)
    """
    return get_metric(metric).fn(feats, ref_c)


def describe_metric_choice(metric_key: str, feats: Any, ref_c: Any) -> str:
    """A sentence a page can show under the overlay saying what was computed.

    >>> describe_metric_choice("angular", np.ones((2, 2, 3)), np.ones(3))[:60]
    'Angular similarity: all features are non-negative, so angles'
    """
    metric = get_metric(metric_key)
    if metric.key == "angular":
        if angular_variant(feats, ref_c) == "nonneg":
            detail = ("all features are non-negative, so angles lie in 0°–90° "
                      "and the map shows 1 − θ/(π/2)")
        else:
            detail = "this layer has negative values, so angles span 0°–180° and the map shows 1 − θ/π"
        return f"{metric.display_name}: {detail}; range 0 to 1."
    if metric.bounded:
        lo, hi = metric.value_range  # type: ignore[misc]
        return f"{metric.display_name}: {metric.description} Range {lo:g} to {hi:g}."
    return f"{metric.display_name}: {metric.description} Unbounded: colours are relative to the shown range."
