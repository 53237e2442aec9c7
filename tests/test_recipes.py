"""Recipes name models: the paper's facts build them, --set changes them in one dialect, and
model_key alone decides identity (Table 1, the sweep and resuming agree on it)."""
import pytest

from experiments.lib import grids, paper
from experiments.lib.recipes import (Recipe, SettingError, apply_set, model_key, select,
                                     table1_recipes)


def test_table1_recipes_come_from_the_papers_facts():
    r = table1_recipes()
    assert list(r) == list(paper.MODELS + paper.CONTROLS)
    sat = r["sigmoid_mlp-saturated"]
    assert sat.method["lam_max"] == paper.LAMBDA["sigmoid_mlp"]["lam_max"] == 1.74
    assert sat.method["kinds"] == paper.PHI["sigmoid_mlp"] and sat.method["units"] == "mean"
    assert sat.arch_kwargs["hidden"] == 200 and sat.epochs == 1600
    assert r["relu_mlp-adversarial"].method == paper.ADVERSARIAL
    assert r["cnn-vanilla"].train["epochs"] == 6 and r["relu_mlp-vanilla"].method == {}
    quick = table1_recipes(quick=True)
    assert quick["sigmoid_mlp-saturated"].arch_kwargs["hidden"] == 16
    assert quick["sigmoid_mlp-saturated"].method["lam_step"] == 1e-2


def test_defaults_are_filled_so_equal_models_compare_equal():
    a = Recipe.make("relu_mlp", "vanilla", {"hidden": 30}, {"epochs": 2})
    b = Recipe.make("relu_mlp", "vanilla", {"hidden": 30, "depth": 2},
                    {"epochs": 2, "lr": 1e-3, "batch_size": 128})
    assert a == b and model_key(a, 0) == model_key(b, 0)
    assert model_key(a, 0) != model_key(a, 1)  # the seed is part of a model
    # epochs are not: a run continues
    assert model_key(a, 0) == model_key(a.replace("train", epochs=7), 0)
    assert model_key(a, 0) != model_key(a.replace("train", lr=0.5), 0)


def test_set_dialect_addresses_models_architectures_and_trainings():
    r = table1_recipes()
    r2 = apply_set(r, "relu_mlp-saturated.method.lam_max=0")
    assert (r2["relu_mlp-saturated"].method["lam_max"] == 0.0
            and r["relu_mlp-saturated"].method["lam_max"] == 3.99e-8)
    r3 = apply_set(r, "saturated.train.epochs=3")
    assert {n: x.epochs for n, x in r3.items() if n.endswith("saturated")} == dict.fromkeys(
        ["sigmoid_mlp-saturated", "relu_mlp-saturated", "cnn-saturated"], 3)
    assert r3["cnn-vanilla"].epochs == 6
    r4 = apply_set(r, "cnn.arch.hidden=64")
    assert all(r4[f"cnn-{t}"].arch_kwargs["hidden"] == 64 for t in paper.TRAININGS)
    for bad, match in (("relu_mlp-saturated.method.lam=1", "no setting 'lam'"),
                       ("mlp.train.epochs=3", "unknown mlp"),
                       ("relu_mlp.train.epochs=three", "expected int"),
                       ("relu_mlp.weights.x=1", "no part 'weights'"),
                       ("relu_mlp.train.epochs", "needs <models>.<part>.<key>=<value>")):
        with pytest.raises(SettingError, match=match):
            apply_set(r, bad)


def test_select_picks_by_model_architecture_or_training():
    names = list(paper.MODELS)
    assert select(names, ["cnn"]) == ["cnn-vanilla", "cnn-adversarial", "cnn-saturated"]
    assert select(names, ["saturated", "relu_mlp-vanilla"]) == ["sigmoid_mlp-saturated",
                                                                "relu_mlp-vanilla",
                                                                "relu_mlp-saturated",
                                                                "cnn-saturated"]
    assert select(names, None) == names
    with pytest.raises(SettingError, match="--only: unknown mlp"):
        select(names, ["mlp"])


def test_table1_saturated_models_are_sweep_runs():
    """Each saturated model of Table 1, and each control, is a run of the sweep, snapshotted at its
    epochs (a milestone or the run's last), so the sweep's training serves Table 1; the quick
    presets agree too."""
    for grid, recipes in (("all", table1_recipes()), ("quick", table1_recipes(quick=True))):
        names = [f"{a}-{t}" for a in paper.ARCHS for t in ("saturated", paper.CONTROL)]
        for name in names if grid == "all" else ["sigmoid_mlp-saturated"]:
            recipe = recipes[name]
            runs = [r for r in grids.GRIDS[grid]
                    if model_key(r.recipe, r.seed) == model_key(recipe, 0)]
            assert any(recipe.epochs in grids.MILESTONES and r.recipe.epochs >= recipe.epochs
                       or r.recipe.epochs == recipe.epochs for r in runs), name


def test_sweep_grid_all_holds_every_run_once_and_settings_reach_the_recipe():
    names = [r.name for r in grids.GRIDS["all"]]
    assert len(names) == len(set(names))
    assert set(names) == {r.name for r in grids.SIGMOID + grids.RELU + grids.CNN + grids.CONTROLS}
    plain, tiny = grids.sweep_run(hidden=500), grids.sweep_run(hidden=500, adam_eps=1e-12)
    assert plain.recipe.config().eps == 1e-8 and tiny.recipe.config().eps == 1e-12
    assert tiny.name == plain.name + "-adameps1e-12"
    assert model_key(tiny.recipe, 0) != model_key(plain.recipe, 0)
    linear = grids.sweep_run(arch="relu_mlp", readout="linear")
    assert linear.recipe.method["kinds"] == ["relu", "relu", "linear"]
    assert grids.sweep_run(arch="relu_mlp").recipe.method["kinds"] == ["relu"] * 3
    # the architecture is the figure's row
    assert grids.short_label(linear.settings) == "readout linear"
    assert grids.short_label(grids.sweep_run(lr=3e-3).settings) == "lr 0.003"


def test_a_control_is_its_saturated_recipe_without_the_penalty():
    r = table1_recipes()
    for arch in paper.ARCHS:
        sat, control = r[f"{arch}-saturated"], r[f"{arch}-control"]
        assert (control.arch_kwargs == sat.arch_kwargs and control.train == sat.train
                and control.method == {})
        assert model_key(control, 0) != model_key(sat, 0)
    assert select(list(r), ["control"]) == list(paper.CONTROLS)
