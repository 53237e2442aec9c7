"""Auto-PGD in the L-inf ball (Croce & Hein 2020, "Reliable evaluation of adversarial robustness
with an ensemble of diverse parameter-free attacks", ICML, Algorithm 1): sign-gradient ascent with
momentum whose step size halves, and restarts from the best point, at checkpoints where the loss
stalls.

With P the projection onto B(x, eps) and [0, 1] (``attacks.ball.project``), f an attack loss
(``attacks.losses``: "ce"; "dlr", the paper's scale-invariant one; or "dlr-targeted", APGD-T's, run
once toward each of the ``targets`` classes that the clean logits rank highest after the true one)
and a step size eta per example, starting at 2 eps:

    x^(1)   = P(x^(0) + eta sign(grad f(x^(0))))
    z^(k+1) = P(x^(k) + eta sign(grad f(x^(k))))
    x^(k+1) = P(x^(k) + a (z^(k+1) - x^(k)) + (1 - a) (x^(k) - x^(k-1)))     a = ``momentum`` = 0.75

Each example keeps its best loss f_max and the point x_max where it was reached. At each checkpoint
w_j (``checkpoints``) the examples for which ``halve`` holds halve their eta, and their next step
starts from x_max (with the gradient there): condition 1, the loss rose in fewer than rho (w_j -
w_{j-1}) of the steps since the last checkpoint; condition 2, eta was not halved at w_{j-1} and
f_max has not risen since.

Where the paper leaves a choice, we take:

* the check at w_j once x^(w_j) is evaluated, so that condition 1 counts exactly the w_j - w_{j-1}
  steps x^(w_{j-1}) -> ... -> x^(w_j) it names (the authors' code does the same; Algorithm 1's loop
  checks one step later), and counts the losses of the iterates as computed: a point replaced by
  x_max keeps its own loss in the next comparison (as the authors' code);
* condition 2 from the first checkpoint on, with f_max^(w_0) = f(x^(0)) (the paper; the authors'
  code skips it at w_1);
* the checkpoints in exact arithmetic (``checkpoints``), and the schedule itself rather than the
  authors' integer approximation of it (the two agree for 100 iterations);
* the same starts as ``attacks.pgd.PGD`` (``attacks.pgd.starting_point``: uniform in the ball,
  seeded by (seed, restart), restarts counted on across APGD-T's targets; restart 0 from x itself
  when ``random_start`` is False), and a budget of ``steps`` + 1 gradient evaluations per
  restart, PGD's;
* the returned point, per example, the worst case among all iterates of all restarts
  (``attacks.pgd.merge_worst``): a misclassified iterate beats any that is not, else the highest
  loss; the search itself follows f_max alone, as the paper's. No early exit. An example the model
  already misclassifies is returned as it is (``attacks.result.AttackResult.of_search``).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from nn.backend import array_module
from nn.numerics import check_numerics
from nn.validate import InputError, check_batch, check_count, check_eps, check_number

from .ball import project
from .losses import LOSSES, Targeted, loss_and_input_gradient, loss_function
from .pgd import merge_worst, starting_point
from .result import AttackResult


def checkpoints(steps):
    """The checkpoints W = {w_0 < w_1 < ...} for N_iter = ``steps``: w_j = ceil(p_j N_iter) over the
    p_j <= 1, with p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06)
    (section 3.2).

    Computed in hundredths, which is exact: in floating point 0.22 + 0.19 + 0.16 is
    0.5700000000000001, and ceil(100 p_3) would be 58, not 57. Equal w_j (N_iter < 17) are listed
    once. -> sorted list of ints, w_0 = 0 first; [0, 22, 41, 57, 70, 80, 87, 93, 99] for 100.
    """
    w, p_prev, p = {0}, 0, 22  # p_j in hundredths
    while p <= 100:
        w.add(-(-p * steps // 100))  # ceil(p steps / 100) in integers
        p_prev, p = p, p + max(p - p_prev - 3, 6)
    return sorted(w)


def halve(rises, length, rho, halved_before, best_now, best_then):
    """Per example, whether eta halves at checkpoint w_j (section 3.2):

    condition 1: sum_{k = w_{j-1}}^{w_j - 1} [f(x^(k+1)) > f(x^(k))] < rho (w_j - w_{j-1}),
    condition 2: eta^(w_{j-1}) == eta^(w_j) (not halved at w_{j-1}) and
    f_max^(w_{j-1}) == f_max^(w_j).

    rises: (N,) the count of condition 1, length: w_j - w_{j-1}, halved_before: (N,) bool, the
    decision at w_{j-1}, best_now / best_then: (N,) f_max at w_j / w_{j-1}  ->  (N,) bool.
    """
    return (rises < rho * length) | (~halved_before & (best_now <= best_then))


@dataclasses.dataclass(frozen=True)
class APGD:
    """L-inf Auto-PGD: ``steps`` iterations (N_iter) of Algorithm 1 (module docstring) from each of
    ``restarts`` uniform random starts, the first (restart 0) from x itself when ``random_start`` is
    False (``attacks.pgd.starting_point``).

    loss: "ce", "dlr" (or "margin"), or "dlr-targeted": APGD-T, ``restarts`` runs toward each of the
    ``targets`` classes of ``target_classes`` (AutoAttack's 9 by default), still an untargeted
    attack (success: any misclassification). numerics: "paper", "float32" or "stable", the
    arithmetic of the gradient (``attacks.losses``); momentum: the paper's alpha; rho: condition 1's
    threshold.
    >>> result = APGD(eps=0.1, steps=100, loss="dlr")(model, x, y)
    """
    eps: float = 0.25
    steps: int = 100
    restarts: int = 1
    loss: str = "ce"
    numerics: str = "float32"
    momentum: float = 0.75
    rho: float = 0.75
    random_start: bool = True
    seed: int = 0
    targets: int = 9

    def __post_init__(self):
        check_eps(self.eps)
        check_count("steps", self.steps)
        check_count("restarts", self.restarts)
        check_number("momentum", self.momentum, maximum=1)
        check_number("rho", self.rho, maximum=1)
        check_count("targets", self.targets)
        if self.loss not in (*LOSSES, "dlr-targeted"):
            raise InputError(f"loss must be one of {[*LOSSES, 'dlr-targeted']}, got {self.loss!r}")
        check_numerics(self.numerics)

    def __call__(self, model, x, y):
        """x: (N, ...) images in [0, 1], y: (N,) labels, on the model's device -> AttackResult
        (success: the model misclassifies x_adv; a clean error is returned as it is)."""
        check_batch(model, x, y)
        xp = array_module(x)
        # x, before any restart
        best = (x, xp.zeros(len(x), dtype=bool), xp.full(len(x), -xp.inf, dtype=x.dtype))
        if self.eps > 0:
            targets = self.target_classes(model, x, y) if self.loss == "dlr-targeted" else [None]
            for i, t in enumerate(targets):
                for r in range(self.restarts):
                    best = merge_worst(best, self.run(model, x, y,
                                                      restart=i * self.restarts + r, target=t)[0])
        return AttackResult.of_search(model, x, best[0], y)

    def target_classes(self, model, x, y):
        """APGD-T's targets: per example, the classes other than y ranked 1st to ``targets``-th by
        the clean logits (AutoAttack's ranks 2 to targets + 1 where the clean image is classified
        right). -> list of ``targets`` (N,) arrays; an InputError if the model has too few
        classes."""
        z = model.logits(x)
        xp = array_module(z)
        if self.targets > z.shape[1] - 1:
            raise InputError(f"targets must be at most {z.shape[1] - 1} (the classes but y), "
                             f"got {self.targets}")
        # (N, K), y last
        order = xp.argsort(-xp.where(xp.arange(z.shape[1]) == y[:, None], -xp.inf, z), axis=1)
        return [order[:, i] for i in range(self.targets)]

    def run(self, model, x, y, restart=0, target=None):
        """One restart of Algorithm 1, every example at once; with "dlr-targeted", toward target
        (N,) (default: ``target_classes``' first).

        -> ((x_adv, fooled, loss), curves): every example's worst iterate (module docstring), and a
        dict of (steps + 1, N) arrays over the iterates k = 0..steps: "loss" f(x^(k)), "best" f_max
        after x^(k), "eta" the step size of the step from x^(k) (the last row: eta at the end).
        """
        xp = array_module(x)
        if self.loss == "dlr-targeted":
            loss_fn = Targeted(self.target_classes(model, x, y)[0] if target is None else target)
        else:
            loss_fn = loss_function(self.loss)
        shape = (-1,) + (1,) * (x.ndim - 1)  # broadcasts a per-example (N,) over an image

        def evaluate(x_k):
            L, g, logits = loss_and_input_gradient(model, x_k, y, loss_fn,
                                                   numerics=self.numerics, check=False)
            return L, g, logits.argmax(axis=1) != y

        x_k = starting_point(x, self.eps, self.seed, restart, self.random_start)
        L, g, fooled = evaluate(x_k)
        out = (x_k, fooled, L)
        x_max, f_max, g_max = x_k, L, g
        x_prev, eta = x_k, xp.full(len(x), 2.0 * self.eps)  # eta: (N,) float64
        # a check at N_iter changes nothing
        W = [w for w in checkpoints(self.steps) if 0 < w < self.steps]
        w_prev, f_then, halved, rises = (0, f_max, xp.zeros(len(x), dtype=bool),
                                         xp.zeros(len(x), dtype=np.int64))
        curves = {"loss": [L], "best": [f_max], "eta": []}
        for k in range(self.steps):
            a = 1.0 if k == 0 else self.momentum  # x^(1) has no previous step
            x64 = x_k.astype(np.float64)
            z = project(x64 + eta.reshape(shape) * xp.sign(g), x, self.eps)
            x_next = project(x64 + a * (z - x64) + (1 - a) * (x64 - x_prev.astype(np.float64)),
                             x, self.eps)
            curves["eta"].append(eta)
            x_prev, x_k = x_k, x_next
            L_next, g, fooled = evaluate(x_k)
            rises = rises + (L_next > L)
            L = L_next
            better = L > f_max
            x_max = xp.where(better.reshape(shape), x_k, x_max)
            g_max = xp.where(better.reshape(shape), g, g_max)
            f_max = xp.where(better, L, f_max)
            out = merge_worst(out, (x_k, fooled, L))
            if k + 1 in W:
                h = halve(rises, k + 1 - w_prev, self.rho, halved, f_max, f_then)
                eta = xp.where(h, eta / 2, eta)
                x_k = xp.where(h.reshape(shape), x_max, x_k)
                g = xp.where(h.reshape(shape), g_max, g)
                w_prev, f_then, halved, rises = k + 1, f_max, h, xp.zeros_like(rises)
            curves["loss"].append(L)
            curves["best"].append(f_max)
        curves["eta"].append(eta)
        return out, {name: xp.stack(rows) for name, rows in curves.items()}
