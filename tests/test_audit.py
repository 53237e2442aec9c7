"""The gradient-masking audit: stable derivatives, the margin loss, PGD, Square, noise, flags."""
import numpy as np
import pytest

from analysis.masking import audit
from attacks import FGSM, AttackResult
from attacks.losses import cross_entropy, loss_and_input_gradient, margin, scaled_input_gradient
from attacks.noise import UniformNoise
from attacks.pgd import PGD, merge_worst
from attacks.square import Square
from nn import architectures
from nn.backend import to_device, to_host
from nn.gradcheck import numerical_gradient, rel_error
from nn.model import Sequential


def _one_unit(xp, h_value, dtype=np.float32):
    """x (2x2) -> h = w . x (one sigmoid unit) -> logits (a h, 0, ..., 0): a hand-built saturated
    unit with h = h_value at x = 1/2 everywhere. Returns the model, x, y and the exact dC/dx
    (float64)."""
    spec = {"name": "unit", "input_shape": [1, 2, 2],
            "layers": [{"type": "flatten"}, {"type": "dense", "units": 1}, {"type": "sigmoid"},
                       {"type": "dense", "units": 10}]}
    w = np.array([1.0, 2.0, -0.5, 1.5]) * h_value / 2.0  # w . x = h_value at x = 0.5
    a = np.zeros((10, 1))
    a[0, 0] = 4.0  # class 0 leads by 4 sigma(h) < 16.6: the softmax itself does not round
    params = [{}, {"W": w[None, :], "b": np.zeros(1)}, {}, {"W": a, "b": np.zeros(10)}]
    model = Sequential(spec, [{k: to_device(v, xp, dtype) for k, v in p.items()} for p in params])
    x = np.full((1, 1, 2, 2), 0.5)
    s = 1 / (1 + np.exp(-h_value))
    z = a[:, 0] * s
    p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
    dz = p.copy()
    dz[0] -= 1  # y = 0
    e = np.exp(-abs(h_value))
    # dC/dx = (p - e_y) . a * sigma'(h) * w (s (1 - s) cancels)
    exact = (dz @ a[:, 0]) * e / (1 + e) ** 2 * w
    return model, to_device(x, xp, dtype), to_device(np.array([0]), xp), exact


def _gradient(model, x, y):
    """The stable mode's input gradient, direction times scale, on the host in float64."""
    _, d, s, _ = scaled_input_gradient(model, x, y, cross_entropy)
    return to_host(d, np.float64).ravel() * np.exp(float(to_host(s, np.float64)[0]))


def test_stable_and_paper_modes_agree_without_underflow(xp):
    model, x, y, exact = _one_unit(xp, h_value=2.0)
    _, g_paper, _ = loss_and_input_gradient(model, x, y, cross_entropy)
    np.testing.assert_allclose(_gradient(model, x, y), to_host(g_paper).ravel(), rtol=1e-5)
    np.testing.assert_allclose(_gradient(model, x, y), exact, rtol=1e-5)


