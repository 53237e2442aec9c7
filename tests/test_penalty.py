"""The saturating penalty: values, float64 finite differences, and the lambda schedule."""
import numpy as np
import pytest

from nn import architectures
from nn.backend import to_device, to_host
from nn.gradcheck import numerical_gradient, rel_error
from nn.layers import sigmoid
from nn.model import Sequential, backward
from nn.numerics import SIGMOID_ONE
from nn.penalty import PHI, PHI_AUTODIFF, lambda_schedule, saturating_penalty


@pytest.mark.parametrize("kind", sorted(PHI))
def test_phi_derivative(xp, kind):
    rng = np.random.default_rng(0)
    h = to_device(rng.standard_normal((4, 5)) * 4, xp)
    h = h + 0.1 * xp.sign(h)  # off relu's kink
    _, dphi = PHI[kind](h)
    assert rel_error(dphi, numerical_gradient(lambda z: PHI[kind](z)[0].sum(), h)) < 1e-7


def test_phi_values():
    h = np.array([-2.0, 0.0, 3.0])
    s = 1 / (1 + np.exp(-h))
    np.testing.assert_allclose(PHI["sigmoid"](h)[0], s * (1 - s), rtol=1e-14)
    np.testing.assert_array_equal(PHI["relu"](h)[0], [0.0, 0.0, 3.0])
    np.testing.assert_array_equal(PHI["linear"](h)[0], h)
    big = np.array([40.0, -40.0], np.float32)  # sigma rounds to 1 / stays tiny: phi must not be 0
    assert (PHI["sigmoid"](big)[0] > 0).all()


@pytest.mark.parametrize("units", ["sum", "mean"])
@pytest.mark.parametrize("arch, kinds", [("sigmoid_mlp", ["sigmoid", "sigmoid", "sigmoid"]),
                                         ("relu_mlp", ["relu", "relu", None]),
                                         ("cnn", ["relu", "relu", "relu", "linear"])])
def test_penalty_gradient_through_the_model(xp, arch, kinds, units):
    """d/dparams and d/dx of R(h(x)) through backward's dhs, against finite differences."""
    if arch == "cnn":
        spec = architectures.cnn(channels=(2, 3), hidden=5, kernel=3, input_shape=[1, 8, 8])
    else:
        spec = architectures.mlp(arch.split("_")[0], hidden=6, input_shape=[1, 4, 4])
    model = Sequential.init(spec, seed=1, dtype=np.float64, xp=xp)
    rng = np.random.default_rng(2)
    x = to_device(rng.uniform(0, 1, (3, *spec["input_shape"])), xp)
    lam = 0.37
    _, caches, hs = model.forward(x)
    for h, k in zip(hs, kinds):
        if k == "relu":
            assert float(abs(h).min()) > 1e-4  # off the kink
    R, dhs = saturating_penalty(hs, kinds, lam, units)
    dx, grads = backward(model.spec, caches, xp.zeros_like(hs[-1]), dhs=dhs, input_grad=True)

    def objective(_):
        return saturating_penalty(model.preactivations(x), kinds, lam, units)[0]
    for i, p in enumerate(model.params):
        for name, v in p.items():
            assert rel_error(grads[i][name], numerical_gradient(objective, v)) < 1e-7, (i, name)
    assert rel_error(dx, numerical_gradient(objective, x)) < 1e-7


def test_penalty_is_a_batch_mean():
    h = [np.ones((4, 3)), np.ones((4, 2))]
    R, dhs = saturating_penalty(h, ["linear", "linear"], 2.0)
    assert float(R) == 2.0 * 5  # per example: 5 units of value 1
    np.testing.assert_array_equal(dhs[0], np.full((4, 3), 0.5))
    with pytest.raises(ValueError, match="2 penalty kinds for 1"):
        saturating_penalty(h[:1], ["linear", "relu"], 1.0)


def test_unit_mean_weighs_each_layer_by_its_width():
    """units="mean": lambda * sum_l mean_i phi, so a 3-unit and a 2-unit layer of ones give 2
    lambda."""
    h = [np.ones((4, 3)), np.ones((4, 2))]
    R, dhs = saturating_penalty(h, ["linear", "linear"], 2.0, units="mean")
    assert float(R) == 2.0 * 2
    np.testing.assert_array_equal(dhs[0], np.full((4, 3), 2.0 / 12))
    np.testing.assert_array_equal(dhs[1], np.full((4, 2), 2.0 / 8))
    with pytest.raises(ValueError, match="unit reduction 'max'"):
        saturating_penalty(h, ["linear", "linear"], 1.0, units="max")


def test_lambda_schedule_is_exact():
    assert [lambda_schedule(t, 1.74, 0.001) for t in (0, 1, 1000)] == [0.0, 0.001, 1.0]
    assert lambda_schedule(1740, 1.74, 0.001) == pytest.approx(1.74)
    assert lambda_schedule(10 ** 6, 1.74, 0.001) == 1.74
    assert lambda_schedule(400, 3.99e-8, 1e-10) == 3.99e-8
    assert lambda_schedule(1, 1e-5, 1e-5) == 1e-5


def test_batch_sum_is_n_times_the_batch_mean():
    h = [np.ones((4, 3)), np.ones((4, 2))]
    R, dhs = saturating_penalty(h, ["linear", "linear"], 2.0, batch="sum")
    assert float(R) == 4 * 2.0 * 5
    np.testing.assert_array_equal(dhs[0], np.full((4, 3), 2.0))
    with pytest.raises(ValueError, match="batch reduction 'max'"):
        saturating_penalty(h, ["linear", "linear"], 1.0, batch="max")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_autodiff_penalty_derivative_equals_the_closed_form_until_sigma_rounds(xp, dtype):
    """derivative="autodiff" (TensorFlow's autodiff of s (1 - s) with a rounded s) equals the closed
    form wherever sigma(h) < 1 in the dtype, and is exactly 0 where sigma(h) rounds to 1: from
    h = 24 ln 2 (float32, ``nn.numerics.SIGMOID_ONE``) or 53 ln 2 (float64) on, where 1 + exp(-h)
    rounds to 1."""
    cutoff = SIGMOID_ONE if dtype == np.float32 else 53 * np.log(2)
    grid = np.r_[-np.geomspace(0.01, 60, 40), np.geomspace(0.01, 60, 40),
                 cutoff * (1 + np.r_[-1e-6, 1e-6])]
    h = xp.asarray(grid, dtype=dtype)
    phi_s, d_s = PHI["sigmoid"](h)
    phi_p, d_p = PHI_AUTODIFF["sigmoid"](h)
    rounds = to_host(sigmoid(h) == 1)
    assert (rounds == (to_host(h) >= cutoff)).all()
    assert (to_host(phi_p)[rounds] == 0).all() and (to_host(d_p)[rounds] == 0).all()
    assert (to_host(phi_s) > 0).all()  # the stable one never rounds to 0 in this range
    # 1 - s loses relative precision ~eps / (1 - s) near the cutoff: compare where that is below
    # 1e-3
    ok = ~rounds & (to_host(h) < cutoff - 7)
    np.testing.assert_allclose(to_host(phi_p)[ok], to_host(phi_s)[ok], rtol=1e-3)
    np.testing.assert_allclose(to_host(d_p)[ok], to_host(d_s)[ok], rtol=1e-3, atol=0)
    # the old word for "autodiff"
    with pytest.raises(ValueError, match="penalty derivative 'paper'"):
        saturating_penalty([h[None]], ["sigmoid"], 1.0, derivative="paper")
