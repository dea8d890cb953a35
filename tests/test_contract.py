"""The shared contract checks, parametrized over every registered Keras component."""

import pytest

import tenfold  # noqa: F401  (registers everything)
from tenfold import registry
from tenfold._api import contract_kind
from tenfold.testing import CHECKS, check_component

# also under KERAS_BACKEND=jax and torch in `make test` (tests/conftest.py)
pytestmark = pytest.mark.all_backends

CASES = [
    (entry.kind, entry.name)
    for kind in registry.kinds()
    for entry in registry.entries(kind)
    if contract_kind(entry.obj) is not None
]


def test_some_components_are_registered():
    assert len(CASES) >= 1


@pytest.mark.parametrize("kind,name", CASES, ids=[f"{k}.{n}" for k, n in CASES])
def test_has_contract_example(kind, name):
    entry = next(e for e in registry.entries(kind) if e.name == name)
    assert entry.example is not None, (
        f"{entry.path} is a Keras component but was exported without example=...: "
        "the contract checks cannot run on it."
    )


@pytest.mark.parametrize("check", sorted(CHECKS))
@pytest.mark.parametrize("kind,name", CASES, ids=[f"{k}.{n}" for k, n in CASES])
def test_contract(kind, name, check):
    entry = next(e for e in registry.entries(kind) if e.name == name)
    if entry.example is None:
        pytest.fail(f"{entry.path} has no contract example")
    example = entry.example()
    if check not in example.checks:
        pytest.fail(f"{entry.path} opts out of {check!r}; every registered component must pass it")
    check_component(contract_kind(entry.obj), example, checks=(check,))
