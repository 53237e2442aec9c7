"""Every attack returns one result type whose success mask is the model's own verdict on the
returned inputs, in every numerics mode; every output lies in the closed ball the verifiers certify,
in float32; and every public entry takes an empty batch by one rule (``nn.validate``)."""
import numpy as np
import pytest

from analysis.masking import audit, saturation

from analysis.proofs import crown, ibp, milp

from analysis import rdm
from attacks import FGSM, AttackResult, TargetedResult
from attacks.adversarial_training import adversarial_loss_and_grads
from attacks.ball import box, project
from attacks.losses import loss_and_input_gradient, scaled_input_gradient
from attacks.apgd import APGD
from attacks.noise import UniformNoise
from attacks.pgd import PGD
from attacks.square import Square
from attacks.targeted import TargetedAdam, TargetedLBFGS, confidence
from nn.architectures import build_spec
from nn.model import Sequential
from nn.train import accuracy
from nn.validate import InputError
from tests.nets import random_images, tiny_models

# The numerics modes of the gradients, as the attacks spell them (float64: the model cast, below).
MODES = {"paper": {"numerics": "paper"}, "float32": {}, "stable": {"numerics": "stable"}}
TARGETED_MODES = {"paper": {"numerics": "paper"}, "float32": {}}


def _untargeted(eps, kw):
    return {"fgsm": FGSM(eps, **kw), "fgsm-margin": FGSM(eps, loss="margin", **kw),
            "fgsm-noclip": FGSM(eps, clip=False, **kw),
            "pgd": PGD(eps, steps=4, restarts=2, **kw),
            "pgd-margin": PGD(eps, steps=4, restarts=1, loss="margin", **kw),
            "square": Square(eps, n_queries=15), "noise": UniformNoise(eps, draws=3)}


@pytest.mark.parametrize("mode", [*MODES, "float64"])
@pytest.mark.parametrize("arch", ["relu_mlp", "sigmoid_mlp", "cnn"])
def test_success_is_the_models_verdict_on_the_returned_inputs(arch, mode):
    """For every attack and numerics mode: success[n] == (the model misclassifies x_adv[n]);
    targeted: == (the model classifies x_adv[n] as the target); and the norms are those of
    x_adv - x."""
    model, (x, y) = tiny_models()[arch], random_images()
    kw = MODES.get(mode, {"numerics": "stable"})
    if mode == "float64":
        model, x = model.astype(np.float64), x.astype(np.float64)
    assert 0 < (model.predict(x) != y).sum() < len(y)  # clean errors and correct examples both
    for name, attack in _untargeted(0.2, kw).items():
        r = attack(model, x, y)
        assert type(r) is AttackResult, name
        assert (r.x_adv.shape == x.shape and r.x_adv.dtype == x.dtype
                and r.success.dtype == bool), name
        np.testing.assert_array_equal(r.success, model.predict(r.x_adv) != y, err_msg=name)
        d = (r.x_adv.astype(np.float64) - x.astype(np.float64)).reshape(len(x), -1)
        np.testing.assert_array_equal(r.linf, np.abs(d).max(axis=1), err_msg=name)
        np.testing.assert_allclose(r.l2, np.sqrt((d * d).sum(axis=1)), rtol=1e-12, err_msg=name)
        assert r.robust_accuracy == int((~r.success).sum()) / len(x)  # a count over N
    if mode in TARGETED_MODES:
        target = (y + 1) % 10
        for attack in (TargetedAdam(max_iter=8, lr=0.05, **kw), TargetedLBFGS(max_iter=2, **kw)):
            r = attack(model, x[:6], target[:6])
            assert type(r) is TargetedResult and r.robust_accuracy is None
            np.testing.assert_array_equal(r.success, model.predict(r.x_adv) == target[:6])


