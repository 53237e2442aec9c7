"""The sweep end to end at the quick sizes: training, snapshots, evaluation, report, continuing a
run, Table 1 finding its snapshots, and the regime's measurements on a CNN."""
import json

import numpy as np
import pytest

from experiments.beyond import sweep
from experiments.lib import evaluation, grids
from experiments.lib.store import find_snapshot
from nn import architectures


@pytest.mark.slow
def test_sweep_quick_end_to_end_and_continues(tmp_path, mnist_dir, capsys):
    """The quick grid trains, snapshots and evaluates every run and writes the report; a run whose
    epochs are raised continues from its last epoch; Table 1 finds the snapshot of its recipe
    only."""
    out = tmp_path / "sweep"
    argv = ["--quick", "--out", str(out), "--data-dir", str(mnist_dir), "--n-test", "300"]
    rows = sweep.main(argv)
    assert {r["run"] for r in rows} == {r.name for r in grids.GRIDS["quick"]}
    assert {"table.md", "table.json", "log.txt"} <= {p.name for p in out.iterdir()}
    for r in rows:
        assert 0 <= r["fgsm_paper"] <= r["clean_acc"] and 0 <= r["zero_grad_paper"] <= 1
        assert len(r["depth_q"]) == 3 and r["n_test"] == 300
    first = grids.GRIDS["quick"][0]
    folder = out / first.name
    snaps = {p.name: p.stat().st_mtime_ns for p in folder.glob("snap-*.npz")}
    assert set(snaps) == {f"snap-e{first.recipe.epochs}.npz"}
    longer = grids.SweepRun(first.recipe.replace("train", epochs=first.recipe.epochs + 1),
                            first.seed, first.name, first.settings)
    capsys.readouterr()
    sweep.train_run({"run": longer, "root": str(out), "data_dir": str(mnist_dir), "device": "cpu",
                     "n_test": 300, "batch": 500})
    assert f"continued from epoch {first.recipe.epochs}" in capsys.readouterr().out
    assert {p.name: p.stat().st_mtime_ns
            for p in folder.glob("snap-*.npz")}.items() >= snaps.items()
    assert (folder / f"snap-e{first.recipe.epochs + 1}.npz").exists()
    assert sweep.main(argv + ["--report"])  # the report alone re-reads every run
    assert find_snapshot(out, first.recipe,
                         first.seed) == folder / f"snap-e{first.recipe.epochs}.npz"
    assert find_snapshot(out, first.recipe, first.seed + 1) is None
    assert find_snapshot(out, first.recipe.replace("train", lr=0.5), first.seed) is None
    # Table 1 takes the snapshot of its quick sigmoid MLP (the same recipe) once, then loads its
    # copy (--no-shipped: the quick recipe, not the shipped regime model)
    from experiments import table1
    t1 = ["--quick", "--no-shipped", "--only", "sigmoid_mlp-saturated", "--sweep", str(out),
          "--out", str(tmp_path / "t1"), "--data-dir", str(mnist_dir)]
    capsys.readouterr()
    table1.main(t1)
    assert "taken from the sweep's" in capsys.readouterr().out
    table1.main(t1)
    assert "loaded" in capsys.readouterr().out


