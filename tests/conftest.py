"""Shared fixtures: the repository's own folders, and a project rooted there."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from types import ModuleType

import pytest

import microagents as ma

ROOT = Path(__file__).resolve().parent.parent

pytest_plugins = ["microagents.testing.pytest_plugin"]


@pytest.fixture
def repo_root() -> Path:
    return ROOT


@pytest.fixture
def project() -> ma.Project:
    """The repository's own agents and workflows."""
    return ma.Project(ROOT)


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Embedded stores must never land in the working tree during tests.
    monkeypatch.setenv("MICROAGENTS_HOME", str(tmp_path / "home"))


# -- the sample shop database, for the SQL tests --------------------------------------------

SHOP_DB = ROOT / "examples" / "shop.db"


def _shop_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "make_shop_db", ROOT / "examples" / "make_shop_db.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def shop_script() -> ModuleType:
    """examples/make_shop_db.py, imported."""
    return _shop_script()


@pytest.fixture(scope="session")
def shop_duckdb_master(tmp_path_factory: pytest.TempPathFactory, shop_script: ModuleType) -> Path:
    path = tmp_path_factory.mktemp("duckdb") / "shop.duckdb"
    shop_script.write_duckdb(path)
    return path


@pytest.fixture
def shop_sqlite(tmp_path: Path) -> Path:
    """A private copy of examples/shop.db (a test may check its bytes)."""
    return Path(shutil.copy(SHOP_DB, tmp_path / "shop.db"))


@pytest.fixture
def shop_duckdb(tmp_path: Path, shop_duckdb_master: Path) -> Path:
    """A private copy of the shop in DuckDB."""
    return Path(shutil.copy(shop_duckdb_master, tmp_path / "shop.duckdb"))
