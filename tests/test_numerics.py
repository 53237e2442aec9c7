"""nn.numerics: the numerics modes, flush-to-zero (TensorFlow's float32 setting), the scaled stable
backward, the float32 thresholds the docs state (each recomputed here from the code's arithmetic),
and log-softmax computed shift-first, so that a common offset of the logits changes nothing."""
import numpy as np
import pytest

from attacks.losses import (cross_entropy, cross_entropy_scaled, loss_and_input_gradient, margin,
                            scaled_input_gradient)
from nn import architectures
from nn import layers as L
from nn import softmax
from nn.backend import to_device, to_host
from nn.model import Sequential, backward
from nn.numerics import (flushes_subnormals, EXP_UNDERFLOW, FTZ_UNDERFLOW, LOG_SMALLEST_NORMAL,
                         LOG_SMALLEST_SUBNORMAL, NUMERICS,
                         P_Y_ONE_MARGIN, SIGMOID_ONE, check_numerics, exp_flushed, exp_normal_floor,
                         exp_then_flush,
                         flush_subnormals, log_sigmoid_prime, smallest_normal, upgrade_settings)
from nn.optim import adam_init, adam_update, step_share
from nn.penalty import SIGMOID_SATURATION, phi_sigmoid, phi_sigmoid_autodiff
from nn.validate import InputError


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_flush_zeroes_exactly_the_subnormals(xp, dtype):
    tiny = np.finfo(dtype).tiny
    sub = np.array([tiny / 2, -tiny / 3, np.finfo(dtype).smallest_subnormal,
                    tiny * (1 - np.finfo(dtype).eps)], dtype)
    normal = np.array([tiny, -tiny, 1.0, -3e-30 if dtype == np.float32 else -3e-300, np.inf,
                       -np.inf, 0.0], dtype)
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
    """784-8-8-10 sigmoid MLP whose weights are multiplied by ``scale``: a large scale drives units
    deep into saturation, |h| in the tens to hundreds."""
    model = Sequential.init(architectures.mlp("sigmoid", hidden=8), seed=0, xp=xp)
    params = [{k: v * scale for k, v in p.items()} for p in model.params]
    return Sequential(model.spec, params)


def test_paper_numerics_flush_only_subnormals_forward_and_backward(xp):
    """In the paper's numerics every intermediate is flushed where it arises: no subnormal is left
    anywhere, and every value that is normal in float32 is unchanged (to the bit) wherever its
    inputs were."""
    model = _deep_sigmoid_model(xp, 60.0)
    x = to_device(np.random.default_rng(0).random((64, 1, 28, 28)), xp, np.float32)
    y = to_device(np.random.default_rng(1).integers(0, 10, 64), xp)
    (_, c0, _), (_, c1, _) = model.forward(x), model.forward(x, numerics="paper")
    assert c0[2][:2] == ("sigmoid", 2)
    y0, y1 = to_host(c0[2][2][1]), to_host(c1[2][2][1])  # the first sigmoid's outputs
    tiny = np.finfo(np.float32).tiny
    sub = (y0 != 0) & (np.abs(y0) < tiny)
    if flushes_subnormals(xp):  # the GPU: the float32 forward is already the paper's
        np.testing.assert_array_equal(y1, y0)
        assert (y0 == 0).any()
        return
    assert sub.any()  # the scaled model has sigmoid outputs in the subnormal range
    np.testing.assert_array_equal(y1[sub], 0)
    np.testing.assert_array_equal(y1[~sub], y0[~sub])
    _, g1, _ = loss_and_input_gradient(model, x, y, cross_entropy, numerics="paper")
    assert not ((to_host(g1) != 0) & (np.abs(to_host(g1)) < tiny)).any()


