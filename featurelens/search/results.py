"""What a search returns: every image's best window and score, the top hits, and tables for plots.

The core returns data only; pages draw it (thumbnails with :meth:`SearchResult.window_box_px`,
box plots from :meth:`SearchResult.scores_table`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from .errors import SearchError
from .query import Query

__all__ = ["Hit", "SearchResult"]


@dataclass(frozen=True)
class Hit:
    """One result image.

    Attributes:
        rank: 1 for the best hit.
        index: the image's position in the searched set.
        id: the image's id.
        score: cosine similarity of its best window with the query, in [-1, 1].
        window: ``(row, col, h, w)`` of that window on the layer grid.
        metadata: the image's metadata row (empty when the set has no metadata).
    """

    rank: int
    index: int
    id: str
    score: float
    window: tuple[int, int, int, int]
    metadata: dict[str, Any]


@dataclass(frozen=True, eq=False)
class SearchResult:
    """Every image's best window for one query, and the top hits.

    Attributes:
        query: the :class:`~featurelens.search.Query` (model, layer, mask, box, features).
        best_scores_n: ``(N,)`` float32, the best cosine of every image, including excluded ones
            (unloaded images hold zero features and score 0).
        windows_n4: ``(N, 4)`` int32 ``(row, col, h, w)`` of every image's best window on the grid.
        valid_n: ``(N,)`` bool, True for images that take part in the ranking (loaded and not excluded).
        image_ids: ``N`` ids.
        metadata: one row per image (or ``None``).
        top: the hits asked for in the search call (see :meth:`top_k`).
        device: where the scores were computed.
    """

    query: Query
    best_scores_n: np.ndarray
    windows_n4: np.ndarray
    valid_n: np.ndarray
    image_ids: tuple[str, ...]
    metadata: pd.DataFrame | None
    top: tuple[Hit, ...]
    device: str

    @property
    def scores_n(self) -> np.ndarray:
        """``(N,)`` float32 ranking scores: the best cosine, and ``-inf`` for excluded or unloaded
        images (never NaN), so ``np.argsort(-scores_n)`` ranks them last."""
        return np.where(self.valid_n, self.best_scores_n, -np.inf).astype(np.float32)

    @property
    def best_rc_n2(self) -> np.ndarray:
        """``(N, 2)`` int32 ``(row, col)`` of each image's best window on the grid."""
        return self.windows_n4[:, :2]

    @property
    def model_name(self) -> str:
        return self.query.model_name

    @property
    def layer(self) -> str:
        return self.query.layer

    @property
    def box(self) -> tuple[int, int, int, int]:
        """The query's ``(row, col, h, w)`` on the grid."""
        return self.query.box

    @property
    def grid_hw(self) -> tuple[int, int]:
        return self.query.grid_hw

    def top_k(self, k: int = 10, unique_by: str | None = None,
              exclude: Iterable[int | str] = ()) -> tuple[Hit, ...]:
        """The ``k`` best images, best first (ties: lower index first).

        Args:
            k: how many hits at most.
            unique_by: a metadata column; keep at most one hit per value (e.g. ``"domain"``, a camera
                location); missing values form one group.
            exclude: image indices or ids to leave out, on top of the excluded images of the search.
        """
        if k < 0:
            raise SearchError(f"k must be 0 or more, got {k}")
        valid = self.valid_n.copy()
        valid[_indices(exclude, self.image_ids)] = False
        order = np.flatnonzero(valid)
        order = order[np.argsort(-self.best_scores_n[order], kind="stable")]
        groups = None if unique_by is None else self._column(unique_by)
        seen: set[Any] = set()
        hits: list[Hit] = []
        for index in order:
            if len(hits) >= k:
                break
            if groups is not None:
                key = None if pd.isna(groups[index]) else groups[index]
                if key in seen:
                    continue
                seen.add(key)
            hits.append(self._hit(len(hits) + 1, int(index)))
        return tuple(hits)

    def _column(self, name: str) -> np.ndarray:
        if self.metadata is None or name not in self.metadata.columns:
            columns = [] if self.metadata is None else list(self.metadata.columns)
            raise SearchError(f"unique_by={name!r} is not a metadata column; the columns are {columns}")
        return self.metadata[name].to_numpy()

    def _hit(self, rank: int, index: int) -> Hit:
        row = {} if self.metadata is None else self.metadata.iloc[index].to_dict()
        row_col_h_w = tuple(int(v) for v in self.windows_n4[index])
        score = float(self.best_scores_n[index])
        return Hit(rank, index, self.image_ids[index], score, row_col_h_w, row)  # type: ignore[arg-type]

    def scores_table(self, include_excluded: bool = False) -> pd.DataFrame:
        """Every image's best score, one row per image in image order, for box plots and tables.

        Columns: ``index, id, score, row, col, h, w, valid`` and the metadata columns (``row, col,
        h, w`` is the best window on the grid; ``valid`` is False for excluded or unloaded images,
        which are left out unless ``include_excluded``). Group by a metadata column for box plots.
        """
        table = pd.DataFrame({
            "index": np.arange(len(self.image_ids)), "id": list(self.image_ids), "score": self.best_scores_n,
            "row": self.windows_n4[:, 0], "col": self.windows_n4[:, 1],
            "h": self.windows_n4[:, 2], "w": self.windows_n4[:, 3], "valid": self.valid_n,
        })
        if self.metadata is not None:
            extra = self.metadata.drop(columns=[c for c in table.columns if c in self.metadata.columns])
            table = pd.concat([table, extra.reset_index(drop=True)], axis=1)
        return table if include_excluded else table[self.valid_n].reset_index(drop=True)

    def hits_table(self, hits: Sequence[Hit] | None = None, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """The hits as a table for printing: ``rank, id, score, window`` (``"r,c h×w"`` on the grid) and
        metadata ``columns`` (default: the label-like ones — every column but the file, size and
        bookkeeping ones, left out when empty for all hits).

        Args:
            hits: default :attr:`top`.
            columns: metadata columns to show.
        """
        hits = self.top if hits is None else tuple(hits)
        names = self._label_columns(hits) if columns is None else list(columns)
        missing = [c for c in names if self.metadata is None or c not in self.metadata.columns]
        if missing:
            raise SearchError(f"no metadata column {', '.join(map(repr, missing))}; the columns are "
                              f"{[] if self.metadata is None else list(self.metadata.columns)}")
        rows = [{"rank": h.rank, "id": h.id, "score": round(h.score, 4),
                 "window": f"{h.window[0]},{h.window[1]} {h.window[2]}×{h.window[3]}",
                 **{c: h.metadata.get(c, "") for c in names}} for h in hits]
        return pd.DataFrame(rows, columns=["rank", "id", "score", "window", *names])

    def _label_columns(self, hits: Sequence[Hit]) -> list[str]:
        if self.metadata is None:
            return []
        hidden = {"id", "file", "source", "caption", "license", "width", "height", "load_error"}
        return [c for c in self.metadata.columns
                if c not in hidden and any(str(h.metadata.get(c, "")) not in ("", "nan") for h in hits)]

    def window_box_px(self, hit: Hit | Sequence[int], image_wh: Sequence[float]) -> tuple[float, float, float, float]:
        """A hit's window as ``(x0, y0, x1, y1)`` pixels on an image of size ``image_wh = (width, height)``
        (e.g. its thumbnail), for drawing a rectangle; the grid is stretched over the whole image."""
        row, col, h, w = hit.window if isinstance(hit, Hit) else tuple(hit)
        grid_h, grid_w = self.grid_hw
        width, height = float(image_wh[0]), float(image_wh[1])
        return (col * width / grid_w, row * height / grid_h, (col + w) * width / grid_w, (row + h) * height / grid_h)


def _indices(items: Iterable[int | str], image_ids: Sequence[str]) -> list[int]:
    """Image indices or ids → indices; unknown ids and out-of-range indices are refused."""
    lookup = {image_id: i for i, image_id in enumerate(image_ids)}
    out = []
    for item in items:
        if isinstance(item, str):
            if item not in lookup:
                raise SearchError(f"cannot exclude image id {item!r}: the searched set has no such id")
            out.append(lookup[item])
        else:
            index = int(item)
            if not -len(image_ids) <= index < len(image_ids):
                raise SearchError(f"cannot exclude image index {index}: the searched set has {len(image_ids)} images")
            out.append(index % len(image_ids))
    return out

