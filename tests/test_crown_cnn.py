"""CROWN through a CNN: its pieces are the convolution they stand for, the max-pool lines enclose
relu(max h) on every box, the bounds are sound (no point of the ball outside them, in float32 and
float64), never looser than IBP and tighter, and on a ReLU MLP they are the MLP CROWN's."""
import numpy as np
import pytest

from analysis.proofs import crown, crown_cnn
from analysis.proofs.ibp import interval_bounds
from attacks.pgd import PGD
from nn import architectures
from nn import layers as L
from nn.backend import to_device, to_host
from nn.conv import conv2d_forward, conv2d_vjp
from nn.model import Sequential
from nn.validate import InputError
from tests.test_crown import _deep
from tests.test_ibp import _points_in_ball


def _cnn(xp, seed=0, n=5, scale=2.0):
    """The paper's CNN in small: two conv-relu-pool blocks, a hidden dense layer, the readout."""
    spec = architectures.cnn(channels=(3, 4), hidden=12, kernel=3, input_shape=[1, 8, 8])
    model = Sequential.init(spec, seed=seed, xp=xp)
    model = Sequential(model.spec, [{k: v * scale for k, v in p.items()} for p in model.params])
    rng = np.random.default_rng(seed)
    x = to_device(rng.uniform(0, 1, (n, 1, 8, 8)), xp, np.float32)
    return model, x, model.predict(x)


def test_conv_rows_and_the_transposed_convolution_are_the_convolutions():
    rng = np.random.default_rng(0)
    W, b = rng.normal(size=(4, 3, 5, 5)), rng.normal(size=4)
    layer = crown_cnn.Layer("conv2d", W, b, (3, 6, 6), (4, 6, 6), "relu")
    a = rng.normal(size=(2, 3, 6, 6))
    h = conv2d_forward(a, W, b)[0].reshape(2, -1)
    rows = crown_cnn.conv_rows(W, np.arange(4 * 36), (4, 6, 6))
    assert np.allclose(a.reshape(2, -1) @ rows.T + crown_cnn._bias(layer), h, atol=1e-12)
    lam = rng.normal(size=(2, 7, 4 * 36))  # 7 rows per example
    vjp = conv2d_vjp(lam.reshape(2, 7, 4, 6, 6), (None, (7, 3, 6, 6), W)).reshape(2, 7, -1)
    assert np.allclose(crown_cnn._transpose(layer, lam), vjp, atol=1e-12)


def test_pool_lines_enclose_relu_of_the_max():
    """Boxes of every kind (decided windows, all below 0, straddling, tiny, wide) and 300 points
    of each, its corners among them: lower line <= relu(max h) <= upper line."""
    rng = np.random.default_rng(1)
    lo = rng.normal(0, 1, (50, 2, 4, 4)) * rng.choice([0.1, 1, 10], (50, 2, 4, 4))
    lo[:10, :, ::2, ::2] += 30  # one position dominates its window
    hi = lo + rng.exponential(1, lo.shape) * rng.choice([1e-9, 0.5, 5], lo.shape)
    window, a_lo, a_hi, b_hi = crown_cnn.pool_relaxation(lo, hi)
    decided = 0
    for t in range(300):
        h = lo + (hi - lo) * (rng.uniform(size=lo.shape) if t % 2 else rng.integers(0, 2, lo.shape))
        y = np.maximum(L.maxpool2d_forward(h)[0], 0).reshape(50, -1)
        chosen = (h.reshape(50, 2, 2, 2, 2, 2) * window).sum(axis=(3, 5)).reshape(50, -1)  # h_i*
        tol = 1e-12 * (1 + np.abs(chosen))
        assert (a_lo * chosen <= y + tol).all() and (y <= a_hi * chosen + b_hi + tol).all()
        decided += int((a_hi > 0).sum())
    assert decided > 0  # the decided windows' chord was used, not only the constant


@pytest.mark.parametrize("eps", [0.01, 0.05, 0.2])
def test_no_point_of_the_ball_falls_outside_the_bounds(xp, eps):
    model, x, y = _cnn(xp)
    bounds = crown_cnn.linear_bounds(model, x, y, eps, rows=7)  # several passes per layer
    rng = np.random.default_rng(2)
    points = _points_in_ball(x, eps, rng, 60)
    x_pgd = PGD(eps, steps=20, restarts=1, loss="margin", numerics="stable")(model, x, y).x_adv
    points = np.concatenate([points, to_host(x_pgd)[None]])
    yy, lower = to_host(y), to_host(bounds.diff_lower)
    other = np.arange(10) != yy[:, None]
    for m in (model, model.astype(np.float64)):
        for pts in points:
            logits, _, hs = m.forward(to_device(pts, xp, m.dtype))
            for (lo, hi), h in zip(bounds.pre, hs[:-1]):
                h = to_host(h).reshape(len(yy), -1).astype(np.float64)
                assert (h >= to_host(lo)).all() and (h <= to_host(hi)).all()
            z = to_host(logits).astype(np.float64)
            diff = z[np.arange(len(yy)), yy][:, None] - z
            assert (diff[other] >= lower[other]).all()


