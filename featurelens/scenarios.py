"""Scenarios and cache recipes as data.

A scenario (``scenarios/<id>.toml``) says which page shows it, which model and layers it
uses, which images or cache, preset views, and the lesson: what to try, what to notice,
questions to discuss. A cache recipe (``cache_recipes/<name>.toml``) says where a dataset
comes from (URL, sha256, size, license) and how its feature cache is built.
Adding either needs no Python; :func:`validate_scenario` checks every reference.

Scenario file::

    id = "model_layers"                 # same as the file stem
    title = "Model & layers"
    page = "model_layers"               # the page in pages/ that renders it
    order = 1                           # position in the app's list of scenarios
    model = "efficientnet_lite0"        # registry name
    layers = ["stage2", "stage3", "stage5", "stage7"]
    images = ["chelsea", "coffee"]      # bundled gallery ids (optional)
    cache_recipe = ""                   # a cache_recipes/ name (optional)

    [lesson]
    summary = "One paragraph: what this scenario shows."
    try = ["…"]
    notice = ["…"]
    discuss = ["…"]

    [[presets]]                         # optional, any number
    name = "Cat's eye, late layer"
    image = "chelsea"
    layer = "stage7"
    point = [0.37, 0.35]                # reference point, normalised (x, y) in [0, 1]
    note = "What this preset shows."

    [[presets.claims]]                  # at least one per preset: what it shows, checked on the model
    kind = "region_in_top"              # see featurelens.similarity.claims and featurelens.search.claims
    says = "the other eye lights up"
    region = [0.65, 0.36, 0.75, 0.48]   # a box [x0, y0, x1, y1] or a polygon [[x, y], …], normalised
    top_fraction = 0.1

    [[regions]]                         # optional: named query regions a page offers
    name = "heart"
    polygon = [[0.45, 0.45], [0.7, 0.5], [0.6, 0.8]]   # or box = [x0, y0, x1, y1], normalised

    [options]                           # optional: page settings (e.g. default_finding = "Cardiomegaly")

    [[claims]]                          # optional: claims of the lesson's general lines
    kind = "layer_brighter"
    image = "chelsea"
    point = [0.37, 0.35]
    layer = "stage7"
    than = "stage2"
    margin = 0.4

A claim leaves out what its preset says: ``image`` and ``ref_image`` (the preset's image),
``point``, ``layer``, ``images``, the region-search fields ``domain``, ``box``,
``model_a``/``layer_a``/``model_b``/``layer_b``, the invariance fields ``transform``, ``values``,
``center`` and ``than_point`` (the preset's ``point_b``; see :mod:`featurelens.invariance.claims`)
and the few-shot fields ``support`` (the preset's image), ``support_region``, ``query``,
``query_region``, ``method``, ``layers``, ``threshold`` (:mod:`featurelens.segmentation.claims`);
``model`` and ``recipe`` default to the scenario's ``model`` and ``cache_recipe``.
``tests/test_lesson_claims.py`` checks every claim on the real offline model, computed the way
the pages compute their views.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .images import bundled_gallery
from .models import get_spec
from .invariance import SWEEP_CLAIMS
from .search.claims import SEARCH_CLAIMS
from .segmentation import SEGMENTATION_CLAIMS
from .similarity import IMAGE_CLAIMS, LessonClaim

__all__ = ["Claim", "CLAIM_KINDS", "Lesson", "NamedRegion", "Preset", "Scenario", "CacheRecipe", "ScenarioError", "load_scenario",
           "load_scenarios", "load_recipe", "load_recipes", "validate_scenario"]


class ScenarioError(ValueError):
    """A scenario or recipe file that does not follow the schema; the message names file and field."""


_Unit = Annotated[float, Field(ge=0.0, le=1.0)]

CLAIM_KINDS: dict[str, type[LessonClaim]] = {cls.model_fields["kind"].default: cls
                                              for cls in (*IMAGE_CLAIMS, *SEARCH_CLAIMS, *SWEEP_CLAIMS,
                                                          *SEGMENTATION_CLAIMS)}
"""Every claim kind a scenario file may use, by its ``kind``."""

Claim = Annotated[Union[tuple(CLAIM_KINDS.values())], Field(discriminator="kind")]
"""One claim of a scenario file: the record of its ``kind``."""

_PRESET_DEFAULTS = {"image": "image", "ref_image": "image", "point": "point", "layer": "layer", "images": "images",
                    "domain": "domain", "box": "box", "model_a": "model_a", "layer_a": "layer_a",
                    "model_b": "model_b", "layer_b": "layer_b",
                    # invariance: the sweep and the two references; few-shot: support, query and method
                    "transform": "transform", "values": "values", "center": "center", "than_point": "point_b",
                    "support": "image", "support_region": "support_region", "query": "query",
                    "query_region": "query_region", "method": "method", "layers": "layers",
                    "threshold": "threshold"}  # claim field: preset field


def _with_defaults(claim: Any, defaults: dict[str, Any]) -> Any:
    """A claim's table with the fields it leaves out taken from ``defaults`` (those it has)."""
    kind = claim.get("kind") if isinstance(claim, dict) else None
    if kind not in CLAIM_KINDS:
        return claim  # the schema reports the unknown kind
    fields = CLAIM_KINDS[kind].model_fields
    return {**{k: v for k, v in defaults.items() if k in fields and v not in (None, "", [], ())}, **claim}


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class Lesson(_Record):
    """What a page teaches: a summary, then what to try, notice and discuss."""

    summary: str
    try_: tuple[str, ...] = Field(default=(), alias="try")
    notice: tuple[str, ...] = ()
    discuss: tuple[str, ...] = ()