def test_stable_mode_survives_where_paper_mode_is_exactly_zero(xp):
    model, x, y, exact = _one_unit(xp, h_value=30.0)  # sigma(30) rounds to 1 in float32
    _, g_paper, _ = loss_and_input_gradient(model, x, y, cross_entropy)
    _, g_stable, _ = loss_and_input_gradient(model, x, y, cross_entropy, numerics="stable")
    assert (to_host(g_paper) == 0).all()  # the float32 saturation: exactly zero
    assert (to_host(g_stable) != 0).all()
    # and it is the true derivative
    np.testing.assert_allclose(_gradient(model, x, y), exact, rtol=1e-4)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stable_mode_direction_at_any_depth(xp, dtype):
    """A unit at h = 200: sigma'(200) = e^-200 underflows in float32 (and the gradient e^-200 * ...
    has no float32 value at all), yet the scaled mode gives the exact direction and
    log-magnitude."""
    model, x, y, _ = _one_unit(xp, h_value=200.0, dtype=dtype)
    _, d, s, _ = scaled_input_gradient(model, x, y, cross_entropy)
    w = np.array([1.0, 2.0, -0.5, 1.5]) * 100.0
    p = np.exp(np.r_[4.0, np.zeros(9)] - 4.0)
    p /= p.sum()  # sigma(200) = 1: logits (4, 0, ..., 0)
    # dC/dh = (p - e_y) . a * sigma'(h), sigma'(h) = e^-200 / (1 + e^-200)^2
    coef = (p[0] - 1) * 4.0
    log_exact = np.log(abs(coef)) - 200.0 + np.log(np.abs(w))  # log |dC/dx|, per pixel
    direction = -np.sign(w)  # coef < 0
    np.testing.assert_allclose(to_host(d, np.float64).ravel(),
                               direction * np.exp(log_exact - log_exact.max()), rtol=1e-5)
    np.testing.assert_allclose(float(to_host(s, np.float64)[0]), log_exact.max(), rtol=1e-6)
    # the paper's: 0
    assert (to_host(loss_and_input_gradient(model, x, y, cross_entropy)[1]) == 0).all()
    assert audit.zero_gradient(model, x, y).tolist() == [True]
    assert audit.zero_gradient(model, x, y, numerics="stable").tolist() == [False]
    # FGSM does not move in the paper's mode, and moves every pixel in the stable one
    assert (to_host(FGSM(0.25)(model, x, y).x_adv) == to_host(x)).all()
    assert (np.abs(to_host(FGSM(0.25, numerics="stable")(model, x, y).x_adv) - 0.5) == 0.25).all()


def _small(xp, act="relu", n=6, seed=0):
    model = Sequential.init(architectures.mlp(act, hidden=10, input_shape=[1, 4, 4]), seed=seed,
                            dtype=np.float64, xp=xp)
    rng = np.random.default_rng(seed)
    return (model, to_device(rng.uniform(0, 1, (n, 1, 4, 4)), xp),
            to_device(rng.integers(0, 10, n), xp))


def test_margin_loss_and_its_input_gradient(xp):
    model, x, y = _small(xp, "sigmoid")
    M, dz = margin(model.logits(x), y)
    z = to_host(model.logits(x))
    other = np.where(np.arange(10) == to_host(y)[:, None], -np.inf, z)
    np.testing.assert_allclose(to_host(M), other.max(1) - z[np.arange(len(z)), to_host(y)])
    # no near-tie: differentiable
    assert np.sort(np.abs(np.diff(np.sort(other, 1), axis=1)[:, -1])).min() > 1e-4
    _, g, _ = loss_and_input_gradient(model, x, y, margin)
    num = numerical_gradient(lambda xx: loss_and_input_gradient(model, xx, y, margin)[0].sum(), x)
    assert rel_error(g, num) < 1e-7


def test_pgd_stays_in_the_ball_and_the_box(xp):
    model, x, y = _small(xp, n=20)
    x[:5] = 0.0  # pixels at the box edges
    x[5:10] = 1.0
    for loss in ("ce", "margin"):
        r = PGD(eps=0.1, steps=10, restarts=2, loss=loss)(model, x, y)
        x_adv, fooled = r.x_adv, r.success
        # no float32 overshoot
        assert np.abs(to_host(x_adv, np.float64) - to_host(x, np.float64)).max() <= 0.1
        assert to_host(x_adv).min() >= 0 and to_host(x_adv).max() <= 1
        pred = to_host(model.predict(x_adv))
        # the kept iterate is the one judged
        np.testing.assert_array_equal(to_host(fooled), pred != to_host(y))


