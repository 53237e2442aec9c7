"""Every layer's backward against centred finite differences in float64."""
import numpy as np

from nn import layers as L
from nn import softmax
from nn.backend import array_module, to_device, to_host
from nn.gradcheck import numerical_gradient, rel_error
from nn.numerics import flushes_subnormals

TOL = 1e-7


def _rand(xp, rng, *shape):
    return to_device(rng.standard_normal(shape), xp)


def _check_layer(xp, forward, backward, inputs, rng):
    """Check d<r, forward(*inputs)>/d input_i against backward for every input.

    backward(dout, cache) returns the gradients in the order of ``inputs``.
    """
    out, cache = forward(*inputs)
    r = _rand(xp, rng, *out.shape)  # random upstream gradient
    analytic = backward(r, cache)
    for i, x in enumerate(inputs):
        num = numerical_gradient(lambda _: (forward(*inputs)[0] * r).sum(), x)
        assert analytic[i].shape == x.shape
        assert rel_error(analytic[i], num) < TOL, f"input {i}"


def test_dense(xp):
    rng = np.random.default_rng(0)
    x, W, b = _rand(xp, rng, 5, 7), _rand(xp, rng, 4, 7), _rand(xp, rng, 4)

    def bwd(d, c):
        dx, g = L.dense_backward(d, c)
        return dx, g["W"], g["b"]
    _check_layer(xp, L.dense_forward, bwd, [x, W, b], rng)


def test_conv2d(xp):
    rng = np.random.default_rng(1)
    x, W, b = _rand(xp, rng, 2, 3, 6, 5), _rand(xp, rng, 4, 3, 5, 5), _rand(xp, rng, 4)

    def bwd(d, c):
        dx, g = L.conv2d_backward(d, c)
        return dx, g["W"], g["b"]
    _check_layer(xp, L.conv2d_forward, bwd, [x, W, b], rng)


def test_conv2d_matches_direct_sum(xp):
    """im2col convolution equals the definition, a plain sum over kernel offsets of a padded
    image."""
    rng = np.random.default_rng(2)
    x, W, b = (rng.standard_normal((2, 3, 6, 5)), rng.standard_normal((4, 3, 3, 3)),
               rng.standard_normal(4))
    xpad = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    want = np.zeros((2, 4, 6, 5)) + b[None, :, None, None]
    for i in range(3):
        for j in range(3):
            want += np.einsum("oc,nchw->nohw", W[:, :, i, j], xpad[:, :, i:i + 6, j:j + 5])
    got, _ = L.conv2d_forward(to_device(x, xp), to_device(W, xp), to_device(b, xp))
    np.testing.assert_allclose(to_host(got), want, rtol=1e-12, atol=1e-12)


def _untied(xp, rng, shape):
    """Inputs whose 2x2 windows have no ties and gaps >= 0.01 between values (off the kinks)."""
    vals = rng.permutation(np.prod(shape)).reshape(shape) * 0.01
    return to_device(vals - vals.mean(), xp)


def test_maxpool_without_ties(xp):
    rng = np.random.default_rng(3)
    x = _untied(xp, rng, (2, 3, 4, 6))
    _check_layer(xp, L.maxpool2d_forward, lambda d, c: (L.maxpool2d_backward(d, c),), [x], rng)


def test_maxpool_ties_go_to_first_maximum(xp):
    """A window of equal values sends its whole gradient to its top-left entry; a window whose
    maximum is tied between bottom-left and bottom-right sends it to bottom-left."""
    x = to_device(np.array([[[[0.0, 0.0, 1.0, 2.0],
                              [0.0, 0.0, 3.0, 3.0]]]]), xp)
    y, mask = L.maxpool2d_forward(x)
    np.testing.assert_array_equal(to_host(y), [[[[0.0, 3.0]]]])
    dx = L.maxpool2d_backward(to_device(np.array([[[[5.0, 7.0]]]]), xp), mask)
    np.testing.assert_array_equal(to_host(dx), [[[[5.0, 0.0, 0.0, 0.0],
                                                  [0.0, 0.0, 7.0, 0.0]]]])


def test_relu_maxpool_fused_finite_differences(xp):
    rng = np.random.default_rng(30)
    x = _untied(xp, rng, (2, 3, 4, 6))  # about half the windows have a negative maximum
    _check_layer(xp, L.relu_maxpool2d_forward,
                 lambda d, c: (L.relu_maxpool2d_backward(d, c),), [x], rng)


def test_relu_maxpool_fused_equals_the_pair_tie_for_tie(xp):
    """The fused pair gives the same values and the same gradient, entry for entry, as ReLU then
    max-pool, on inputs full of ties: zeros (MNIST's background), equal positives, all-negative
    windows, and leading cotangent axes in the backward."""
    rng = np.random.default_rng(31)
    h = to_device(rng.integers(-2, 3, size=(3, 4, 6, 8)).astype(np.float64), xp)
    r, r_cache = L.relu_forward(h)
    want, p_cache = L.maxpool2d_forward(r)
    got, cache = L.relu_maxpool2d_forward(h)
    np.testing.assert_array_equal(to_host(got), to_host(want))
    dy = to_device(rng.standard_normal((5,) + tuple(want.shape)), xp)  # 5 cotangents
    want_dx = L.relu_backward(L.maxpool2d_backward(dy, p_cache), r_cache)
    np.testing.assert_array_equal(to_host(L.relu_maxpool2d_backward(dy, cache)), to_host(want_dx))


