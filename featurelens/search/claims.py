"""Lesson claims of the region-search pages (*Domain shift*, *Model comparison*), checked on
the real feature caches the pages search.

A claim's query is the preset's: the ``box`` drawn on ``{image}-full-{domain}`` of the
generated ``recipe`` cache (metadata columns ``source_photo`` and ``domain``), searched the
way the pages search (whole layer in memory, the query image left out, ``top_k`` hits).
See :mod:`featurelens.similarity.claims` for the claim records and :class:`ClaimCheck`.
"""

from __future__ import annotations

from typing import Any, Callable, ClassVar, Literal

import pandas as pd
from pydantic import Field, model_validator

from ..similarity.claims import Box, LessonClaim
from .display import top_overlap
from .index import load_features
from .masks import box_mask
from .query import query_from_features
from .api import search_features
from .results import SearchResult

__all__ = ["SearchEvidence", "TopCount", "DomainRank", "OthersLower", "TopOverlap", "SEARCH_CLAIMS"]


class SearchEvidence:
    """Searches on recipe caches, each done once: ``open_cache(recipe, model)`` returns the
    :class:`~featurelens.caches.FeatureCache` of a cache recipe built with a registry model
    (e.g. :func:`featurelens.caches.ensure_recipe_cache`)."""

    def __init__(self, open_cache: Callable[[str, str], Any]) -> None:
        self._open_cache = open_cache
        self._caches: dict[tuple[str, str], Any] = {}
        self._feats: dict[tuple[str, str, str], Any] = {}
        self._results: dict[tuple, SearchResult] = {}

    def cache(self, recipe: str, model: str) -> Any:
        if (recipe, model) not in self._caches:
            self._caches[(recipe, model)] = self._open_cache(recipe, model)
        return self._caches[(recipe, model)]

    def result(self, claim: "_QueryClaim", model: str, layer: str) -> SearchResult:
        """The claim's query searched with ``model`` at ``layer``, as the page searches it."""
        key = (claim.recipe, model, layer, claim.image, claim.domain, claim.box, claim.top_k)
        if key not in self._results:
            cache = self.cache(claim.recipe, model)
            if (claim.recipe, model, layer) not in self._feats:
                self._feats[(claim.recipe, model, layer)] = load_features(cache.features(layer), device="cpu")
            feats = self._feats[(claim.recipe, model, layer)]
            query_id = f"{claim.image}-full-{claim.domain}"
            if query_id not in cache.image_ids:
                raise ValueError(f"{query_id!r} is not in the {claim.recipe!r} cache; a claim's image is a "
                                 "source photo and domain of a generated recipe")
            index = cache.image_ids.index(query_id)
            mask_hw = box_mask(claim.box, tuple(feats.shape[1:3]))
            query = query_from_features(feats[index], mask_hw, model=cache.model_name, layer=layer, image_index=index)
            self._results[key] = search_features(feats, query, image_ids=cache.image_ids, metadata=cache.metadata,
                                                 loaded_n=cache.loaded_n, top_k=claim.top_k, device="cpu")
        return self._results[key]


class _QueryClaim(LessonClaim):
    """The query: ``box`` of ``image`` (a source photo) in ``domain``, ``top_k`` hits."""

    evidence: ClassVar[str] = "search"
    recipe: str
    image: str
    domain: str = "photo"
    box: Box
    top_k: int = Field(10, ge=1)

    def _query_words(self) -> str:
        return f"{self.image} ({self.domain}) box [{', '.join(f'{v:.2f}' for v in self.box)}]"


def _own_photo(result: SearchResult, photo: str) -> pd.DataFrame:
    table = result.scores_table()
    return table[table["source_photo"] == photo]


class TopCount(_QueryClaim):
    """Between ``at_least`` and ``at_most`` of the ``top_k`` hits match every ``where``
    metadata value (e.g. ``{source_photo = "chelsea", domain = "sketch"}``)."""

    kind: Literal["top_count"] = "top_count"
    model: str
    layer: str
    where: dict[str, str] = Field(min_length=1)
    at_least: int = Field(0, ge=0)
    at_most: int | None = None

    def describe(self) -> str:
        upper = f"–{self.at_most}" if self.at_most is not None else " or more"
        where = ", ".join(f"{k}={v}" for k, v in self.where.items())
        return f"{self.model} {self.layer}, {self._query_words()}: {self.at_least}{upper} of the top {self.top_k} have {where}"

    def measure(self, evidence: SearchEvidence) -> tuple[bool, str]:
        top = evidence.result(self, self.model, self.layer).top
        count = sum(all(str(hit.metadata.get(k)) == v for k, v in self.where.items()) for hit in top)
        holds = count >= self.at_least and (self.at_most is None or count <= self.at_most)
        return holds, f"{count} of {len(top)}: " + ", ".join(hit.id for hit in top)


