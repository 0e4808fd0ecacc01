"""Do images with a finding score higher than images without it? Grouped score statistics for
region search: AUC (``sklearn.metrics.roc_auc_score``), its bootstrap interval
(``scipy.stats.bootstrap``, each group resampled on its own) and the Mann–Whitney U test
(``scipy.stats.mannwhitneyu``, two-sided), with the size of each group.

The AUC is the chance that an image with the finding scores higher than one without it (ties
count half): 0.5 means the scores do not tell the groups apart, 1.0 that every image with the
finding scores higher.

>>> c = compare_scores([0.9, 0.8, 0.7], [0.6, 0.5, 0.4], finding="Cardiomegaly")
>>> c.auc, c.n_with, c.n_without, round(c.p_value, 3)
(1.0, 3, 3, 0.1)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import roc_auc_score

__all__ = ["AGE_BANDS", "CONFOUNDERS", "GroupComparison", "GroupStatsError", "MIN_GROUP", "compare_by",
           "compare_finding", "compare_scores", "confounder_labels", "finding_scores"]

MIN_GROUP = 2
"""Images each group needs for an AUC, an interval and a test."""

AGE_BANDS = ((0, 40, "under 40"), (40, 60, "40–59"), (60, 200, "60 and over"))
"""Age bands (years, lower bound included) for grouping by ``patient_age``."""

CONFOUNDERS = {"view_position": "view (PA: from the back, AP: from the front)", "patient_sex": "sex",
               "patient_age": "age"}
"""Columns a chart can be grouped by, with what people call them."""


class GroupStatsError(ValueError):
    """A comparison that cannot be made (an empty group, one image); the message says why in plain
    words and what to change."""


@dataclass(frozen=True)
class GroupComparison:
    """Best scores of images with vs without a finding.

    Attributes:
        finding: the finding compared (a column name, e.g. ``Cardiomegaly``).
        n_with, n_without: the size of each group.
        median_with, median_without: each group's median score.
        auc: the area under the ROC curve of the score as a detector of the finding.
        ci_low, ci_high: the bootstrap percentile interval of the AUC at ``confidence``.
        confidence: e.g. 0.95.
        n_resamples: bootstrap resamples drawn (each group resampled on its own, seeded).
        u_statistic: Mann–Whitney U of the with-group (``auc · n_with · n_without``).
        p_value: two-sided Mann–Whitney p-value (exact for small groups without ties).
        note: a plain sentence when the numbers need one (every score equal), else ``""``.
    """

    finding: str
    n_with: int
    n_without: int
    median_with: float
    median_without: float
    auc: float
    ci_low: float
    ci_high: float
    confidence: float
    n_resamples: int
    u_statistic: float
    p_value: float
    note: str = ""

    def sentence(self) -> str:
        """The result in one sentence without jargon."""
        chance = round(100 * self.auc)
        return (f"An image with {self.finding} scores higher than one without it {chance}% of the time "
                f"(AUC {self.auc:.2f}, {round(100 * self.confidence)}% interval {self.ci_low:.2f}–{self.ci_high:.2f}; "
                f"{self.n_with} images with, {self.n_without} without; Mann–Whitney p = {self.p_value:.2g}).")


def _auc_statistic(with_s: np.ndarray, without_s: np.ndarray, axis: int = -1) -> np.ndarray:
    """AUC along ``axis`` from mid-ranks: ``(R_with − n(n+1)/2) / (n_with · n_without)`` (vectorised)."""
    n_with, n_without = with_s.shape[axis], without_s.shape[axis]
    ranks = stats.rankdata(np.concatenate([with_s, without_s], axis=axis), axis=axis)
    rank_sum = np.take(ranks, np.arange(n_with), axis=axis).sum(axis=axis)
    return (rank_sum - n_with * (n_with + 1) / 2) / (n_with * n_without)


def compare_scores(scores_with: Sequence[float], scores_without: Sequence[float], *, finding: str = "the finding",
                   n_resamples: int = 2000, confidence: float = 0.95, seed: int = 0) -> GroupComparison:
    """Compare two groups of scores: AUC, bootstrap interval, Mann–Whitney test.

    Args:
        scores_with: the best scores of the images with the finding.
        scores_without: the best scores of the images without it.
        finding: its name, for messages.
        n_resamples: bootstrap resamples.
        confidence: the interval's level.
        seed: the bootstrap's seed (same inputs and seed → the same interval).

    Raises:
        GroupStatsError: a group has fewer than :data:`MIN_GROUP` images, or a score is not finite.
    """
    with_s = np.asarray(scores_with, dtype=np.float64).ravel()
    without_s = np.asarray(scores_without, dtype=np.float64).ravel()
    for name, group in ((f"with {finding}", with_s), (f"without {finding}", without_s)):
        if group.size == 0:
            raise GroupStatsError(f"No image {name} here, so there is nothing to compare: pick another finding or "
                                  "group, or use a larger set of images.")
        if group.size < MIN_GROUP:
            raise GroupStatsError(f"Only one image {name}: one image cannot show whether the groups differ. "
                                  f"Each group needs at least {MIN_GROUP} images; pick another finding or group, or "
                                  "use a larger set of images.")
        if not np.all(np.isfinite(group)):
            raise GroupStatsError(f"Some scores {name} are not numbers (NaN or infinite): search again.")
    labels = np.r_[np.ones(with_s.size), np.zeros(without_s.size)]
    auc = float(roc_auc_score(labels, np.r_[with_s, without_s]))
    test = stats.mannwhitneyu(with_s, without_s, alternative="two-sided")
    all_tied = np.unique(np.r_[with_s, without_s]).size == 1
    if all_tied:   # every resample has AUC 0.5: the interval is that point
        low = high = auc
    else:
        interval = stats.bootstrap((with_s, without_s), _auc_statistic, n_resamples=n_resamples,
                                   confidence_level=confidence, method="percentile", vectorized=True,
                                   random_state=np.random.default_rng(seed)).confidence_interval
        low, high = float(interval.low), float(interval.high)
    note = ("Every image has the same score, so the scores cannot tell the groups apart at all (AUC 0.5)."
            if all_tied else "")
    return GroupComparison(finding, int(with_s.size), int(without_s.size), float(np.median(with_s)),
                           float(np.median(without_s)), auc, low, high, confidence, n_resamples,
                           float(test.statistic), float(test.pvalue), note)


def finding_scores(scores_table: pd.DataFrame, finding: str, *, by: str | None = None,
                   region: str | None = None) -> pd.DataFrame:
    """Every ranked image's best score with its group, for box plots and comparisons.

    Args:
        scores_table: a :meth:`~featurelens.search.SearchResult.scores_table` (``score``, ``valid``
            and the cache's metadata columns).
        finding: a boolean column (e.g. ``Cardiomegaly``).
        by: a confounder column (see :data:`CONFOUNDERS`) for a ``stratum`` column, or None.
        region: a name for these scores (e.g. ``heart``), kept in a ``region`` column.

    Returns:
        the valid rows with ``score``, ``has_finding`` (bool), ``group`` (``with <finding>`` /
        ``without <finding>``), ``stratum`` (the confounder's label, or ``all images``) and ``region``.

    Raises:
        GroupStatsError: the table has no such column, or the column is not yes/no.
    """
    for column in (finding, *([by] if by else [])):
        if column not in scores_table:
            raise GroupStatsError(f"The results have no column {column!r}; they have "
                                  f"{', '.join(map(str, scores_table.columns))}.")
    rows = scores_table[scores_table["valid"]].copy()
    if not pd.api.types.is_bool_dtype(rows[finding]):
        raise GroupStatsError(f"Column {finding!r} is not a yes/no finding column; pick a finding.")
    rows["has_finding"] = rows[finding].astype(bool)
    rows["group"] = np.where(rows["has_finding"], f"with {finding}", f"without {finding}")
    rows["stratum"] = confounder_labels(rows, by) if by else "all images"
    rows["region"] = region or ""
    return rows


def confounder_labels(table: pd.DataFrame, by: str) -> pd.Series:
    """A confounder column as readable group labels: ages in :data:`AGE_BANDS`, ``F``/``M`` as
    female/male, views as they are; missing values become ``unknown``.

    >>> confounder_labels(pd.DataFrame({"patient_age": [12, 40, 75, -1]}), "patient_age").tolist()
    ['age under 40', 'age 40–59', 'age 60 and over', 'age unknown']
    """
    values = table[by]
    if by == "patient_age":
        def band(age: float) -> str:
            return next((f"age {label}" for lo, hi, label in AGE_BANDS if lo <= age < hi), "age unknown")
        return values.map(lambda v: band(float(v)) if pd.notna(v) and float(v) >= 0 else "age unknown")
    if by == "patient_sex":
        return values.map({"F": "female", "M": "male"}).fillna("sex unknown")
    return values.astype(str).replace("", "unknown").map(lambda v: f"{v} view" if by == "view_position" else v)


def compare_finding(scores: pd.DataFrame, finding: str, **options) -> GroupComparison:
    """:func:`compare_scores` of a :func:`finding_scores` table (all its rows)."""
    has = scores["has_finding"].to_numpy(bool)
    values = scores["score"].to_numpy(np.float64)
    return compare_scores(values[has], values[~has], finding=finding, **options)


def compare_by(scores: pd.DataFrame, finding: str, **options) -> list[tuple[str, GroupComparison | str]]:
    """One comparison per ``stratum`` of a :func:`finding_scores` table, in the strata's sorted
    order; a stratum that cannot be compared gets its plain message instead of a comparison."""
    out: list[tuple[str, GroupComparison | str]] = []
    for stratum, rows in scores.groupby("stratum", sort=True):
        try:
            out.append((str(stratum), compare_finding(rows, finding, **options)))
        except GroupStatsError as exc:
            out.append((str(stratum), str(exc)))
    return out
