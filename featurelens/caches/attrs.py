"""The cache's root attributes as one validated record (:class:`CacheAttrs`): types and ranges are
checked when a cache is opened or resumed, so a hand-edited or damaged ``zarr.json`` is refused
with the field, its value and what was expected, never with a ``TypeError`` deep inside a read.

>>> validate_attrs({"featurelens_cache_format": 1, "chunk_images": 0}, "x.zarr")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
featurelens.caches.errors.CacheAttributesError: the cache at x.zarr has no 'complete' attribute...
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import CacheAttributesError, CacheError
from .format import _MEASURED, CACHE_FORMAT, _rebuild_hint

__all__ = ["CacheAttrs", "validate_attrs"]

_Positive = Annotated[int, Field(gt=0)]
_Name = Annotated[str, Field(min_length=1)]


class _Record(BaseModel):
    """Strict JSON record: no coercion ("5" is not 5, true is not 1); unknown keys are kept."""

    model_config = ConfigDict(strict=True, extra="allow", frozen=True)


class LayerEntry(_Record):
    shape: tuple[_Positive, _Positive, _Positive]  # (H, W, C) of one image's features
    stride: _Positive


class DatasetEntry(_Record):
    name: str
    description: str


class ColumnEntry(_Record):
    name: _Name
    array: Annotated[str, Field(pattern=r"^metadata/[^/]+$")]
    kind: Literal["str", "int64", "float64", "bool"]


class MetadataEntry(_Record):
    columns: list[ColumnEntry]
    sha256: str


class SkippedEntry(_Record):
    id: str
    error: str


class CacheAttrs(_Record):
    """The root attributes of a cache (see :mod:`featurelens.caches.format` for their meaning)."""

    featurelens_cache_format: Literal[1]
    complete: bool
    model: _Name
    weights_sha256: str | None
    preprocessing: dict[str, Any]
    input_hw: tuple[_Positive, _Positive]
    layers: Annotated[dict[_Name, LayerEntry], Field(min_length=1)]
    layout: Literal["NHWC"]
    dtype: Literal["float16", "int8"]
    scale: float | Literal["per_cell"]
    dataset: DatasetEntry
    n_images: _Positive
    chunk_images: _Positive
    thumbnail_hw: tuple[_Positive, _Positive]
    created: str
    completed: str | None = None
    recipe: str | None = None
    image_ids: list[str]
    image_sources: list[str]
    metadata: MetadataEntry
    skipped: list[SkippedEntry] = []
    build_command: str | None = None
    batch_size: _Positive | None = None  # images per forward pass of the build (absent in older caches)

    @model_validator(mode="after")
    def _consistent(self) -> CacheAttrs:
        n = self.n_images
        for field in ("image_ids", "image_sources"):
            if len(getattr(self, field)) != n:
                raise ValueError(f"{field} has {len(getattr(self, field))} entries but n_images is {n}")
        if len(set(self.image_ids)) != n:
            raise ValueError("image_ids repeat an id")
        if self.chunk_images > n:
            raise ValueError(f"chunk_images {self.chunk_images} is more than n_images {n}")
        if (self.dtype == "int8") != (self.scale == "per_cell"):
            raise ValueError(f"scale {self.scale!r} does not fit dtype {self.dtype!r} "
                             "(float16 stores a number, int8 'per_cell')")
        missing = set(_MEASURED) - {column.name for column in self.metadata.columns}
        if missing:
            raise ValueError(f"metadata.columns lacks the measured columns {sorted(missing)}")
        return self

    @property
    def n_chunks(self) -> int:
        """Chunks along the image axis: ``ceil(n_images / chunk_images)``."""
        return -(-self.n_images // self.chunk_images)


def validate_attrs(attrs: Mapping[str, Any], where: str) -> CacheAttrs:
    """Check a cache's root attributes; return them as a :class:`CacheAttrs`.

    Raises:
        CacheError: no ``featurelens_cache_format`` (not a cache), or another format version.
        CacheAttributesError: a required attribute is missing, or one has the wrong type or range
            (the message names the field, its value and what was expected).
    """
    if "featurelens_cache_format" not in attrs:
        raise CacheError(f"{where} is a zarr group but not a FeatureLens cache: it has no "
                         "'featurelens_cache_format' attribute; build a cache with `python -m featurelens cache build`")
    version = attrs["featurelens_cache_format"]
    if type(version) is not int or version != CACHE_FORMAT:
        raise CacheError(f"the cache at {where} has featurelens_cache_format {version!r}, this FeatureLens "
                         f"reads format {CACHE_FORMAT}: upgrade FeatureLens or rebuild the cache")
    try:
        return CacheAttrs.model_validate_json(json.dumps(dict(attrs)))
    except ValidationError as exc:
        raise CacheAttributesError(_explain(exc, attrs, where)) from None
    except (TypeError, ValueError) as exc:  # values JSON cannot hold (only possible for attrs made in Python)
        raise CacheAttributesError(f"the cache at {where} has attributes that are not JSON ({exc}); "
                                   f"rebuild it with {_rebuild_hint(attrs)}") from None


def _explain(exc: ValidationError, attrs: Mapping[str, Any], where: str) -> str:
    """One sentence per problem (at most three): field, value, expectation; then the fix."""
    errors = exc.errors(include_url=False)
    fix = (f"the zarr.json was damaged or edited by hand: restore the attribute, or rebuild the cache with "
           f"{_rebuild_hint(attrs)}")
    missing = [e for e in errors if e["type"] == "missing" and len(e["loc"]) == 1]
    if missing:
        return f"the cache at {where} has no {missing[0]['loc'][0]!r} attribute: {fix}"
    problems = [_problem(error) for error in errors[:3]]
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return f"the cache at {where} has invalid attributes: {'; '.join(problems)}{more}; {fix}"


def _problem(error: Mapping[str, Any]) -> str:
    """``chunk_images = 0 (Input should be greater than 0)`` from one pydantic error."""
    if not error["loc"]:  # a cross-field check
        return str(error["msg"]).removeprefix("Value error, ")
    field = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error["loc"]).lstrip(".")
    value = repr(error["input"])
    value = value if len(value) <= 60 else value[:57] + "..."
    return f"{field} = {value} ({error['msg']})"