class DomainRank(_QueryClaim):
    """Among the query photo's own images grouped by domain (the box plot's boxes), domain
    ``ranked`` has a median best score of rank ``at_least``…``at_most`` (1 = highest)."""

    kind: Literal["domain_rank"] = "domain_rank"
    model: str
    layer: str
    ranked: str
    at_least: int = Field(1, ge=1)
    at_most: int | None = None

    def describe(self) -> str:
        if self.at_most is None:
            span = f"{self.at_least}th or below"
        else:
            span = f"in the top {self.at_most}" if self.at_least == 1 else f"{self.at_least}th to {self.at_most}th"
        return f"{self.model} {self.layer}, {self._query_words()}: {self.ranked} ranks {span} of the photo's domains"

    def measure(self, evidence: SearchEvidence) -> tuple[bool, str]:
        own = _own_photo(evidence.result(self, self.model, self.layer), self.image)
        medians = own.groupby("domain")["score"].median().sort_values(ascending=False)
        if self.ranked not in medians.index:
            return False, f"no {self.ranked} images of {self.image}; domains {list(medians.index)}"
        rank = list(medians.index).index(self.ranked) + 1
        holds = rank >= self.at_least and (self.at_most is None or rank <= self.at_most)
        return holds, f"rank {rank}; medians " + ", ".join(f"{d} {v:.3f}" for d, v in medians.items())


class OthersLower(_QueryClaim):
    """Every other photo's images (pooled median of best scores) score at least ``margin``
    below the query photo's lowest domain (median)."""

    kind: Literal["others_lower"] = "others_lower"
    model: str
    layer: str
    margin: float = 0.0

    def describe(self) -> str:
        return (f"{self.model} {self.layer}, {self._query_words()}: other photos score {self.margin:.2f} or more "
                "below the photo's lowest domain")

    def measure(self, evidence: SearchEvidence) -> tuple[bool, str]:
        table = evidence.result(self, self.model, self.layer).scores_table()
        own = table[table["source_photo"] == self.image].groupby("domain")["score"].median()
        others = float(table[table["source_photo"] != self.image]["score"].median())
        return others <= float(own.min()) - self.margin, (f"other photos' median {others:.3f}; lowest domain "
                                                          f"{own.idxmin()} {own.min():.3f}")


class TopOverlap(_QueryClaim):
    """The top-k lists of two searches (``model_a``/``layer_a`` and ``model_b``/``layer_b``)
    share a fraction of their images between ``at_least`` and ``at_most``."""

    kind: Literal["top_overlap"] = "top_overlap"
    model_a: str
    layer_a: str
    model_b: str
    layer_b: str
    at_least: float = Field(0.0, ge=0.0, le=1.0)
    at_most: float = Field(1.0, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _ordered(self) -> "TopOverlap":
        if self.at_least > self.at_most:
            raise ValueError(f"at_least {self.at_least} exceeds at_most {self.at_most}")
        return self

    def describe(self) -> str:
        return (f"{self._query_words()}: top {self.top_k} of {self.model_a} {self.layer_a} and {self.model_b} "
                f"{self.layer_b} overlap {self.at_least:.0%}–{self.at_most:.0%}")

    def measure(self, evidence: SearchEvidence) -> tuple[bool, str]:
        ids = [[hit.id for hit in evidence.result(self, model, layer).top]
               for model, layer in ((self.model_a, self.layer_a), (self.model_b, self.layer_b))]
        shared, fraction = top_overlap(*ids)
        return self.at_least <= fraction <= self.at_most, f"overlap {fraction:.0%}: {', '.join(shared)}"


SEARCH_CLAIMS = (TopCount, DomainRank, OthersLower, TopOverlap)
"""The claim kinds checked on region searches (``evidence = "search"``)."""
