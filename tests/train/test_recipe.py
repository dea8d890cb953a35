import pytest

from tenfold.train.recipe import RecipeError, bundled, load_recipe, parse_override


def test_every_bundled_recipe_validates():
    names = list(bundled())
    assert "default" in names and "tiny" in names
    for name in names:
        assert load_recipe(name).name == name


def test_overrides_are_parsed_as_yaml():
    r = load_recipe("tiny", ["train.epochs=7", "model.hidden=[4, 5]", "data.imbalance_factor=null",
                             "optimizer.options={amsgrad: true}"])
    assert r.train.epochs == 7
    assert r.model.hidden == [4, 5]
    assert r.data.imbalance_factor is None
    assert r.optimizer.options == {"amsgrad": True}
    assert parse_override("a.b= 3") == (["a", "b"], 3)


def test_typo_suggests_nearest_key():
    with pytest.raises(RecipeError, match=r"unknown key 'optimizer\.learnin_rate'\. Did you mean 'optimizer\.learning_rate'\?"):
        load_recipe(None, ["optimizer.learnin_rate=0.1"])


def test_wrong_type_names_key_and_value():
    with pytest.raises(RecipeError, match=r"train\.epochs: .*integer.*received 'many'"):
        load_recipe(None, ["train.epochs=many"])
    with pytest.raises(RecipeError, match=r"data\.batch_size: Input should be greater than 0 \(received 0\)"):
        load_recipe(None, ["data.batch_size=0"])


def test_unknown_switch_lists_accepted():
    with pytest.raises(RecipeError, match=r"model\.conv: unknown conv 'plian'; Did you mean 'plain'\? accepted: "):
        load_recipe(None, ["model.conv=plian"])


def test_bad_override_syntax_and_missing_file(tmp_path):
    with pytest.raises(RecipeError, match="expected KEY=VALUE"):
        load_recipe(None, ["train.epochs"])
    with pytest.raises(RecipeError, match="is a value, not a section"):
        load_recipe(None, ["seed.x=1"])
    with pytest.raises(RecipeError, match=r"neither a file nor a bundled recipe\. Did you mean 'tiny'\?"):
        load_recipe("tinny")
    bad = tmp_path / "r.yaml"
    bad.write_text("- a\n- b\n")
    with pytest.raises(RecipeError, match="must be a mapping"):
        load_recipe(str(bad))


def test_recipe_file_round_trip(tmp_path):
    r = load_recipe("tiny", ["seed=5"])
    path = tmp_path / "r.yaml"
    path.write_text(r.to_yaml())
    assert load_recipe(str(path)) == r
