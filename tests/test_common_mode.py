"""The common-mode test (``experiments.beyond.common_mode``): the readout's sides measured by hand,
a common shift that the cross-entropy cannot see, and the shifted run end to end, never taken for
its recipe."""
import importlib.util
import json
import types

import numpy as np
import pytest

from analysis.masking.readout import readout_sides, shift_readout
from experiments.beyond import common_mode, sweep
from experiments.lib import grids, readout_shift
from experiments.lib.cli import UsageError
from experiments.lib.recipes import model_key
from experiments.lib.store import stored_key
from nn import architectures
from nn.checkpoint import load_checkpoint
from nn.mnist import load_mnist
from nn.model import Sequential


def test_readout_sides_by_hand():
    """Correct images only: z_true, the highest wrong logit, their difference and mean, and the
    share of wrong logits above 0."""
    # the third is misclassified
    z = np.array([[3.0, 1.0, -2.0], [0.0, 2.0, 1.0], [5.0, 0.0, 0.0]], np.float32)
    stub = types.SimpleNamespace(xp=np, dtype=np.float32, logits=lambda x: z[:len(x)])
    sides = readout_sides(stub, np.zeros((3, 1, 1, 1), np.float32), np.array([0, 1, 2]))
    assert sides == {"z_correct": 2.5, "z_wrong_max": 1.0, "margin": 1.5, "common_mode": 1.75,
                     "wrong_positive": 0.5, "true_positive": 1.0}


