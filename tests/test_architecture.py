"""Architecture rules: subpackages by capability, no import cycle, short modules, private names
kept inside their subpackage, the core never imports Streamlit, pages stay thin, scenarios resolve."""

from __future__ import annotations

import ast
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

import featurelens
from featurelens.scenarios import (ScenarioError, load_recipe, load_recipes, load_scenario, load_scenarios,
                                   validate_scenario)

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "featurelens"
CAPABILITIES = {"models", "images", "caches", "similarity", "search", "cluster", "invariance", "segmentation",
                "featureviz", "xray"}
MAX_MODULE_LINES = 500


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


CORE_MODULES = {_module_name(p): p for p in sorted(CORE.rglob("*.py"))}


def _is_package(module: str) -> bool:
    return CORE_MODULES.get(module, Path()).name == "__init__.py"


def _imports(module: str, path: Path) -> list[tuple[str, list[str]]]:
    """Every ``(imported module, imported names)`` in the file, including imports inside
    functions; relative imports resolved against ``module``."""
    found = []
    package = module if _is_package(module) else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((target, [alias.name for alias in node.names]))
    return found


def _edges(module: str, path: Path) -> set[str]:
    """The featurelens modules ``module`` imports (a name that is a submodule counts as one)."""
    targets = set()
    for target, names in _imports(module, path):
        submodules = {f"{target}.{name}" for name in names if f"{target}.{name}" in CORE_MODULES}
        targets |= submodules
        if target in CORE_MODULES and not (names and len(submodules) == len(names)):
            targets.add(target)  # `from . import zoo` needs zoo, not the package's __init__
    return targets - {module}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, result, counter = {}, {}, [], set(), [], [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for succ in graph.get(node, ()):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                result.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return result


def test_tree_shows_the_capabilities():
    packages = {p.name for p in CORE.iterdir() if (p / "__init__.py").is_file()}
    assert CAPABILITIES <= packages
    assert {"config.py", "cli.py", "scenarios.py"} <= {p.name for p in CORE.glob("*.py")}


def test_import_graph_has_no_cycle_even_through_function_level_imports():
    graph = {module: _edges(module, path) for module, path in CORE_MODULES.items()}
    assert graph["featurelens.caches.listing"] >= {"featurelens.config", "featurelens.caches.reader"}
    assert _cycles(graph) == []


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_config_knows_only_folders():
    assert _edges("featurelens.config", CORE_MODULES["featurelens.config"]) == set()


@pytest.mark.parametrize("module", sorted(CORE_MODULES))
def test_modules_stay_short(module):
    lines = len(CORE_MODULES[module].read_text().splitlines())
    assert lines <= MAX_MODULE_LINES, f"{module} has {lines} lines; split it by job"


def _subpackage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and _is_package(module)) else ""


def test_private_names_stay_inside_their_subpackage():
    offenders = []
    for module, path in CORE_MODULES.items():
        for target, names in _imports(module, path):
            if not target.startswith("featurelens"):
                continue
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            hidden_module = any(part.startswith("_") and part != "__main__" for part in target.split("."))
            if (private or hidden_module) and _subpackage(target) != _subpackage(module):
                offenders.append(f"{module} imports {private or target} from {target}")
    assert offenders == []


