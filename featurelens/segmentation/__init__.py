"""Few-shot segmentation without training: segment a query image by its features' similarity
to a masked region of a support image (the blog post's "baseline for few-shot
segmentation"), with self-similarity when support and query are the same image.

:mod:`.methods` holds the methods (one call shape, :data:`SEG_METHODS`); :mod:`.segment`
fuses layers, thresholds and scores (IoU, Dice); :mod:`.datasets` reads image folders with
masks (CamVid, FSS-1000, VOC layouts); :mod:`.claims` checks the lessons' numbers.

>>> list_methods()
['prototype', 'nearest_part', 'fg_bg']
"""

from .methods import (SegMethod, SEG_METHODS, get_method, list_methods, EmptyMaskError, FOREGROUND_MIN_WEIGHT,
                      prototype_scores, nearest_part_scores, fg_bg_scores)
from .segment import (SegmentationResult, segment, fuse_scores, choose_threshold, iou, dice, region_mask, draw_region,
                      mask_overlay, THRESHOLD_MODES)
from .claims import FewShotIoU, FewShotBetter, SEGMENTATION_CLAIMS, claim_segmentation
from .datasets import (MaskedImage, LAYOUTS, find_masked_images, masked_folders, read_mask, class_names,
                       IGNORE_VALUE)

__all__ = ["SegMethod", "SEG_METHODS", "get_method", "list_methods", "EmptyMaskError", "FOREGROUND_MIN_WEIGHT",
           "prototype_scores", "nearest_part_scores", "fg_bg_scores", "SegmentationResult", "segment", "fuse_scores",
           "choose_threshold", "iou", "dice", "region_mask", "draw_region", "mask_overlay", "THRESHOLD_MODES",
           "MaskedImage", "LAYOUTS", "find_masked_images", "masked_folders", "read_mask", "class_names",
           "IGNORE_VALUE", "FewShotIoU", "FewShotBetter", "SEGMENTATION_CLAIMS", "claim_segmentation"]
