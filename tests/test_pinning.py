"""A misclassified training image pins its class's readout (``analysis.masking.readout``,
``experiments.beyond.pinning``): the penalty's weight per unit against the penalty itself, the
pinned logit against the minimum of the loss it describes, and the intervention end to end."""
import importlib.util
import shutil
import types

import numpy as np
import pytest
from scipy.optimize import minimize

from analysis.masking.readout import misclassified, pinned_logit
from experiments.lib import grids
from experiments.beyond import pinning, sweep
from experiments.lib.cli import UsageError
from experiments.lib.intervention import DROPPED, intervened_data
from experiments.lib.store import stored_key
from nn.checkpoint import load_checkpoint, save_checkpoint
from nn.mnist import load_mnist
from nn.penalty import phi_sigmoid, saturating_penalty, unit_weight
from nn.softmax import log_softmax_stable
from nn.train import resume_state, train
from nn.validate import InputError


@pytest.mark.parametrize("units", ["sum", "mean"])
@pytest.mark.parametrize("batch", ["mean", "sum"])
def test_unit_weight_is_the_penalty_gradient_per_example_cross_entropy(units, batch):
    """dR/dh of one example's unit is unit_weight * phi'(h) / N: the weight beside a cross-entropy
    averaged over the N examples."""
    h = np.random.default_rng(0).normal(0, 3, (7, 5))
    _, (dh,) = saturating_penalty([h], ["sigmoid"], 1.74, units=units, batch=batch)
    w = unit_weight(1.74, 5, 7, units=units, batch=batch)
    np.testing.assert_allclose(dh, w * phi_sigmoid(h)[1] / 7, rtol=1e-14)
    with pytest.raises(InputError, match="unit reduction"):
        unit_weight(1.74, 5, 7, units="max")


def test_pinned_logit_solves_its_balance():
    w, n = unit_weight(1.74, 10, 128, "mean", "mean"), 5444
    z = pinned_logit(w, n)
    assert (n + 1) * w * -phi_sigmoid(np.float64(z))[1] == pytest.approx(1.0, rel=1e-9)
    assert z == pytest.approx(np.log(w * (n + 1)), abs=0.01)  # |phi'| ~ e^-z far from 0
    assert pinned_logit(w, n, 2) < z < pinned_logit(w, 2 * n)
    # 5 images' penalty cannot hold one pinning example anywhere
    assert np.isnan(pinned_logit(w, 5))
    with pytest.raises(InputError, match="n_class"):
        pinned_logit(w, 0)


def test_pinned_logit_is_where_the_loss_settles():
    """n images of class 0 and one of label 1 with one hidden code share the logits (z_0, z_1): the
    minimum of their mean cross-entropy plus the readout's sigma' penalty lies at z_0 ~ z*,
    z_1 ~ -z*."""
    n, w = 5444, 0.174
    y = np.array([0] * n + [1])

    def loss(z):  # (2,) shared logits -> mean over the n + 1 examples of C + w sum_k phi(z_k)
        logp = log_softmax_stable(z[None, :])[0]
        return -(n * logp[0] + logp[1]) / (n + 1) + w * phi_sigmoid(z)[0].sum()
    z = minimize(loss, np.array([3.0, -3.0]), method="BFGS", options={"gtol": 1e-14}).x
    z_star = pinned_logit(w, n)
    assert len(y) == n + 1 and z[0] == pytest.approx(z_star,
                                                     abs=0.02) and z[1] == pytest.approx(-z_star,
                                                                                         abs=0.02)


def test_misclassified_by_hand():
    z = np.array([[3.0, 1.0, -2.0], [0.0, 2.0, 1.0], [5.0, 0.0, 0.0], [0.0, 0.0, 4.0]], np.float32)
    stub = types.SimpleNamespace(xp=np, dtype=np.float32,
                                 logits=lambda x: z[x[:, 0, 0, 0].astype(int)])
    x = np.arange(4, dtype=np.float32).reshape(4, 1, 1, 1)
    found = misclassified(stub, x, np.array([0, 1, 2, 1]), batch=3)  # two batches
    assert found["index"].tolist() == [2, 3] and found["label"].tolist() == [2, 1]
    assert found["predicted"].tolist() == [0, 2] and found["gap"].tolist() == [5.0, 4.0]


def test_intervened_data_leaves_out_exactly_those_images():
    x, y = np.arange(10.0).reshape(10, 1, 1, 1), np.arange(10) % 3
    data = {"train": (x, y), "test": (x[:2], y[:2])}
    assert intervened_data(data, None) is data and intervened_data(data,
                                                                   {"readout_shift": 1.0}) is data
    xt, yt = intervened_data(data, {DROPPED: [2, 7]})["train"]
    assert xt[:, 0, 0, 0].tolist() == [0, 1, 3, 4, 5, 6, 8, 9] and yt.tolist() == [0, 1,
                                                                                   0, 1, 2, 0, 2, 0]


