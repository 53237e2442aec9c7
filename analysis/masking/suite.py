"""The gradient-masking audit's attacks, run in batches: the attack suite, the eps sweep's attack
(also the upper bound of ``experiments.beyond.verify``'s bracket), and the robust-accuracy mask
(``analysis.masking.audit`` does the bookkeeping on what they return)."""
from __future__ import annotations

from attacks import FGSM, AttackResult
from attacks.apgd import APGD
from attacks.noise import UniformNoise
from attacks.pgd import PGD
from attacks.square import Square
from nn.backend import array_module

# the accuracy-against-eps curve's eps
EPS_SWEEP = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0)


def in_batches(fn, x, y, batch):
    """Apply ``fn(x_slice, y_slice) -> tuple of (n, ...) arrays`` to slices of ``batch`` examples
    and concatenate each output where fn left it (host or device): bounded memory (a CNN's im2col
    grows with the batch) on CPU and GPU."""
    parts = [fn(x[i:i + batch], y[i:i + batch]) for i in range(0, len(x), batch)]
    return tuple(array_module(p[0]).concatenate(p) for p in zip(*parts))


def attack_in_batches(attack, model, x, y, batch):
    """``attack(model, x, y) -> AttackResult`` run on slices of ``batch`` examples, one
    AttackResult."""
    return AttackResult(*in_batches(lambda xb, yb: _fields(attack(model, xb, yb)), x, y, batch))


def _fields(result):
    return result.x_adv, result.success, result.linf, result.l2


def fooled_by(attack, model, x, y, batch):
    """(N,) bool, the audit's robust-accuracy mask: the attack's success (the model misclassifies
    x_adv), or a clean error. Attacks that search the ball from x (PGD, APGD, Square, noise) report
    a clean error as a success by themselves; FGSM's single step can correct one, which the audit
    still counts as not robust. Run in batches; only the mask is kept."""
    return in_batches(lambda xb, yb: (attack(model, xb, yb).success | (model.predict(xb) != yb),),
                      x, y, batch)[0]


def attack_suite(eps, pgd_steps, restarts, square_queries, seed):
    """The audit's white-box and black-box attacks at ``eps``, by name ("<family>-<loss>-<numerics>"
    for gradient attacks; numerics "paper" is float32 with TensorFlow's flush-to-zero, as the paper
    computed it). Sources: FGSM (Goodfellow et al. 2015), PGD (Madry et al. 2018), APGD with the
    cross-entropy and the DLR loss, and APGD-T, the targeted DLR toward each of the 9 classes the
    clean logits rank next, one start each (Croce & Hein 2020, Algorithm 1; AutoAttack's APGD-T),
    Square (Andriushchenko et al. 2020), uniform noise. APGD runs ``pgd_steps`` iterations from
    ``restarts`` starts, PGD's budget. -> {name: attack}."""
    e, s = eps, seed
    pgd = dict(eps=e, steps=pgd_steps, restarts=restarts, seed=s)
    return {
        "fgsm-ce-paper": FGSM(e, numerics="paper"),
        "fgsm-ce-stable": FGSM(e, numerics="stable"),
        "fgsm-margin-stable": FGSM(e, loss="margin", numerics="stable"),
        "pgd-ce-paper": PGD(**pgd, numerics="paper"),
        "pgd-ce-stable": PGD(**pgd, numerics="stable"),
        "pgd-margin-stable": PGD(**pgd, loss="margin", numerics="stable"),
        **apgd_attacks(e, pgd_steps, restarts, s),
        "apgd-dlr-targeted-stable": APGD(eps=e, steps=pgd_steps, restarts=1, seed=s,
                                         loss="dlr-targeted", numerics="stable", targets=9),
        "square": Square(eps=e, n_queries=square_queries, seed=s),
        "noise": UniformNoise(eps=e, draws=10, seed=s),
    }


def apgd_attacks(eps, steps, restarts, seed):
    """APGD (Croce & Hein 2020, Algorithm 1) with the cross-entropy in the paper's numerics (what
    the paper's own gradient finds) and with the DLR loss in the stable numerics (what the true
    gradient's direction finds, whatever the scale of the logits), ``steps`` iterations from
    ``restarts`` random starts each: in the suite with PGD's restarts, and with one start the eps
    sweep's attack (``eps_sweep_attack``). -> {name: attack}, named as in ``attack_suite``."""
    kw = dict(eps=eps, steps=steps, restarts=restarts, seed=seed)
    return {"apgd-ce-paper": APGD(**kw, numerics="paper"),
            "apgd-dlr-stable": APGD(**kw, loss="dlr", numerics="stable")}


def worst_of(results):
    """Per example the worst case for the model among AttackResults of the same N examples: the
    first result whose x_adv fools the model, else the last one's. success is then the OR of the
    results' successes: never weaker, per example, than any one of them. -> AttackResult."""
    x_adv, success, linf, l2 = _fields(results[-1])
    xp = array_module(success)
    for r in reversed(results[:-1]):  # the earlier result wins where it fools the model
        pick = r.success
        x_adv = xp.where(pick.reshape((-1,) + (1,) * (x_adv.ndim - 1)), r.x_adv, x_adv)
        success, linf, l2 = pick | success, xp.where(pick, r.linf, linf), xp.where(pick, r.l2, l2)
    return AttackResult(x_adv, success, linf, l2)


def eps_sweep_attack(steps, seed, batch):
    """The attack of the accuracy-against-eps curve and of the verification bracket's upper bound:
    per example the worst (``worst_of``) of ``apgd_attacks``, ``steps`` iterations and one random
    start each, run ``batch`` images at a time. -> make(eps) -> attack(model, x, y) ->
    AttackResult."""
    def make(eps):
        attacks = list(apgd_attacks(eps, steps, 1, seed).values())

        def attack(model, x, y):
            return worst_of([attack_in_batches(a, model, x, y, batch) for a in attacks])
        return attack
    return make
