"""Packages that import their public names on first use: each name is found where it is said."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import providers
import worker.credentials
import worker.queue
import worker.store

LAZY = [providers, worker.credentials, worker.queue, worker.store]


@pytest.mark.parametrize("package", LAZY)
def test_every_public_name_of_a_lazy_package_resolves(package: object) -> None:
    names = package.__all__  # type: ignore[attr-defined]
    assert sorted(package._HOMES) == sorted(names)  # type: ignore[attr-defined]
    for name in names:
        home = importlib.import_module(package._HOMES[name])  # type: ignore[attr-defined]
        assert getattr(package, name) is getattr(home, name)
    with pytest.raises(AttributeError, match="has no attribute 'nothing'"):
        _ = package.nothing  # type: ignore[attr-defined]


@pytest.mark.parametrize("package", LAZY)
def test_no_public_name_is_also_a_module_of_its_package(package: object) -> None:
    """Importing ``package.x`` sets the package's ``x`` to that module, so a lazy name ``x``
    would be the module or the object depending on what was imported first."""
    modules = {m.name for m in pkgutil.iter_modules(package.__path__)}  # type: ignore[attr-defined]
    assert modules.isdisjoint(package.__all__)  # type: ignore[attr-defined]
