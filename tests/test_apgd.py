"""APGD (Croce & Hein 2020, Algorithm 1, ``attacks.apgd``) and its DLR loss
(``attacks.losses.dlr``): the loss's derivatives against centred differences in float64, the
checkpoint schedule against the paper's formula, the monotone best loss, the step halving where the
loss stalls, the ball, the verdict, the empty batch, and the strength against PGD on the same
budget."""
import json
from fractions import Fraction
import math

import numpy as np
import pytest

from attacks import AttackResult
from attacks.apgd import APGD, checkpoints, halve
from attacks.ball import box
from attacks.losses import (Targeted, dlr, dlr_scaled, dlr_targeted, dlr_targeted_scaled,
                            loss_and_input_gradient)
from attacks.pgd import PGD, starting_point
from nn import architectures
from nn.architectures import build_spec
from nn.backend import to_device, to_host
from nn.gradcheck import numerical_gradient, rel_error
from nn.model import Sequential
from nn.validate import InputError
from tests.nets import random_images, tiny_models

MODES = {"paper": {"numerics": "paper"}, "float32": {}, "stable": {"numerics": "stable"}}
LOSSES = ("ce", "dlr", "dlr-targeted")


def _gaps(z, y):
    """The smallest gap that decides DLR's pieces: among the top four logits, and between the
    runner-up and the next logit other than y (the test keeps these off ties)."""
    top = -np.sort(-z, axis=1)[:, :4]
    other = np.sort(np.where(np.arange(z.shape[1]) == y[:, None], -np.inf, z), axis=1)
    return min(np.abs(np.diff(top, axis=1)).min(), (other[:, -1] - other[:, -2]).min())


