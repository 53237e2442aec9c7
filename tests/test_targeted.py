"""Targeted attacks of section 7: Adam on the input and L-BFGS-B, sources and pairs."""
import numpy as np
import pytest

from attacks.targeted import (TargetedAdam, TargetedLBFGS, grid_pairs, lbfgs_objective,
                              select_sources)
from nn import architectures
from nn.backend import gpu_available, to_device, to_host
from nn.gradcheck import numerical_gradient, rel_error
from nn.model import Sequential


def _model(xp=np, dtype=np.float64, seed=0):
    """A small random ReLU MLP on 6x6 images, its first layer centred on the pixel 0.5 so that its
    predictions spread over all ten classes."""
    model = Sequential.init(architectures.mlp("relu", hidden=32, input_shape=[1, 6, 6]), seed=seed,
                            dtype=dtype, xp=xp)
    model.params[1]["b"][...] = -0.5 * model.params[1]["W"].sum(axis=1)
    return model


def _problem(xp, dtype=np.float64, n=4, seed=0):
    """The small model, n random sources, and as targets the classes of other random images (so a
    point of the box with that class exists) that differ from the sources' classes."""
    model = _model(xp, dtype)
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (50 * n, 1, 6, 6))
    pred = to_host(model.predict(to_device(x, xp, dtype)))
    t = np.roll(pred, 1)
    pick = np.flatnonzero(pred != t)[:n]
    return model, to_device(x[pick], xp, dtype), to_device(t[pick], xp)


def test_grid_pairs():
    s, t = grid_pairs()
    assert len(s) == 90 and (s != t).all() and len(set(zip(s.tolist(), t.tolist()))) == 90
    assert (s[:9] == 0).all() and t[:9].tolist() == list(range(1, 10))


@pytest.mark.parametrize("attack", ["adam", "lbfgs"])
def test_targeted_attacks_reach_target_inside_the_box(xp, attack):
    model, x, t = _problem(xp)
    if attack == "adam":
        r = TargetedAdam(max_iter=2000, lr=0.05)(model, x, t)
    else:
        r = TargetedLBFGS(max_iter=200)(model, x, t)
    assert r.success.all(), r.stop
    assert (r.x_adv >= 0).all() and (r.x_adv <= 1).all()
    pred = to_host(model.predict(to_device(r.x_adv, xp, model.dtype)))
    np.testing.assert_array_equal(pred, to_host(t))  # the recorded image is the one that fooled it
    assert (r.iterations >= 1).all() and (r.l2 > 0).all() and (r.linf <= 1).all()
    l2 = np.sqrt(((r.x_adv - to_host(x)) ** 2).reshape(len(x), -1).sum(1))
    np.testing.assert_allclose(r.l2, l2, rtol=1e-6)
    assert np.isfinite(r.curve[:, 0]).all()  # the loss at the source is recorded


@pytest.mark.parametrize("attack", ["adam", "lbfgs"])
def test_source_already_the_target_is_success_at_iteration_0(attack):
    model, x, _ = _problem(np)
    t = model.predict(x)
    run = TargetedAdam if attack == "adam" else TargetedLBFGS
    r = run(max_iter=5)(model, x, t)
    assert r.success.all() and (r.iterations == 0).all()
    np.testing.assert_array_equal(r.x_adv, to_host(x))


def test_adam_attack_does_not_move_with_exactly_zero_gradient():
    """The float32-saturation failure: a network whose input gradient is exactly 0 stalls at the
    source."""
    model, x, _ = _problem(np)
    model.params[1]["W"][...] = 0  # the first layer ignores the input: dC/dx = 0, logits constant
    t = (model.predict(x) + 1) % 10
    r = TargetedAdam(max_iter=50)(model, x, t)
    assert not r.success.any() and (r.iterations == 50).all()
    np.testing.assert_array_equal(r.x_adv, x)
    assert r.stop == ["budget"] * len(x)


def test_lbfgs_objective_gradient_matches_finite_differences():
    model, x, t = _problem(np, n=1)
    fun, _ = lbfgs_objective(model, int(t[0]), x.shape)
    v = x.ravel().copy()
    f, g = fun(v)
    assert g.dtype == np.float64 and g.shape == v.shape
    assert rel_error(g, numerical_gradient(lambda vv: fun(vv)[0], v)) < 1e-7


def test_select_sources_least_and_most_confident():
    model = _model()
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 1, (5000, 1, 6, 6))
    y = model.predict(x)  # every example correctly classified by construction
    y[:500] = (y[:500] + 1) % 10  # ... but these
    src = select_sources(model, x, y, n_classes=10)
    z = model.logits(x)
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    conf = logp[np.arange(len(y)), y]
    for c in range(10):
        ok = np.flatnonzero((y == c) & (model.predict(x) == c))
        assert ok.size >= 1
        assert (src["least"][c] == ok[np.argmin(conf[ok])]
                and src["most"][c] == ok[np.argmax(conf[ok])])


def test_select_sources_needs_each_class():
    model = _model()
    x = np.zeros((3, 1, 6, 6))
    with pytest.raises(ValueError, match="class"):
        select_sources(model, x, model.predict(x))


@pytest.mark.skipif(not gpu_available(), reason="cupy or a CUDA GPU is not available")
def test_gpu_and_cpu_give_the_same_success_matrix():
    import cupy
    model, x, t = _problem(np, dtype=np.float32, n=8, seed=1)
    gpu = model.to(cupy)
    for attack in (TargetedAdam(max_iter=300, lr=0.05), TargetedLBFGS(max_iter=100)):
        a = attack(model, x, t)
        b = attack(gpu, cupy.asarray(x), cupy.asarray(t))
        np.testing.assert_array_equal(a.success, b.success)
        np.testing.assert_allclose(a.l2[a.success], b.l2[b.success], rtol=1e-2)
