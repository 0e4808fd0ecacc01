"""Charts: the feature-vector bar chart and the colour legend."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from featurelens.similarity import chart_channels


TOP_CHANNELS = 32  # bars the feature-vector chart shows by default: ~16 px each in a 520 px chart


def vector_chart(vectors, x_title: str, key: str, *, highlight: int | None = None,
                 top_k: int | None = TOP_CHANNELS) -> None:
    """Bar chart of the reference (and pinned) feature vector; clicking a bar selects its
    channel (selection ``pick``, field ``channel``). ``vectors``: :class:`featurelens.views.VectorComparison`.

    Shows the ``top_k`` channels with the largest ``|activation|`` at the reference, largest
    first (a toggle shows all of them, in the same order), the reference's and the pin's bar
    of a channel side by side, and channel ``highlight`` outlined, its label in bold (kept in
    the chart even when it is not among the top ``k``). Which channels, in which order:
    :func:`featurelens.similarity.chart_channels`. A plain Vega-Lite spec: building it
    through altair costs ~30 ms per click."""
    n_channels = vectors.ref_c.size
    show_all = top_k is None or top_k >= n_channels or st.toggle(
        f"All {n_channels} channels", key=f"{key}_all",
        help=f"Off: the {top_k} channels with the largest |activation| at the reference, largest first.")
    order = chart_channels(vectors.ref_c, top_k=None if show_all else top_k, keep=highlight)
    chosen, chosen_label = ((f"datum.channel === {int(highlight)}", f"datum.value === {int(highlight)}")
                            if highlight is not None else ("false", "false"))  # Vega expressions
    shown = f"all {n_channels}" if show_all else f"top {min(top_k, n_channels)} of {n_channels}"
    if not show_all and len(order) > top_k:  # the chosen channel, kept at its rank
        shown += f" and channel {int(highlight)}"
    encoding = {
        "x": {"field": "channel", "type": "ordinal", "sort": order.tolist(),
              "title": f"{x_title}: {shown}, largest |activation| first",
              "axis": {"labels": len(order) <= 64, "ticks": len(order) <= 64, "labelAngle": -90, "labelFontSize": 10,
                       "labelFontWeight": {"condition": {"test": chosen_label, "value": "bold"}, "value": "normal"}}},
        "y": {"field": "value", "type": "quantitative", "stack": None, "title": "activation"},
        "color": {"field": "vector", "type": "nominal", "legend": {"orient": "right", "title": None,
                                                                   "symbolStrokeWidth": 0},
                  "scale": {"domain": ["reference", "pinned"], "range": ["#3b6ea8", "#f28e2b"]}},
        "opacity": {"condition": {"test": chosen, "value": 1.0}, "value": 0.85 if highlight is None else 0.6},
        "strokeWidth": {"condition": {"test": chosen, "value": 2.5}, "value": 0},
        "tooltip": [{"field": "vector"}, {"field": "channel"},
                    {"field": "value", "type": "quantitative", "format": ".3f"}],
    }
    if vectors.pin_c is not None:  # the pin's bar next to the reference's, never on top of it
        encoding["xOffset"] = {"field": "vector", "sort": ["reference", "pinned"]}
    spec = {
        "mark": {"type": "bar", "stroke": "#111111", "cursor": "pointer"},
        "params": [{"name": "pick", "select": {"type": "point", "fields": ["channel"], "on": "click"}}],
        "encoding": encoding,
        "height": 280, "title": "Feature vector at the reference",
    }
    st.vega_lite_chart(_vector_frame(vectors, order), spec, on_select="rerun", key=key, width="stretch")


def _vector_frame(vectors, order) -> pd.DataFrame:
    """Long table ``channel, value, vector`` of the channels ``order``, built from columns
    (not row dicts: cheaper per click)."""
    frames = [pd.DataFrame({"channel": order, "value": values[order], "vector": name})
              for name, values in (("reference", vectors.ref_c), ("pinned", vectors.pin_c)) if values is not None]
    return pd.concat(frames, ignore_index=True)
