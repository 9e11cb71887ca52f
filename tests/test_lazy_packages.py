"""Packages that import their public names on first use: each name is found where it is said."""

from __future__ import annotations

import importlib

import pytest

import providers
import worker.credentials
import worker.store


@pytest.mark.parametrize("package", [providers, worker.credentials, worker.store])
def test_every_public_name_of_a_lazy_package_resolves(package: object) -> None:
    names = package.__all__  # type: ignore[attr-defined]
    assert sorted(package._HOMES) == sorted(names)  # type: ignore[attr-defined]
    for name in names:
        home = importlib.import_module(package._HOMES[name])  # type: ignore[attr-defined]
        assert getattr(package, name) is getattr(home, name)
    with pytest.raises(AttributeError, match="has no attribute 'nothing'"):
        _ = package.nothing  # type: ignore[attr-defined]