def test_paper_numerics_change_nothing_without_subnormals(xp):
    model = _deep_sigmoid_model(xp, 1.0)
    x = to_device(np.random.default_rng(0).random((16, 1, 28, 28)), xp, np.float32)
    y = to_device(np.arange(16) % 10, xp)
    for a, b in zip(model.loss_and_grads(x, y)[1], model.loss_and_grads(x, y, numerics="paper")[1]):
        for k in a:
            np.testing.assert_array_equal(to_host(a[k]), to_host(b[k]))


def test_adam_in_the_paper_numerics_flushes_decaying_moments():
    """A parameter whose gradient stops: its first moment decays by beta1 a step into the subnormal
    range in float32, and is exactly 0 in the paper's numerics (flush-to-zero)."""
    out = {}
    for numerics in ("float32", "paper"):
        params = [{"w": np.ones(3, np.float32)}]
        state = adam_init(params)
        adam_update(params, [{"w": np.full(3, 1e-3, np.float32)}], state, numerics=numerics)
        for _ in range(850):  # 1e-4 * 0.9^850 ~ 1e-43: subnormal
            adam_update(params, [{"w": np.zeros(3, np.float32)}], state, numerics=numerics)
        out[numerics] = state["m"][0]["w"]
    assert (out["float32"] != 0).all() and (np.abs(out["float32"])
                                            < np.finfo(np.float32).tiny).all()
    assert (out["paper"] == 0).all()


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
    # some are below float32's range
    assert (to_host(s64) < np.log(np.finfo(np.float32).tiny)).any()
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


# ---------------------------------------------------------------------------------------------
# One name per mode


def test_one_keyword_names_the_three_modes():
    assert NUMERICS == ("paper", "float32", "stable")
    for mode in NUMERICS:
        assert check_numerics(mode) == mode
    for bad in ("ftz", "float64", "tf", True, None):
        with pytest.raises(InputError, match=r"numerics must be one of 'paper', 'float32', "
                                             r"'stable', got"):
            check_numerics(bad)
    model = _deep_sigmoid_model(np, 1.0)
    x, y = np.zeros((2, 1, 28, 28), np.float32), np.arange(2)
    for call in (lambda: model.forward(x, numerics="stable"),
                 lambda: model.loss_and_grads(x, y, numerics="stable"),
                 lambda: adam_update(model.params, model.loss_and_grads(x, y)[1],
                                     adam_init(model.params), numerics="stable"),
                 lambda: L.sigmoid_forward(x, "stable")):
        with pytest.raises(InputError, match="got 'stable'; 'stable' is the scaled input gradient"):
            call()
    _, caches, _ = model.forward(x)
    with pytest.raises(InputError,
                       match=r"numerics \(backward; the stable mode is backward_scaled\)"):
        backward(model.spec, caches, np.zeros((2, 10), np.float32), numerics="stable")
    with pytest.raises(InputError, match="numerics must be one of"):
        loss_and_input_gradient(model, x, y, numerics="ftz")


def test_old_settings_map_to_the_new_words_in_one_place():
    assert upgrade_settings({"ftz": True, "lr": 1e-3}) == {"numerics": "paper", "lr": 1e-3}
    assert upgrade_settings({"ftz": False}) == {"numerics": "float32"}
    assert upgrade_settings({"derivative": "paper"}) == {"derivative": "autodiff"}
    assert upgrade_settings({"derivative": "stable"}) == {"derivative": "closed_form"}
    today = {"numerics": "paper", "derivative": "autodiff"}
    assert upgrade_settings(today) == today


# ---------------------------------------------------------------------------------------------
# The float32 thresholds the docs state, from the code's own arithmetic


def _first_true(pred, lo, hi):
    """The smallest float32 t in [lo, hi] with pred(t), for pred false at lo, true at hi and
    monotone."""
    lo, hi = np.float32(lo), np.float32(hi)
    assert not pred(lo) and pred(hi)
    # positive floats: bit patterns ordered like them
    a, b = (int(i) for i in np.array([lo, hi]).view(np.int32))
    while b - a > 1:
        mid = (a + b) // 2
        if pred(np.array(mid, np.int32).view(np.float32)):
            b = mid
        else:
            a = mid
    return float(np.array(b, np.int32).view(np.float32))