def test_flatten(xp):
    rng = np.random.default_rng(4)
    x = _rand(xp, rng, 2, 3, 2, 2)
    y, cache = L.flatten_forward(x)
    assert y.shape == (2, 12)
    assert float(y[1, 5]) == float(x[1, 1, 0, 1])  # (C, H, W) order
    _check_layer(xp, L.flatten_forward, lambda d, c: (L.flatten_backward(d, c),), [x], rng)


def test_sigmoid(xp):
    rng = np.random.default_rng(5)
    h = _rand(xp, rng, 4, 6) * 3
    _check_layer(xp, L.sigmoid_forward, lambda d, c: (L.sigmoid_backward(d, c),), [h], rng)
    _check_layer(xp, L.sigmoid_forward,
                 lambda d, c: (_unscaled(L.sigmoid_backward_scaled, d, c),), [h], rng)


def _unscaled(backward_scaled, d, cache):
    """A scaled backward's dL/dh multiplied out: exp(log_scale) * direction, for float64 checks."""
    xp = array_module(d)
    direction, log_scale = backward_scaled(d, cache, xp.zeros(d.shape[:-1], dtype=d.dtype))
    return direction * xp.exp(log_scale)[..., None]


def test_sigmoid_is_stable_and_saturates_in_float32(xp):
    h = to_device(np.array([-800.0, -80.0, -20.0, 0.0, 16.0, 18.0, 800.0], np.float32), xp)
    y = L.sigmoid(h)
    assert not np.isnan(to_host(y)).any()
    y_host = to_host(y)
    np.testing.assert_allclose(y_host[1:6],
                               1 / (1 + np.exp(-to_host(h)[1:6].astype(np.float64))), rtol=1e-6)
    assert y_host[0] == 0.0 and y_host[1] > 0.0  # small tail kept (denormal down to ~exp(-103))
    assert y_host[-2] == 1.0  # rounds to exactly 1 from h = 16.64 on (nn.numerics.SIGMOID_ONE) ...
    dh = to_host(L.sigmoid_backward(xp.ones_like(y), (h, y)))
    assert dh[4] > 0 and dh[5] == 0.0  # ... so the cached-output derivative is exactly 0 there


def test_scaled_sigmoid_derivative_agrees_where_the_paper_one_does_not_round_to_zero(xp):
    h = to_device(np.array([-90.0, -30.0, -5.0, -0.5, 0.0, 0.7, 4.0, 12.0, 16.0, 18.0, 30.0, 90.0],
                           np.float32), xp)
    y, cache = L.sigmoid_forward(h)
    one = xp.ones((1, len(h)), dtype=h.dtype)
    default = to_host(L.sigmoid_backward(one[0], cache))
    d, s = L.sigmoid_backward_scaled(one, cache, xp.zeros(1, dtype=h.dtype))
    # in float64: no underflow
    scaled = to_host(d[0], np.float64) * np.exp(to_host(s, np.float64)[0])
    h64 = to_host(h).astype(np.float64)
    exact = np.exp(-np.abs(h64)) / (1 + np.exp(-np.abs(h64))) ** 2
    kept = np.ones(len(exact), bool)
    if flushes_subnormals(xp):  # the GPU: a direction's entries below 2^-126 of its largest are 0
        kept = exact >= np.finfo(np.float32).tiny * exact.max()
        assert (scaled[~kept] == 0).all() and (~kept).sum() == 2  # h = -90 and 90
    # float32's precision of log sigma' (to |.| = 90)
    np.testing.assert_allclose(scaled[kept], exact[kept], rtol=1e-5)
    small = np.abs(to_host(h)) < 5  # where 1 - y keeps full precision the two forms agree
    np.testing.assert_allclose(default[small], scaled[small], rtol=1e-5)  # 1 - y loses ~eps/(1 - y)
    # and only the scaled one survives
    assert (default[to_host(h) > 17] == 0).all() and (scaled[kept] > 0).all()


