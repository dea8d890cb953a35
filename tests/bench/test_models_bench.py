"""The models benchmark and the optimizers benchmark's momentum rows: the shared encoder, the
goals, the schedule, and notes and tables computed from (fake) measurements."""

import numpy as np
import pytest

from tenfold.bench import models, optimizers


def _mha_params(d, heads):
    head = d // heads
    return 3 * (d * heads * head + heads * head) + heads * head * d + d


@pytest.mark.parametrize("blocks, d, heads, seq, vocab", [(6, 256, 8, 128, 1000), (1, 64, 2, 64, 17)])
def test_encoder_has_the_parameters_of_its_formula(blocks, d, heads, seq, vocab):
    model = models.encoder(blocks, d, heads=heads, seq=seq, vocab=vocab)
    block = _mha_params(d, heads) + 2 * 2 * d + (d * 4 * d + 4 * d) + (4 * d * d + d)
    expected = vocab * d + seq * d + blocks * block + d * 10 + 10
    assert model.count_params() == expected
    assert sum(type(layer).__name__ == "MultiHeadAttention" for layer in model.layers) == blocks
    tokens = np.random.default_rng(0).integers(0, vocab, size=(2, seq)).astype("int32")
    assert tuple(model(tokens).shape) == (2, 10)


def test_encoder_positions_make_token_order_matter():
    model = models.encoder(1, 32, heads=2, seq=8, vocab=5, dropout=0.0)
    tokens = np.array([[0, 1, 2, 3, 4, 0, 1, 2]], "int32")
    a, b = np.asarray(model(tokens)), np.asarray(model(tokens[:, ::-1]))
    assert np.max(np.abs(a - b)) > 1e-4  # without position embeddings mean pooling ignores order


def _fake(label, plain, sqrt, folded=53, total=53, rel=1e-7, deployed=0.9):
    return {
        "label": label, "key": models._key(label),
        "remat": {"memory": {"plain": plain, "sqrt": sqrt},
                  "timed": {"plain": [1.0, 1.0, 1.0], "sqrt": [1.2, 1.3, 1.25]}, "segments": {"sqrt": 4}},
        "deploy": {"facts": {"bn_total": total, "bn_folded": folded, "bn_remaining": total - folded,
                             "max_relative_difference": rel},
                   "timed": {"unfused": [1.0, 1.0, 1.0], "deployed": [deployed] * 3}},
    }


def test_remat_goals_judge_the_saved_fraction_and_the_step_time():
    met = models._remat_rows("ResNet50", "ResNet50", _fake("ResNet50", 100.0, 50.0)["remat"], ("sqrt",))
    assert [r["goal_met"] for r in met] == [True, True] and met[0]["goal"] == "saves >= 50% (<= 0.50)"
    missed = models._remat_rows("ResNet50", "ResNet50", _fake("ResNet50", 100.0, 51.0)["remat"], ("sqrt",))
    assert missed[0]["goal_met"] is False
    encoder = models._remat_rows("encoder (6×MHA)", "encoder", _fake("encoder", 100.0, 36.0)["remat"], ("sqrt",))
    assert encoder[0]["goal"] == "saves >= 65% (<= 0.35)" and encoder[0]["goal_met"] is False
    other = models._remat_rows("ConvNeXtTiny", "ConvNeXtTiny", _fake("ConvNeXtTiny", 100.0, 90.0)["remat"], ("sqrt",))
    assert all("goal" not in r for r in other)  # reported, not judged


@pytest.mark.parametrize("folded, total, met", [(53, 53, True), (52, 53, False), (52, 52, False)])
def test_deploy_goal_needs_every_expected_norm_folded(folded, total, met):
    rows = models._deploy_rows("ResNet50", "ResNet50", _fake("ResNet50", 1, 1, folded, total)["deploy"])
    assert rows[0]["goal"] == "all folded (53/53)" and rows[0]["goal_met"] is met
    assert rows[1]["goal_met"] is True and rows[1]["ratio"] == pytest.approx(1e-7 / 1e-5)
    assert rows[2]["ratio"] == pytest.approx(0.9) and rows[2]["goal_met"] is True


def test_deploy_rows_without_norms_have_no_fold_row_and_no_goal():
    rows = models._deploy_rows("encoder", "encoder", _fake("encoder", 1, 1, 0, 0)["deploy"])
    assert [r["metric"].split(": ")[1] for r in rows] == [
        "deployed vs unfused, max relative difference (÷ 1e-5)", "inference time, deployed vs unfused"]
    assert all("goal" not in r for r in rows)