def test_sweep_list_prints_one_command_per_run(tmp_path, capsys):
    sweep.main(["--quick", "--out", str(tmp_path), "--list"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split("--run ")[1].split()[0] for line in lines] == [r.name
                                                                      for r in grids.GRIDS["quick"]]


def test_sweep_evaluates_cnns_on_permuted_channels_and_renews_old_records(tmp_path):
    """The regime's evaluation permutes a CNN's channels too (three summation orders of the same
    function) and predicts its zero gradients from the margin; a record of an older version is
    recomputed, one of the current version reused as it is."""
    from experiments.lib.evaluation import evaluate
    from nn.checkpoint import save_checkpoint
    from nn.model import Sequential
    model = Sequential.init(architectures.cnn(channels=(3, 4), hidden=5, kernel=3,
                                              input_shape=[1, 8, 8]), seed=0)
    x = np.random.default_rng(0).random((6, 1, 8, 8)).astype(np.float32)
    y = model.logits(x).argmax(axis=1)  # its own labels: every image correct, margins to measure
    rec = evaluate(model, x, y, batch=4, regime=True)
    assert len(rec["fgsm_paper_permuted"]) == 3 and all(0 <= a <= 1
                                                        for a in rec["fgsm_paper_permuted"])
    assert 0 <= rec["zero_pred_margin_paper"] <= 1  # the margin's prediction for every model,
    assert "zero_pred_path_paper" not in rec  # the depth-and-margin one for MLPs only
    snap = tmp_path / "snap-e1.npz"
    save_checkpoint(snap, model)
    (tmp_path / "eval-e1.json").write_text(json.dumps({"version": evaluation.EVAL_VERSION - 1,
                                                       "clean_acc": -1}))
    renewed = evaluation.evaluate_snapshot(snap, x, y, np, lambda line: None, batch=4)
    assert renewed["fgsm_paper_permuted"] == rec["fgsm_paper_permuted"]
    stored = json.loads((tmp_path / "eval-e1.json").read_text())
    # a marker: reused, not redone
    (tmp_path / "eval-e1.json").write_text(json.dumps({**stored, "clean_acc": -1}))
    assert evaluation.evaluate_snapshot(snap, x, y, np, lambda line: None,
                                        batch=4)["clean_acc"] == -1
    assert evaluation.evaluate_snapshot(snap, x[:5], y[:5], np, lambda line: None,
                                        batch=4)["n_test"] == 5  # redone


def test_checkpoints_of_older_versions_are_the_same_model():
    """A sweep checkpoint written before recipes (flat "sweep_settings" in the old words: "ftz",
    derivative "stable") and a Table 1 checkpoint of that time ("model_settings", "config") resume
    as the model today's recipe names."""
    from experiments.lib.recipes import model_key, table1_recipes
    from experiments.lib.store import stored_key
    run = grids.RELU[11]  # the regime ReLU MLP
    old = {"arch": "relu_mlp", "hidden": 200, "lam_max": 3.99e-8, "lam_step": 1e-10, "units": "sum",
           "batch": "mean", "derivative": "stable", "ftz": True, "lr": 1e-3, "batch_size": 128,
           "seed": 0, "max_train": None, "readout": "linear", "channels": None, "adam_eps": None}
    assert stored_key({"sweep_settings": old}) == model_key(run.recipe, 0)
    assert stored_key({"sweep_settings": {**old, "ftz": False}}) != model_key(run.recipe, 0)
    recipe = table1_recipes()["relu_mlp-saturated"]
    settings = {"arch": "relu_mlp", "training": "saturated", "arch_kwargs": {"hidden": 200},
                "train": {"epochs": 800, "lr": 1e-3, "lr_decay": 1.0, "ftz": True},
                "method": {"kinds": ["relu", "relu", "linear"], "lam_max": 3.99e-8,
                           "lam_step": 1e-10, "units": "sum"}}
    assert stored_key({"model_settings": settings, "config": {"seed": 0}}) == model_key(recipe, 0)
    assert stored_key({"nothing": 1}) is None


def test_silence_reports_each_class_margin(small_mnist_models, mnist_dir):
    """The per-class medians of ``analysis.masking.readout.silence`` are the overall ones restricted
    to one class: a readout unit that stops growing shows as its class's margin."""
    import numpy as np
    from attacks.losses import margin
    from analysis.masking.readout import silence
    from nn.mnist import load_mnist
    model = small_mnist_models[1]["sigmoid_mlp-vanilla"]
    x, y = (a[:600] for a in load_mnist(mnist_dir)["test"])
    out = silence(model, x, y, batch=250)
    z = model.logits(x)
    right = z.argmax(1) == y
    m = -margin(z, y)[0]
    for c in range(10):
        np.testing.assert_allclose(out["margin_by_class"][c],
                                   np.median(m[right & (y == c)]), rtol=1e-5)  # batch sums
        np.testing.assert_allclose(out["z_correct_by_class"][c],
                                   np.median(z[right & (y == c), c]), rtol=1e-5)
    assert len(out["silent_by_class"]) == 10 and all(0 <= v <= 1 for v in out["silent_by_class"])
    assert abs(np.dot(out["silent_by_class"], np.bincount(y, minlength=10)) / len(y)
               - out["silent"]) < 1e-12


def test_a_run_without_a_readout_penalty_names_no_kind_for_its_last_layer():
    """readout="none": the hidden layers keep their phi, the readout has none, the folder says
    so."""
    run = grids.sweep_run(hidden=1000, readout="none", epochs=400)
    assert run.recipe.method["kinds"] == ["sigmoid", "sigmoid", None]
    assert run.name.endswith("-seed0-readoutnone")
    assert grids.sweep_run(hidden=1000).recipe.method["kinds"] == ["sigmoid"] * 3