def test_never_looser_than_ibp_and_tighter(xp):
    """Up to the float64 rounding of the two computations (their sums run in other orders)."""
    tighter, proven = 0, 0
    for seed in range(3):
        model, x, y = _cnn(xp, seed=seed, n=8)
        for eps in (0.003, 0.01, 0.05):
            ours, ibp = crown_cnn.linear_bounds(model, x, y, eps), interval_bounds(model, x, y, eps)
            for (lo, hi), (ilo, ihi) in zip(ours.pre, ibp.pre):
                ilo, ihi = ilo.reshape(lo.shape), ihi.reshape(hi.shape)
                tol = 1e-12 * (1 + xp.abs(ilo) + xp.abs(ihi))
                assert bool((lo >= ilo - tol).all() and (hi <= ihi + tol).all())
            a, b = to_host(ours.diff_lower), to_host(ibp.diff_lower)
            finite = np.isfinite(b)
            assert (a[finite] >= b[finite] - 1e-12 * (1 + np.abs(b[finite]))).all()
            tighter += int((a[finite] > b[finite] + 1e-9).sum())
            proven += int(ours.verified.sum()) - int(ibp.verified.sum())
    assert tighter > 300 and proven > 0  # of 3 x 3 x 8 x 9 differences


def test_a_relu_mlp_gets_the_mlp_crown_bounds(xp):
    model, x, y = _deep(xp, "relu")
    for eps in (0.02, 0.1):
        ours, mlp = crown_cnn.linear_bounds(model, x, y, eps), crown.linear_bounds(model, x, y, eps)
        a, b = to_host(ours.diff_lower), to_host(mlp.diff_lower)
        finite = np.isfinite(b)
        # the same relaxations and error bounds, summed in another order
        assert np.allclose(a[finite], b[finite], rtol=1e-10, atol=1e-10)


def test_an_empty_batch_has_empty_bounds():
    model, x, y = _cnn(np)
    bounds = crown_cnn.linear_bounds(model, x[:0], y[:0], 0.1)
    assert bounds.diff_lower.shape == (0, 10) and bounds.verified.shape == (0,)
    assert [lo.shape for lo, _ in bounds.pre] == [(0, 3 * 8 * 8), (0, 4 * 4 * 4), (0, 12)]


def test_refuses_what_it_cannot_bound():
    model, x, y = _deep(np, "sigmoid")
    with pytest.raises(InputError, match="needs conv2d and dense layers"):
        crown_cnn.linear_bounds(model, x, y, 0.1)
    model, x, y = _cnn(np)
    with pytest.raises(InputError, match="rows"):
        crown_cnn.linear_bounds(model, x, y, 0.1, rows=0)
    with pytest.raises(InputError, match="eps"):
        crown_cnn.linear_bounds(model, x, y, -0.1)


def test_the_bracket_proves_with_crown_through_a_cnn(mnist_test):
    """``experiments.lib.verification.bracket`` on a CNN: IBP and CROWN, CROWN proving more, none of
    its proofs fooled by the attacks, Square or random points of the ball."""
    from types import SimpleNamespace

    from experiments.lib.verification import bracket
    spec = architectures.cnn(channels=(2, 3), hidden=8, kernel=3)
    model = Sequential.init(spec, seed=0)
    x = mnist_test[0][:20]
    y = model.predict(x)  # the network's own labels: every example starts correct
    args = SimpleNamespace(sweep_steps=5, seed=0, batch=20, crown_batch=10, square_queries=20,
                           ball_points=20)
    row, _ = bracket(model, x, y, [0.003, 0.03], args, log=lambda line: None)
    assert row["methods"] == ["ibp", "crown"]
    by = row["verified_by"]
    assert all(i <= c == v <= a for i, c, v, a in zip(by["ibp"], by["crown"], row["verified"],
                                                     row["attacked"]))
    assert by["crown"][0] > by["ibp"][0] and row["contradictions"] == [0, 0]
    assert row["seconds"]["crown"] > 0


def test_verified_fraction_is_the_mean_of_verified(xp):
    model, x, y = _cnn(xp, n=8)
    eps = 0.01
    share = crown_cnn.verified_fraction(model, to_host(x), to_host(y), eps, batch=3)
    assert share == float(to_host(crown_cnn.linear_bounds(model, x, y, eps).verified).mean())
    assert 0 < share < 1
