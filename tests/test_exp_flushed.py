"""nn.numerics.exp_flushed: exp with flush-to-zero that decides from the argument, never asking exp for a
subnormal result. Its threshold comes from the code's own float32 exp, and every function that uses it
gives today's bits in every numerics mode: each is compared, bit for bit, with a copy of the code it
replaced, on float32 arguments from -1000 to 1000, dense near -110..-80 where exp's results are
subnormal, and on a deeply saturated network's training steps and input gradients."""
import numpy as np
import pytest

from attacks.losses import cross_entropy, loss_and_input_gradient
from experiments.bench import saturated_sigmoid_mlp
from nn import layers as L
from nn import softmax
from nn.backend import array_module, to_device, to_host
from nn.numerics import (flushes_subnormals, EXP_UNDERFLOW, FORWARD_NUMERICS, FTZ_UNDERFLOW, NUMERICS, check_numerics, exp_flushed,
                         exp_normal_floor, exp_then_flush, flush_subnormals, log_sigmoid_prime, smallest_normal)
from nn.optim import adam_init, adam_update
from nn.penalty import saturating_objective

pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered in exp:RuntimeWarning")  # the sweep's top

# ---------------------------------------------------------------------------------------------
# The code before exp_flushed, kept here as the reference


def _ref_sigmoid(h):
    xp = array_module(h)
    e = xp.exp(-xp.abs(h))
    return xp.where(h >= 0, 1.0, e) / (1.0 + e)


def _ref_sigmoid_forward(h, numerics="float32"):
    y = _ref_sigmoid(h)
    if check_numerics(numerics, FORWARD_NUMERICS) == "paper":
        y = flush_subnormals(y)
    return y, (h, y)


def _ref_cross_entropy_backward(dC, cache, numerics="float32"):
    xp = array_module(dC)
    logp, y = cache
    g = xp.exp(logp)
    if check_numerics(numerics, FORWARD_NUMERICS) == "paper":
        g = flush_subnormals(g)
    g[xp.arange(y.shape[0]), y] -= 1
    return g * dC[:, None]


def _ref_log_sigmoid_prime(h):
    xp = array_module(h)
    a = xp.abs(h)
    return -a - 2 * xp.log1p(xp.exp(-a))


def _every_float32(lo, hi):
    """Every float32 from lo up to hi, both negative."""
    a, b = np.array([lo, hi], np.float32).view(np.int32)  # negative floats: larger magnitude, larger bits
    return np.arange(a, b - 1, -1, dtype=np.int32).view(np.float32)


def _arguments(xp, dtype=np.float32):
    """-1000..1000, dense in -110..-80 and 80..110, every float32 in [-88, -87], zeros, infinities, NaN,
    the largest float32 and the smallest normal one; a multiple of 10 long."""
    band = np.linspace(-110, -80, 1_000_001)
    tiny, big = np.finfo(np.float32).tiny, np.finfo(np.float32).max
    special = [0.0, -0.0, np.inf, -np.inf, np.nan, big, -big, tiny, -tiny]
    a = np.concatenate([np.linspace(-1000, 1000, 200_001), band, -band, _every_float32(-88, -87), special])
    a = np.concatenate([a, np.zeros(-len(a) % 10)])
    return to_device(a.astype(np.float32).astype(dtype), xp)  # float32 arguments, in float64 too


def _same_bits(got, want):
    got, want = to_host(got), to_host(want)
    assert got.dtype == want.dtype and got.shape == want.shape
    unsigned = {4: np.uint32, 8: np.uint64}[got.dtype.itemsize]
    differ = got.view(unsigned) != want.view(unsigned)
    assert not differ.any(), f"{differ.sum()} of {differ.size} differ, e.g. at {np.flatnonzero(differ)[:5]}"


# ---------------------------------------------------------------------------------------------
# The threshold and exp_flushed itself


def test_the_threshold_comes_from_the_codes_own_exp(xp):
    """exp_normal_floor: exp(a) is a normal float32 exactly for a >= T (T next to -87.34, log 2^-126),
    found from xp's exp; on every argument of the sweep, not only in the window it was found in."""
    T = exp_normal_floor(xp, np.float32)
    if T is None and xp is not np:
        pytest.skip("this device's exp is not monotone near the threshold: exp_flushed computes exp, then flushes")
    assert T is not None and T.dtype == np.float32
    assert abs(-T - FTZ_UNDERFLOW) <= 2 * np.spacing(np.float32(FTZ_UNDERFLOW))
    a = _arguments(xp)
    ok = ~xp.isnan(a)
    normal = xp.exp(a) >= smallest_normal(np.float32)
    assert bool(((normal == (a >= T)) | ~ok).all())
    before = np.nextafter(T, np.float32(-np.inf))
    assert float(xp.exp(xp.asarray([before]))[0]) < smallest_normal(np.float32) <= float(xp.exp(xp.asarray([T]))[0])
    assert exp_normal_floor(xp, np.float64) is None  # float64: exp, then flush


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_exp_flushed_is_exp_then_flush_bit_for_bit(xp, dtype):
    a = _arguments(xp, dtype)
    want = flush_subnormals(xp.exp(a))
    _same_bits(exp_flushed(a), want)
    with exp_then_flush():
        _same_bits(exp_flushed(a), want)
    _same_bits(exp_flushed(a[1::3]), want[1::3])  # strided, and odd lengths (SIMD tails)
    _same_bits(exp_flushed(a[5:1006]), want[5:1006])
    _same_bits(exp_flushed(a.reshape(-1, 10)), want.reshape(-1, 10))
    assert float(exp_flushed(a[123])) == float(want[123])  # a 0-d array
    if dtype == np.float32 and flushes_subnormals(xp):  # the GPU: exp itself flushes
        _same_bits(xp.exp(a), want)
    elif dtype == np.float32:
        sub = (to_host(want) == 0) & (to_host(xp.exp(a)) != 0)
        assert sub.sum() > 100_000  # the sweep reaches the band where exp's results are subnormal


