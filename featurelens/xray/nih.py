"""NIH ChestX-ray14 (Wang et al., CVPR 2017) as cacheable images: a folder of NIH PNGs and their
labels, which never need a download — the NIH tables ship inside the ``torchxrayvision`` package
(``data/Data_Entry_2017_v2020.csv.gz``: findings, patient, view; ``data/BBox_List_2017.csv.gz``:
expert boxes of 8 findings on 880 images).

The images are joined to the table on their file name (``00000001_000.png``); each finding
becomes one boolean column named as NIH names it (``Cardiomegaly``, ``Pleural_Thickening``, …,
``No Finding``), next to ``finding_labels``, ``patient_id``, ``patient_age``, ``patient_sex``,
``view_position`` (PA/AP) and ``follow_up``.

>>> table = nih_label_table()
>>> row = table.loc["00000001_000.png"]
>>> row["finding_labels"], bool(row["Cardiomegaly"]), row["view_position"], int(row["patient_age"])
('Cardiomegaly', True, 'PA', 57)
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pandas as pd

from ..images import GalleryImage, folder_images

__all__ = ["NIH_FINDINGS", "NIH_PNG_SIDE", "NIH_TABLE_COLUMNS", "ExpertBox", "NihDataError", "example_query",
           "expert_boxes", "finding_columns", "nih_images", "nih_label_table", "nih_table_path"]

NIH_FINDINGS = ("Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Effusion", "Emphysema", "Fibrosis",
                "Hernia", "Infiltration", "Mass", "Nodule", "Pleural_Thickening", "Pneumonia", "Pneumothorax",
                "No Finding")
"""The 14 findings of ChestX-ray14 and ``No Finding``, as NIH spells them: one boolean column each."""

NIH_PNG_SIDE = 1024
"""NIH distributes its PNGs at 1024×1024 pixels; the expert boxes are in those pixels."""

NIH_TABLE_COLUMNS = ("finding_labels", "patient_id", "patient_age", "patient_sex", "view_position", "follow_up")
"""The non-finding columns a NIH cache carries (besides ``nih_labelled``)."""

_RENAMES = {"Finding Labels": "finding_labels", "Patient ID": "patient_id", "Patient Age": "patient_age",
            "Patient Gender": "patient_sex", "View Position": "view_position", "Follow-up #": "follow_up"}
_BOX_FINDINGS = {"Infiltrate": "Infiltration"}  # the box list's spelling → the findings' spelling


class NihDataError(ValueError):
    """The NIH tables are missing, or a folder has no image the NIH table knows."""


def nih_table_path(name: str) -> Path:
    """The path of one of the tables that ship in torchxrayvision's ``data`` folder.

    Raises:
        NihDataError: torchxrayvision is not installed, or lacks the file.
    """
    spec = importlib.util.find_spec("torchxrayvision")   # found, not imported (imports torch and skimage)
    if spec is None or not spec.submodule_search_locations:
        raise NihDataError("the NIH label tables ship inside the torchxrayvision package, which is not installed: "
                           "pip install torchxrayvision (it is in requirements.txt)")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / name
    if not path.is_file():
        raise NihDataError(f"torchxrayvision has no data/{name} (looked at {path}); reinstall torchxrayvision 1.5 or "
                           "later")
    return path


@functools.lru_cache(maxsize=1)
def nih_label_table() -> pd.DataFrame:
    """The whole NIH table (112,120 images), indexed by file name, one boolean column per
    :data:`NIH_FINDINGS` plus :data:`NIH_TABLE_COLUMNS`. Read once per process (about 1 s)."""
    raw = pd.read_csv(nih_table_path("Data_Entry_2017_v2020.csv.gz"))
    table = raw.rename(columns=_RENAMES).set_index("Image Index")
    findings = table["finding_labels"].astype(str).str.split("|")
    for finding in NIH_FINDINGS:
        table[finding] = findings.apply(lambda labels, f=finding: f in labels)
    table["patient_age"] = table["patient_age"].astype("int64")
    return table[[*NIH_TABLE_COLUMNS, *NIH_FINDINGS]]


@dataclass(frozen=True)
class ExpertBox:
    """One expert box of NIH's ``BBox_List_2017``: the finding and ``(x0, y0, x1, y1)`` in fractions
    of the image (x right, y down)."""

    finding: str
    box_xyxy: tuple[float, float, float, float]


@functools.lru_cache(maxsize=1)
def _box_table() -> pd.DataFrame:
    raw = pd.read_csv(nih_table_path("BBox_List_2017.csv.gz"))
    return raw.iloc[:, :6].set_axis(["file", "finding", "x", "y", "w", "h"], axis=1)


def expert_boxes(file_name: str) -> tuple[ExpertBox, ...]:
    """The expert boxes of one NIH image (by file name, e.g. ``00001369_000.png``), possibly none.

    >>> [(b.finding, tuple(round(v, 2) for v in b.box_xyxy)) for b in expert_boxes("00001369_000.png")]
    [('Cardiomegaly', (0.33, 0.27, 0.87, 0.65))]
    """
    rows = _box_table()[_box_table()["file"] == Path(file_name).name]
    boxes = []
    for row in rows.itertuples():
        x0, y0 = max(0.0, row.x / NIH_PNG_SIDE), max(0.0, row.y / NIH_PNG_SIDE)
        x1, y1 = min(1.0, (row.x + row.w) / NIH_PNG_SIDE), min(1.0, (row.y + row.h) / NIH_PNG_SIDE)
        if x1 > x0 and y1 > y0:
            boxes.append(ExpertBox(_BOX_FINDINGS.get(row.finding, row.finding), (x0, y0, x1, y1)))
    return tuple(boxes)


def example_query(table: pd.DataFrame, finding: str) -> str:
    """The id of a good first query: the first image with ``finding`` that has an expert box for
    it, else the first with the finding, else the first image (``table``: a cache's metadata with
    ``id``, ``file`` and the finding's yes/no column)."""
    has = table[table[finding].astype(bool)] if finding in table else table.iloc[:0]
    boxes = _box_table()
    boxed = set(boxes.loc[boxes["finding"].map(lambda f: _BOX_FINDINGS.get(f, f)) == finding, "file"])
    with_box = [i for i, file in zip(has["id"], has["file"]) if Path(str(file)).name in boxed]
    return (with_box or list(has["id"]) or list(table["id"]))[0]


def nih_images(folder: str | Path, *, max_images: int | None = None) -> tuple[tuple[GalleryImage, ...], pd.DataFrame]:
    """The PNGs of a folder of NIH images (searched recursively) and their metadata table.

    Args:
        folder: a folder holding NIH ChestX-ray14 PNGs under their NIH file names (any size:
            the official 1024×1024 files, or smaller copies).
        max_images: keep the first ``max_images`` images (sorted by path); default all.

    Returns:
        ``(images, table)``: one row per image with ``id, file, source, caption, license, label,
        domain`` (``label``: the NIH finding labels; ``domain`` empty), then
        :data:`NIH_TABLE_COLUMNS`, one boolean column per :data:`NIH_FINDINGS`, and
        ``nih_labelled`` (False for a file the NIH table does not list: its findings are all
        False and its other columns empty).

    Raises:
        NihDataError: no image in the folder has a NIH file name.
        GalleryError: the folder does not exist or holds no image.
    """
    images = folder_images(folder)[:max_images]
    nih = nih_label_table()
    names = [Path(image.path).name for image in images]
    known = [name in nih.index for name in names]
    if not any(known):
        raise NihDataError(f"none of the {len(images)} images in {str(folder)!r} has a NIH ChestX-ray14 file name "
                           f"(like 00000001_000.png; found e.g. {names[0]!r}): this recipe needs NIH's PNGs under "
                           "their own names")
    rows = nih.reindex(names)
    table = pd.DataFrame({
        "id": [image.id for image in images], "file": [image.id for image in images],
        "source": [str(image.path) for image in images], "caption": names,
        "license": "NIH Clinical Center ChestX-ray14: no restrictions on use (see the NIH release notes)",
        "label": rows["finding_labels"].fillna("").tolist(), "domain": ""})
    for column in NIH_TABLE_COLUMNS:
        values = rows[column]
        table[column] = (values.fillna(-1).astype("int64") if column in ("patient_id", "patient_age", "follow_up")
                         else values.fillna("").astype(str)).tolist()
    for finding in NIH_FINDINGS:
        table[finding] = rows[finding].fillna(False).astype(bool).tolist()
    table["nih_labelled"] = known
    return images, table


def finding_columns(table: pd.DataFrame, known: Sequence[str] = NIH_FINDINGS) -> list[str]:
    """The boolean columns of a metadata table that name findings (``known`` first, in their
    order, then any other boolean column except ``nih_labelled``)."""
    flags = [c for c in table.columns if pd.api.types.is_bool_dtype(table[c]) and c != "nih_labelled"]
    return [c for c in known if c in flags] + [c for c in flags if c not in known]
