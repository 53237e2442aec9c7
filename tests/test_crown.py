"""Linear relaxation bounds (CROWN): sound (no point of the ball outside them, in float32
and float64), never looser than interval bound propagation, strictly tighter where it should be."""
import numpy as np
import pytest

from analysis.proofs.crown import linear_bounds, relu_relaxation, sigmoid_relaxation
from analysis.proofs.ibp import interval_bounds
from attacks.pgd import PGD
from nn import architectures
from nn.backend import to_device, to_host
from nn.model import Sequential
from nn.validate import InputError
from tests.test_ibp import _points_in_ball, _problem


def _deep(xp, activation, seed=0, scale=3.0):
    """Three hidden layers, so back-substitution crosses two relaxations."""
    spec = architectures.mlp(activation, hidden=9, depth=3, input_shape=[1, 4, 4])
    model = Sequential.init(spec, seed=seed, xp=xp)
    model = Sequential(model.spec, [{k: v * scale for k, v in p.items()} for p in model.params])
    rng = np.random.default_rng(seed)
    x = to_device(rng.uniform(0, 1, (5, 1, 4, 4)), xp, np.float32)
    return model, x, model.predict(x)


def _cases(xp):
    return [_problem(xp, "relu_mlp"), _problem(xp, "sigmoid_mlp"), _deep(xp, "relu"),
            _deep(xp, "sigmoid"),
            _problem(xp, "sigmoid_mlp", scale=30.0)]  # saturated: |h| in the tens


@pytest.mark.parametrize("eps", [0.02, 0.1, 0.3])
def test_no_point_of_the_ball_falls_outside_the_bounds(xp, eps):
    rng = np.random.default_rng(2)
    for model, x, y in _cases(xp):
        bounds = linear_bounds(model, x, y, eps)
        points = _points_in_ball(x, eps, rng, 60)
        x_pgd = PGD(eps, steps=20, restarts=1, loss="margin", numerics="stable")(model, x, y).x_adv
        points = np.concatenate([points, to_host(x_pgd)[None]])
        yy = to_host(y)
        other = np.arange(10) != yy[:, None]
        lower = to_host(bounds.diff_lower)
        for m in (model, model.astype(np.float64)):
            for pts in points:
                logits, _, hs = m.forward(to_device(pts, xp, m.dtype))
                for (lo, hi), h in zip(bounds.pre, hs[:-1]):
                    h = to_host(h).astype(np.float64)
                    assert (h >= to_host(lo)).all() and (h <= to_host(hi)).all()
                z = to_host(logits).astype(np.float64)
                diff = z[np.arange(len(yy)), yy][:, None] - z
                assert (diff[other] >= lower[other]).all()


def test_never_looser_than_ibp_and_tighter_somewhere(xp):
    tighter = 0
    for model, x, y in _cases(xp):
        for eps in (0.02, 0.1):
            ours, ibp = linear_bounds(model, x, y, eps), interval_bounds(model, x, y, eps)
            for (lo, hi), (ilo, ihi) in zip(ours.pre, ibp.pre):
                assert bool((lo >= ilo).all() and (hi <= ihi).all())
            a, b = to_host(ours.diff_lower), to_host(ibp.diff_lower)
            finite = np.isfinite(b)
            assert (a[finite] >= b[finite]).all()
            tighter += int((a[finite] > b[finite] + 1e-9).sum())
            assert bool((ours.verified >= ibp.verified).all())
    assert tighter > 100  # of 5 cases x 2 eps x 5 examples x 9 differences: CROWN is not IBP


@pytest.mark.parametrize("relax,f", [(relu_relaxation, lambda h: np.maximum(h, 0)),
                                     (sigmoid_relaxation, lambda h: 1 / (1 + np.exp(-h)))])
def test_relaxation_lines_enclose_the_activation(relax, f):
    """On intervals on either side of 0, across it, tiny, and saturated (|h| up to 150), and in
    between 200 points of each, lower line <= f <= upper line."""
    rng = np.random.default_rng(3)
    a = rng.normal(0, 1, 400) * rng.choice([0.1, 3, 30, 150], 400)
    w = rng.exponential(1, 400) * rng.choice([1e-9, 0.1, 5, 50], 400)
    lo, hi = a, a + w
    al, bl, ah, bh = relax(lo, hi)
    t = np.linspace(0, 1, 201)[:, None]
    h = lo + t * (hi - lo)  # (201, 400)
    with np.errstate(over="ignore"):
        v = f(h)
    tol = 1e-15 * (1 + np.abs(h))  # the test's own float64 evaluation of the lines
    assert (al * h + bl <= v + tol).all() and (v - tol <= ah * h + bh).all()


def test_rejects_a_cnn():
    model = Sequential.init(architectures.cnn(channels=(2, 2), hidden=4), seed=0)
    x = np.zeros((1, 1, 28, 28), np.float32)
    with pytest.raises(InputError, match="need an MLP"):
        linear_bounds(model, x, np.zeros(1, int), 0.1)
