"""Channel activations of one layer: which channels fire most, and a montage of their maps.

>>> feats_hwc = np.zeros((4, 4, 3), np.float32); feats_hwc[..., 1] = 2.0; feats_hwc[0, 0, 2] = 5.0
>>> strongest_channels(feats_hwc, 2).tolist()
[1, 2]
>>> layout = MontageLayout(n_tiles=6, cols=3, tile_px=10, gap=2)
>>> layout.size_wh, layout.tile_at((15, 3)), layout.tile_at((13, 3)), layout.tile_at((1, 1))
((38, 26), 1, None, None)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from skimage.util import montage

from .overlays import colormap_lut, normalize_map, upsample_map

__all__ = ["channel_strength", "strongest_channels", "MontageLayout", "channel_montage"]


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


@dataclass(frozen=True)
class MontageLayout:
    """Tiles of ``tile_px`` squares in rows of ``cols``, with ``gap`` pixels between tiles and
    around the border (the layout :func:`skimage.util.montage` draws with ``padding_width=gap``)."""

    n_tiles: int
    cols: int
    tile_px: int
    gap: int = 4

    @property
    def rows(self) -> int:
        return -(-self.n_tiles // self.cols)

    @property
    def size_wh(self) -> tuple[int, int]:
        step = self.tile_px + self.gap
        return (self.cols * step + self.gap, self.rows * step + self.gap)

    def tile_origin(self, index: int) -> tuple[int, int]:
        """Top-left pixel ``(x, y)`` of tile ``index``."""
        step = self.tile_px + self.gap
        return (self.gap + (index % self.cols) * step, self.gap + (index // self.cols) * step)

    def tile_at(self, xy: tuple[float, float]) -> int | None:
        """The tile under pixel ``(x, y)`` of the montage, or None on a gap or outside."""
        step = self.tile_px + self.gap
        x, y = xy[0] - self.gap, xy[1] - self.gap
        col, row = int(x // step), int(y // step)
        inside = x >= 0 and y >= 0 and x - col * step < self.tile_px and y - row * step < self.tile_px
        index = row * self.cols + col
        if not inside or col >= self.cols or index >= self.n_tiles:
            return None
        return index


def channel_montage(feats_hwc: np.ndarray, channels: np.ndarray, layout: MontageLayout,
                    cmap: str = "magma") -> np.ndarray:
    """One tile per channel map (each on its own min–max scale, nearest upsampling so the
    grid stays visible) → ``image_hwc_u8`` of ``layout.size_wh`` on a white background."""
    lut = colormap_lut(cmap)
    size = (layout.tile_px, layout.tile_px)
    tiles_nhwc = np.stack([lut[(upsample_map(normalize_map(feats_hwc[..., int(channel)], "adaptive"), size, "nearest")
                                * 255 + 0.5).astype(np.uint8)] for channel in channels[: layout.n_tiles]])
    return montage(tiles_nhwc, grid_shape=(layout.rows, layout.cols), padding_width=layout.gap, fill=(255, 255, 255),
                   channel_axis=-1).astype(np.uint8)
