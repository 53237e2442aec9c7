"""Whole-model derivatives (parameter gradients, input gradient, Jacobian) in float64."""
import numpy as np
import pytest

from attacks.losses import cross_entropy, loss_and_input_gradient, scaled_input_gradient
from nn import architectures, model as M, spec as S
from nn.backend import to_device, to_host
from nn.gradcheck import numerical_gradient, numerical_jvp, rel_error

TOL = 1e-7


def small_cnn():
    return architectures.cnn(channels=(3, 4), hidden=6, kernel=3, input_shape=[1, 8, 8])


def small_mlp(act):
    return architectures.mlp(act, hidden=7, input_shape=[1, 4, 4])


SPECS = {"sigmoid_mlp": lambda: small_mlp("sigmoid"), "relu_mlp": lambda: small_mlp("relu"),
         "cnn": small_cnn}


def _setup(xp, name, n=3, seed=0):
    spec = SPECS[name]()
    model = M.Sequential.init(spec, seed=seed, dtype=np.float64, xp=xp)
    rng = np.random.default_rng(seed + 100)
    for p in model.params:  # nonzero biases so that their gradients are exercised
        if "b" in p:
            p["b"][...] = to_device(0.1 * rng.standard_normal(p["b"].shape), xp)
    x = to_device(rng.uniform(0, 1, (n, *spec["input_shape"])), xp)
    y = to_device(rng.integers(0, 10, n), xp)
    return model, x, y


def _off_kinks(model, x):
    """Guard: no ReLU pre-activation within 1e-4 of 0 and no near-tie among the positive values of
    a max-pool window, so that finite differences with h = 1e-6 never cross a kink (the test would
    be meaningless otherwise). Windows of zeros after a ReLU tie harmlessly: their gradient is 0."""
    _, _, hs = model.forward(x)
    for h in hs[:-1]:
        assert float(abs(h).min()) > 1e-4
    a = x
    for layer, p in zip(model.spec["layers"], model.params):
        if layer["type"] == "maxpool2d":
            N, C, H, W = a.shape
            win = to_host(a).reshape(N, C, H // 2, 2, W // 2, 2).transpose(0, 1, 2, 4, 3,
                                                                           5).reshape(-1, 4)
            top2 = np.sort(win, axis=1)[:, -2:]
            live = top2[:, 1] > 0
            assert (top2[live, 1] - top2[live, 0]).min() > 1e-4
        a = M._FORWARD[layer["type"]](p, a, "float32")[0]


@pytest.mark.parametrize("name", sorted(SPECS))
def test_parameter_gradients(xp, name):
    model, x, y = _setup(xp, name)
    _off_kinks(model, x)
    loss, grads, _ = model.loss_and_grads(x, y)
    for i, p in enumerate(model.params):
        for k, v in p.items():
            num = numerical_gradient(lambda _: model.loss_and_grads(x, y)[0], v)
            assert rel_error(grads[i][k], num) < TOL, f"layer {i} {k}"


@pytest.mark.parametrize("name", sorted(SPECS))
def test_injected_preactivation_gradients(xp, name):
    """backward(..., dhs) adds dL/dh^l at each weight layer: the gradient of sum_l <r_l, h^l>."""
    model, x, _ = _setup(xp, name)
    _off_kinks(model, x)
    rng = np.random.default_rng(1)
    _, _, hs = model.forward(x)
    rs = [to_device(rng.standard_normal(h.shape), xp) for h in hs]

    def objective(_):
        return sum(float((h * r).sum()) for h, r in zip(model.preactivations(x), rs))
    _, caches, _ = model.forward(x)
    dx, grads = M.backward(model.spec, caches, xp.zeros_like(hs[-1]), dhs=rs, input_grad=True)
    for i, p in enumerate(model.params):
        for k, v in p.items():
            assert rel_error(grads[i][k], numerical_gradient(objective, v)) < TOL, f"layer {i} {k}"
    assert rel_error(dx, numerical_gradient(objective, x)) < TOL