def _near(found, constant):
    """found is the float32 neighbour of the threshold ``constant`` (within 2 float32 spacings)."""
    return abs(found - constant) <= 2 * np.spacing(np.float32(constant))


def _one(h):
    return np.array([h], np.float32)


def test_sigma_rounds_to_one_from_24_ln_2():
    """sigma(h) == 1 exactly, and with it the paper's y (1 - y) and the autodiff penalty s
    (1 - s) == 0, from h = 24 ln 2 ~ 16.64 on (``SIGMOID_ONE``): sigmoid(16.64) is 1.0,
    sigmoid(16.6) is not."""
    assert f"{SIGMOID_ONE:.2f}" == "16.64"
    sigma_one = _first_true(lambda h: L.sigmoid(_one(h))[0] == 1, 10, 30)
    assert _near(sigma_one, SIGMOID_ONE)
    assert L.sigmoid(_one(16.64))[0] == 1 and L.sigmoid(_one(16.6))[0] < 1
    paper_prime = lambda h: (  # noqa: E731  y (1 - y)
        L.sigmoid_backward(_one(1), L.sigmoid_forward(_one(h))[1])[0])
    assert _first_true(lambda h: paper_prime(h) == 0, 10, 30) == sigma_one
    assert _first_true(lambda h: phi_sigmoid_autodiff(_one(h))[0][0] == 0, 10, 30) == sigma_one
    assert phi_sigmoid_autodiff(_one(17.0))[0][0] == 0
    # a correctly rounded sigma would reach 1 only where 1 - sigma < 2^-25: from 25 ln 2 ~ 17.33 on
    assert f"{25 * np.log(2):.2f}" == "17.33"


def test_underflow_thresholds():
    """exp(-a) is 0 in float32 for a > 150 ln 2 ~ 103.97 (``EXP_UNDERFLOW``), and below the smallest
    normal number e^-87.34 (``FTZ_UNDERFLOW``) under flush-to-zero: sigma(-a), the closed-form
    sigma'(a) and the penalty's phi, p_j at a margin a, each in the mode that computes it."""
    assert (f"{EXP_UNDERFLOW:.2f}", f"{FTZ_UNDERFLOW:.2f}") == ("103.97", "87.34")
    assert (f"{LOG_SMALLEST_SUBNORMAL:.2f}", f"{LOG_SMALLEST_NORMAL:.2f}") == ("-103.28", "-87.34")
    assert np.log(np.finfo(np.float32).smallest_subnormal) == pytest.approx(LOG_SMALLEST_SUBNORMAL,
                                                                            rel=1e-12)
    assert np.log(smallest_normal(np.float32)) == pytest.approx(LOG_SMALLEST_NORMAL, rel=1e-12)
    assert _near(_first_true(lambda a: L.sigmoid(_one(-a))[0] == 0, 50, 200), EXP_UNDERFLOW)
    assert _near(_first_true(lambda a: L.sigmoid_forward(_one(-a), "paper")[0][0] == 0, 50, 200),
                 FTZ_UNDERFLOW)
    assert _near(_first_true(lambda a: phi_sigmoid(_one(a))[0][0] == 0, 50, 200), EXP_UNDERFLOW)
    assert _near(_first_true(lambda a: np.exp(log_sigmoid_prime(_one(a)))[0] == 0, 50, 200),
                 EXP_UNDERFLOW)

    def p_j(a, numerics):  # the runner-up's entry p_j of dC/dz at a logit margin a
        z = np.array([[0.0, -a]], np.float32)
        return cross_entropy(z, np.array([0]), numerics=numerics)[1][0, 1]
    assert _near(_first_true(lambda a: p_j(a, "float32") == 0, 50, 200), EXP_UNDERFLOW)
    assert _near(_first_true(lambda a: p_j(a, "paper") == 0, 50, 200), FTZ_UNDERFLOW)


