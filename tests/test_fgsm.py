"""FGSM (eq. 3)."""
import numpy as np

from attacks import FGSM
from attacks.adversarial_training import adversarial_loss_and_grads
from nn import architectures
from nn.backend import to_device, to_host
from nn.gradcheck import numerical_gradient, rel_error
from nn.model import Sequential


def _linear_model(xp):
    """A one-layer network h = W x + b on 2x2 'images': its cross-entropy gradient is known."""
    spec = {"name": "linear", "input_shape": [1, 2, 2],
            "layers": [{"type": "flatten"}, {"type": "dense", "units": 10}]}
    W = np.zeros((10, 4))
    W[0] = [1.0, -1.0, 2.0, -3.0]  # logit 0 only
    return Sequential(spec, [{}, {"W": to_device(W, xp), "b": to_device(np.zeros(10), xp)}])


def test_fgsm_hand_computed(xp):
    """For label 0: dC/dx = (p_0 - 1) W_0, so sign(dC/dx) = -sign(W_0) = (-1, +1, -1, +1)."""
    model = _linear_model(xp)
    x = to_device(np.array([[[[0.5, 0.5], [0.1, 0.9]]]]), xp)
    r = FGSM(eps=0.25)(model, x, to_device(np.array([0]), xp))
    # two pixels clipped
    np.testing.assert_allclose(to_host(r.x_adv), [[[[0.25, 0.75], [0.0, 1.0]]]])
    r = FGSM(eps=0.25, clip=False)(model, x, to_device(np.array([0]), xp))
    np.testing.assert_allclose(to_host(r.x_adv), [[[[0.25, 0.75], [-0.15, 1.15]]]])


def _small_problem(xp, activation, side, n, seed):
    """A float64 MLP on side x side images, with n random images in [0, 1] and labels."""
    model = Sequential.init(architectures.mlp(activation, hidden=8, input_shape=[1, side, side]),
                            seed=0, dtype=np.float64, xp=xp)
    rng = np.random.default_rng(seed)
    return (model, to_device(rng.uniform(0, 1, (n, 1, side, side)), xp),
            to_device(rng.integers(0, 10, n), xp))


def test_fgsm_moves_every_pixel_by_eps_or_to_the_boundary(xp):
    model, x, y = _small_problem(xp, "relu", side=6, n=5, seed=0)
    g = to_host(model.input_gradient(x, y))
    assert (g != 0).all()  # every pixel has a direction
    r = FGSM(eps=0.25)(model, x, y)
    xa, x0 = to_host(r.x_adv), to_host(x)
    step = np.abs(xa - x0)
    at_bound = ((xa == 0) | (xa == 1)) & (step < 0.25)
    assert (np.isclose(step, 0.25) | at_bound).all()
    moved = step > 0  # all but pixels already at the bound the gradient pushes towards
    assert (np.sign(xa - x0)[moved] == np.sign(g)[moved]).all()
    assert xa.min() >= 0 and xa.max() <= 1
    np.testing.assert_array_equal(to_host(r.success), to_host(model.predict(r.x_adv)) != to_host(y))


def test_adversarial_training_gradient(xp):
    """Eq. 4's parameter gradient against finite differences, with the FGSM example held fixed."""
    model, x, y = _small_problem(xp, "sigmoid", side=3, n=4, seed=1)
    x_adv = FGSM(eps=0.25)(model, x, y).x_adv
    loss, grads, logits = adversarial_loss_and_grads(model, x, x_adv, y, alpha=0.3)
    C = lambda xx: model.loss_and_input_gradient(xx, y)[0]  # noqa: E731
    np.testing.assert_allclose(float(loss),
                               float(0.3 * C(x).mean() + 0.7 * C(x_adv).mean()), rtol=1e-12)
    assert logits.shape == (4, 10)
    for i, p in enumerate(model.params):
        for k, v in p.items():
            num = numerical_gradient(lambda _: adversarial_loss_and_grads(model, x,
                                                                          x_adv, y, 0.3)[0], v)
            assert rel_error(grads[i][k], num) < 1e-7
