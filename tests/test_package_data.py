"""Bundled topologies and CRD schemas are package data, found wherever the twin is installed.

Nothing reads them by a path into the repository or beside it: the bundled topologies come
from the ``topologies`` package, the Istio CRDs from the copy vendored in
``twin/crd/schemas``, whose location a user can change.
"""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

import pytest

from twin.bundled import bundled_dir, bundled_names, bundled_topology_path
from twin.crd import ISTIO_FILE, SCHEMAS_ENV, crd_path, schemas_dir, validate_resource
from twin.errors import InputError
from twin.topology import Topology

ROOT = Path(__file__).resolve().parents[1]


def test_bundled_names_are_the_topologies_in_the_folder_without_companions() -> None:
    expected = sorted(
        p.name.removesuffix(".yaml")
        for p in (ROOT / "topologies").glob("*.yaml")
        if p.name.count(".") == 1
    )
    assert bundled_names() == expected
    assert "online-boutique" in expected


@pytest.mark.parametrize("name", bundled_names())
def test_every_bundled_topology_and_its_companions_load(name: str) -> None:
    topo = Topology.load(bundled_topology_path(name))
    assert topo.name
    for companion in ("scenario", "policy"):
        assert bundled_topology_path(name, companion).is_file()


def test_an_unknown_bundled_name_is_one_line_naming_the_known_ones() -> None:
    with pytest.raises(InputError, match=r"no bundled topology 'nope'; expected one of .*teastore"):
        bundled_topology_path("nope")


def test_the_environment_default_is_the_bundled_online_boutique() -> None:
    from agents.env import DEFAULT_TOPOLOGY, EnvConfig

    assert bundled_topology_path("online-boutique") == DEFAULT_TOPOLOGY
    assert Path(EnvConfig().topology) == DEFAULT_TOPOLOGY


def _package_data() -> dict[str, list[str]]:
    with (ROOT / "pyproject.toml").open("rb") as f:
        data: dict[str, list[str]] = tomllib.load(f)["tool"]["setuptools"]["package-data"]
    return data


def test_the_bundled_files_are_declared_as_package_data() -> None:
    data = _package_data()
    for path in bundled_dir().glob("*.yaml"):
        assert any(fnmatch.fnmatch(path.name, g) for g in data["topologies"]), path
    assert (bundled_dir() / "__init__.py").is_file()
    vendored = schemas_dir(None).relative_to(ROOT / "twin")
    for path in schemas_dir(None).iterdir():
        rel = str(vendored / path.name)
        assert any(fnmatch.fnmatch(rel, g) for g in data["twin"]), rel


def test_the_crd_schemas_default_to_the_vendored_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SCHEMAS_ENV, raising=False)
    assert crd_path() == ROOT / "twin" / "crd" / "schemas" / ISTIO_FILE
    assert crd_path().is_file()
    assert "Apache-2.0" in (crd_path().parent / "README.md").read_text(encoding="utf-8")


def test_the_schema_folder_is_configurable_and_the_option_wins_over_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SCHEMAS_ENV, str(tmp_path / "env"))
    assert crd_path() == tmp_path / "env" / ISTIO_FILE
    assert crd_path(tmp_path / "opt") == tmp_path / "opt" / ISTIO_FILE


def test_a_schema_folder_without_the_crds_is_one_line_naming_the_file(tmp_path: Path) -> None:
    doc = {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule"}
    with pytest.raises(InputError, match="the published CRD schemas are not there") as e:
        validate_resource(doc, crd_path(tmp_path))
    assert str(tmp_path / ISTIO_FILE) in str(e.value)
