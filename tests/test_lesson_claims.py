"""Every lesson's claims hold on the real offline model: one case per preset of every scenario
(and one per scenario for its general lines), computed the way the pages compute them."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from featurelens.caches import ensure_recipe_cache
from featurelens.images import get_gallery_image
from featurelens.invariance import SweepEvidence
from featurelens.models import analyse_image, load_model
from featurelens.scenarios import ScenarioError, load_recipes, load_scenario, load_scenarios, validate_scenario
from featurelens.search.claims import SearchEvidence, TopCount
from featurelens.similarity import ImageEvidence, MeanGreater, RegionInTop, region_cells
from tests.conftest import ROOT

SCENARIOS = load_scenarios(ROOT / "scenarios")
RECIPES = load_recipes(ROOT / "cache_recipes")
CASES = [pytest.param(sc, preset.name, preset.claims, id=f"{sc.id}: {preset.name}")
         for sc in SCENARIOS.values() for preset in sc.presets]
CASES += [pytest.param(sc, "lesson", sc.claims, id=f"{sc.id}: lesson") for sc in SCENARIOS.values() if sc.claims]


@pytest.fixture(scope="module")
def evidence(lite0) -> dict:
    """The pages' computations, each done once for the whole module: gallery photos analysed
    by a model (as ``image_report`` does), region searches on the recipe caches, and transform
    sweeps of the photos as the invariance page shows them."""
    models = {"efficientnet_lite0": lite0}

    def model(name: str):
        if name not in models:
            models[name] = load_model(name, device="cpu")
        return models[name]

    images = ImageEvidence(lambda name, image: analyse_image(model(name), get_gallery_image(image).load()))
    search = SearchEvidence(lambda recipe, name: ensure_recipe_cache(RECIPES[recipe], model(name)))
    sweeps = SweepEvidence(model, lambda name, image: images.report(name, image).display_hwc_u8)
    return {"images": images, "search": search, "sweeps": sweeps}


@pytest.mark.parametrize("scenario, owner, claims", CASES)
def test_every_claim_of_the_lesson_holds(evidence, scenario, owner, claims):
    checks = [claim.check(evidence[claim.evidence]) for claim in claims]
    report = "\n".join(f"  {check}" for check in checks)
    assert all(check.holds for check in checks), f"{scenario.id}, {owner}:\n{report}"


def test_every_preset_states_a_claim_and_every_scenario_resolves():
    pages = {p.stem for p in (ROOT / "pages").glob("[!_]*.py")}
    for scenario in SCENARIOS.values():
        validate_scenario(scenario, RECIPES, pages)
        assert all(preset.claims for preset in scenario.presets), scenario.id


def test_compare_presets_put_the_reference_image_first():
    """The Compare images page takes the first of a preset's images as the reference image."""
    for preset in SCENARIOS["compare_images"].presets:
        assert preset.extra["images"][0] == preset.image, preset.name


def test_a_claim_leaves_out_what_its_preset_says():
    preset = next(p for p in SCENARIOS["layer_hierarchy"].presets if p.name == "Late layer: the cat's eye")
    claim = next(c for c in preset.claims if c.kind == "region_in_top")
    assert (claim.image, claim.ref_image, claim.point, claim.model) == ("chelsea", "chelsea", (0.37, 0.35),
                                                                        "efficientnet_lite0")
    search = SCENARIOS["domain_shift"].presets[0].claims[0]
    assert (search.recipe, search.box, search.model) == ("domain_shift", (0.28, 0.22, 0.46, 0.48), "efficientnet_lite0")