def test_p_y_rounds_to_one():
    """p_y == 1 (and p_y - 1 == 0 exactly) once the runner-up trails by 24 ln 2 ~ 16.64 where the
    top logit is 0 (``P_Y_ONE_MARGIN``), as sigma does and as TensorFlow's 1 / (1 + sum e) does. The
    unshifted rounding the log-softmax keeps for recorded numbers (``nn.softmax.log_normalise``)
    also rounds the log-sum-exp into a larger top logit: for logits (d, 0), from d = 14.44 on."""
    def p_y(z):
        return np.exp(softmax.log_softmax(np.array([z], np.float32)))[0, 0]
    assert f"{P_Y_ONE_MARGIN:.2f}" == "16.64"
    assert _near(_first_true(lambda d: p_y([0.0, -d]) == 1, 10, 30), P_Y_ONE_MARGIN)
    assert f"{_first_true(lambda d: p_y([d, 0.0]) == 1, 10, 30):.2f}" == "14.44"
    # where L < 2^-16 keeps the unshifted rounding (nn.softmax.LSE_KEPT_ULPS)
    for top in (500.0, 1000.0, 1e4):
        assert f"{_first_true(lambda d: p_y([top + d, top]) == 1, 5, 30):.2f}" == "11.09"
    z = np.array([[0.0, -17.0]], np.float32)
    assert cross_entropy(z, np.array([0]), numerics="paper")[1][0, 0] == 0  # p_y - 1
    assert cross_entropy(z, np.array([0]), numerics="stable")[1][0, 0] < 0  # -(1 - p_y), kept


def test_saturation_count_threshold():
    """``nn.penalty.SIGMOID_SATURATION`` (15.9) is where the closed-form sigma'(h) falls below
    float32's machine epsilon 2^-23, 23 ln 2 ~ 15.94, rounded down as every reported saturated
    fraction counted it."""
    h = np.array([SIGMOID_SATURATION, 23 * np.log(2) + 0.01])
    below = phi_sigmoid(h)[0] < np.finfo(np.float32).eps
    assert below.tolist() == [False, True] and SIGMOID_SATURATION == round(23 * np.log(2), 1)


PROSE = ["nn/layers.py", "nn/numerics.py", "nn/penalty.py", "analysis/masking/saturation.py",
         "analysis/masking/audit.py", "attacks/losses.py"]


def test_the_prose_states_the_thresholds_the_code_has():
    """Every threshold-like number these modules' docstrings and comments state (14-18, 85-106:
    where sigma or p_y rounds to 1, where values underflow) is one of the thresholds the tests above
    recompute from the code, so that prose and arithmetic cannot drift apart."""
    import io
    import re
    import tokenize
    from pathlib import Path
    allowed = {f"{v:.2f}" for v in (SIGMOID_ONE, P_Y_ONE_MARGIN, EXP_UNDERFLOW, FTZ_UNDERFLOW,
                                    -LOG_SMALLEST_SUBNORMAL,
                                    25 * np.log(2), 23 * np.log(2))} | {"14.44", "15.9"}
    root = Path(__file__).resolve().parents[1]
    for name in PROSE:
        tokens = tokenize.generate_tokens(io.StringIO((root / name).read_text()).readline)
        prose = " ".join(t.string for t in tokens if t.type in (tokenize.STRING, tokenize.COMMENT))
        decimals, about = r"(?<![\w.])(\d{2,3}\.\d+)", r"~-?(\d{2,3})(?![\w.])"  # 16.64; ~103
        for number in re.findall(decimals, prose) + re.findall(about, prose):
            if 14 <= float(number) <= 18 or 85 <= float(number) <= 106:
                assert number in allowed, f"{name} states {number}, no threshold of the code"


# ---------------------------------------------------------------------------------------------
# A common offset of the logits changes nothing