def test_scaled_cross_entropy_gradient(xp):
    rng = np.random.default_rng(11)
    z = _rand(xp, rng, 5, 7)  # float64: both forms agree with finite differences
    y = to_device(rng.integers(0, 7, 5), xp)
    w = _rand(xp, rng, 5)
    C, cache = softmax.cross_entropy_forward(z, y, "stable")
    np.testing.assert_allclose(to_host(C),
                               to_host(softmax.cross_entropy_forward(z, y)[0]), rtol=1e-12)
    num = numerical_gradient(lambda zz: (softmax.cross_entropy_forward(zz, y,
                                                                       "stable")[0] * w).sum(), z)
    d, s = softmax.cross_entropy_backward_scaled(cache)
    assert rel_error(d * xp.exp(s)[:, None] * w[:, None], num) < TOL
    assert (to_host(xp.abs(d).max(axis=1)) == 1).all()
    # a confident float32 network: z_y leads by 20 > 16.64, so 1 - p_y rounds to 0 in the paper's
    # form
    z = to_device(np.array([[20.0, 0.0, 0.0]], np.float32), xp)
    y = to_device(np.array([0]), xp)
    one = xp.ones(1, dtype=xp.float32)
    d_default = to_host(softmax.cross_entropy_backward(one, softmax.cross_entropy_forward(z, y)[1]))
    C_s, cache_s = softmax.cross_entropy_forward(z, y, "stable")
    d, s = softmax.cross_entropy_backward_scaled(cache_s)
    assert d_default[0, 0] == 0.0 and float(C_s[0]) > 0
    np.testing.assert_allclose(to_host(d)[0], [-1.0, 0.5, 0.5], rtol=1e-6)
    # exp(s) d = (-2, 1, 1) e^-20
    np.testing.assert_allclose(to_host(s)[0], np.log(2) - 20.0, rtol=1e-6)


def test_relu(xp):
    rng = np.random.default_rng(6)
    h = _rand(xp, rng, 4, 6)
    h = h + 0.1 * xp.sign(h)  # |h| >= 0.1: no test point near the kink
    _check_layer(xp, L.relu_forward, lambda d, c: (L.relu_backward(d, c),), [h], rng)
    _, mask = L.relu_forward(xp.zeros(3))
    assert float(L.relu_backward(xp.ones(3), mask).sum()) == 0.0  # relu'(0) = 0


def test_cross_entropy(xp):
    rng = np.random.default_rng(7)
    z = _rand(xp, rng, 5, 10) * 3
    y = to_device(rng.integers(0, 10, 5), xp)
    C, cache = softmax.cross_entropy_forward(z, y)
    zh = to_host(z)
    want = np.log(np.exp(zh).sum(1)) - zh[np.arange(5), to_host(y)]
    np.testing.assert_allclose(to_host(C), want, rtol=1e-12)
    w = _rand(xp, rng, 5)
    num = numerical_gradient(lambda zz: (softmax.cross_entropy_forward(zz, y)[0] * w).sum(), z)
    assert rel_error(softmax.cross_entropy_backward(w, cache), num) < TOL


def test_log_softmax_is_stable_for_huge_logits(xp):
    z = to_device(np.array([[1000.0, 0.0, -1000.0]], np.float32), xp)
    logp = to_host(softmax.log_softmax(z))
    assert np.isfinite(logp).all()
    np.testing.assert_allclose(logp, [[0.0, -1000.0, -2000.0]])


def test_leading_cotangent_axes(xp):
    """Each vjp applied to K stacked cotangents equals K separate calls (what the Jacobian uses)."""
    rng = np.random.default_rng(8)
    x, W, b = _rand(xp, rng, 2, 3, 4, 4), _rand(xp, rng, 5, 3, 3, 3), _rand(xp, rng, 5)
    cases = [(L.conv2d_forward(x, W, b), L.conv2d_vjp),
             (L.maxpool2d_forward(_untied(xp, rng, (2, 3, 4, 4))),
              L.maxpool2d_backward),
             (L.flatten_forward(x), L.flatten_backward), (L.sigmoid_forward(x), L.sigmoid_backward),
             (L.relu_forward(x), L.relu_backward),
             (L.relu_maxpool2d_forward(_untied(xp, rng, (2, 3, 4, 4))), L.relu_maxpool2d_backward)]
    for (out, cache), vjp in cases:
        d = _rand(xp, rng, 3, *out.shape)
        stacked = vjp(d, cache)
        for k in range(3):  # also when the layer hands back a transposed memory layout
            np.testing.assert_allclose(to_host(stacked[k]), to_host(vjp(d[k], cache)),
                                       rtol=1e-12, atol=1e-12)



def test_numerical_gradient_of_any_memory_layout(xp):
    """The finite-difference checker perturbs x itself whatever its layout: for a Fortran-order or
    strided x it used to perturb a reshaped copy and return zeros (the kind of mxnet PR 3663).
    d/dz sum z^3 = 3 z^2, and x comes back unchanged."""
    base = to_device(np.random.default_rng(0).standard_normal((3, 4)), xp)
    strided = xp.zeros((3, 8))[:, ::2]
    strided[...] = base
    for x in (xp.asfortranarray(xp.ones((3, 4))), xp.asfortranarray(base), strided):
        assert not x.flags.c_contiguous
        before = to_host(x).copy()
        num = numerical_gradient(lambda z: float((z ** 3).sum()), x)
        assert num.shape == x.shape
        np.testing.assert_allclose(to_host(num), 3 * before ** 2, rtol=1e-7)
        np.testing.assert_array_equal(to_host(x), before)