class Preset(BaseModel):
    """A ready-made view: an image, a layer and an optional reference point (normalised x, y).
    Fields a page adds (``images``, ``mode``, …) are kept in ``extra``."""

    model_config = ConfigDict(frozen=True, extra="allow")

    name: str
    image: str
    layer: str = ""
    point: tuple[_Unit, _Unit] | None = None
    note: str = ""
    claims: tuple[Claim, ...] = ()

    @property
    def extra(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class NamedRegion(_Record):
    """A ready-made query region a page offers by name (e.g. "heart"): a polygon ``[[x, y], …]``
    (at least 3 points) or a box ``[x0, y0, x1, y1]``, in fractions of the image."""

    name: str
    polygon: tuple[tuple[_Unit, _Unit], ...] = ()
    box: tuple[_Unit, _Unit, _Unit, _Unit] | None = None
    note: str = ""

    @model_validator(mode="after")
    def _one_shape(self) -> "NamedRegion":
        if (len(self.polygon) >= 3) == (self.box is not None):
            raise ValueError(f"region {self.name!r} needs either a polygon of at least 3 points or a box")
        if self.box is not None and not (self.box[0] < self.box[2] and self.box[1] < self.box[3]):
            raise ValueError(f"region {self.name!r}: a box needs x0 < x1 and y0 < y1")
        return self

    @property
    def shape(self) -> tuple:
        """The polygon, or the box."""
        return self.polygon or self.box


class Scenario(_Record):
    """One scenario file (see the module docstring for the format)."""

    id: str
    title: str
    page: str
    model: str
    layers: tuple[str, ...] = ()
    lesson: Lesson
    images: tuple[str, ...] = ()
    cache_recipe: str = ""
    presets: tuple[Preset, ...] = ()
    claims: tuple[Claim, ...] = ()
    regions: tuple[NamedRegion, ...] = ()
    options: dict[str, Any] = {}
    order: int = 100
    source: str = ""

    @model_validator(mode="before")
    @classmethod
    def _claim_defaults(cls, data: Any) -> Any:
        """Fill each claim's left-out fields from its preset and the scenario."""
        if not isinstance(data, dict):
            return data
        scenario = {"model": data.get("model"), "recipe": data.get("cache_recipe")}
        presets = []
        for preset in data.get("presets", ()):
            if isinstance(preset, dict) and isinstance(preset.get("claims"), list):
                defaults = {**scenario, **{field: preset.get(key) for field, key in _PRESET_DEFAULTS.items()}}
                preset = {**preset, "claims": [_with_defaults(c, defaults) for c in preset["claims"]]}
            presets.append(preset)
        claims = data.get("claims", ())
        claims = [_with_defaults(c, scenario) for c in claims] if isinstance(claims, list) else claims
        return {**data, "presets": presets, "claims": claims} if "presets" in data or "claims" in data else data


class CacheRecipe(_Record):
    """Where a dataset comes from and how its cache is built.

    ``kind`` is ``bundled`` (the gallery that ships in installed packages), ``wilds`` (the
    WILDS ``dataset``'s ``split``, downloaded by the ``wilds`` package), ``generated``
    (the bundled photos rendered in ``domains`` with the first ``crops`` crops of
    :data:`featurelens.images.CROPS`), ``folder`` (a local image folder), ``download``
    (``url`` with ``sha256`` and ``size_bytes``), ``nih`` (a folder of NIH ChestX-ray14 PNGs,
    labelled from the NIH table that ships in torchxrayvision) or ``medmnist`` (the MedMNIST
    ``dataset``'s ``split`` at ``size`` pixels, downloaded by the medmnist package).
    """

    name: str
    title: str
    description: str
    kind: Literal["bundled", "generated", "wilds", "folder", "download", "nih", "medmnist"]
    license: str
    model: str
    layers: tuple[str, ...] = ()
    url: str = ""
    sha256: str = ""
    size_bytes: int = Field(default=0, ge=0)
    labels_csv: str = ""
    domains: tuple[str, ...] = ()
    crops: int = Field(default=1, ge=1)
    dataset: str = ""
    split: str = "train"
    max_images: int = Field(default=0, ge=0)
    size: int = Field(default=0, ge=0)
    source: str = ""

    @model_validator(mode="after")
    def _download_needs_checksum(self) -> "CacheRecipe":
        if self.kind == "download" and not (self.url and self.sha256 and self.size_bytes):
            raise ValueError("a download recipe needs url, sha256 and size_bytes")
        if self.kind == "wilds" and not self.dataset:
            raise ValueError("a wilds recipe needs dataset (e.g. \"iwildcam\")")
        if self.kind == "medmnist" and not (self.dataset and self.size):
            raise ValueError("a medmnist recipe needs dataset (e.g. \"chestmnist\") and size (28, 64, 128 or 224)")
        if self.kind == "generated" and not self.domains:
            raise ValueError("a generated recipe needs domains (e.g. [\"photo\", \"sketch\"])")
        return self


def _read_toml(path: Path) -> dict:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: not valid TOML: {exc}") from exc


def _schema_error(path: Path, exc: ValidationError) -> ScenarioError:
    """The first schema problem as one sentence naming the file and the field."""
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"] if "[" not in str(part)) or "(file)"  # not union members
    if error["type"] == "missing":
        return ScenarioError(f"{path}: missing required field {where.split('.')[-1]!r} (at {where})")
    return ScenarioError(f"{path}: field {where}: {error['msg']} (got {error.get('input')!r})")


def _parse(record: type[BaseModel], path: Path, data: dict) -> Any:
    try:
        return record.model_validate({**data, "source": str(path)})
    except ValidationError as exc:
        raise _schema_error(path, exc) from exc


def load_scenario(path: str | Path) -> Scenario:
    """Parse and schema-check one scenario file (references are checked by :func:`validate_scenario`)."""
    path = Path(path)
    scenario = _parse(Scenario, path, _read_toml(path))
    if scenario.id != path.stem:
        raise ScenarioError(f"{path}: id {scenario.id!r} must equal the file name {path.stem!r}")
    return scenario


def load_scenarios(folder: str | Path) -> dict[str, Scenario]:
    """Every ``*.toml`` scenario in ``folder``, by id, in teaching order (``order``, then id)."""
    scenarios = sorted((load_scenario(p) for p in Path(folder).glob("*.toml")), key=lambda s: (s.order, s.id))
    return {s.id: s for s in scenarios}


def load_recipe(path: str | Path) -> CacheRecipe:
    """Parse and schema-check one cache recipe."""
    path = Path(path)
    recipe = _parse(CacheRecipe, path, _read_toml(path))
    if recipe.name != path.stem:
        raise ScenarioError(f"{path}: name {recipe.name!r} must equal the file name {path.stem!r}")
    return recipe


def load_recipes(folder: str | Path) -> dict[str, CacheRecipe]:
    """Every ``*.toml`` recipe in ``folder``, by name."""
    return {r.name: r for r in (load_recipe(p) for p in sorted(Path(folder).glob("*.toml")))}


_CLAIM_LAYERS = (("model", "layer"), ("model", "than"), ("model_a", "layer_a"), ("model_b", "layer_b"))


def _claim_references(claim: LessonClaim) -> tuple[list[tuple[str, str]], list[str], list[str]]:
    """A claim's ``(model, layer)`` pairs, gallery images and cache recipes."""
    fields = claim.model_dump()
    layers = [(fields[m], fields[l]) for m, l in _CLAIM_LAYERS if m in fields and l in fields]
    layers += [(fields["model"], layer) for layer in fields.get("layers", ()) if "model" in fields]
    images = []
    if claim.evidence in ("images", "sweeps"):
        images = [fields[k] for k in ("image", "ref_image", "support", "query") if fields.get(k)]
        images += list(fields.get("images", ()))
        images += [r["image"] for key in ("regions", "unlike") for r in fields.get(key, ())]
    return layers, images, [fields["recipe"]] if fields.get("recipe") else []


def _check_claims(scenario: Scenario, recipes: dict[str, CacheRecipe], gallery_ids: set[str]) -> None:
    """Every preset states a claim; every claim's models, layers, images and recipes resolve."""
    where = scenario.source or scenario.id
    for preset in scenario.presets:
        if not preset.claims:
            raise ScenarioError(f"{where}: preset {preset.name!r} states no claim; add a [[presets.claims]] table "
                                f"(kinds: {', '.join(CLAIM_KINDS)}) saying what the preset shows")
    named = [(f"preset {p.name!r}", c) for p in scenario.presets for c in p.claims]
    for owner, claim in named + [("the lesson", c) for c in scenario.claims]:
        layers, images, claim_recipes = _claim_references(claim)
        try:
            for model, layer in layers:
                get_spec(model).layer(layer)
        except KeyError as exc:
            raise ScenarioError(f"{where}: a {claim.kind} claim of {owner}: {exc}") from exc
        for image in images:
            if image not in gallery_ids:
                raise ScenarioError(f"{where}: a {claim.kind} claim of {owner} names image {image!r}, "
                                    "which is not in the bundled gallery")
        for recipe in claim_recipes:
            if recipe not in recipes:
                raise ScenarioError(f"{where}: a {claim.kind} claim of {owner} needs cache recipe {recipe!r}, "
                                    "not found in cache_recipes/")


def validate_scenario(scenario: Scenario, recipes: dict[str, CacheRecipe], pages: set[str]) -> None:
    """Resolve every reference: model, layers, gallery images, recipe, page, and those of every
    claim; every preset must state a claim. Raises ScenarioError."""
    where = scenario.source or scenario.id
    try:
        spec = get_spec(scenario.model)
        for layer in (*scenario.layers, *(p.layer for p in scenario.presets if p.layer)):
            spec.layer(layer)
    except KeyError as exc:
        raise ScenarioError(f"{where}: {exc}") from exc
    gallery_ids = {g.id for g in bundled_gallery()}
    for image in (*scenario.images, *(p.image for p in scenario.presets)):
        if image not in gallery_ids:
            raise ScenarioError(f"{where}: image {image!r} is not in the bundled gallery ({', '.join(sorted(gallery_ids))})")
    if scenario.cache_recipe and scenario.cache_recipe not in recipes:
        raise ScenarioError(f"{where}: cache recipe {scenario.cache_recipe!r} not found in cache_recipes/")
    if scenario.page not in pages:
        raise ScenarioError(f"{where}: page {scenario.page!r} not among {sorted(pages)}")
    _check_claims(scenario, recipes, gallery_ids)