def test_a_common_shift_of_the_logits_moves_only_the_readout_penalty():
    """z -> z - s leaves the cross-entropy, its input gradient and the predictions as they were
    (float64), and changes the readout's sigma' penalty: the penalty alone sees which side of 0 a
    logit sits on."""
    from nn.penalty import phi_sigmoid
    rng = np.random.default_rng(0)
    model = Sequential.init(architectures.mlp("sigmoid", hidden=8, input_shape=[1, 4, 4]),
                            seed=0).astype(np.float64)
    x, y = rng.random((5, 1, 4, 4)), np.array([0, 1, 2, 3, 4])
    loss, g = model.loss_and_input_gradient(x, y)
    z = model.logits(x)
    shift_readout(model, 3.0)
    loss2, g2 = model.loss_and_input_gradient(x, y)
    np.testing.assert_allclose(model.logits(x), z - 3.0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(loss2, loss, rtol=0, atol=1e-12)
    np.testing.assert_allclose(g2, g, rtol=0, atol=1e-12)
    assert (model.predict(x) == z.argmax(axis=1)).all()
    (before, dphi_before), (after, dphi_after) = phi_sigmoid(z), phi_sigmoid(model.logits(x))
    assert abs(float(after.sum() - before.sum())) > 1e-3
    # descent on phi, -dphi/dz, pushes these up before, down after
    crossed = (z > 0) & (z - 3.0 < 0)
    assert crossed.any() and (dphi_before[crossed] < 0).all() and (dphi_after[crossed] > 0).all()


@pytest.mark.slow
def test_the_shifted_run_continues_and_is_never_its_recipes_model(tmp_path, mnist_dir, capsys):
    # a quick saturated sigmoid MLP, 6 epochs; a ReLU MLP with a linear readout
    first, relu = grids.GRIDS["quick"]
    sweep.main(["--quick", "--out", str(tmp_path / "sweep"), "--data-dir", str(mnist_dir),
                "--n-test", "300"])
    source = tmp_path / "sweep" / first.name
    out = tmp_path / "cm"
    argv = [str(source), "--epochs", "7", "8", "--out", str(out), "--data-dir", str(mnist_dir),
            "--n-test", "300"]
    rows = common_mode.main(argv)
    dest = out / f"{first.name}-shift6"
    assert [r["epoch"] for r in rows[dest.name]] == [7, 8] and [r["epoch"]
                                                                for r in rows[first.name]] == [6]
    meta = load_checkpoint(dest / "train.npz")[1]
    rec = meta["intervention"]
    assert (rec["at_epoch"] == 6
            and abs(rec["after"]["common_mode"]) < 1e-3 < abs(rec["before"]["common_mode"]))
    assert rec["source"] == str(source / "train.npz")
    assert rec["after"]["margin"] == pytest.approx(rec["before"]["margin"], abs=1e-4)
    # the shift is on record: not the recipe's model
    for path in (dest / "train.npz", dest / "snap-e8.npz"):
        meta = load_checkpoint(path)[1]
        assert "intervention" in meta and stored_key(meta) is None
    assert stored_key(load_checkpoint(source / "train.npz")[1]) == model_key(first.recipe,
                                                                             first.seed)
    assert not (dest / "recipe.json").exists()  # so no sweep lookup finds it
    assert "| 8 |" in (out / f"{first.name}.md").read_text()
    if importlib.util.find_spec("matplotlib"):  # the plots extra draws margin and common mode
        assert (out / f"{first.name}.png").stat().st_size > 0
    snaps = {p.name: p.stat().st_mtime_ns for p in dest.glob("*.npz")}
    capsys.readouterr()
    common_mode.main(argv)  # run again: nothing to train, nothing rewritten
    assert {p.name: p.stat().st_mtime_ns for p in dest.glob("*.npz")} == snaps
    assert "resuming" not in capsys.readouterr().out
    (dest / "snap-e8.npz").unlink()  # as if stopped between the checkpoint at 8 and its snapshot
    (dest / "eval-e8.json").unlink()
    common_mode.main(argv)
    assert (dest / "snap-e8.npz").exists() and (dest / "eval-e8.json").exists()
    # restored from the checkpoint, nothing trained
    assert "resuming" not in capsys.readouterr().out

    # another image count: the source's records in the sweep's folder stay as the sweep wrote them
    sweep_evals = {p.name: p.read_bytes() for p in source.glob("eval-e*.json")}
    fewer = common_mode.main(argv[:-1] + ["200"])
    assert {p.name: p.read_bytes() for p in source.glob("eval-e*.json")} == sweep_evals
    assert {r["n_test"] for rs in fewer.values() for r in rs} == {200}
    assert json.loads((dest / "eval-e8.json").read_text())["n_test"] == 200

    # the shift is the one recorded, on the biases alone, and Adam's state came along
    src, _, src_adam = load_checkpoint(source / "train.npz", optimizer=True)
    shifted = shift_readout(src, rec["readout_shift"])
    start = tmp_path / "start.npz"  # the shifted start, made again from the source as it is
    readout_shift.shifted(*load_checkpoint(source / "train.npz", optimizer=True)[::2],
                          load_checkpoint(source / "train.npz")[1],
                          source / "train.npz", start,
                          *(a[:2000] for a in load_mnist(mnist_dir)["train"]))
    made, _, made_adam = load_checkpoint(start, optimizer=True)
    for a, b in zip(made.params, shifted.params):
        assert all(np.array_equal(a[k], b[k]) for k in a)
    assert made_adam["t"] == src_adam["t"]

    # the control: the same checkpoint continued as it is, the recipe's own model
    control = common_mode.main(argv + ["--shift", "none"])
    assert [r["epoch"] for r in control[f"{first.name}-from6"]] == [7, 8] and dest.name in control
    meta = load_checkpoint(out / f"{first.name}-from6" / "snap-e8.npz")[1]
    assert "intervention" not in meta and stored_key(meta) == model_key(first.recipe, first.seed)
    assert (json.loads((out / f"{first.name}.json").read_text())
            ["interventions"][f"{first.name}-from6"] is None)

    # a run whose name extends this one's is not one of its continuations
    other = out / f"{first.name}-readoutnone-shift6"
    other.mkdir()
    (other / "train.npz").write_bytes((dest / "train.npz").read_bytes())
    assert other.name not in common_mode.main(argv)

    # the same command continues its continuation even after the source has trained on
    longer = grids.SweepRun(first.recipe.replace("train", epochs=9), first.seed, first.name,
                            first.settings)
    sweep.train_run({"run": longer, "root": str(tmp_path / "sweep"), "data_dir": str(mnist_dir),
                     "device": "cpu", "n_test": 300, "batch": 500})
    common_mode.main(argv[:1] + ["--epochs", "9"] + argv[4:])
    assert (dest / "snap-e9.npz").exists() and not (out / f"{first.name}-shift9").exists()

    # the shifted run from its last state (epoch 9) with another Adam epsilon, beside it continued
    # as it is
    eps_argv = argv[:1] + ["--epochs", "10", "--adam-eps", "1e-12"] + argv[4:]
    rows = common_mode.main(eps_argv)
    fork = out / f"{first.name}-shift6-eps1e-12"
    assert [r["epoch"] for r in rows[fork.name]] == [10]
    meta = load_checkpoint(fork / "snap-e10.npz")[1]
    assert meta["intervention"]["adam_eps"] == 1e-12 and meta["intervention"]["adam_eps_from"] == 9
    assert (meta["intervention"]["readout_shift"] == rec["readout_shift"]
            and stored_key(meta) is None)
    assert load_checkpoint(fork / "train.npz")[1]["config"]["eps"] == 1e-12
    common_mode.main(argv[:1] + ["--epochs", "10"] + argv[4:])
    # eps 1e-8 from the same state: other weights
    same_state = load_checkpoint(dest / "snap-e10.npz")[0]
    assert not all(np.array_equal(a[k], b[k])
                   for a, b in zip(same_state.params,
                                   load_checkpoint(fork / "snap-e10.npz")[0].params) for k in a)
    assert f"| {fork.name} | 10 |" in (out / f"{first.name}.md").read_text()
    steps = json.loads((out / f"{first.name}.json").read_text())["adam_step_share"]
    assert (steps[fork.name]["eps"] == 1e-12 and steps[dest.name]["eps"] == 1e-8
            and steps[dest.name]["epoch"] == 10)
    assert all(0 <= v < 1 for layer in steps[fork.name]["median"] for v in layer.values())
    # a smaller eps
    assert all(a >= b for la, lb in zip(steps[fork.name]["median"], steps[dest.name]["median"])
               for a, b in zip(la.values(), lb.values()))  # leaves more of each step
    with pytest.raises(UsageError, match="shifted run"):
        common_mode.main(eps_argv + ["--shift", "none"])
    with pytest.raises(UsageError, match="positive finite"):
        common_mode.main([a if a != "1e-12" else "inf" for a in eps_argv])
    # the same folder name, another epsilon
    with pytest.raises(UsageError, match="not 1.0000001e-12"):
        common_mode.main([a if a != "1e-12" else "1.0000001e-12" for a in eps_argv])
    with pytest.raises(UsageError, match="make it first"):
        common_mode.main(eps_argv[:5] + ["--out", str(tmp_path / "cm3"),
                                         "--data-dir", str(mnist_dir)])

    for bad, match in [([str(source), "--epochs", "9"], "at epoch 9"),  # the source trained on to 9
                       ([str(tmp_path), "--epochs", "9"], "not a sweep run folder"),
                       ([str(source / "train.npz"), "--epochs", "9"], "not a sweep run folder"),
                       ([str(tmp_path / "sweep" / relu.name), "--epochs", "9"], "sigma' penalty")]:
        with pytest.raises(UsageError, match=match):
            common_mode.main(bad + ["--out", str(tmp_path / "cm2"), "--data-dir", str(mnist_dir)])