@pytest.mark.slow
def test_the_intervention_end_to_end(tmp_path, mnist_dir, capsys):
    # a quick saturated sigmoid MLP, 6 epochs on the first 10,000 images
    first = grids.GRIDS["quick"][0]
    assert first.recipe.train["max_train"] == 10000
    sweep.main(["--quick", "--out", str(tmp_path / "sweep"), "--data-dir", str(mnist_dir),
                "--n-test", "300"])
    source, out = tmp_path / "sweep" / first.name, tmp_path / "pin"
    common = ["--out", str(out), "--data-dir", str(mnist_dir), "--n-test", "300"]
    data = load_mnist(mnist_dir)
    x, y = (a[:10000] for a in data["train"])
    wrong = misclassified(load_checkpoint(source / "snap-e6.npz")[0], x, y)
    drop = int(wrong["index"][0])
    rows = pinning.main([str(source), "--at", "6", "--drop", str(drop), "--epochs",
                         "7", "8", *common])
    dest = out / f"{first.name}-e6-drop{drop}"
    assert [r["epoch"] for r in rows if r["run"] == dest.name] == [7, 8]
    rec = load_checkpoint(dest / "snap-e8.npz")[1]["intervention"]
    assert rec[DROPPED] == [drop] and rec["at_epoch"] == 6 and "control_for" not in rec
    # trained again to epoch 6: the same bits
    assert rec["retrained"].startswith("equal bit for bit")
    assert stored_key(load_checkpoint(dest / "snap-e8.npz")[1]) is None
    assert f"{drop}: {wrong['label'][0]} -> {wrong['predicted'][0]}" in (out
                                                                         / "pinning.md").read_text()
    # the report counts what the run trains on
    dropped_row = [r for r in rows if r["run"] == dest.name][-1]
    assert (sum(dropped_row["n_class"]) == 9999
            and all(i < 10000 for i in dropped_row["misclassified"]["index"]))
    if importlib.util.find_spec("matplotlib"):  # the plots extra draws one class's logit and margin
        assert (out / "pinning.png").stat().st_size > 0

    # the continuation is the base state trained on without the image; with it, another model
    base = out / f"{first.name}-e6" / "train.npz"
    cfg = first.recipe.replace("train", epochs=8).config(first.seed)
    ours = load_checkpoint(dest / "snap-e8.npz")[0]
    for data_used, same in ((intervened_data(data, rec, 10000), True), (data, False)):
        model, state, _ = resume_state(base, first.recipe.config(first.seed), np)
        train(model, data_used, cfg, objective=first.recipe.objective(), resume=state,
              log=lambda s: None)
        assert all(np.array_equal(a[k], b[k]) for a, b in zip(model.params, ours.params)
                   for k in a) == same
    assert len(intervened_data(data, rec, 10000)["train"][0]) == 9999

    # the control: as many correctly classified trained images of the same label, drawn at random
    pinning.main([str(source), "--at", "6", "--drop", str(drop), "--epochs", "7", "8",
                  "--control", *common])
    control = out / f"{first.name}-e6-control{drop}"
    crec = load_checkpoint(control / "train.npz")[1]["intervention"]
    (other,) = crec[DROPPED]
    assert (other != drop and other < 10000 and crec["control_for"] == [drop]
            and y[other] == wrong["label"][0])
    assert other not in misclassified(load_checkpoint(source / "snap-e6.npz")[0], x, y)["index"]

    snaps = {p: p.stat().st_mtime_ns for p in out.glob("*/*.npz")}
    capsys.readouterr()
    pinning.main([str(source), "--at", "6", "--drop", str(drop), "--epochs", "7", "8",
                  "--control", *common])  # nothing to do
    assert {p: p.stat().st_mtime_ns
            for p in out.glob("*/*.npz")} == snaps and "resuming" not in capsys.readouterr().out

    # a source whose snapshot the retrained state does not match: no continuation
    other_source = tmp_path / "other" / first.name
    shutil.copytree(source, other_source)
    model, meta = load_checkpoint(other_source / "snap-e6.npz")
    model.params[-1]["b"][0] += 1
    save_checkpoint(other_source / "snap-e6.npz", model,
                    **{k: v for k, v in meta.items() if k not in ("format", "spec")})
    with pytest.raises(UsageError, match="differs from"):
        pinning.main([str(other_source), "--at", "6", "--drop", str(drop), "--epochs", "7",
                      "--out", str(tmp_path / "pin2"), "--data-dir", str(mnist_dir)])

    for bad, match in [(["--at", "6", "--epochs", "8"], "together"), (["--control"], "control"),
                       (["--at", "6", "--drop", "1", "--epochs", "6"], "after --at"),
                       (["--at", "6", "--drop", "10000", "--epochs", "8"], "0..9999"),
                       (["--at", "6", "--drop", *map(str, range(11)), "--epochs", "8"],
                        "at most 10"),
                       (["--plot-class", "10"], "no such class")]:
        with pytest.raises(UsageError, match=match):
            pinning.main([str(source), *bad, *common])
    with pytest.raises(UsageError, match="not a sweep run folder"):
        pinning.main([str(tmp_path), *common])