# ---------------------------------------------------------------------------------------------
# Every function that uses it: today's bits, in every mode


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_gives_todays_bits_in_every_mode(xp, dtype):
    h = _arguments(xp, dtype)
    _same_bits(L.sigmoid(h), _ref_sigmoid(h))
    _same_bits(L.sigmoid(h, "paper"), flush_subnormals(_ref_sigmoid(h)))
    dy = to_device(np.random.default_rng(0).standard_normal(h.shape), xp, dtype)
    for numerics in FORWARD_NUMERICS:
        (y, cache), (y_ref, cache_ref) = L.sigmoid_forward(h, numerics), _ref_sigmoid_forward(h, numerics)
        _same_bits(y, y_ref)
        _same_bits(L.sigmoid_backward(dy, cache), L.sigmoid_backward(dy, cache_ref))
    with pytest.raises(Exception, match="numerics"):
        L.sigmoid_forward(h, "stable")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_log_sigmoid_prime_and_the_scaled_backward_give_todays_bits(xp, dtype, monkeypatch):
    """The stable mode's log sigma'(h): exp_flushed where a subnormal exp(-|h|) never reached the result."""
    h = _arguments(xp, dtype)
    _same_bits(log_sigmoid_prime(h), _ref_log_sigmoid_prime(h))
    h = xp.where(xp.isnan(h), 0, h).reshape(-1, 10)
    rng = np.random.default_rng(1)
    dy = to_device(rng.standard_normal(h.shape) * (rng.random(h.shape) < 0.9), xp, dtype)
    s = to_device(rng.standard_normal(len(h)), xp, dtype)
    got = L.sigmoid_backward_scaled(dy, (h, None), s)
    monkeypatch.setattr(L, "log_sigmoid_prime", _ref_log_sigmoid_prime)
    for g, w in zip(got, L.sigmoid_backward_scaled(dy, (h, None), s)):
        _same_bits(g, w)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_backward_gives_todays_bits(xp, dtype):
    """p - onehot(y) from log p over the sweep: rows of 10 logits from it, and rows (0, a) of class 0, whose
    p_1 = exp(a) for every a of the sweep's dense band below -17 (log p_1 is a itself there)."""
    a = _arguments(xp, dtype)
    a = a[xp.isfinite(a) & (xp.abs(a) < 1e4)]
    wide = a[:len(a) // 10 * 10].reshape(-1, 10)
    pairs = xp.stack([xp.zeros_like(a), a], axis=1)
    for z in (wide, pairs):
        y = to_device(np.arange(len(z)) % 10 if z is wide else np.zeros(len(z), int), xp)
        dC = to_device(np.random.default_rng(2).random(len(z)), xp, dtype)
        for numerics in FORWARD_NUMERICS:
            _, cache = softmax.cross_entropy_forward(z, y, numerics)
            _same_bits(softmax.cross_entropy_backward(dC, cache, numerics),
                       _ref_cross_entropy_backward(dC, cache, numerics))


def _train_and_differentiate(model, x, y, steps=3, batch=64):
    """Parameters after ``steps`` Adam steps of the saturating objective (lambda at its plateau) in each
    forward numerics, and the input gradients of the cross-entropy in every numerics mode."""
    out = []
    objective = saturating_objective(["sigmoid"] * 3, 1.74, 1e-3, units="mean")
    for numerics in FORWARD_NUMERICS:
        m = model.astype(model.dtype)
        state = adam_init(m.params)
        for s in range(steps):
            xb, yb = x[s * batch:(s + 1) * batch], y[s * batch:(s + 1) * batch]
            loss, grads, _ = objective(m, xb, yb, 10 ** 6, numerics=numerics)
            adam_update(m.params, grads, state, numerics=numerics)
            out += [loss] + [g for p in grads for g in p.values()]
        out += [v for p in m.params for v in p.values()]
    for numerics in NUMERICS:
        out += list(loss_and_input_gradient(model, x[:batch], y[:batch], cross_entropy, numerics=numerics))
    return out


def test_a_deeply_saturated_network_trains_to_todays_bits(monkeypatch):
    """784-200-200-10 with |h| spread over 60-1000 (``experiments.bench.saturated_sigmoid_mlp``): a few
    Adam steps in each numerics, parameters, gradients and losses, and the input gradients in every mode,
    bit for bit as the code before computed them, and as ``exp_then_flush`` does."""
    rng = np.random.default_rng(0)
    x, y = rng.random((192, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, 192)
    model = saturated_sigmoid_mlp(x[:128])
    h = np.concatenate([h.ravel() for h in model.preactivations(x)])
    assert ((np.abs(h) > FTZ_UNDERFLOW) & (np.abs(h) < EXP_UNDERFLOW)).mean() > 0.03  # the subnormal band
    got = _train_and_differentiate(model, x, y)
    with exp_then_flush():
        plain = _train_and_differentiate(model, x, y)
    monkeypatch.setattr(L, "sigmoid_forward", _ref_sigmoid_forward)
    monkeypatch.setattr(L, "log_sigmoid_prime", _ref_log_sigmoid_prime)
    monkeypatch.setattr(softmax, "cross_entropy_backward", _ref_cross_entropy_backward)
    before = _train_and_differentiate(model, x, y)
    assert len(got) == len(before) == len(plain)
    for g, b, p in zip(got, before, plain):
        _same_bits(np.asarray(g), np.asarray(b))
        _same_bits(np.asarray(g), np.asarray(p))