def _private_imports(path: Path) -> list[str]:
    """``from featurelens… import _x`` and imports of ``featurelens…._module`` in a file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("featurelens"):
            found += [f"{node.module}.{a.name}" for a in node.names if a.name.startswith("_")]
            if any(part.startswith("_") for part in node.module.split(".")):
                found.append(node.module)
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith("featurelens")
                      and any(part.startswith("_") for part in a.name.split("."))]
    found += re.findall(r"featurelens(?:\.\w+)*\._[a-zA-Z]\w*", path.read_text())
    return sorted(set(found))


@pytest.mark.parametrize("path", sorted([*ROOT.glob("tests/**/*.py"), *ROOT.glob("benchmarks/*.py")]),
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_tests_and_benchmarks_use_public_names(path):
    if path.name == Path(__file__).name:
        return
    assert _private_imports(path) == []


def test_private_name_check_catches_names_and_modules(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("from featurelens.caches import _layer_list\nimport featurelens.models._x\n"
                      "from featurelens.images import load_image\nx = 'featurelens.models.zoo._TORCHVISION'\n")
    assert _private_imports(sample) == ["featurelens.caches._layer_list", "featurelens.models._x",
                                        "featurelens.models.zoo._TORCHVISION"]
    sample.write_text("import featurelens\nfrom featurelens.images import load_image\n")
    assert _private_imports(sample) == []


def test_core_never_imports_streamlit():
    modules = [m.name for m in pkgutil.walk_packages(featurelens.__path__, "featurelens.")
               if not m.name.endswith("__main__")]
    code = ("import importlib, sys\n"
            f"for m in {modules!r}: importlib.import_module(m)\n"
            "print('streamlit' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "False"
    assert len(modules) >= 25


@pytest.mark.parametrize("page", sorted([*(ROOT / "pages").rglob("*.py"), ROOT / "app.py"]),
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_pages_do_not_compute_or_reach_into_the_core(page):
    imported_modules, imported_names = set(), set()
    for node in ast.walk(ast.parse(page.read_text())):
        if isinstance(node, ast.Import):
            imported_modules |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported_modules.add(node.module or "")
            imported_names |= {f"{node.module}.{a.name}" for a in node.names}
    heavy = {m for m in imported_modules if m.split(".")[0] in {"torch", "sklearn", "torchvision", "timm", "zarr"}}
    private = {m for m in imported_modules | imported_names
               if m.startswith("featurelens") and any(part.startswith("_") for part in m.split("."))}
    assert not heavy and not private, (heavy, private)


def test_no_print_in_core_outside_the_cli():
    offenders = [str(p.relative_to(ROOT)) for p in CORE.rglob("*.py")
                 if p.name not in ("__main__.py", "cli.py") and "print(" in p.read_text()]
    assert offenders == []


def test_every_scenario_and_recipe_resolves():
    recipes = load_recipes(ROOT / "cache_recipes")
    pages = {p.stem for p in (ROOT / "pages").glob("[!_]*.py")}
    scenarios = load_scenarios(ROOT / "scenarios")
    assert "model_layers" in scenarios
    for sc in scenarios.values():
        validate_scenario(sc, recipes, pages)
        assert sc.lesson.try_ and sc.lesson.notice and sc.lesson.discuss, sc.id


def test_scenario_schema_errors_name_the_field(tmp_path):
    good = (ROOT / "scenarios" / "model_layers.toml").read_text()
    bad = tmp_path / "model_layers.toml"
    bad.write_text(good.replace('model = "efficientnet_lite0"', 'model = "efficientnet_lite9"'))
    with pytest.raises(ScenarioError, match="efficientnet_lite9"):
        validate_scenario(load_scenario(bad), {}, {"model_layers"})
    bad.write_text(good.replace("[lesson]", "[lessons]"))
    with pytest.raises(ScenarioError, match="missing required field 'lesson'"):
        load_scenario(bad)
    bad.write_text(good.replace('image = "chelsea"', 'image = "no_such_image"'))
    with pytest.raises(ScenarioError, match="no_such_image"):
        validate_scenario(load_scenario(bad), {}, {"model_layers"})
    bad.write_text(good + '\n[[presets]]\nname = "x"\nimage = "coffee"\npoint = [1.5, 0.2]\n')
    with pytest.raises(ScenarioError, match=r"presets\.\d+\.point.*less than or equal to 1"):
        load_scenario(bad)
    bad.write_text(good.replace("order = 1", 'order = "first"'))
    with pytest.raises(ScenarioError, match="field order"):
        load_scenario(bad)
    bad.write_text('colour = "blue"\n' + good)
    with pytest.raises(ScenarioError, match="colour.*Extra inputs are not permitted"):
        load_scenario(bad)


def test_recipe_schema_requires_a_checksum_for_downloads(tmp_path):
    recipe = tmp_path / "remote.toml"
    recipe.write_text('name = "remote"\ntitle = "t"\ndescription = "d"\nkind = "download"\nlicense = "l"\n'
                      'model = "efficientnet_lite0"\nurl = "https://example.org/x.zip"\n')
    with pytest.raises(ScenarioError, match="needs url, sha256 and size_bytes"):
        load_recipe(recipe)
    recipe.write_text(recipe.read_text().replace('kind = "download"', 'kind = "ftp"'))
    with pytest.raises(ScenarioError, match="field kind"):
        load_recipe(recipe)
