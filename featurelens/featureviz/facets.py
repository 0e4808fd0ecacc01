"""Multi-faceted target selection (The Mind's Eye §3.1, after Nguyen et al. 2016).

The layer's spatially pooled activations of the chosen images, ``pooled_nc`` ``(N, C)``, go
through PCA and t-SNE to 2-D embeddings, which k-means clusters into ``C`` facets. Each facet
keeps the ``nearest`` members closest to its centre, weighted by a softmax of the inverse
distance (Eq. 1); its target activation and its starting image are the weighted averages of
those images' activations and pixels.

>>> rng = np.random.default_rng(0)
>>> pooled_nc = np.concatenate([rng.normal(0, 1, (6, 8)), rng.normal(6, 1, (6, 8))]).astype(np.float32)
>>> facets = select_facets(pooled_nc, 2, seed=0)
>>> sorted(sorted(f.members.tolist()) for f in facets), [round(float(f.weights.sum()), 6) for f in facets]
([[0, 1, 2, 3, 4, 5], [6, 7, 8, 9, 10, 11]], [1.0, 1.0])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy.special import softmax
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE

__all__ = ["Facet", "FacetError", "select_facets", "inverse_distance_weights", "embed_2d", "blend_images",
           "NEAREST", "GAMMA"]

NEAREST = 10
"""The paper's N: embeddings closest to each cluster centre that make a facet."""

GAMMA = 1e-5
"""The paper's γ: keeps the inverse distance finite for an embedding at the centre."""

_PCA_COMPONENTS = 50


class FacetError(ValueError):
    """Facets that cannot be made from these images (too few images for the facets asked)."""


@dataclass(frozen=True)
class Facet:
    """One facet: ``members`` (``(M,)`` int, indices into the images, nearest to the centre
    first), their ``weights`` (``(M,)`` float64, softmax of inverse distance, sum 1), the
    ``target_c`` (``(C,)`` float32, weighted average of the members' pooled activations), the
    cluster ``size`` (members of the k-means cluster) and ``centre_xy`` in the 2-D embedding."""

    members: np.ndarray
    weights: np.ndarray
    target_c: np.ndarray
    size: int
    centre_xy: tuple[float, float]

    def top_channels(self, k: int) -> np.ndarray:
        """``(k,)`` int: the target's ``k`` strongest channels, strongest first."""
        k = max(1, min(int(k), self.target_c.shape[0]))
        order = np.argsort(-self.target_c, kind="stable")
        return order[:k]


def inverse_distance_weights(distances_m: np.ndarray, gamma: float = GAMMA) -> np.ndarray:
    """Eq. 1: ``softmax(1 / (d + γ))`` over the ``(M,)`` distances to the centre (float64, sum 1).

    >>> inverse_distance_weights(np.array([1.0, 1.0, 0.5])).round(3).tolist()
    [0.212, 0.212, 0.576]
    """
    distances_m = np.asarray(distances_m, dtype=np.float64)
    if distances_m.ndim != 1 or distances_m.size == 0 or (distances_m < 0).any():
        raise ValueError(f"expected non-negative distances (M,), got {distances_m!r}")
    return softmax(1.0 / (distances_m + gamma))


def embed_2d(pooled_nc: np.ndarray, seed: int = 0) -> np.ndarray:
    """``(N, C)`` pooled activations → ``(N, 2)`` float32 embeddings: PCA (at most 50 components)
    then t-SNE (perplexity at most 30 and below N/3, as small sets need). Sets of three images
    or fewer skip t-SNE (it needs more points than its perplexity) and keep PCA's first two axes."""
    pooled_nc = np.asarray(pooled_nc, dtype=np.float32)
    n = pooled_nc.shape[0]
    components = max(1, min(_PCA_COMPONENTS, n, pooled_nc.shape[1]))
    reduced = PCA(n_components=components, random_state=seed).fit_transform(pooled_nc) if n > 1 else pooled_nc
    if n <= 3:
        out = np.zeros((n, 2), np.float32)
        out[:, :min(2, reduced.shape[1])] = reduced[:, :2]
        return out
    perplexity = float(min(30.0, max(1.0, (n - 1) / 3)))
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed, max_iter=500)
    return tsne.fit_transform(reduced).astype(np.float32)


def select_facets(pooled_nc: np.ndarray, n_facets: int, nearest: int = NEAREST, seed: int = 0,
                  embeddings_n2: np.ndarray | None = None) -> list[Facet]:
    """``C = n_facets`` facets of the images whose pooled activations are ``pooled_nc``
    ``(N, C)`` (largest cluster first). Deterministic for a ``seed``. ``embeddings_n2``: reuse
    2-D embeddings from :func:`embed_2d` instead of computing them."""
    pooled_nc = np.asarray(pooled_nc, dtype=np.float32)
    n = pooled_nc.shape[0]
    if pooled_nc.ndim != 2 or n == 0:
        raise FacetError(f"expected pooled activations (N, C) of at least one image, got shape {pooled_nc.shape}")
    if not 1 <= n_facets <= n:
        raise FacetError(f"{n_facets} facets need at least {n_facets} images, got {n}: pick more images or fewer facets")
    emb_n2 = embed_2d(pooled_nc, seed) if embeddings_n2 is None else np.asarray(embeddings_n2, np.float32)
    kmeans = KMeans(n_clusters=n_facets, n_init=10, random_state=seed).fit(emb_n2)
    facets = []
    for c, centre in enumerate(kmeans.cluster_centers_):
        cluster = np.flatnonzero(kmeans.labels_ == c)
        dist = np.linalg.norm(emb_n2[cluster] - centre, axis=1)
        order = np.argsort(dist, kind="stable")[:max(1, nearest)]
        members, weights = cluster[order], inverse_distance_weights(dist[order])
        target_c = (weights[:, None] * pooled_nc[members].astype(np.float64)).sum(0).astype(np.float32)
        facets.append(Facet(members, weights, target_c, int(cluster.size), (float(centre[0]), float(centre[1]))))
    return sorted(facets, key=lambda f: (-f.size, int(f.members[0])))


def blend_images(images_hwc_u8: Sequence[np.ndarray], weights: np.ndarray) -> np.ndarray:
    """The weighted average of same-size images ``(H, W, 3)`` uint8 (a facet's starting image)
    → ``(H, W, 3)`` float32 in [0, 1]."""
    if len(images_hwc_u8) != len(weights):
        raise ValueError(f"{len(images_hwc_u8)} images for {len(weights)} weights")
    stack = np.stack([np.asarray(im, np.float32) / 255.0 for im in images_hwc_u8])
    return np.tensordot(np.asarray(weights, np.float32), stack, axes=1)