def test_a_claim_about_the_wrong_place_is_false(evidence):
    """The test can fail: move the cat's other eye to its chin, swap two regions, or count
    another photo's images, and the claims no longer hold."""
    preset = next(p for p in SCENARIOS["layer_hierarchy"].presets if p.name == "Late layer: the cat's eye")
    eye = next(c for c in preset.claims if isinstance(c, RegionInTop))
    assert eye.check(evidence["images"]).holds
    chin = eye.model_copy(update={"region": (0.45, 0.88, 0.65, 1.0)}).check(evidence["images"])
    assert not chin.holds and "are more similar" in chin.measured, chin
    mean = next(c for p in SCENARIOS["layer_hierarchy"].presets for c in p.claims if isinstance(c, MeanGreater))
    swapped = mean.model_copy(update={"region_a": mean.region_b, "region_b": mean.region_a})
    assert not swapped.check(evidence["images"]).holds
    own = next(c for c in SCENARIOS["domain_shift"].presets[0].claims if isinstance(c, TopCount))
    other = own.model_copy(update={"where": {"source_photo": "coffee"}}).check(evidence["search"])
    assert not other.holds and other.measured.startswith("0 of 10"), other


@pytest.mark.parametrize("region, grid, cells", [
    ((0.0, 0.0, 0.5, 0.5), (2, 2), [(0, 0)]),
    ((0.0, 0.0, 1.0, 1.0), (2, 3), [(r, c) for r in range(2) for c in range(3)]),
    ((0.40, 0.40, 0.45, 0.45), (7, 7), [(2, 2)]),                        # no centre inside: the cell under it
    (((0.0, 0.0), (0.9, 0.0), (0.0, 0.9)), (2, 2), [(0, 0)]),            # a triangle: 3 centres are out
    (((0.1, 0.1), (0.9, 0.1), (0.9, 0.9), (0.1, 0.9)), (4, 4), [(r, c) for r in range(4) for c in range(4)]),
    (((0.3, 0.3), (0.7, 0.3), (0.7, 0.7), (0.3, 0.7)), (4, 4), [(1, 1), (1, 2), (2, 1), (2, 2)]),
])
def test_region_cells_are_the_cells_whose_centre_is_inside(region, grid, cells):
    found = region_cells(region, grid)
    assert sorted(zip(*map(list, found.nonzero()))) == sorted(cells)


@pytest.mark.parametrize("claim, message", [
    ('kind = "region_in_top"\nregion = [0.5, 0.2, 0.4, 0.3]\ntop_fraction = 0.1', "x0 < x1 and y0 < y1"),
    ('kind = "region_in_top"\nregion = [[0.5, 0.2], [0.4, 0.3]]\ntop_fraction = 0.1', "region"),
    ('kind = "region_in_top"\nregion = [0.1, 0.2, 0.4, 0.3]\ntop_fraction = 1.5', "top_fraction"),
    ('kind = "brightest"\nlayer = "stage7"', "kind"),
    ('kind = "map_stat"\nstat = "min"', "needs at_least, at_most or both"),
])
def test_a_malformed_claim_is_refused_naming_the_field(tmp_path, claim, message):
    good = (ROOT / "scenarios" / "layer_hierarchy.toml").read_text()
    bad = tmp_path / "layer_hierarchy.toml"
    bad.write_text(good + f'\n[[presets]]\nname = "x"\nimage = "coffee"\nlayer = "stage7"\npoint = [0.5, 0.5]\n'
                          f'[[presets.claims]]\n{claim}\n')
    with pytest.raises(ScenarioError, match=message):
        load_scenario(bad)


def test_a_preset_without_a_claim_or_with_an_unknown_layer_is_refused(tmp_path):
    good = (ROOT / "scenarios" / "layer_hierarchy.toml").read_text()
    bad = tmp_path / "layer_hierarchy.toml"
    bad.write_text(good + '\n[[presets]]\nname = "Bare"\nimage = "coffee"\nlayer = "stage7"\npoint = [0.5, 0.5]\n')
    with pytest.raises(ScenarioError, match="preset 'Bare' states no claim"):
        validate_scenario(load_scenario(bad), RECIPES, {"layer_hierarchy"})
    bad.write_text(good.replace('than = "stage2"', 'than = "stage9"', 1))
    with pytest.raises(ScenarioError, match="layer_brighter claim of the lesson.*stage9"):
        validate_scenario(load_scenario(bad), RECIPES, {"layer_hierarchy"})
    with pytest.raises(ValidationError, match="reference point"):
        MeanGreater(model="efficientnet_lite0", layer="stage7", image="chelsea", region_a=(0.1, 0.1, 0.2, 0.2))