def test_dlr_value_and_logit_gradient_against_finite_differences():
    """DLR = -(z_y - max_{i != y} z_i) / (z_pi1 - z_pi3 + 1e-12) and its analytic dDLR/dz, with the
    true class ranked 1st, 2nd, 3rd and 6th (each a different case of the quotient rule), in
    float64."""
    rng = np.random.default_rng(0)
    z = rng.normal(0, 3, (8, 10))
    order = np.argsort(-z, axis=1)
    y = order[np.arange(8), [0, 1, 2, 5, 0, 1, 2, 5]]
    assert _gaps(z, y) > 1e-3  # off ties: differentiable
    L, dz = dlr(z, y)
    s = -np.sort(-z, axis=1)
    runner_up = np.where(np.arange(10) == y[:, None], -np.inf, z).max(axis=1)
    np.testing.assert_allclose(L, -(z[np.arange(8), y] - runner_up) / (s[:, 0] - s[:, 2] + 1e-12),
                               rtol=1e-15)
    assert ((L > 0) == (order[:, 0] != y)).all()  # positive exactly when misclassified
    num = numerical_gradient(lambda zz: dlr(zz, y)[0].sum(), z.copy())
    assert rel_error(dz, num) < 1e-8
    np.testing.assert_allclose(dz[[2, 6]], num[[2, 6]], atol=1e-9)  # y third: flat (1 - 1e-12 / D)
    # a shift and a positive factor of the logits change neither the loss nor, up to the factor, dz
    L2, dz2 = dlr(4.0 * z + 7.0, y)
    np.testing.assert_allclose(L2, L, rtol=1e-10)
    # the 1e-12 aside (y third: ~1e-12 / D^2)
    np.testing.assert_allclose(4.0 * dz2, dz, rtol=1e-9, atol=1e-12)
    # the scaled form: exp(s) d == dz, max |d| = 1
    Ls, d, log_s = dlr_scaled(z, y)
    np.testing.assert_array_equal(Ls, L)
    np.testing.assert_allclose(d * np.exp(log_s)[:, None], dz, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(np.abs(d).max(axis=1), 1.0)
    with pytest.raises(InputError, match="at least 3 classes"):
        dlr(z[:, :2], np.zeros(8, np.int64))


def test_targeted_dlr_value_and_logit_gradient_against_finite_differences():
    """DLR_t = -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2 + 1e-12) and its dDLR_t/dz, for targets
    and true classes at several ranks (the pieces of D among them), in float64; t = y is flat at
    0."""
    rng = np.random.default_rng(1)
    z = rng.normal(0, 3, (8, 10))
    order = np.argsort(-z, axis=1)
    rows = np.arange(8)
    y = order[rows, [0, 0, 1, 2, 3, 5, 0, 4]]
    t = order[rows, [1, 3, 0, 4, 2, 0, 9, 4]]  # the last: t = y
    assert _gaps(z, y) > 1e-3
    L, dz = dlr_targeted(z, y, t)
    s = -np.sort(-z, axis=1)
    np.testing.assert_allclose(L, -(z[rows, y] - z[rows, t])
                               / (s[:, 0] - (s[:, 2] + s[:, 3]) / 2 + 1e-12), rtol=1e-14)
    assert L[-1] == 0 and (dz[-1] == 0).all()
    num = numerical_gradient(lambda zz: dlr_targeted(zz, y, t)[0].sum(), z.copy())
    assert rel_error(dz, num) < 1e-8
    Ls, d, log_s = dlr_targeted_scaled(z, y, t)
    np.testing.assert_allclose(d * np.exp(log_s)[:, None], dz, rtol=1e-12, atol=1e-300)
    with pytest.raises(InputError, match="at least 4 classes"):
        dlr_targeted(z[:, :3], np.zeros(8, np.int64), np.ones(8, np.int64))


def test_dlr_input_gradient_against_finite_differences(xp):
    """The DLR's and the targeted DLR's input gradients through the model's backward (float64)
    against centred differences, and the stable mode's direction against them; a ReLU and a sigmoid
    MLP."""
    for act, seed in (("relu", 0), ("sigmoid", 1)):
        model = Sequential.init(architectures.mlp(act, hidden=10, input_shape=[1, 4, 4]), seed=seed,
                                dtype=np.float64, xp=xp)
        # spread logits
        model = Sequential(model.spec, [{k: v * 3 for k, v in p.items()} for p in model.params])
        rng = np.random.default_rng(seed)
        x, y = to_device(rng.uniform(0, 1, (6, 1, 4, 4)), xp), to_device(rng.integers(0, 10, 6), xp)
        assert _gaps(to_host(model.logits(x)), to_host(y)) > 1e-4
        for loss in (dlr, Targeted((y + 3) % 10)):
            _, g, _ = loss_and_input_gradient(model, x, y, loss)
            num = numerical_gradient(lambda xx: loss_and_input_gradient(model, xx, y,
                                                                        loss)[0].sum(), x)
            assert rel_error(g, num) < 1e-7, act
            _, d, _ = loss_and_input_gradient(model, x, y, loss, numerics="stable")
            g = to_host(g).reshape(6, -1)
            np.testing.assert_allclose(to_host(d).reshape(6, -1),
                                       g / np.abs(g).max(axis=1, keepdims=True), rtol=1e-9)


def test_checkpoints_follow_the_papers_formula():
    """w_j = ceil(p_j N_iter), p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06),
    over the p_j <= 1 (section 3.2), recomputed here with fractions."""
    assert checkpoints(100) == [0, 22, 41, 57, 70, 80, 87, 93, 99]
    for n in (1, 5, 10, 17, 20, 37, 50, 64, 200, 1000, 1234):
        p = [Fraction(0), Fraction(22, 100)]
        while p[-1] + max(p[-1] - p[-2] - Fraction(3, 100), Fraction(6, 100)) <= 1:
            p.append(p[-1] + max(p[-1] - p[-2] - Fraction(3, 100), Fraction(6, 100)))
        assert checkpoints(n) == sorted({math.ceil(q * n) for q in p}), n


def test_halve_is_condition_1_or_condition_2():
    """Condition 1: fewer than rho * length rises; condition 2: not halved at the last checkpoint
    and f_max not risen since."""
    rises = np.array([14, 15, 20, 20, 20])
    halved_before = np.array([False, False, False, True, False])
    best_now, best_then = np.array([2.0, 2.0, 1.0, 1.0, 1.5]), np.array([1.0, 1.0, 1.0, 1.0, 1.0])
    # length 20, rho 0.75: 14 < 15 (cond. 1); 15 is not < 15; f_max flat and not halved (cond. 2);
    # f_max flat but halved last time; f_max risen
    assert halve(rises, 20, 0.75, halved_before, best_now,
                 best_then).tolist() == [True, False, True, False, False]


def _zero_gradient_model():
    """A ReLU MLP on 8x8 images whose first layer is zero: the logits are constant in x, every input
    gradient is exactly 0 and the loss never rises."""
    model = Sequential.init(architectures.mlp("relu", hidden=8, input_shape=[1, 8, 8]), seed=0)
    params = [dict(p) for p in model.params]
    params[1] = {k: v * 0 for k, v in params[1].items()}
    return Sequential(model.spec, params)


def test_step_halves_at_every_checkpoint_where_the_loss_stalls():
    model, (x, y) = _zero_gradient_model(), random_images(6)
    eps, steps = 0.1, 100
    (x_adv, _, _), curves = APGD(eps, steps=steps, random_start=False).run(model, x, y)
    W = [0, 22, 41, 57, 70, 80, 87, 93, 99]
    # checkpoints passed by k
    halvings = np.array([sum(0 < w <= k for w in W) for k in range(steps + 1)])
    np.testing.assert_array_equal(curves["eta"],
                                  np.broadcast_to((2 * eps * 0.5 ** halvings)[:, None],
                                                  (steps + 1, 6)))
    np.testing.assert_array_equal(x_adv, x)  # sign(0) = 0: nothing moved
    assert (curves["loss"] == curves["loss"][0]).all()


def test_eta_changes_only_at_checkpoints_and_the_best_loss_is_monotone():
    """On a real net in each numerics mode: f_max is the running maximum of the iterates' losses (so
    never decreases), eta only halves and only at checkpoints, and the worst iterate returned for an
    example that was never misclassified is the best-loss one."""
    model, (x, y) = tiny_models()["relu_mlp"], random_images()
    for kw in MODES.values():
        for loss in LOSSES:
            (_, fooled, out_loss), c = APGD(0.05, steps=40, loss=loss, **kw).run(model, x, y)
            assert (np.diff(c["best"], axis=0) >= 0).all()
            np.testing.assert_array_equal(c["best"], np.maximum.accumulate(c["loss"], axis=0))
            ratio = c["eta"][1:] / c["eta"][:-1]
            assert set(np.unique(ratio)) <= {0.5, 1.0}
            # rows k whose eta differs from k - 1's
            changed = np.flatnonzero((ratio != 1).any(axis=1)) + 1
            assert set(changed) <= set(checkpoints(40)), changed
            assert len(changed) > 0  # the test bites: some example halved
            np.testing.assert_array_equal(out_loss[~fooled], c["best"][-1][~fooled])


@pytest.mark.parametrize("mode", [*MODES, "float64"])
def test_success_is_the_models_verdict_on_the_returned_inputs(mode):
    kw = MODES.get(mode, {"numerics": "stable"})
    for arch, model in tiny_models().items():
        x, y = random_images()
        if mode == "float64":
            model, x = model.astype(np.float64), x.astype(np.float64)
        clean_error = model.predict(x) != y
        assert 0 < clean_error.sum() < len(y)
        for loss in LOSSES:
            r = APGD(0.1, steps=6, restarts=2, loss=loss, targets=2, **kw)(model, x, y)
            assert type(r) is AttackResult and r.x_adv.dtype == x.dtype and r.success.dtype == bool
            np.testing.assert_array_equal(r.success, model.predict(r.x_adv) != y,
                                          err_msg=f"{arch} {loss}")
            # a clean error is never traded for a correct point
            assert (r.success >= clean_error).all()
            d = (r.x_adv.astype(np.float64) - x.astype(np.float64)).reshape(len(x), -1)
            np.testing.assert_array_equal(r.linf, np.abs(d).max(axis=1))


def test_every_output_is_in_the_float32_ball_and_the_box(mnist_test):
    model = Sequential.init(build_spec("relu_mlp", hidden=50), seed=0)
    x, y = mnist_test[0][:200], mnist_test[1][:200]
    eps = 0.3
    lo, hi = box(x, eps)
    for kw in MODES.values():
        for loss in LOSSES:
            x_adv = APGD(eps, steps=10, loss=loss, targets=2, **kw)(model, x, y).x_adv
            assert x_adv.dtype == np.float32
            assert (np.abs(x_adv.astype(np.float64) - x) <= eps).all()
            assert x_adv.min() >= 0 and x_adv.max() <= 1
            assert ((x_adv >= lo) & (x_adv <= hi)).all()


def test_restarts_keep_the_per_example_worst_case():
    model, (x, y) = tiny_models()["sigmoid_mlp"], random_images(seed=1)
    attack = APGD(0.03, steps=5, restarts=3, seed=2)
    runs = [attack.run(model, x, y, restart=r)[0][1] for r in range(3)]
    fooled = attack(model, x, y).success
    np.testing.assert_array_equal(fooled, np.any(runs, axis=0) | (model.predict(x) != y))
    assert 0 < fooled.sum() < len(x)


def test_restarts_without_a_random_start_do_not_repeat_each_other():
    """``PGD(restarts=3, random_start=False)`` ran three identical restarts from x (the kind of ART
    issue
    714) though its docstring says only the first starts from x; APGD the same. Now restart 0 starts
    at x, every other restart at the random point it has with random_start=True
    (``attacks.pgd.starting_point``): their iterates differ."""
    model, (x, y) = tiny_models()["relu_mlp"], random_images(seed=1)
    for make in (lambda rs: PGD(0.1, steps=3, restarts=3, seed=4, random_start=rs),
                 lambda rs: APGD(0.1, steps=3, restarts=3, seed=4, random_start=rs)):
        attack, randomised = make(False), make(True)

        def worst(a, r):
            out = a.run(model, x, y, restart=r)
            return (out[0] if isinstance(a, APGD) else out)[0]  # APGD.run also returns its curves
        runs = [worst(attack, r) for r in range(3)]
        assert not np.array_equal(runs[0], runs[1]) and not np.array_equal(runs[1], runs[2])
        for r in (1, 2):
            np.testing.assert_array_equal(runs[r], worst(randomised, r))
    np.testing.assert_array_equal(starting_point(x, 0.1, 4, 0, random_start=False), x)


def test_empty_batch_gives_empty_results():
    for arch in ("relu_mlp", "cnn"):
        model = Sequential.init(build_spec(arch, **({"channels": (2, 3)} if arch == "cnn" else {}),
                                           hidden=8))
        x, y = np.zeros((0, 1, 28, 28), np.float32), np.zeros(0, np.int64)
        for kw, loss in zip(MODES.values(), LOSSES):
            r = APGD(0.1, steps=3, restarts=2, loss=loss, targets=2, **kw)(model, x, y)
            assert r.x_adv.shape == x.shape and r.x_adv.dtype == np.float32
            assert r.success.shape == (0,) and r.success.dtype == bool
            assert r.linf.shape == r.l2.shape == (0,) and r.linf.dtype == np.float64
        _, curves = APGD(0.1, steps=3).run(model, x, y)
        assert all(c.shape == (4, 0) for c in curves.values())
        with pytest.raises(InputError, match="empty batch"):
            APGD(0.1, steps=1)(model, x, y).robust_accuracy


def test_settings_are_checked_at_construction():
    for bad, match in (({"eps": -0.1}, "eps"), ({"steps": 2.5}, "steps"),
                       ({"restarts": 0}, "restarts"),
                       ({"momentum": 1.5}, "momentum"), ({"rho": -1}, "rho"),
                       ({"loss": "hinge"}, "loss"),
                       ({"numerics": "float64"}, "numerics"), ({"targets": 0}, "targets")):
        with pytest.raises(InputError, match=match):
            APGD(**bad)
    with pytest.raises(InputError, match="targets must be at most 9"):
        APGD(0.1, loss="dlr-targeted", targets=10)(tiny_models()["relu_mlp"], *random_images(4))


def test_target_classes_are_the_runners_up_of_the_clean_logits():
    """APGD-T's targets: per example, the classes but y in decreasing order of the clean logits."""
    model, (x, y) = tiny_models()["cnn"], random_images()
    z = model.logits(x)
    targets = np.stack(APGD(0.1, loss="dlr-targeted", targets=9).target_classes(model, x, y),
                       axis=1)  # (N, 9)
    assert (targets != y[:, None]).all() and (np.sort(targets, axis=1) == np.sort(
        np.stack([np.delete(np.arange(10), c) for c in y]), axis=1)).all()
    ranked = np.take_along_axis(z, targets, axis=1)
    assert (np.diff(ranked, axis=1) <= 0).all()


def test_apgd_is_at_least_as_strong_as_pgd_on_the_same_budget(small_mnist_models, mnist_test):
    """The small trained MLPs, 200 test images, eps 0.1, 100 iterations and one start each: APGD's
    robust accuracy (CE) is at most PGD's + 1 point. (Measured: ReLU MLP 5.5 % for APGD-CE, APGD-DLR
    and PGD alike; sigmoid MLP APGD-CE 29.0 %, APGD-DLR 33.0 %, PGD 29.0 %.)"""
    x, y = mnist_test[0][:200], mnist_test[1][:200]
    for name, m in small_mnist_models[1].items():
        apgd = APGD(0.1, steps=100)(m, x, y).robust_accuracy
        pgd = PGD(0.1, steps=100, restarts=1)(m, x, y).robust_accuracy
        assert apgd <= pgd + 0.01, (name, apgd, pgd)


def test_against_torchattacks_apgd_on_the_same_weights(small_mnist_models, mnist_test):
    """Where PyTorch and torchattacks are installed: our APGD's robust accuracy (CE, DLR; targeted
    DLR against their APGDT) is at most theirs + 1 point on the same weights (the torch twin,
    ``experiments.lib.torch_twin``). Measured on 1,000 images at eps 0.05, 0.1 and 0.25: within 0.3
    points of theirs, either way, in all 18 cells."""
    torch = pytest.importorskip("torch")
    torchattacks = pytest.importorskip("torchattacks")
    from experiments.lib import torch_twin
    x, y = mnist_test[0][:200], mnist_test[1][:200]
    for name, model in small_mnist_models[1].items():
        tw = torch_twin.freeze(torch_twin.twin(model))
        for loss in LOSSES:
            if loss == "dlr-targeted":
                attack = torchattacks.APGDT(tw, norm="Linf", eps=0.1, steps=100, n_restarts=1,
                                            seed=0, n_classes=10)
            else:
                attack = torchattacks.APGD(tw, norm="Linf", eps=0.1, steps=100, n_restarts=1,
                                           loss=loss, seed=0)
            adv = attack(torch.from_numpy(x), torch.from_numpy(y))
            theirs = float((tw(adv).argmax(1).numpy() == y).mean())
            ours = APGD(0.1, steps=100, loss=loss)(model, x, y).robust_accuracy
            assert ours <= theirs + 0.01, (name, loss, ours, theirs)


def test_runs_on_a_separate_device(monkeypatch):
    """Every array of the attack stays on the model's device (``tests/fakedevice.py``: CuPy's
    refusals of host/device mixing, on the CPU); needs the installed CuPy only for the names it
    implements."""
    pytest.importorskip("cupy")
    from tests import fakedevice
    fakedevice.install(monkeypatch)
    from nn.backend import get_xp
    device = get_xp("gpu")
    model = tiny_models()["cnn"].to(device)
    x, y = random_images(8)
    x, y = to_device(x, device), to_device(y, device)
    for kw in MODES.values():
        r = APGD(0.1, steps=4, restarts=2, loss="dlr", **kw)(model, x, y)
        assert isinstance(r.x_adv, fakedevice.DeviceArray) and isinstance(r.success,
                                                                          fakedevice.DeviceArray)
        np.testing.assert_array_equal(to_host(r.success), to_host(model.predict(r.x_adv) != y))


def test_the_torchattacks_comparison_writes_each_cell_and_reuses_it(small_mnist_models,
                                                                    mnist_dir, tmp_path):
    """``experiments.tools.apgd_torchattacks`` end to end on a small model: one cell per eps and
    loss, ours within the allowed point of torchattacks', the table written; a rerun reuses every
    cell."""
    pytest.importorskip("torch")
    pytest.importorskip("torchattacks")
    from experiments.tools import apgd_torchattacks
    folder, _ = small_mnist_models
    argv = ["--from", str(folder), "--models", "relu_mlp-vanilla", "--eps", "0.1",
            "--losses", "ce", "dlr",
            "--steps", "20", "--n-test", "200", "--data-dir", str(mnist_dir), "--out",
            str(tmp_path / "cmp")]
    cells = apgd_torchattacks.main(argv)
    assert [(c["eps"], c["loss"]) for c in cells] == [(0.1, "ce"), (0.1, "dlr")]
    assert all(c["ours"] <= c["theirs"] + apgd_torchattacks.TOLERANCE for c in cells), cells
    assert "| relu_mlp-vanilla | 0.1 | dlr | 0 |" in (tmp_path / "cmp"
                                                      / "apgd_torchattacks.md").read_text()
    # the same cells, their timings included: nothing re-run
    assert apgd_torchattacks.main(argv) == cells
    other = [a if a != "0.1" else "0.05" for a in argv]
    other = other[:other.index("--losses") + 1] + ["ce"] + other[other.index("--steps"):]
    apgd_torchattacks.main(other)  # another radius adds its cell beside the first run's
    saved = json.loads((tmp_path / "cmp" / "apgd_torchattacks.json").read_text())["cells"]
    assert sorted((c["eps"], c["loss"]) for c in saved) == [(0.05, "ce"), (0.1, "ce"), (0.1, "dlr")]


def test_the_torchattacks_comparison_says_what_to_install(small_mnist_models,
                                                          monkeypatch, tmp_path):
    """Without PyTorch the script stops at once with the install line, not an ImportError."""
    from experiments.lib import torch_twin
    from experiments.tools import apgd_torchattacks
    from experiments.lib.cli import UsageError
    monkeypatch.setattr(torch_twin, "torch_available", lambda: False)
    with pytest.raises(UsageError, match="torchattacks==3.5.1"):
        apgd_torchattacks.main(["--from", str(small_mnist_models[0]), "--out", str(tmp_path / "x")])
