"""The public surface: every submodule imports, every exported name resolves, site
names stay stable, and the README's code blocks run."""

import importlib
import importlib.metadata
import pkgutil
import re
from pathlib import Path

import pytest

import lom_pyro
from lom_pyro import sites

ROOT = Path(__file__).resolve().parents[1]


def test_every_submodule_imports_and_exports_resolve():
    for info in pkgutil.walk_packages(lom_pyro.__path__, "lom_pyro."):
        if info.name == "lom_pyro.__main__":
            continue
        module = importlib.import_module(info.name)
        for name in getattr(module, "__all__", []):
            assert hasattr(module, name), f"{info.name}.__all__ names {name!r}, which does not exist"


def test_site_names_are_stable():
    assert (sites.BATCH_PLATE, sites.SLOTS_PLATE, sites.SCENE, sites.OBJECTS, sites.OBS, sites.ORDERLESS_SLOTS,
            sites.ORDERLESS_OBS) == ("batch", "slots", "s", "z", "x", "o", "x_orderless")
    assert lom_pyro.LOM.SLOTS == "z" and lom_pyro.LOM.SCENE == "s"


@pytest.mark.parametrize("page", ["README.md", "docs/model.md"])
def test_python_blocks_in_docs_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    text = (ROOT / page).read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, f"{page} has no python example"
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {"__name__": "readme"})


def test_version_comes_from_the_package_metadata():
    try:
        installed = importlib.metadata.version("lom_pyro")
    except importlib.metadata.PackageNotFoundError:
        assert lom_pyro.__version__ == "0+unknown"  # a source tree that was never installed
        return
    assert lom_pyro.__version__ == installed
    declared = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), flags=re.M)
    assert declared and installed == declared.group(1)