def test_restarts_keep_the_per_example_worst_case():
    model, x, y = _small(np, n=40, seed=1)
    attack = PGD(eps=0.08, steps=5, restarts=4, seed=3)
    runs = [attack.run(model, x, y, restart=r) for r in range(4)]
    fooled = attack(model, x, y).success
    any_run = np.any([f for _, f, _ in runs], axis=0) | (model.predict(x) != y)
    np.testing.assert_array_equal(fooled, any_run)
    assert 0 < fooled.sum() < len(x)  # the test means something: some, not all, fooled
    # merge_worst: fooled beats unfooled, else the higher loss; ties keep the first
    a = (np.zeros((3, 1)), np.array([False, True, False]), np.array([1.0, 0.0, 2.0]))
    b = (np.ones((3, 1)), np.array([True, False, False]), np.array([0.0, 5.0, 2.0]))
    mx, mf, ml = merge_worst(a, b)
    assert mx[:, 0].tolist() == [1, 0, 0] and mf.tolist() == [True, True,
                                                              False] and ml.tolist() == [0, 0, 2]


def test_uniform_noise_stays_in_the_ball():
    model, x, y = _small(np)
    r = UniformNoise(eps=0.2, draws=5)(model, x, y)
    x_adv, fooled = r.x_adv, r.success
    assert np.abs(x_adv.astype(np.float64)
                  - x).max() <= 0.2 and x_adv.min() >= 0 and x_adv.max() <= 1
    np.testing.assert_array_equal(fooled, model.predict(x_adv) != y)


def test_square_attack_fools_a_small_trained_network(small_mnist_models, mnist_test):
    _, models = small_mnist_models
    model = models["relu_mlp-vanilla"]
    x, y = mnist_test[0][:200], mnist_test[1][:200]
    clean = audit.accuracy(model.predict(x) != y)
    r = Square(eps=0.25, n_queries=300)(model, x, y)
    x_adv, fooled = r.x_adv, r.success
    assert clean > 85 and audit.accuracy(fooled) < clean - 40
    assert np.abs(x_adv.astype(np.float64)
                  - x).max() <= 0.25 and x_adv.min() >= 0 and x_adv.max() <= 1
    np.testing.assert_array_equal(fooled, model.predict(x_adv) != y)


def test_eps_sweep_matches_the_closed_form_on_a_linear_model():
    """Two live classes, h = W x + b: the smallest L-inf perturbation that flips example n is
    eps*_n = (h_y - h_other) / ||w_y - w_other||_1 (inside the box here), and one sign step of the
    margin attack reaches it, so PGD's accuracy at eps is exactly the fraction with eps*_n > eps."""
    rng = np.random.default_rng(7)
    D = 16
    W = np.zeros((10, D))
    W[0], W[1] = rng.standard_normal(D), rng.standard_normal(D)
    b = np.full(10, -1e3)  # classes 2-9 never win
    b[:2] = 0
    spec = {"name": "linear", "input_shape": [1, 4, 4],
            "layers": [{"type": "flatten"}, {"type": "dense", "units": 10}]}
    model = Sequential(spec, [{}, {"W": W, "b": b}])
    x = 0.5 + rng.uniform(-0.05, 0.05, (400, 1, 4, 4))  # far from the box edges for eps <= 0.45
    y = model.predict(x)
    h = model.logits(x)
    w_diff = np.abs(W[0] - W[1]).sum()
    eps_star = np.abs(h[:, 0] - h[:, 1]) / w_diff
    eps_values = np.linspace(0, 1.01, 9) * eps_star.max()  # the last one just past the largest eps*
    curve = audit.accuracy_curve(model, x, y, eps_values,
                                 lambda e: PGD(eps=e, steps=3, restarts=1, loss="margin",
                                               random_start=False))
    expected = [100.0 * (eps_star > e).mean() for e in eps_values]
    # a tie at the boundary at most
    np.testing.assert_allclose(curve, expected, atol=100 / 400 + 1e-9)
    assert all(a >= b for a, b in zip(curve, curve[1:])) and curve[0] == 100 and curve[-1] == 0


