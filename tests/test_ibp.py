"""Interval bound propagation: the bounds are sound (no point of the ball falls outside
them, random points, corners and PGD's worst point alike), exact where they should be, and a
verified example is never fooled."""
import numpy as np
import pytest

from analysis.proofs.ibp import interval_bounds, verified_fraction
from attacks.ball import box
from attacks.pgd import PGD
from nn import architectures
from nn.backend import to_device, to_host
from nn.model import Sequential


def _small_conv(activation="relu"):
    return {"name": "small_cnn", "input_shape": [1, 6, 6], "layers": [
        {"type": "conv2d", "channels": 3, "kernel": 3, "init": "he"}, {"type": activation},
        {"type": "maxpool2d"},
        {"type": "flatten"}, {"type": "dense", "units": 7, "init": "he"}, {"type": activation},
        {"type": "dense", "units": 10}]}


NETS = {
    "relu_mlp": lambda: architectures.mlp("relu", hidden=12, input_shape=[1, 5, 5]),
    "sigmoid_mlp": lambda: architectures.mlp("sigmoid", hidden=12, input_shape=[1, 5, 5]),
    "relu_cnn": lambda: _small_conv("relu"),
    "sigmoid_cnn": lambda: _small_conv("sigmoid"),
}


def _problem(xp, name, n=6, seed=0, scale=3.0):
    """A random float32 network (weights scaled up, so that sigmoids saturate and ReLUs switch) and
    n random images with the network's own predictions as labels."""
    model = Sequential.init(NETS[name](), seed=seed, xp=xp)
    model = Sequential(model.spec, [{k: v * scale for k, v in p.items()} for p in model.params])
    rng = np.random.default_rng(seed)
    x = to_device(rng.uniform(0, 1, (n,) + tuple(model.spec["input_shape"])), xp, np.float32)
    return model, x, model.predict(x)


def _points_in_ball(x, eps, rng, k):
    """k random points, k random corners of the ball intersected with [0, 1]
    (per image): (k, N, ...)."""
    lo, hi = (to_host(a) for a in box(x, eps))
    inside = lo + (hi - lo) * rng.uniform(0, 1, (k,) + lo.shape)
    corners = np.where(rng.uniform(size=(k,) + lo.shape) < 0.5, lo, hi)
    return np.concatenate([inside, corners]).astype(np.float32)


@pytest.mark.parametrize("name", sorted(NETS))
def test_no_point_of_the_ball_falls_outside_the_bounds(xp, name):
    model, x, y = _problem(xp, name)
    eps = 0.1
    bounds = interval_bounds(model, x, y, eps)
    rng = np.random.default_rng(1)
    points = _points_in_ball(x, eps, rng, 100)  # (200, N, ...)
    x_pgd = PGD(eps, steps=20, restarts=1, loss="margin", numerics="stable")(model, x, y).x_adv
    points = np.concatenate([points, to_host(x_pgd)[None]])
    for m in (model, model.astype(np.float64)):  # the float32 network and the exact (float64) one
        for pts in points:
            logits, _, hs = m.forward(to_device(pts, xp, m.dtype))
            for (lo, hi), h in zip(bounds.pre, hs[:-1]):
                assert bool((to_device(h, xp, np.float64) >= lo).all() and (h <= hi).all())
            z = to_host(logits).astype(np.float64)
            yy = to_host(y)
            diff = z[np.arange(len(yy)), yy][:, None] - z  # (N, K), 0 at j = y
            lower = to_host(bounds.diff_lower)
            other = np.arange(z.shape[1]) != yy[:, None]
            assert (diff[other] >= lower[other]).all()


def test_bounds_are_tight_at_eps_zero(xp):
    """With eps = 0 the box is the point itself: the bounds equal the network's values up to the
    floating-point margin, and every example with a nonzero margin is verified."""
    model, x, y = _problem(xp, "relu_cnn")
    bounds = interval_bounds(model, x, y, 0.0)
    _, _, hs = model.astype(np.float64).forward(x.astype(np.float64))
    for (lo, hi), h in zip(bounds.pre, hs[:-1]):
        scale = 1 + float(abs(h).max())
        assert float((hi - lo).max()) < 1e-4 * scale and bool((lo <= h).all() and (h <= hi).all())
    assert bool(bounds.verified.all())


def test_a_larger_ball_never_gives_tighter_bounds(xp):
    model, x, y = _problem(xp, "sigmoid_mlp")
    lowers = [to_host(interval_bounds(model, x, y, eps).diff_lower)
              for eps in (0.0, 0.01, 0.05, 0.2)]
    for a, b in zip(lowers, lowers[1:]):
        assert (b <= a).all()


def test_a_hand_computed_bound():
    """One input pixel, h = 2 x - 1, relu, readout z = (h, -h), so z_0 - z_1 = 2 relu(h);
    eps = 0.15. x = 0.65: x' in [0.5, 0.8], h in [0, 0.6], z_0 - z_1 in [0, 1.2]: lower bound 0, not
    verified. x = 0.8: x' in [0.65, 0.95], h in [0.3, 0.9], lower bound 0.6. x = 0.95: x' in
    [0.8, 1] (clipped to the pixel box), h in [0.6, 1], lower bound 1.2."""
    spec = {"name": "tiny", "input_shape": [1, 1, 1],
            "layers": [{"type": "flatten"}, {"type": "dense", "units": 1},
                       {"type": "relu"}, {"type": "dense", "units": 2}]}
    f32 = lambda a: np.array(a, np.float32)  # noqa: E731
    model = Sequential(spec, [{}, {"W": f32([[2.0]]), "b": f32([-1.0])}, {},
                              {"W": f32([[1.0], [-1.0]]),
                                                                            "b": f32([0.0, 0.0])}])
    b = interval_bounds(model, f32([0.65, 0.8, 0.95]).reshape(3, 1, 1, 1),
                        np.array([0, 0, 0]), 0.15)
    np.testing.assert_allclose(b.pre[0][0].ravel(), [0.0, 0.3, 0.6], atol=1e-6)
    np.testing.assert_allclose(b.pre[0][1].ravel(), [0.6, 0.9, 1.0], atol=1e-6)
    np.testing.assert_allclose(b.diff_lower[:, 1], [0.0, 0.6, 1.2], atol=1e-6)
    assert list(b.verified) == [False, True, True]


def test_verified_examples_are_never_fooled(xp):
    """On a network whose examples IBP can prove at a small eps, PGD fools none of the proven
    ones."""
    model, x, y = _problem(xp, "relu_mlp", n=200, seed=3, scale=1.0)
    eps = 0.02
    proven = to_host(interval_bounds(model, x, y, eps).verified)
    assert 0 < proven.sum() < len(proven)  # the test means something: some proven, some not
    fooled = PGD(eps, steps=50, restarts=2, loss="margin", numerics="stable")(model, x, y).success
    assert not (to_host(fooled) & proven).any()
    assert verified_fraction(model, to_host(x), to_host(y), eps, batch=64) == proven.mean()
