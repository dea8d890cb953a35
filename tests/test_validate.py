"""The one validation module: canonical types back, errors that name argument and value."""

import math

import numpy as np
import pytest

from tenfold import _validate as v


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_number_refuses_non_finite(bad):
    with pytest.raises(ValueError, match=r"^lr must be a finite number, received"):
        v.number("lr", bad)


@pytest.mark.parametrize("bad", ["0.1", True, None, [1.0]])
def test_number_refuses_wrong_types(bad):
    with pytest.raises(TypeError, match=r"^lr must be a finite number, received"):
        v.number("lr", bad)


def test_number_accepts_numpy_scalars_as_python_floats():
    out = v.number("lr", np.float32(0.5))
    assert out == 0.5 and type(out) is float


def test_bounds_open_and_closed():
    assert v.positive("eps", 1e-9) == 1e-9
    with pytest.raises(ValueError, match=r"eps must be a number > 0, received 0.0"):
        v.positive("eps", 0)
    assert v.fraction("momentum", 1.0) == 1.0
    with pytest.raises(ValueError, match=r"momentum must be a number >= 0 and < 1, received 1.0"):
        v.fraction("momentum", 1, open_high=True)


def test_integer():
    assert v.integer("filters", 3.0, low=1) == 3
    assert type(v.integer("filters", np.int64(4))) is int
    with pytest.raises(ValueError, match="filters must be an integer, received 3.5"):
        v.integer("filters", 3.5)
    with pytest.raises(ValueError, match="filters must be an integer >= 1, received 0"):
        v.integer("filters", 0, low=1)
    with pytest.raises(TypeError, match="filters must be an integer, received 'abc' of type str"):
        v.integer("filters", "abc")


def test_choice_with_hint_and_bool_is_not_int():
    with pytest.raises(ValueError, match="Did you mean 'triangular'"):
        v.choice("mode", "triangulr", ("triangular", "exp_range"))
    with pytest.raises(ValueError, match="received True"):
        v.choice("groups", True, (1, 2))
    assert v.choice("groups", 2, (1, 2)) == 2


def test_boolean_and_lists():
    assert v.boolean("center", np.bool_(True)) is True
    with pytest.raises(TypeError, match="center must be True or False, received 'no'"):
        v.boolean("center", "no")
    assert v.integers("blocks", (1, 2), low=1) == [1, 2]
    with pytest.raises(ValueError, match=r"blocks must be a non-empty list"):
        v.integers("blocks", [])
    with pytest.raises(ValueError, match=r"blocks\[1\] must be an integer >= 1, received -5"):
        v.integers("blocks", [1, -5], low=1)
    assert v.axis("axis", [1, 2]) == [1, 2]
    with pytest.raises(ValueError, match="must not repeat"):
        v.axis("axis", [1, 1])
    with pytest.raises(TypeError, match="axis must be an integer, received 'abc'"):
        v.axis("axis", "abc")
    with pytest.raises(ValueError, match="low must be < high, received 2.0 and 1.0"):
        v.ordered("low", 2.0, "high", 1.0)


def test_keras_object_names_the_argument():
    import keras

    assert isinstance(v.keras_object("init", "zeros", keras.initializers.get, "an initializer"),
                      keras.initializers.Zeros)
    with pytest.raises(ValueError, match=r"^init must be an initializer, received 0 of type int\.$"):
        v.keras_object("init", 0, keras.initializers.get, "an initializer")


def test_auto_or_boolean():
    assert v.auto_or_boolean("jit", "auto") == "auto"
    assert v.auto_or_boolean("jit", np.bool_(True)) is True
    with pytest.raises(ValueError, match=r"^jit must be 'auto', True or False, received 'yes'\.$"):
        v.auto_or_boolean("jit", "yes")
    with pytest.raises(TypeError, match=r"^jit must be 'auto', True or False, received 1 of type int\.$"):
        v.auto_or_boolean("jit", 1)