OFFSET_CASES = [  # logits, label, C = -log p_y, dC/dz
    ([1e8, 1e8], 1, np.log(2), [0.5, -0.5]),
    ([-1e30, -1e30, -1e30], 2, np.log(3), [1 / 3, 1 / 3, -2 / 3]),
    ([1e6, 1e6], 0, np.log(2), [-0.5, 0.5]),
]


@pytest.mark.parametrize("numerics", NUMERICS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", OFFSET_CASES)
def test_cross_entropy_with_a_huge_common_offset(xp, numerics, dtype, case):
    z, label, C_want, dz_want = case
    z, y = to_device(np.array([z], dtype), xp), to_device(np.array([label]), xp)
    C, dz = cross_entropy(z, y, numerics=numerics)
    np.testing.assert_allclose(to_host(C), [C_want], rtol=1e-6)
    np.testing.assert_allclose(to_host(dz), [dz_want], rtol=1e-6)
    C_s, d, s = cross_entropy_scaled(z, y)  # the stable mode's scaled signal
    np.testing.assert_allclose(to_host(C_s), [C_want], rtol=1e-6)
    np.testing.assert_allclose(to_host(d * xp.exp(s)[:, None]), [dz_want], rtol=1e-6)
    M, dM = margin(z, y, numerics=numerics)
    assert float(M[0]) == 0 and to_host(dM).tolist()[0].count(1.0) == 1
    uniform = np.full((1, len(dz_want)), 1 / len(dz_want))
    # the Fisher metric's p
    np.testing.assert_allclose(to_host(softmax.softmax(z)), uniform, rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_any_offset_leaves_log_softmax_and_the_losses_exact(xp, dtype):
    """Logits z + c for offsets c from 2^-3 to 2^39 of either sign: log p, C and dC/dz in every mode
    are those of the exact log-softmax of the logits given, within the rounding the unshifted form
    keeps for recorded numbers (``nn.softmax.LSE_KEPT_ULPS`` epsilons of log p) and a few of the
    result's ulps."""
    rng = np.random.default_rng(0)
    z = rng.standard_normal((6, 10)) * 8
    y = np.arange(6)
    tol = softmax.LSE_KEPT_ULPS * np.finfo(dtype).eps
    for c in 2.0 ** np.r_[-3:40:3]:
        for sign in (1, -1):
            zc = (z + sign * c).astype(dtype)  # the logits given, whatever their rounding
            exact = zc.astype(np.longdouble)
            exact = (exact
                     - exact.max(1, keepdims=True)) - np.log(np.exp(exact
                                                                    - exact.max(1,
                                                                                keepdims=True)).sum(
                1, keepdims=True))
            atol = 2 * tol + 4 * float(np.spacing(dtype(np.abs(exact).max())))
            got = to_host(softmax.log_softmax(to_device(zc, xp)))
            np.testing.assert_allclose(got, exact.astype(np.float64), rtol=0, atol=atol)
            dz_exact = np.exp(exact) - (np.arange(10) == y[:, None])
            for numerics in NUMERICS:
                C, dz = cross_entropy(to_device(zc, xp), to_device(y, xp), numerics=numerics)
                np.testing.assert_allclose(to_host(C), -exact[np.arange(6), y].astype(np.float64),
                                           rtol=0, atol=atol)
                np.testing.assert_allclose(to_host(dz), dz_exact.astype(np.float64),
                                           rtol=0, atol=atol)


def test_only_the_gpu_flushes_subnormals(xp):
    """numpy keeps float32 subnormals; CuPy compiles its kernels with -ftz=true (measured on an
    H200), so there exp(-90) is 0 and the "float32" sigmoid is the paper's, bit for bit, from -1000
    to 1000."""
    gpu = xp.__name__ == "cupy"
    assert flushes_subnormals(xp) == gpu
    h = to_device(np.linspace(-1000, 1000, 200_001, dtype=np.float32), xp)
    same = (to_host(L.sigmoid(h, "float32")) == to_host(L.sigmoid(h, "paper"))).all()
    assert same == gpu  # on the CPU they differ where sigma(h) is subnormal, h in (-103.97, -87.34)


def test_adam_step_share_is_what_epsilon_leaves_of_the_step():
    """A constant gradient g has v_hat = g^2 after any number of steps, so epsilon leaves
    |g| / (|g| + eps) of the normalised step: a half where |g| = eps, all where |g| >> eps, none at
    0."""
    params = [{"W": np.zeros(3, np.float32)}]
    g = [{"W": np.array([1e-8, 1.0, 0.0], np.float32)}]
    state = adam_init(params)
    with pytest.raises(ValueError, match="no step"):
        step_share(state)
    for _ in range(5):
        adam_update(params, g, state, eps=1e-8)
    s = step_share(state, eps=1e-8)[0]["W"]
    np.testing.assert_allclose(s, [np.float32(1e-8) / (np.float32(1e-8) + 1e-8), 1 / (1 + 1e-8),
                                   0.0], rtol=1e-6)
    assert s[0] == pytest.approx(0.5, rel=1e-6)


# exp_flushed: exp with flush-to-zero decided from the argument (nn.numerics)

def _every_float32(lo, hi):
    """Every float32 from lo up to hi, both negative."""
    # negative floats: larger magnitude, larger bits
    a, b = np.array([lo, hi], np.float32).view(np.int32)
    return np.arange(a, b - 1, -1, dtype=np.int32).view(np.float32)


def _arguments(xp, dtype=np.float32):
    """-1000..1000, dense in -110..-80 and 80..110, every float32 in [-88, -87], zeros, infinities,
    NaN, the largest float32 and the smallest normal one; a multiple of 10 long."""
    band = np.linspace(-110, -80, 1_000_001)
    tiny, big = np.finfo(np.float32).tiny, np.finfo(np.float32).max
    special = [0.0, -0.0, np.inf, -np.inf, np.nan, big, -big, tiny, -tiny]
    a = np.concatenate([np.linspace(-1000, 1000, 200_001), band, -band,
                        _every_float32(-88, -87), special])
    a = np.concatenate([a, np.zeros(-len(a) % 10)])
    return to_device(a.astype(np.float32).astype(dtype), xp)  # float32 arguments, in float64 too


def _same_bits(got, want):
    got, want = to_host(got), to_host(want)
    assert got.dtype == want.dtype and got.shape == want.shape
    unsigned = {4: np.uint32, 8: np.uint64}[got.dtype.itemsize]
    differ = got.view(unsigned) != want.view(unsigned)
    assert not differ.any(), (f"{differ.sum()} of {differ.size} differ, e.g. "
                              f"at {np.flatnonzero(differ)[:5]}")


def test_the_threshold_comes_from_the_codes_own_exp(xp):
    """exp_normal_floor: exp(a) is a normal float32 exactly for a >= T
    (T next to -87.34, log 2^-126), found from xp's exp; on every argument of the sweep, not only in
    the window it was found in."""
    T = exp_normal_floor(xp, np.float32)
    if T is None and xp is not np:
        pytest.skip("this device's exp is not monotone near the threshold: exp_flushed computes "
                    "exp, then flushes")
    assert T is not None and T.dtype == np.float32
    assert abs(-T - FTZ_UNDERFLOW) <= 2 * np.spacing(np.float32(FTZ_UNDERFLOW))
    a = _arguments(xp)
    ok = ~xp.isnan(a)
    normal = xp.exp(a) >= smallest_normal(np.float32)
    assert bool(((normal == (a >= T)) | ~ok).all())
    before = np.nextafter(T, np.float32(-np.inf))
    assert (float(xp.exp(xp.asarray([before]))[0]) < smallest_normal(np.float32)
            <= float(xp.exp(xp.asarray([T]))[0]))
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