def test_eps_curve_accumulates_fooled_examples():
    """An attack that fools example 0 only at the small eps still counts it fooled at the larger
    one."""
    outcomes = {0.1: [True, False], 0.2: [False, True]}
    curve = audit.accuracy_curve(None, None, None, [0.1, 0.2],
                                 lambda e: lambda m, x, y: AttackResult(None, np.array(outcomes[e]),
                                                                        None, None))
    assert curve == [50.0, 0.0]
    with pytest.raises(ValueError, match="ascending"):
        audit.accuracy_curve(None, None, None, [0.2, 0.1], None)


def test_flags():
    vanilla = {"fgsm-ce-paper": 3.0, "pgd-ce-paper": 0.0, "pgd-ce-stable": 0.0,
               "square": 2.0, "noise": 97.0}
    assert audit.flags(vanilla, worst=0.0, zero_grad_paper=0.0, curve=[98, 0, 0],
                       eps_values=[0, 0.25, 0.5]) == {}
    cnn_like = {"fgsm-ce-paper": 28.0, "pgd-ce-paper": 0.0, "pgd-ce-stable": 0.0,
                "square": 20.0, "noise": 99.0}
    # FGSM > PGD is normal, not masking
    assert audit.flags(cnn_like, worst=0.0, zero_grad_paper=0.0) == {}
    fgsm_trained = {"fgsm-ce-paper": 90.0, "pgd-ce-paper": 4.0, "pgd-ce-stable": 3.0,
                    "square": 60.0, "noise": 99.0}
    assert set(audit.flags(fgsm_trained, worst=2.0, zero_grad_paper=0.0)) == {"gradient_masking"}
    masked = {"fgsm-ce-paper": 90.0, "pgd-ce-paper": 88.0, "pgd-ce-stable": 5.0, "square": 3.0,
              "transfer": 40.0, "noise": 96.0}
    f = audit.flags(masked, worst=1.0, zero_grad_paper=0.6, curve=[99, 80, 30],
                    eps_values=[0, 0.25, 0.5])
    assert set(f) == {"gradient_masking", "zero_gradients", "stable_mode_stronger",
                      "eps_sweep_not_zero"}
    f = audit.flags({"fgsm-ce-paper": 50.0, "pgd-ce-paper": 60.0, "square": 10.0,
                     "transfer": 20.0, "noise": 40.0},
                    worst=9.0, zero_grad_paper=0.0)
    assert {"single_step_stronger", "gradient_free_stronger", "transfer_stronger",
            "noise_stronger"} <= set(f)
    # APGD counts as iterative and as a gradient attack of its numerics
    f = audit.flags({"fgsm-ce-paper": 50.0, "pgd-ce-paper": 60.0,
                     "apgd-ce-paper": 52.0, "noise": 90.0},
                    worst=45.0, zero_grad_paper=0.0)
    assert f == {}  # FGSM 50 % is not 5 points below APGD's 52 %
    f = audit.flags({"fgsm-ce-paper": 95.0, "pgd-ce-paper": 94.0, "apgd-dlr-stable": 2.0,
                     "apgd-dlr-targeted-stable": 1.0, "noise": 99.0}, worst=1.0,
                    zero_grad_paper=0.0)
    assert set(f) == {"gradient_masking",
                      "stable_mode_stronger"} and "1.0 %" in f["stable_mode_stronger"]
    w = audit.worst_case({"a": np.array([True, False, False]), "b": np.array([False, False, True])})
    assert w["accuracy"] == pytest.approx(100
                                          / 3) and w["strongest"] == "a" and w["unique"] == {"a": 1,
                                                                                             "b": 1}


