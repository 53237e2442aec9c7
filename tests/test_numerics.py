"""Flush-to-zero (TensorFlow's float32 setting) and the scaled stable backward: nn.numerics."""
import numpy as np
import pytest

from attacks.losses import cross_entropy, loss_and_input_gradient, scaled_input_gradient
from nn import architectures
from nn import layers as L
from nn.backend import to_device, to_host
from nn.model import Sequential
from nn.numerics import flush_subnormals, log_sigmoid_prime, smallest_normal
from nn.optim import adam_init, adam_update


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_flush_zeroes_exactly_the_subnormals(xp, dtype):
    tiny = np.finfo(dtype).tiny
    sub = np.array([tiny / 2, -tiny / 3, np.finfo(dtype).smallest_subnormal, tiny * (1 - np.finfo(dtype).eps)], dtype)
    normal = np.array([tiny, -tiny, 1.0, -3e-30 if dtype == np.float32 else -3e-300, np.inf, -np.inf, 0.0], dtype)
    a = to_device(np.concatenate([sub, normal]), xp)
    assert (np.abs(to_host(a)[:4]) < tiny).all() and (to_host(a)[:4] != 0).all()  # really subnormal
    out = to_host(flush_subnormals(a))
    assert out.dtype == dtype
    np.testing.assert_array_equal(out[:4], 0)
    np.testing.assert_array_equal(out[4:], normal)  # bit for bit
    assert np.isnan(to_host(flush_subnormals(to_device(np.array([np.nan], dtype), xp)))).all()
    assert smallest_normal(dtype) == tiny


def test_log_sigmoid_prime_is_finite_where_sigma_prime_underflows():
    h = np.array([-200.0, -90.0, -1.0, 0.0, 2.0, 50.0, 200.0])
    exact = np.log(np.exp(-np.abs(h)) / (1 + np.exp(-np.abs(h))) ** 2)
    np.testing.assert_allclose(log_sigmoid_prime(h), exact, rtol=1e-13)
    f32 = log_sigmoid_prime(h.astype(np.float32))
    assert np.isfinite(f32).all() and f32.dtype == np.float32
    np.testing.assert_allclose(f32, exact, rtol=1e-6)


def _deep_sigmoid_model(xp, scale):
    """784-8-8-10 sigmoid MLP whose weights are multiplied by ``scale``: a large scale drives units deep
    into saturation, |h| in the tens to hundreds."""
    model = Sequential.init(architectures.mlp("sigmoid", hidden=8), seed=0, xp=xp)
    params = [{k: v * scale for k, v in p.items()} for p in model.params]
    return Sequential(model.spec, params)


def test_ftz_forward_and_backward_flush_only_subnormals(xp):
    """With ftz, every intermediate is flushed where it arises: no subnormal is left anywhere, and
    every value that is normal without ftz is unchanged (to the bit) wherever its inputs were."""
    model = _deep_sigmoid_model(xp, 60.0)
    x = to_device(np.random.default_rng(0).random((64, 1, 28, 28)), xp, np.float32)
    y = to_device(np.random.default_rng(1).integers(0, 10, 64), xp)
    (_, c0, _), (_, c1, _) = model.forward(x), model.forward(x, ftz=True)
    y0, y1 = to_host(c0[2][1]), to_host(c1[2][1])  # the first sigmoid's outputs
    tiny = np.finfo(np.float32).tiny
    sub = (y0 != 0) & (np.abs(y0) < tiny)
    assert sub.any()  # the scaled model has sigmoid outputs in the subnormal range
    np.testing.assert_array_equal(y1[sub], 0)
    np.testing.assert_array_equal(y1[~sub], y0[~sub])
    _, g1, _ = loss_and_input_gradient(model, x, y, cross_entropy, ftz=True)
    assert not ((to_host(g1) != 0) & (np.abs(to_host(g1)) < tiny)).any()


def test_ftz_changes_nothing_without_subnormals(xp):
    model = _deep_sigmoid_model(xp, 1.0)
    x = to_device(np.random.default_rng(0).random((16, 1, 28, 28)), xp, np.float32)
    y = to_device(np.arange(16) % 10, xp)
    for a, b in zip(model.loss_and_grads(x, y)[1], model.loss_and_grads(x, y, ftz=True)[1]):
        for k in a:
            np.testing.assert_array_equal(to_host(a[k]), to_host(b[k]))


def test_adam_ftz_flushes_decaying_moments():
    """A parameter whose gradient stops: its first moment decays by beta1 a step into the subnormal
    range without ftz, and is exactly 0 with it; the parameters move identically while m is normal."""
    out = {}
    for ftz in (False, True):
        params = [{"w": np.ones(3, np.float32)}]
        state = adam_init(params)
        adam_update(params, [{"w": np.full(3, 1e-3, np.float32)}], state, ftz=ftz)
        for _ in range(850):  # 1e-4 * 0.9^850 ~ 1e-43: subnormal
            adam_update(params, [{"w": np.zeros(3, np.float32)}], state, ftz=ftz)
        out[ftz] = state["m"][0]["w"]
    assert (out[False] != 0).all() and (np.abs(out[False]) < np.finfo(np.float32).tiny).all()
    assert (out[True] == 0).all()


def test_scaled_backward_matches_float64_direction_where_float32_underflows(xp):
    """A deeply saturated network: in float32 the paper's gradient and even the plain stable product
    underflow; the scaled backward in float32 gives the float64 gradient's direction."""
    model = _deep_sigmoid_model(xp, 200.0)  # |h| ~ 10-350
    x = to_device(np.random.default_rng(0).random((32, 1, 28, 28)), xp, np.float32)
    y = to_device(np.arange(32) % 10, xp)
    _, d32, s32, _ = scaled_input_gradient(model, x, y, cross_entropy)
    m64, x64 = model.astype(np.float64), x.astype(np.float64)
    _, d64, s64, _ = scaled_input_gradient(m64, x64, y, cross_entropy)
    paper = to_host(loss_and_input_gradient(model, x, y, cross_entropy)[1]).reshape(32, -1)
    zero = np.abs(paper).max(axis=1) == 0
    assert zero.sum() >= 4  # these examples have an exactly-zero float32 gradient
    assert (to_host(s64) < np.log(np.finfo(np.float32).tiny)).any()  # some are below float32's range
    d32, d64 = to_host(d32, np.float64).reshape(32, -1), to_host(d64).reshape(32, -1)
    np.testing.assert_allclose(d32, d64, atol=1e-4)
    np.testing.assert_allclose(to_host(s32, np.float64), to_host(s64), rtol=1e-4)
    assert (np.abs(d32).max(axis=1) == 1).all()


def test_sigmoid_backward_scaled_keeps_zero_signals_zero():
    h = np.array([[300.0, -250.0, 0.5]])
    d, s = L.sigmoid_backward_scaled(np.array([[0.0, 0.0, 0.0]]), (h, None), np.zeros(1))
    assert (d == 0).all() and s[0] == 0
    d, s = L.sigmoid_backward_scaled(np.array([[1.0, -1.0, 0.0]]), (h, None), np.zeros(1))
    np.testing.assert_allclose(d, [[np.exp(-50.0), -1.0, 0.0]], rtol=1e-12)
    np.testing.assert_allclose(s, log_sigmoid_prime(np.array([-250.0])), rtol=1e-14)
