import keras
import pytest

from tenfold import registry
from tenfold._api import export


def test_export_registers_for_serialization_and_registry():
    @export("tenfold.layers.RegistryProbeLayer")
    class RegistryProbeLayer(keras.layers.Layer):
        def call(self, x):
            return x * 2

    assert registry.get("layers", "RegistryProbeLayer") is RegistryProbeLayer
    assert keras.saving.get_registered_name(RegistryProbeLayer) == "tenfold>RegistryProbeLayer"
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(RegistryProbeLayer())
    )
    assert isinstance(restored, RegistryProbeLayer)
    registry._ENTRIES["layers"].pop("RegistryProbeLayer")


def test_unknown_name_suggests_nearest_and_lists_choices():
    with pytest.raises(ValueError, match=r"Unknown conv 'plian'\. Did you mean 'plain'\? Accepted: .*plain"):
        registry.get("conv", "plian")


def test_bad_export_path():
    with pytest.raises(ValueError, match="tenfold.<kind>.<Name>"):
        export("layers.Foo")


def test_double_registration_of_other_object_fails():
    registry.register("probe", "a", 1, path="x.a")
    with pytest.raises(ValueError, match="already registered"):
        registry.register("probe", "a", 2, path="y.a")
    registry._ENTRIES.pop("probe")


def test_list_and_kinds():
    assert "bn" in registry.list("norm")
    assert "conv" in registry.kinds()
    assert registry.list("no-such-kind") == []
