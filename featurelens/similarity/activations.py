"""Channel activations of one layer: which channels fire most (the browser draws their maps:
Model & layers' channel tiles).

>>> feats_hwc = np.zeros((4, 4, 3), np.float32); feats_hwc[..., 1] = 2.0; feats_hwc[0, 0, 2] = 5.0
>>> strongest_channels(feats_hwc, 2).tolist()
[1, 2]
"""

from __future__ import annotations

import numpy as np

__all__ = ["channel_strength", "strongest_channels"]


def channel_strength(feats_hwc: np.ndarray) -> np.ndarray:
    """Mean activation of each channel over all positions: ``(H, W, C)`` → ``(C,)`` float32."""
    if feats_hwc.ndim != 3:
        raise ValueError(f"expected one image's features (H, W, C), got shape {feats_hwc.shape}")
    return feats_hwc.reshape(-1, feats_hwc.shape[-1]).astype(np.float32).mean(axis=0)


def strongest_channels(feats_hwc: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` channels with the highest mean activation, strongest first."""
    strength_c = channel_strength(feats_hwc)
    k = max(1, min(int(k), strength_c.size))
    return np.argsort(-strength_c, kind="stable")[:k]