def test_square_reports_no_clean_error_it_did_not_keep(mnist_test):
    """A clean error reported as fooled: test image 35 (label 2) is a clean error of this untrained
    net (it predicts 5), and Square's one stripe start is classified 2 again. Success must be the
    verdict on what is returned: the image itself, still misclassified."""
    model = Sequential.init(build_spec("relu_mlp", hidden=50), seed=0)
    x, y = mnist_test[0][35:36], mnist_test[1][35:36]
    assert y[0] == 2 and model.predict(x)[0] == 5
    r = Square(eps=0.1, n_queries=1)(model, x, y)
    assert r.success.tolist() == [True]
    assert model.predict(r.x_adv).tolist() == [5]
    np.testing.assert_array_equal(r.x_adv, x)


def test_attacks_that_search_return_clean_errors_as_they_are(mnist_test):
    """PGD's docstring said an example the model already misclassifies "is returned as it is,
    fooled", yet with its default random start none came back unchanged: the merge started from loss
    -inf and took the first random start (the kind of foolbox issue 713). One rule for every attack
    that searches the ball (``AttackResult.of_search``): x_adv = x, fooled, no perturbation. FGSM is
    the paper's one step from every example, and says so."""
    model = Sequential.init(build_spec("relu_mlp", hidden=50), seed=0)
    x, y = mnist_test[0][:30], mnist_test[1][:30]
    err = model.predict(x) != y
    assert 0 < err.sum() < len(y)
    for attack in (PGD(eps=0.1, steps=5, restarts=1),
                   PGD(eps=0.1, steps=5, restarts=2, random_start=False),
                   APGD(eps=0.1, steps=5), APGD(eps=0.1, steps=5, loss="dlr-targeted", targets=2),
                   Square(eps=0.1, n_queries=5), UniformNoise(eps=0.1, draws=2)):
        r = attack(model, x, y)
        np.testing.assert_array_equal(r.x_adv[err], x[err], err_msg=str(attack))
        assert r.success[err].all() and (r.linf[err] == 0).all(), attack
    r = FGSM(eps=0.1)(model, x, y)
    assert (r.linf[err] > 0).all()
    np.testing.assert_array_equal(r.success, model.predict(r.x_adv) != y)


def test_no_attack_presents_nan_as_an_adversarial_image():
    """With logits beyond float32's range the gradient is NaN, sign(NaN) passed through the
    projection, and FGSM, PGD and APGD returned images of NaN pixels, some flagged as fooled (the
    kind of ART issue 824, fixed there in PR 883). Every attack raises one InputError naming the
    non-finite logits (``attacks.result.verdict``); a model whose logits are finite is attacked as
    before."""
    model = Sequential.init(build_spec("relu_mlp", depth=0), seed=0)  # flatten, dense(10)
    huge = Sequential(model.spec, [{k: v * np.float32(3e38) for k, v in p.items()}
                                   for p in model.params])
    x, y = np.full((1, 1, 28, 28), 0.5, np.float32), np.array([3])
    with np.errstate(all="ignore"):  # the overflow itself
        assert not np.isfinite(huge.logits(x)).all()
        for attack in (FGSM(eps=0.1), FGSM(eps=0.1, numerics="stable"),
                       PGD(eps=0.1, steps=3, restarts=1),
                       APGD(eps=0.1, steps=3), Square(eps=0.1, n_queries=3),
                       UniformNoise(eps=0.1, draws=2),
                       TargetedAdam(max_iter=3), TargetedLBFGS(max_iter=2)):
            with pytest.raises(InputError, match=r"logits are not finite .* of the 1 images"):
                attack(huge, x, y)
            r = attack(model, x, y)
            assert np.isfinite(r.x_adv).all() and r.x_adv.min() >= 0 and r.x_adv.max() <= 1, attack


