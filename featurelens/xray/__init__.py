"""Chest X-rays: NIH ChestX-ray14 and ChestMNIST as cacheable images with one yes/no column per
finding, expert boxes, and grouped score statistics (do images with a
finding score higher?) for the Chest X-ray scenario (VFS, "Chest X-ray Classifiers").

>>> from featurelens.xray import compare_scores
>>> compare_scores([0.9, 0.7], [0.8, 0.1]).auc
0.75
"""

from .chestmnist import CHESTMNIST_FINDINGS, ChestMnistError, ChestMnistImage, chestmnist_images
from .nih import (NIH_FINDINGS, NIH_PNG_SIDE, NIH_TABLE_COLUMNS, ExpertBox, NihDataError, example_query, expert_boxes,
                  finding_columns, nih_images, nih_label_table, nih_table_path)
from .stats import (AGE_BANDS, CONFOUNDERS, MIN_GROUP, GroupComparison, GroupStatsError, compare_by, compare_finding,
                    compare_scores, confounder_labels, finding_scores)

__all__ = [
    "CHESTMNIST_FINDINGS", "ChestMnistError", "ChestMnistImage", "chestmnist_images",
    "NIH_FINDINGS", "NIH_PNG_SIDE", "NIH_TABLE_COLUMNS", "ExpertBox", "NihDataError", "example_query", "expert_boxes",
    "finding_columns", "nih_images", "nih_label_table", "nih_table_path",
    "AGE_BANDS", "CONFOUNDERS", "MIN_GROUP", "GroupComparison", "GroupStatsError", "compare_by", "compare_finding",
    "compare_scores", "confounder_labels", "finding_scores",
]