def test_models_notes_and_table_are_computed_from_the_measurements():
    measured = [_fake("ResNet50", 200.0, 80.0), _fake("MobileNetV2", 100.0, 70.0, 50, 52, rel=3e-6)]
    notes = models._notes(measured, {"ratio": 1.0123})
    assert notes[0].startswith('remat "sqrt" saves 60% of the plain peak on ResNet50 and 30% on MobileNetV2 (the least)')
    raised = models._notes([_fake("ResNet50", 200.0, 80.0), _fake("MobileNetV2", 100.0, 116.0)], {"ratio": 1.0})
    assert "and raises it by 16% on MobileNetV2;" in raised[0]
    assert "in 1 of the 2 models that have any (ResNet50)" in notes[1] and "3e-06" in notes[1]
    assert "1.012×" in notes[2]
    table = models._table(measured, ("sqrt",))
    assert "| ResNet50 | 0 | 0.40 | 1.25 | 53/53 | 1e-07 | 0.90 |" in table
    assert "| MobileNetV2 | 0 | 0.70 | 1.25 | 50/52 | 3e-06 | 0.90 |" in table


def test_warmup_schedule_against_the_float64_formula():
    w = optimizers._Warmup.of(quick=False)
    assert (w.steps, w.warmup) == (300, 30)
    schedule = optimizers._warm_schedule(0.01, w)
    for step in (0, 15, 30, 100, 299):
        if step < 30:
            expected = 0.01 * step / 30
        else:
            cosine = 0.5 * (1 + np.cos(np.pi * (step - 30) / 270))
            expected = 0.01 * (0.9 * cosine + 0.1)
        assert float(schedule(step)) == pytest.approx(expected, rel=1e-5, abs=1e-9)


def test_tokens_are_the_grey_levels():
    x8 = np.arange(64, dtype="float32").reshape(1, 8, 8) % 17 / 16.0
    np.testing.assert_array_equal(optimizers._tokens(x8)[0], np.arange(64) % 17)


def test_momentum_goals_sit_on_the_rows_the_issue_names():
    goals = {(label, name): optimizers._state_goal(label, name).get("goal")
             for label in optimizers._state_models() for name in optimizers.MOMENTUM_OPTIMIZERS}
    assert {k: g for k, g in goals.items() if g} == {
        ("ResNet50 64×64", "Adafactor (β₁ 0.9, bfloat16)"): "≤ 0.26",
        ("encoder 6×MHA d=256", "Adafactor (β₁ 0.9, bfloat16)"): "≤ 0.26",
        ("encoder 6×MHA d=256", "Adafactor (β₁ none)"): "≤ 0.02",
    }
    assert set(optimizers.WARMUP_GRIDS) == set(optimizers.MOMENTUM_OPTIMIZERS)


def test_momentum_notes_and_tables_are_computed():
    names = list(optimizers.MOMENTUM_OPTIMIZERS)
    state = {"ResNet50 64×64": {n: 0.5 if "float32" in n else 0.25 if "bfloat16" in n else 1.0 for n in names}}
    best = {"CNN": {n: (2.0 if n == "Adam" else 1.0, 0.01) for n in names}}
    w = optimizers._Warmup.of(quick=True)
    notes = optimizers._momentum_notes(state, best, w)
    assert "ResNet50 64×64 0.500× → 0.250×" in notes[0]
    assert "CNN 0.500× (float32 momentum 0.500×)" in notes[0]
    assert "Best rates at an end" not in notes[1]  # one rate each in quick mode: no grid to leave
    full = optimizers._Warmup.of(quick=False)
    best["CNN"]["Adam"] = (2.0, max(full.grids["Adam"]))
    best["CNN"][optimizers.BF16_ADAFACTOR] = (1.0, 0.03)  # inside its grid
    edges = optimizers._momentum_notes(state, best, full)[1].split("Best rates at an end of their grid")[1]
    assert "CNN Adam (0.01)" in edges and optimizers.BF16_ADAFACTOR not in edges
    tables = optimizers._momentum_tables(state, best, w)
    assert "| CNN | 2.0000 (0.01) |" in tables[1] and "after 60 steps (6 warm-up" in tables[1]
