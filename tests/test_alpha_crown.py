"""alpha-CROWN: its gradient is the objective's (float64 finite differences), its bounds are never
looser than CROWN's and are sound for the float32 network, and bad settings are refused."""
import numpy as np
import pytest

from analysis.proofs import alpha_crown, crown
from nn.backend import to_device, to_host
from nn.validate import InputError
from tests.test_crown import _deep
from tests.test_ibp import _points_in_ball, _problem


def _margins(problem, alphas):
    """The margins' lower bounds L_nj (j != y_n) at the given alphas, flat, host float64."""
    lower = to_host(alpha_crown.evaluate(problem, alphas, gradient=False)[0])
    y = to_host(problem.y)
    return lower[np.arange(10)[None] != y[:, None]]


@pytest.mark.parametrize("eps", [0.05, 0.1])
def test_gradient_matches_finite_differences(xp, eps):
    """Three hidden layers, so the gradient crosses two relaxations and two optimised boxes (the
    chain through the chords of layers 2 and 3). Each parameter group along a random direction,
    and all at once, at random alphas in (0.1, 0.9) (off the kinks), against centred differences
    of J = sum L_nj, taken margin by margin. h = 1e-4: J is piecewise linear in the margins' alphas
    and smooth (rational) in the boxes', so its truncation error is ~1e-9 relative, while bounds of
    size 1e3 whose terms round at 1e-13 would show at 1e-7 with h = 1e-6."""
    model, x, y = _deep(xp, "relu")
    problem = alpha_crown.setup(model, x, y, eps)
    rng = np.random.default_rng(1)
    start = alpha_crown.initial_alphas(problem)
    assert {(4, 3), (3, 2), (2, 1)} <= set(start)  # margins' and boxes' alphas, all layers
    alphas = {k: to_device(rng.uniform(0.1, 0.9, a.shape), xp) for k, a in start.items()}
    grads = alpha_crown.evaluate(problem, alphas)[2]
    groups = [[k] for k in sorted(alphas)] + [sorted(alphas)]
    h = 1e-4
    for keys in groups:
        d = {k: to_device(rng.normal(size=alphas[k].shape), xp) for k in keys}
        moved = [{k: a + s * h * d[k] if k in d else a for k, a in alphas.items()}
                 for s in (1, -1)]
        fd = float((_margins(problem, moved[0]) - _margins(problem, moved[1])).sum()) / (2 * h)
        exact = sum(float((grads[k] * d[k]).sum()) for k in keys)
        assert abs(exact) > 1e-3, keys  # every group matters here
        assert abs(fd - exact) <= 1e-6 * max(abs(fd), abs(exact)), (keys, fd, exact)


def test_never_looser_than_crown_and_tighter_somewhere(xp):
    tighter = 0
    for model, x, y in (_problem(xp, "relu_mlp", n=20), _deep(xp, "relu")):
        for eps in (0.02, 0.05, 0.1):
            ours, theirs = alpha_crown.linear_bounds(model, x, y, eps), crown.linear_bounds(
                model, x, y, eps)
            a, b = to_host(ours.diff_lower), to_host(theirs.diff_lower)
            assert (a >= b).all()
            assert bool((ours.verified >= theirs.verified).all())
            for (lo, hi), (clo, chi) in zip(ours.pre, theirs.pre):
                assert bool((lo >= clo).all() and (hi <= chi).all())
            finite = np.isfinite(b)
            tighter += int((a[finite] > b[finite] + 1e-9).sum())
    assert tighter > 200  # of 2 nets x 3 eps x 25 examples x 9 margins
    model, x, y = _problem(xp, "relu_mlp", n=20)
    assert int(alpha_crown.linear_bounds(model, x, y, 0.05).verified.sum()) > int(
        crown.linear_bounds(model, x, y, 0.05).verified.sum())


def test_zero_steps_is_crown(xp):
    model, x, y = _problem(xp, "relu_mlp")
    ours, theirs = alpha_crown.linear_bounds(model, x, y, 0.05, steps=0), crown.linear_bounds(
        model, x, y, 0.05)
    assert np.array_equal(to_host(ours.diff_lower), to_host(theirs.diff_lower))


def test_no_point_of_the_ball_beats_the_bound(xp):
    """1,000 random points and 200 corners of each example's ball (intersected with [0, 1]): the
    float32 network's margins z_y - z_j are never below the bounds, its hidden pre-activations
    never outside the boxes, and every verified example keeps its class."""
    model, x, y = _problem(xp, "relu_mlp", n=20)
    eps = 0.05
    bounds = alpha_crown.linear_bounds(model, x, y, eps)
    verified = to_host(bounds.verified)
    assert 0 < verified.sum() < len(verified)
    rng = np.random.default_rng(4)
    points = np.concatenate([_points_in_ball(x, eps, rng, 1000)[:1000],
                             _points_in_ball(x, eps, rng, 200)[200:]])  # (1200, N, 1, 5, 5)
    flat = points.reshape((-1,) + points.shape[2:])
    logits, _, hs = model.forward(to_device(flat, xp, np.float32))
    yy = to_host(y)
    z = to_host(logits).astype(np.float64).reshape(len(points), len(yy), -1)
    margins = z[:, np.arange(len(yy)), yy][..., None] - z  # (1200, N, K)
    other = np.arange(10)[None] != yy[:, None]
    lower = to_host(bounds.diff_lower)
    assert (margins.min(axis=0)[other] >= lower[other]).all()
    assert (margins[:, verified][:, other[verified]] > 0).all()
    for (lo, hi), h in zip(bounds.pre, hs[:-1]):
        h = to_host(h).astype(np.float64).reshape(len(points), len(yy), -1)
        assert (h >= to_host(lo)).all() and (h <= to_host(hi)).all()


def test_verified_fraction_counts_crowns_proofs_and_more():
    model, x, y = _problem(np, "relu_mlp", n=20)
    share = alpha_crown.verified_fraction(model, x, y, 0.05, batch=7, steps=10)
    assert share == alpha_crown.linear_bounds(model, x, y, 0.05, steps=10).verified.mean()
    assert share > crown.verified_fraction(model, x, y, 0.05)


@pytest.mark.parametrize("kwargs,match", [({"eps": 1.5}, "eps must be at most 1"),
                                          ({"steps": -1}, "steps must be at least 0"),
                                          ({"steps": 2.5}, "steps must be a whole number"),
                                          ({"lr": 0.0}, "lr must be positive")])
def test_rejects_bad_settings(kwargs, match):
    model, x, y = _problem(np, "relu_mlp")
    settings = {"eps": 0.05, **kwargs}
    for verify in (alpha_crown.linear_bounds, alpha_crown.verified_fraction):
        with pytest.raises(InputError, match=match):
            verify(model, x, y, **settings)


def test_rejects_all_but_relu_mlps():
    for name in ("sigmoid_mlp", "relu_cnn"):
        model, x, y = _problem(np, name)
        with pytest.raises(InputError, match="ReLU MLPs only"):
            alpha_crown.linear_bounds(model, x, y, 0.05)