def test_every_attack_stays_in_the_float32_ball_the_verifiers_certify(mnist_test):
    """Overshoot in float32: at eps = 0.3 on 200 test images the float32 step x + eps sign(g) lands
    one ulp outside the ball on tens of thousands of pixels; every attack's output must satisfy
    |x_adv - x| <= eps in float64 from the stored values, lie in [0, 1], and inside the verifiers'
    box."""
    model = Sequential.init(build_spec("relu_mlp", hidden=50), seed=0)
    x, y = mnist_test[0][:200], mnist_test[1][:200]
    eps = 0.3
    lo, hi = box(x, eps)
    raw = FGSM(eps).step(x, model.input_gradient(x, y))
    # the test bites: the raw step overshoots
    assert (np.abs(raw.astype(np.float64) - x) > eps).sum() > 10000
    for attack in (FGSM(eps), FGSM(eps, numerics="paper"), PGD(eps, steps=5, restarts=1),
                   Square(eps, n_queries=30), UniformNoise(eps, draws=2)):
        x_adv = attack(model, x, y).x_adv
        assert x_adv.dtype == np.float32
        assert (np.abs(x_adv.astype(np.float64) - x) <= eps).all(), attack
        assert x_adv.min() >= 0 and x_adv.max() <= 1, attack
        assert ((x_adv >= lo) & (x_adv <= hi)).all(), attack
    # FGSM's projection moves a pixel towards x by less than float32's step at 1/2 (2^-24 = 6e-8):
    # the overshoot is float32(0.3) - 0.3 = 1.2e-8 plus the sum's rounding
    x_adv = FGSM(eps)(model, x, y).x_adv
    moved = x_adv != raw
    assert (np.abs(x_adv.astype(np.float64) - raw)[moved] <= 2.0 ** -24).all()
    assert (np.abs(x_adv.astype(np.float64) - x)[moved]
            < np.abs(raw.astype(np.float64) - x)[moved]).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_project_is_the_nearest_point_of_the_closed_ball(dtype):
    rng = np.random.default_rng(0)
    x = rng.choice([0.0, 1.0, 0.3, 0.7], size=(50, 30)) + rng.uniform(-1e-3, 1e-3, (50, 30))
    x = np.clip(x, 0, 1).astype(dtype)
    for eps in (0.0, 1e-9, 0.1, 0.25, 0.3, 1 / 3, 2.0):
        v = (x + rng.uniform(-1, 1, x.shape) * rng.choice([0.5 * eps, eps, 2 * eps + 1e-3],
                                                          x.shape)).astype(dtype)
        p = project(v, x, eps)
        assert p.dtype == x.dtype
        assert (np.abs(p.astype(np.float64) - x.astype(np.float64))
                <= eps).all() and p.min() >= 0 and p.max() <= 1
        lo, hi = box(x, eps)
        assert ((p >= lo) & (p <= hi)).all()
        np.testing.assert_array_equal(project(p, x, eps), p)  # a point of the ball stays put
        inside = (np.abs(v.astype(np.float64) - x) <= eps) & (v >= 0) & (v <= 1)
        np.testing.assert_array_equal(p[inside], v[inside])
        # outside, the clipped value up to the dtype's rounding of x +- eps (one step at 1 at most)
        target = np.clip(np.clip(v.astype(np.float64), x - eps, x + eps), 0, 1)
        assert (np.abs(p - target) <= np.spacing(dtype(1))).all()
        free = project(v, x, eps, clip=False)
        assert (np.abs(free.astype(np.float64) - x.astype(np.float64)) <= eps).all()


# ---------------------------------------------------------------------------------------------
# Empty batches: one rule at every public entry (nn/validate.py's docstring)


def _empty(model):
    return np.zeros((0,) + tuple(model.spec["input_shape"]), model.dtype), np.zeros(0, np.int64)


