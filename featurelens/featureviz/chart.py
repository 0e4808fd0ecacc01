"""The top channels of a facet as a chart: for each channel, the target's pooled activation and
those of the starting image and of the result (what the page shows beside each facet).

>>> import numpy as np
>>> table = channel_table(np.array([7, 3]), np.array([2.0, 1.0]), np.array([0.5, 0.4]), np.array([2.5, 1.5]))
>>> table.to_dict("records")[:3]
[{'channel': '7', 'image': 'target', 'activation': 2.0}, {'channel': '7', 'image': 'start', 'activation': 0.5}, {'channel': '7', 'image': 'result', 'activation': 2.5}]
"""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

__all__ = ["channel_table", "channel_chart", "SERIES"]

SERIES = {"target": "#7f7f7f", "start": "#9ecae1", "result": "#d62728"}


def channel_table(channels_k: np.ndarray, target_k: np.ndarray, start_k: np.ndarray, final_k: np.ndarray,
                  limit: int | None = None) -> pd.DataFrame:
    """Long table ``channel, image, activation`` of the first ``limit`` channels (all by default)."""
    n = len(channels_k) if limit is None else min(limit, len(channels_k))
    rows = [(str(int(channels_k[i])), name, float(values[i]))
            for i in range(n) for name, values in (("target", target_k), ("start", start_k), ("result", final_k))]
    return pd.DataFrame(rows, columns=["channel", "image", "activation"])


def channel_chart(table: pd.DataFrame, height: int = 220) -> alt.Chart:
    """Grouped bars: one group per channel (strongest target first), target / start / result."""
    order = list(dict.fromkeys(table["channel"]))
    return (alt.Chart(table).mark_bar()
            .encode(x=alt.X("channel:N", sort=order, title="top channels of the target", axis=alt.Axis(labelAngle=0)),
                    xOffset=alt.XOffset("image:N", sort=list(SERIES)),
                    y=alt.Y("activation:Q", title="mean activation"),
                    color=alt.Color("image:N", sort=list(SERIES), title=None,
                                    scale=alt.Scale(domain=list(SERIES), range=list(SERIES.values())),
                                    legend=alt.Legend(orient="top")),
                    tooltip=["channel", "image", alt.Tooltip("activation:Q", format=".3f")])
            .properties(height=height))