def test_scale_logits_changes_no_prediction_but_zeroes_the_float32_cross_entropy_gradient(
        small_mnist_models, mnist_test):
    """Brendel & Bethge's mechanism on a plain trained network: with the logits multiplied by c the
    predictions and the margin-FGSM image are bit-identical, while every example whose scaled margin
    passes ~104 has an exactly-zero paper-mode gradient (float64 still sees it), so FGSM stops."""
    model = small_mnist_models[1]["sigmoid_mlp-vanilla"]
    x, y = mnist_test[0][:300], mnist_test[1][:300]
    c = 4096.0  # a power of two: c z is exact, the readout's arithmetic is unchanged otherwise
    big = audit.scale_logits(model, c)
    z = model.logits(x)
    np.testing.assert_array_equal(big.logits(x), c * z)
    np.testing.assert_array_equal(big.predict(x), model.predict(x))
    for m in (model, big):
        assert m.dtype == np.float32
    fgsm_margin = FGSM(0.25, loss="margin", numerics="stable")
    np.testing.assert_array_equal(fgsm_margin(big, x, y).x_adv, fgsm_margin(model, x, y).x_adv)

    rows = np.arange(len(y))
    lead = z[rows, y] - np.where(np.arange(10) == y[:, None], -np.inf, z).max(axis=1)
    saturated = c * lead > 110  # every p_j, j != y, underflows in float32
    assert 0.5 < saturated.mean() < 1
    zero_big, zero = audit.zero_gradient(big, x, y), audit.zero_gradient(model, x, y)
    assert zero_big[saturated].all() and not zero.any()
    only_float32 = saturated & (c * lead < 700)  # exp(-700) is still a normal float64
    assert only_float32.sum() > 10
    assert not audit.zero_gradient(big.astype(np.float64), x.astype(np.float64), y,
                                   numerics="stable")[only_float32].any()
    r_small, r_big = FGSM(0.25)(model, x, y), FGSM(0.25)(big, x, y)
    # sign(0) = 0: nothing moves
    np.testing.assert_array_equal(r_big.x_adv[saturated], x[saturated])
    assert r_big.success[saturated].sum() < r_small.success[saturated].sum() / 10
    with pytest.raises(ValueError, match="positive"):
        audit.scale_logits(model, 0.0)


@pytest.mark.parametrize("arch", ["mlp", "cnn"])
def test_permuted_units_compute_the_same_function(xp, arch):
    """permute_units: the same logits and gradients in float64 (up to summation order), with every
    hidden weight layer's units or channels really reordered (conv -> conv, conv -> flatten -> dense
    and dense -> dense included)."""
    if arch == "mlp":
        spec, shape = architectures.mlp("sigmoid", hidden=12), (5, 1, 28, 28)
    else:
        spec, shape = architectures.cnn(channels=(4, 5), hidden=6, kernel=3,
                                        input_shape=[1, 8, 8]), (5, 1, 8, 8)
    model = Sequential.init(spec, seed=0, dtype=np.float64, xp=xp)
    other = audit.permute_units(model, seed=3)  # no layer's permutation is the identity
    x = to_device(np.random.default_rng(0).random(shape), xp)
    y = to_device(np.arange(5), xp)
    np.testing.assert_allclose(to_host(other.logits(x)), to_host(model.logits(x)), rtol=1e-12)
    g0 = loss_and_input_gradient(model, x, y, cross_entropy)[1]
    g1 = loss_and_input_gradient(other, x, y, cross_entropy)[1]
    np.testing.assert_allclose(to_host(g1), to_host(g0), rtol=1e-10, atol=1e-15)
    weights = [i for i, layer in enumerate(spec["layers"]) if layer["type"] in ("dense", "conv2d")]
    for i in weights[:-1]:  # the outputs of every hidden weight layer: reordered, not changed
        w0, w1 = to_host(model.params[i]["W"]), to_host(other.params[i]["W"])
        assert not np.array_equal(w1, w0)
        np.testing.assert_array_equal(np.sort(w1, axis=None), np.sort(w0, axis=None))
    np.testing.assert_array_equal(to_host(other.params[weights[-1]]["b"]),
                                  to_host(model.params[weights[-1]]["b"]))