@pytest.mark.parametrize("name", sorted(SPECS))
def test_input_gradient(xp, name):
    """dC_n/dx_n, per example: the gradient of sum_n C_n."""
    model, x, y = _setup(xp, name)
    _off_kinks(model, x)
    C, dx = model.loss_and_input_gradient(x, y)
    num = numerical_gradient(lambda xx: model.loss_and_input_gradient(xx, y)[0].sum(), x)
    assert dx.shape == x.shape
    assert rel_error(dx, num) < TOL
    np.testing.assert_allclose(to_host(model.input_gradient(x, y)), to_host(dx))
    _, d, s, _ = scaled_input_gradient(model, x, y, cross_entropy)
    xp_ = model.xp
    # the stable mode: direction x scale
    assert rel_error(d * xp_.exp(s).reshape(-1, 1, 1, 1), num) < TOL
    # unit max-norm directions
    assert np.allclose(to_host(xp_.abs(d).reshape(len(d), -1).max(axis=1)), 1.0)
    _, dx_stable, _ = loss_and_input_gradient(model, x, y, cross_entropy, numerics="stable")
    np.testing.assert_array_equal(to_host(dx_stable), to_host(d))


@pytest.mark.parametrize("name", sorted(SPECS))
def test_jacobian_adjoint(xp, name):
    """<u, J^T v> (reverse mode, vjp) = <v, J u> (forward, finite differences) for random u, v."""
    model, x, _ = _setup(xp, name)
    _off_kinks(model, x)
    rng = np.random.default_rng(2)
    u = to_device(rng.standard_normal(x.shape), xp)
    v = to_device(rng.standard_normal((x.shape[0], 10)), xp)
    Ju = numerical_jvp(model.logits, x, u)  # (N, 10)
    lhs = to_host((u * model.vjp(x, v)).reshape(x.shape[0], -1).sum(1))
    rhs = to_host((v * Ju).sum(1))
    np.testing.assert_allclose(lhs, rhs, rtol=1e-7)
    J = model.jacobian(x)  # the batched Jacobian agrees with the same products
    np.testing.assert_allclose(to_host(np.einsum("nk,nkd->nd", to_host(v), to_host(J))),
                               to_host(model.vjp(x, v)).reshape(x.shape[0], -1),
                               rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_jacobian_direct(xp, name):
    """Every entry J[n, k, d] against centred differences of logit k in pixel d."""
    model, x, _ = _setup(xp, name, n=2)
    _off_kinks(model, x)
    J = model.jacobian(x)
    N, K = 2, 10
    assert J.shape == (N, K, x[0].size)
    num = np.stack([to_host(numerical_gradient(lambda xx: model.logits(xx)[:, k].sum(),
                                               x)).reshape(N, -1)
                    for k in range(K)], axis=1)  # (N, K, D): examples are independent
    assert rel_error(to_host(J), num) < TOL


def test_bad_inputs_are_named():
    model = M.Sequential.init(small_mlp("relu"), dtype=np.float64)
    with pytest.raises(ValueError, match=r"shape \(3, 16\)"):
        model.logits(np.zeros((3, 16)))
    with pytest.raises(TypeError, match="float32"):
        model.logits(np.zeros((3, 1, 4, 4), np.float32))
    with pytest.raises(S.SpecError, match="layer 1"):
        S.layer_shapes({"input_shape": [1, 4, 4],
                        "layers": [{"type": "flatten"}, {"type": "dense"}]})
    with pytest.raises(S.SpecError, match="unknown type"):
        S.layer_shapes({"input_shape": [784], "layers": [{"type": "softplus"}]})
    with pytest.raises(S.SpecError, match="shape"):
        bad = S.init_params(small_mlp("relu"))
        bad[1]["W"] = bad[1]["W"][:, :3]
        M.Sequential(small_mlp("relu"), bad)


def test_paper_architectures_shapes():
    x = np.zeros((2, 1, 28, 28), np.float32)
    for arch, n_h in [("sigmoid_mlp", 3), ("relu_mlp", 3), ("cnn", 4)]:
        model = M.Sequential.init(architectures.build_spec(arch), seed=0)
        assert model.logits(x).shape == (2, 10)
        assert len(model.preactivations(x)) == n_h
        assert model.jacobian(x).shape == (2, 10, 784)
    cnn_shapes = [h.shape for h in M.Sequential.init(architectures.cnn()).preactivations(x)]
    assert cnn_shapes == [(2, 32, 28, 28), (2, 64, 14, 14), (2, 1024), (2, 10)]
