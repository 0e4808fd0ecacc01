"""The invariance line chart: similarity to the corresponding cell against the transform
parameter, one line per layer, one panel per reference. A point that left the frame is a
gap in its line (null), never a zero; hovering a point shows the cell and its padding share.

>>> import pandas as pd
>>> table = pd.DataFrame({"reference": ["A", "A"], "layer": ["stage7"] * 2, "transform": ["0°", "90°"],
...                       "parameter": [0.0, 90.0], "similarity": [1.0, float("nan")], "row": [0.0, float("nan")],
...                       "col": [3.0, float("nan")], "padding": [0.0, float("nan")]})
>>> spec = invariance_chart(table, "Rotation (degrees)").to_dict()
>>> rows = next(iter(spec["datasets"].values()))
>>> rows[1]["transform"], rows[1]["similarity"]
('90°', None)
"""

from __future__ import annotations

import json
from typing import Sequence

import altair as alt
import pandas as pd

__all__ = ["invariance_chart", "LAYER_COLORS"]

LAYER_COLORS = ("#4c78a8", "#f58518", "#54a24b", "#b279a2", "#e45756", "#72b7b2")
"""Line colours, shallow to deep layers: far apart, so four lines stay distinct on a projector."""


def invariance_chart(table: pd.DataFrame, x_title: str, *, layer_order: Sequence[str] | None = None,
                     reference_titles: dict[str, str] | None = None, x_labels: dict[float, str] | None = None,
                     height: int = 260) -> alt.FacetChart:
    """The chart of an :func:`~featurelens.invariance.invariance_table`: x = ``parameter``
    (titled ``x_title``; ``x_labels`` names its ticks, e.g. ``{0: "original", 1: "flipped"}``),
    y = similarity (−1 to 1 for cosine), colour = layer (in ``layer_order``), one panel per
    reference (titled by ``reference_titles``)."""
    data = table.copy()
    if reference_titles:
        data["reference"] = data["reference"].map(lambda r: reference_titles.get(r, r))
    data["padding %"] = (data["padding"] * 100).round(0)
    order = list(layer_order or dict.fromkeys(data["layer"]))
    low = min(-0.2, float(data["similarity"].min()) if data["similarity"].notna().any() else 0.0)
    label_expr = alt.Undefined
    if x_labels:
        label_expr = " : ".join(f"datum.value == {float(v)!r} ? {json.dumps(t)}" for v, t in x_labels.items()) + \
            " : datum.label"
    # Word labels ("original", "flipped") sit inside their panel: centred on its ends, they ran into the next panel's.
    x = alt.X("parameter:Q", title=x_title, axis=alt.Axis(values=sorted(set(data["parameter"])),
                                                          labelFlush=bool(x_labels), labelExpr=label_expr))
    y = alt.Y("similarity:Q", title="similarity to the corresponding cell", scale=alt.Scale(domain=[low, 1.0]))
    palette = LAYER_COLORS[: len(order)] if len(order) <= len(LAYER_COLORS) else None
    color = alt.Color("layer:N", sort=order, title="layer", legend=alt.Legend(orient="bottom"),
                      scale=alt.Scale(domain=order, range=palette) if palette else alt.Undefined)
    tooltip = [alt.Tooltip("reference:N"), alt.Tooltip("layer:N"), alt.Tooltip("transform:N"),
               alt.Tooltip("similarity:Q", format=".3f"), alt.Tooltip("row:Q", title="cell row"),
               alt.Tooltip("col:Q", title="cell col"), alt.Tooltip("padding %:Q", title="padding in the cell (%)")]
    base = alt.Chart().encode(x=x, y=y, color=color)
    lines = base.mark_line(strokeWidth=2.5)
    points = base.mark_point(filled=True, size=70).encode(tooltip=tooltip)
    return (alt.layer(lines, points, data=data)
            .properties(height=height, width=320)
            .facet(column=alt.Column("reference:N", title=None, header=alt.Header(labelFontSize=14,
                                                                                  labelFontWeight="bold")))
            .resolve_scale(x="shared", y="shared"))
