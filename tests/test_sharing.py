"""Caches that travel: pack into a zip, publish with a catalog, install from a server on 127.0.0.1
(good file, bad checksum, traversal, interruption), open a zip in place, and the CLI."""

from __future__ import annotations

import functools
import http.server
import json
import socket
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest

from featurelens.caches import (CacheArchiveError, CacheDownloadError, CacheError, CacheExistsError, Catalog,
                                CatalogEntry, CatalogError, add_to_catalog, build_cache, install_cache, list_caches,
                                load_catalog, open_cache, pack_cache)
from featurelens.cli import main
from featurelens.config import DEFAULT_CACHE_CATALOG
from featurelens.images import bundled_gallery

LAYERS = ["stage3"]


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves the site folder; ``/flaky/<file>`` drops the connection mid-body on its first request."""

    def log_message(self, *args) -> None:  # keep the test output clean
        pass

    def do_GET(self) -> None:
        if not self.path.startswith("/flaky/"):
            return super().do_GET()
        name = self.path.removeprefix("/flaky/")
        body = (Path(self.directory) / name).read_bytes()
        hits = self.server.hits
        hits[name] = hits.get(name, 0) + 1
        self.send_response(200)
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if hits[name] == 1:
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
        else:
            self.wfile.write(body)


def _zip_with_extra_member(good: Path, out: Path, member: str) -> Path:
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            dst.writestr(info, src.read(info))
        dst.writestr(zipfile.ZipInfo(member), b"gotcha")
    return out


def _entry(entry: CatalogEntry, **changes) -> dict:
    return {**entry.model_dump(mode="json"), **changes}


@pytest.fixture(scope="module")
def site(tmp_path_factory, lite0):
    """A real 3-image cache packed into ``site/lab.zip`` with ``site/catalog.json``, a second
    (different) 1-image cache, unsafe zips, and a server on 127.0.0.1 serving the folder."""
    root = tmp_path_factory.mktemp("sharing")
    images = bundled_gallery()[:4]
    source = root / "source.zarr"
    build_cache(source, images[:3], lite0, LAYERS, dataset_name="three", description="three photos")
    build_cache(root / "other.zarr", images[3:], lite0, LAYERS, dataset_name="one")
    served = root / "site"
    entry = pack_cache(source, served / "lab.zip")
    other = pack_cache(root / "other.zarr", served / "other.zip")
    evil = root / "outside"  # an absolute member points here; nothing may appear
    unsafe = {"dotdot": "../evil", "absolute": str(evil / "abs-evil")}
    entries = [entry, other]
    for label, member in unsafe.items():
        path = _zip_with_extra_member(served / "lab.zip", served / f"{label}.zip", member)
        entries.append(CatalogEntry(**_entry(entry, name=label, url=path.name, size=path.stat().st_size,
                                             sha256=_sha256(path))))
    entries.append(CatalogEntry(**_entry(entry, name="flaky", url="flaky/lab.zip")))
    entries.append(CatalogEntry(**_entry(entry, name="badsum", sha256="0" * 64)))
    entries.append(CatalogEntry(**_entry(entry, name="unreachable", url="http://127.0.0.1:9/none/lab.zip")))
    (served / "catalog.json").write_text(Catalog(entries=entries).to_json())

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Handler, directory=str(served)))
    server.hits = {}
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    yield {"root": root, "source": source, "served": served, "entry": entry, "base": base,
           "catalog": f"{base}/catalog.json", "server": server, "evil": evil}
    server.shutdown()
    server.server_close()


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def _assert_same_features(installed: Path, original: Path) -> None:
    got, expected = open_cache(installed, layers=LAYERS, verify=True), open_cache(original)
    np.testing.assert_array_equal(got.features("stage3")[:], expected.features("stage3")[:])
    np.testing.assert_array_equal(got.thumbnails[:], expected.thumbnails[:])
    assert got.image_ids == expected.image_ids and got.attrs == expected.attrs


def test_pack_describes_the_cache_and_is_reproducible(site, tmp_path):
    entry = site["entry"]
    assert (entry.name, entry.url, entry.images, entry.layers) == ("lab", "lab.zip", 3, ("stage3",))
    assert entry.model == "efficientnet_lite0.in1k" and entry.description == "three photos"
    assert entry.size == (site["served"] / "lab.zip").stat().st_size and entry.sha256 == _sha256(site["served"] / "lab.zip")
    again = pack_cache(site["source"], tmp_path / "again.zip", name="lab", url="lab.zip")
    assert again == entry  # same cache → same bytes, so a catalog entry stays valid after re-packing
    with zipfile.ZipFile(tmp_path / "again.zip") as archive:
        assert "zarr.json" in archive.namelist() and "features/stage3/zarr.json" in archive.namelist()


def test_a_packed_zip_opens_in_place_and_is_listed(site, tmp_path):
    _assert_same_features(site["served"] / "lab.zip", site["source"])
    listed = {e.name: e for e in list_caches(site["served"])}
    assert listed["lab.zip"].ready and "images:     3" in listed["lab.zip"].summary
    (tmp_path / "junk.zip").write_bytes(b"not a zip")
    (junk,) = list_caches(tmp_path)
    assert junk.name == "junk.zip" and not junk.ready and "BadZipFile" in junk.problem


def test_download_from_a_catalog_installs_a_cache_equal_to_the_original(site, tmp_path):
    calls: list[tuple[int, int]] = []
    installed = install_cache("lab", catalog=site["catalog"], folder=tmp_path, progress=lambda d, t: calls.append((d, t)))
    assert installed.status == "installed" and installed.path == tmp_path / "lab.zarr"
    assert installed.url == f"{site['base']}/lab.zip"
    _assert_same_features(installed.path, site["source"])
    assert calls[-1] == (site["entry"].size, site["entry"].size)
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".")] == ["lab.zarr"]
    assert not (tmp_path / ".downloads").exists()  # the zip is not kept
    assert install_cache("lab", catalog=site["catalog"], folder=tmp_path).status == "unchanged"
    assert {e.name for e in list_caches(tmp_path) if e.ready} == {"lab"}


def test_a_wrong_checksum_installs_nothing(site, tmp_path):
    with pytest.raises(CacheDownloadError, match=r"does not match its checksum.*nothing was installed"):
        install_cache("badsum", catalog=site["catalog"], folder=tmp_path)
    assert _files(tmp_path) == []


@pytest.mark.parametrize("label, member", [("dotdot", "'../evil'"), ("absolute", "abs-evil'")])
def test_a_zip_member_that_escapes_is_refused_before_anything_is_extracted(site, tmp_path, label, member):
    folder = tmp_path / "caches"
    with pytest.raises(CacheArchiveError, match=rf"unsafe member .*{member}.*nothing was extracted"):
        install_cache(label, catalog=site["catalog"], folder=folder)
    assert _files(folder) == [] and not (tmp_path / "evil").exists() and not site["evil"].exists()
    assert not (site["root"] / "evil").exists()


def test_an_interrupted_download_is_retried_and_installs(site, tmp_path):
    site["server"].hits.clear()
    calls: list[tuple[int, int]] = []
    installed = install_cache("flaky", catalog=site["catalog"], folder=tmp_path,
                              progress=lambda d, t: calls.append((d, t)))
    assert site["server"].hits == {"lab.zip": 2}  # dropped once, then served whole
    _assert_same_features(installed.path, site["source"])
    assert calls[-1] == (site["entry"].size, site["entry"].size)


def test_an_unreachable_url_names_it_and_the_catalog_variable(site, tmp_path):
    with pytest.raises(CacheDownloadError, match=r"http://127\.0\.0\.1:9/none/lab\.zip.*FEATURELENS_CACHE_CATALOG"):
        install_cache("unreachable", catalog=site["catalog"], folder=tmp_path)
    assert _files(tmp_path) == []


def test_a_different_cache_is_replaced_only_with_force(site, tmp_path):
    install_cache("lab", catalog=site["catalog"], folder=tmp_path)
    with pytest.raises(CacheExistsError, match=r"different cache is already installed.*--force"):
        install_cache("other", catalog=site["catalog"], folder=tmp_path, name="lab")
    _assert_same_features(tmp_path / "lab.zarr", site["source"])
    replaced = install_cache("other", catalog=site["catalog"], folder=tmp_path, name="lab", force=True)
    assert replaced.status == "replaced" and open_cache(replaced.path).n_images == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lab.zarr"]  # no partial or old copies left


def test_install_from_a_url_or_a_local_zip(site, tmp_path):
    by_url = install_cache(f"{site['base']}/lab.zip", folder=tmp_path, sha256=site["entry"].sha256)
    assert by_url.name == "lab" and by_url.status == "installed"
    by_path = install_cache(str(site["served"] / "lab.zip"), folder=tmp_path / "b", name="copy")
    _assert_same_features(by_path.path, site["source"])
    with pytest.raises(CacheDownloadError, match="does not match its checksum"):
        install_cache(str(site["served"] / "lab.zip"), folder=tmp_path / "c", sha256="1" * 64)
    with pytest.raises(CatalogError, match=r"'no/such' cannot name a cache|cannot name a cache"):
        install_cache(f"{site['base']}/lab.zip", folder=tmp_path, name="no/such")


def test_the_default_catalog_comes_from_the_environment(site, tmp_path, monkeypatch):
    monkeypatch.setenv("FEATURELENS_HOME", str(tmp_path))
    monkeypatch.setenv("FEATURELENS_CACHE_CATALOG", site["catalog"])
    assert load_catalog().source == site["catalog"]
    assert install_cache("lab").path == tmp_path / "caches" / "lab.zarr"


def test_the_project_catalog_is_valid_and_unknown_names_fail_clearly(tmp_path, monkeypatch):
    """The project hosts no zips yet, so its catalog offers none (never an entry that cannot install)."""
    monkeypatch.delenv("FEATURELENS_CACHE_CATALOG", raising=False)
    catalog = load_catalog()
    assert catalog.source == str(DEFAULT_CACHE_CATALOG)
    for entry in catalog.entries:
        assert Path(catalog.url(entry)).is_file() or catalog.url(entry).startswith("http"), entry
    with pytest.raises(CatalogError, match=r"has no cache 'nope'.*FEATURELENS_CACHE_CATALOG"):
        install_cache("nope", folder=tmp_path)


@pytest.mark.parametrize("make, message", [
    (lambda good: "{not json", r"is not valid JSON"),
    (lambda good: {"name": "x"}, r"must be a JSON list of entries, got a JSON dict"),
    (lambda good: [{}], r"entry 1: missing required field 'name'"),
    (lambda good: [good, {**good, "name": "b", "sha256": "abc"}], r"entry 2 \('b'\): field sha256: String should match"),
    (lambda good: [{**good, "size": -1}], r"entry 1 \('lab'\): field size: Input should be greater than or equal to 0"),
    (lambda good: [{**good, "colour": "blue"}], r"field colour: Extra inputs are not permitted"),
    (lambda good: [good, good], r"the name 'lab' appears twice"),
    (lambda good: [{**good, "layers": []}], r"field layers: .*at least 1 item"),
])
def test_catalog_schema_errors_name_the_entry_and_field(site, tmp_path, make, message):
    content = make(site["entry"].model_dump(mode="json"))
    path = tmp_path / "catalog.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(CatalogError, match=message) as caught:
        load_catalog(path)
    assert str(path) in str(caught.value)
    if "JSON" not in message:
        assert "each entry needs name, url, sha256" in str(caught.value)


def test_a_missing_catalog_says_how_to_pick_another(site, tmp_path):
    with pytest.raises(CatalogError, match=r"cannot read the cache catalog .*missing\.json.*FEATURELENS_CACHE_CATALOG"):
        load_catalog(tmp_path / "missing.json")
    with pytest.raises(CatalogError, match=r"cannot read the cache catalog http://127.*HTTPError.*404"):
        load_catalog(f"{site['base']}/missing.json")


def test_a_missing_file_on_the_server_fails_at_once_naming_the_url(site, tmp_path):
    with pytest.raises(CacheDownloadError, match=r"could not download http://127.*/gone\.zip .*404"):
        install_cache(f"{site['base']}/gone.zip", folder=tmp_path)
    assert _files(tmp_path) == []


def test_add_to_catalog_replaces_the_entry_of_the_same_name(site, tmp_path):
    path = tmp_path / "catalog.json"
    add_to_catalog(path, site["entry"])
    add_to_catalog(path, CatalogEntry(**_entry(site["entry"], name="second")))
    updated = add_to_catalog(path, CatalogEntry(**_entry(site["entry"], description="new words")))
    assert updated.names == ("lab", "second") == load_catalog(path).names
    assert load_catalog(path).entry("lab").description == "new words"


def test_pack_refuses_what_is_not_a_finished_cache(tmp_path):
    (tmp_path / "empty.zarr").mkdir()
    with pytest.raises(CacheError, match="no FeatureLens cache"):
        pack_cache(tmp_path / "empty.zarr", tmp_path / "x.zip")
    with pytest.raises(CacheError, match=r"pack writes a \.zip file"):
        pack_cache(tmp_path / "empty.zarr", tmp_path / "x.tar")
    assert not (tmp_path / "x.zip").exists()


def test_cli_pack_catalog_and_download(site, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FEATURELENS_HOME", str(tmp_path / "home"))
    out, catalog = tmp_path / "pub" / "zips" / "lab.zip", tmp_path / "pub" / "catalog.json"
    assert main(["cache", "pack", str(site["source"]), "--out", str(out), "--catalog", str(catalog)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["url"] == "zips/lab.zip" and printed["sha256"] == site["entry"].sha256
    assert load_catalog(catalog).entry("lab").url == "zips/lab.zip"

    assert main(["cache", "catalog", "--catalog", str(catalog)]) == 0
    assert "lab" in capsys.readouterr().out
    assert main(["cache", "download", "lab", "--catalog", str(catalog)]) == 0
    assert "cache lab installed at" in capsys.readouterr().out
    _assert_same_features(tmp_path / "home" / "caches" / "lab.zarr", site["source"])
    assert main(["cache", "download", "lab", "--catalog", str(catalog)]) == 0
    assert "already installed" in capsys.readouterr().out

    monkeypatch.setenv("FEATURELENS_CACHE_CATALOG", site["catalog"])
    assert main(["cache", "download", "other", "--name", "lab"]) == 1
    assert "--force" in capsys.readouterr().err
    assert main(["cache", "download", "badsum"]) == 1
    assert "does not match its checksum" in capsys.readouterr().err
    assert main(["cache", "pack", str(tmp_path / "nothing.zarr"), "--out", str(tmp_path / "n.zip")]) == 1
    assert "error: no FeatureLens cache" in capsys.readouterr().err
