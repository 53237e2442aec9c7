"""The gradient-masking audit's attacks, run in batches: the attack suite, the eps sweep's attack,
and the robust-accuracy mask (``analysis.masking.audit`` does the bookkeeping on what they return)."""
from __future__ import annotations

from attacks import FGSM, AttackResult
from attacks.noise import UniformNoise
from attacks.pgd import PGD
from attacks.square import Square
from nn.backend import array_module

EPS_SWEEP = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0)  # the accuracy-against-eps curve's eps


def in_batches(fn, x, y, batch):
    """Apply ``fn(x_slice, y_slice) -> tuple of (n, ...) arrays`` to slices of ``batch`` examples and
    concatenate each output where fn left it (host or device): bounded memory (a CNN's im2col grows
    with the batch) on CPU and GPU."""
    parts = [fn(x[i:i + batch], y[i:i + batch]) for i in range(0, len(x), batch)]
    return tuple(array_module(p[0]).concatenate(p) for p in zip(*parts))


def attack_in_batches(attack, model, x, y, batch):
    """``attack(model, x, y) -> AttackResult`` run on slices of ``batch`` examples, one AttackResult."""
    return AttackResult(*in_batches(lambda xb, yb: _fields(attack(model, xb, yb)), x, y, batch))


def _fields(result):
    return result.x_adv, result.success, result.linf, result.l2


def fooled_by(attack, model, x, y, batch):
    """(N,) bool, the audit's robust-accuracy mask: the attack's success (the model misclassifies
    x_adv), or a clean error. Attacks that search the ball from x (PGD, Square, noise) report a clean
    error as a success by themselves; FGSM's single step can correct one, which the audit still counts
    as not robust. Run in batches; only the mask is kept."""
    return in_batches(lambda xb, yb: (attack(model, xb, yb).success | (model.predict(xb) != yb),), x, y, batch)[0]


def attack_suite(eps, pgd_steps, restarts, square_queries, seed):
    """The audit's white-box and black-box attacks at ``eps``, by name ("<family>-<loss>-<numerics>"
    for gradient attacks; numerics "paper" is float32 with TensorFlow's flush-to-zero, as the paper
    computed it). Sources: FGSM (Goodfellow et al. 2015), PGD (Madry et al. 2018), Square (Andriushchenko
    et al. 2020), uniform noise. -> {name: attack}."""
    e, s = eps, seed
    pgd = dict(eps=e, steps=pgd_steps, restarts=restarts, seed=s)
    return {
        "fgsm-ce-paper": FGSM(e, numerics="paper"),
        "fgsm-ce-stable": FGSM(e, numerics="stable"),
        "fgsm-margin-stable": FGSM(e, loss="margin", numerics="stable"),
        "pgd-ce-paper": PGD(**pgd, numerics="paper"),
        "pgd-ce-stable": PGD(**pgd, numerics="stable"),
        "pgd-margin-stable": PGD(**pgd, loss="margin", numerics="stable"),
        "square": Square(eps=e, n_queries=square_queries, seed=s),
        "noise": UniformNoise(eps=e, draws=10, seed=s),
    }


def eps_sweep_attack(steps, seed, batch):
    """The attack of the accuracy-against-eps curve: per example the worse of PGD (cross-entropy,
    numerics paper) and PGD (margin, numerics stable), ``steps`` steps and one random start each, run
    ``batch`` images at a time. -> make(eps) -> attack(model, x, y) -> AttackResult."""
    def make(eps):
        a = PGD(eps=eps, steps=steps, restarts=1, seed=seed, numerics="paper")
        b = PGD(eps=eps, steps=steps, restarts=1, seed=seed, loss="margin", numerics="stable")

        def attack(model, x, y):  # per example, a's point where it fools the model, else b's
            ra, rb = attack_in_batches(a, model, x, y, batch), attack_in_batches(b, model, x, y, batch)
            xp, pick = array_module(x), ra.success
            return AttackResult(xp.where(pick.reshape((-1,) + (1,) * (x.ndim - 1)), ra.x_adv, rb.x_adv),
                                pick | rb.success, xp.where(pick, ra.linf, rb.linf), xp.where(pick, ra.l2, rb.l2))
        return attack
    return make