@pytest.mark.parametrize("arch", ["relu_mlp", "sigmoid_mlp", "cnn"])
def test_empty_batch_gives_empty_results(arch):
    model = Sequential.init(build_spec(arch,
                                       **({"channels": (2, 3)} if arch == "cnn" else {}), hidden=8))
    x, y = _empty(model)
    shape = x.shape
    # the exact call, then every attack
    for attack in (FGSM(0.1), FGSM(0.1, numerics="stable"), PGD(0.1, steps=2, restarts=2),
                   Square(0.1, n_queries=3),
                   UniformNoise(0.1, draws=2), TargetedAdam(max_iter=3), TargetedLBFGS(max_iter=2)):
        r = attack(model, x, y)
        assert r.x_adv.shape == shape and r.x_adv.dtype == np.float32, attack
        assert r.success.shape == (0,) and r.success.dtype == bool, attack
        assert r.linf.shape == r.l2.shape == (0,
                                              ) and r.linf.dtype == r.l2.dtype == np.float64, attack
    with pytest.raises(InputError, match="empty batch"):
        FGSM(0.1)(model, x, y).robust_accuracy
    # the model's methods
    assert model.logits(x).shape == (0, 10) and model.logits(x).dtype == np.float32
    assert model.predict(x).shape == (0,) and model.predict(x).dtype.kind == "i"
    assert [h.shape[0] for h in model.preactivations(x)] == [0] * len(model.preactivations(x))
    assert model.input_gradient(x, y).shape == shape
    C, dx = model.loss_and_input_gradient(x, y)
    assert C.shape == (0,) and dx.shape == shape
    assert model.vjp(x, np.zeros((0, 10), np.float32)).shape == shape
    assert model.jacobian(x).shape == (0, 10, int(np.prod(shape[1:])))
    for kw in MODES.values():
        L, g, z = loss_and_input_gradient(model, x, y, **kw)
        assert L.shape == (0,) and g.shape == shape and z.shape == (0, 10)
    L, d, s, z = scaled_input_gradient(model, x, y)
    assert d.shape == shape and s.shape == (0,)
    assert confidence(model, x, y).shape == (0,)
    # verifiers and analyses
    b = ibp.interval_bounds(model, x, y, 0.1)
    assert b.diff_lower.shape == (0, 10) and b.verified.shape == (0,) and b.verified.dtype == bool
    assert audit.zero_gradient(model, x, y).shape == (0,)
    if arch != "cnn":
        c = crown.linear_bounds(model, x, y, 0.1)
        assert c.diff_lower.shape == (0, 10) and c.verified.shape == (0,)
        assert saturation.log_path_bound(model, x, y).shape == (0,)
        assert saturation.margin_predicts_zero(model, x, y).shape == (0,)
    assert rdm.rdm(np.zeros((0, 8), np.float32)).shape == (0, 0)


def test_empty_batch_is_refused_where_a_mean_over_examples_is_asked_for():
    model = Sequential.init(build_spec("relu_mlp", hidden=8))
    x, y = _empty(model)
    calls = {
        "x is an empty batch": [lambda: model.loss_and_grads(x, y),
                                lambda: adversarial_loss_and_grads(model, x, x, y),
                                lambda: ibp.verified_fraction(model, x, y, 0.1),
                                lambda: crown.verified_fraction(model, x, y, 0.1),
                                lambda: accuracy(model, x, y)],
        "x has 0 examples": [lambda: milp.verify_example(model, x, y, 0.1)],
        "fooled is empty": [lambda: audit.accuracy(np.zeros(0, bool)),
                            lambda: audit.accuracy_curve(model, x, y, [0.1],
                                                         lambda e: PGD(e, steps=1, restarts=1))],
        "D is empty": [lambda: rdm.between_within_ratio(np.zeros((0, 0)), np.zeros(0))],
    }
    for message, fns in calls.items():
        for fn in fns:
            with pytest.raises(InputError, match=message):
                fn()


def test_robust_accuracy_is_a_count_over_n():
    """40 robust examples of 1,000 print as 0.04, not 1 - 0.96 = 0.040000000000000036."""
    success = np.ones(1000, bool)
    success[:40] = False
    r = AttackResult(np.zeros((1000, 1)), success, np.zeros(1000), np.zeros(1000))
    assert repr(r.robust_accuracy) == "0.04"
