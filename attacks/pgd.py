"""Projected gradient descent in the L-inf ball (Madry et al. 2018), with random starts and
restarts.

x_{k+1} = Proj_{B(x, eps) and [0, 1]}(x_k + alpha * sign(dL/dx (x_k))), maximising an attack loss L
(cross-entropy or logit margin, ``attacks.losses``) in a chosen numeric mode. Each restart starts at
a uniform random point of the ball (``starting_point``); across steps and restarts every example
keeps its worst case: the first iterate that is misclassified, else the iterate with the highest
loss.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from nn.backend import array_module, to_device
from nn.numerics import check_numerics
from nn.validate import check_batch, check_count, check_eps, check_number

from .ball import project
from .losses import loss_and_input_gradient, loss_function
from .result import AttackResult


def starting_point(x, eps, seed, restart, random_start=True):
    """Where restart number ``restart`` of PGD or APGD starts, the one rule of both: a uniform
    random point of the ball, x + U(-eps, eps)^D projected onto B(x, eps) and [0, 1]
    (``attacks.ball.project``), drawn from the generator seeded by (seed, restart). With
    ``random_start`` False, restart 0 starts at x itself and every other restart still at its random
    point: both attacks are deterministic from their start, so two restarts from x would be one run
    done twice.
    x: (N, ...) -> (N, ...) like x, a new array."""
    if not random_start and restart == 0:
        return x.copy()
    xp = array_module(x)
    rng = np.random.default_rng([seed, restart])
    return project(x + to_device(rng.uniform(-eps, eps, x.shape), xp, x.dtype), x, eps)


def merge_worst(best, new):
    """Per example, keep the worse case for the model of two attack outcomes.

    Each outcome is (x_adv (N, ...), fooled (N,) bool, loss (N,)); a fooled example beats an
    unfooled one, and between two of the same kind the higher loss wins (the earlier one on ties).
    -> the merged outcome.
    """
    xp = array_module(best[0])
    bx, bf, bl = best
    nx, nf, nl = new
    take = (nf & ~bf) | ((nf == bf) & (nl > bl))  # (N,)
    shape = (-1,) + (1,) * (bx.ndim - 1)
    return xp.where(take.reshape(shape), nx, bx), bf | nf, xp.where(take, nl, bl)


@dataclasses.dataclass(frozen=True)
class PGD:
    """L-inf PGD: ``steps`` sign-gradient steps of size ``alpha`` (default 2.5 eps / steps), from
    ``restarts`` uniform random starts, the first from x itself when ``random_start`` is False
    (``starting_point``).

    loss: "ce" or "margin"; numerics: "paper", "float32" or "stable", the arithmetic of the gradient
    (``attacks.losses``). An iterate the model misclassifies ends its example's run (the iterate is
    kept); an example the model already misclassifies is returned as it is
    (``AttackResult.of_search``).
    >>> result = PGD(eps=0.25, steps=100, restarts=5)(model, x, y)
    """
    eps: float = 0.25
    steps: int = 100
    restarts: int = 5
    alpha: float | None = None
    loss: str = "ce"
    numerics: str = "float32"
    random_start: bool = True
    seed: int = 0

    def __post_init__(self):
        check_eps(self.eps)
        check_count("steps", self.steps)
        check_count("restarts", self.restarts)
        if self.alpha is not None:
            check_number("alpha", self.alpha, positive=True)
        loss_function(self.loss)
        check_numerics(self.numerics)

    def __call__(self, model, x, y):
        """x: (N, ...) images in [0, 1], y: (N,) labels, on the model's device -> AttackResult: per
        example the worst iterate of all restarts (``merge_worst``); a clean error as it is."""
        check_batch(model, x, y)
        xp = array_module(x)
        # x, before any restart
        best = (x, xp.zeros(len(x), dtype=bool), xp.full(len(x), -xp.inf, dtype=x.dtype))
        if self.eps > 0:
            for r in range(self.restarts):
                best = merge_worst(best, self.run(model, x, y, restart=r))
        return AttackResult.of_search(model, x, best[0], y)

    def run(self, model, x, y, restart=0):
        """One restart. -> (x_adv, fooled, loss) with every example's worst iterate."""
        xp = array_module(x)
        loss_fn = loss_function(self.loss)
        alpha = self.alpha if self.alpha is not None else 2.5 * self.eps / self.steps
        x_k = starting_point(x, self.eps, self.seed, restart, self.random_start)
        out_x, out_f = x_k.copy(), xp.zeros(len(x), dtype=bool)
        out_l = xp.full(len(x), -xp.inf, dtype=x.dtype)
        active = xp.arange(len(x))
        x0, ya = x, y
        for k in range(self.steps + 1):
            L, g, logits = loss_and_input_gradient(model, x_k, ya, loss_fn,
                                                   numerics=self.numerics, check=False)
            fooled = logits.argmax(axis=1) != ya
            better = fooled | (L > out_l[active])
            out_x[active[better]] = x_k[better]
            out_l[active[better]] = L[better]
            out_f[active[fooled]] = True
            if k == self.steps:
                break
            keep = ~fooled
            if not bool(keep.all()):
                active, x_k, x0, ya, g = active[keep], x_k[keep], x0[keep], ya[keep], g[keep]
                if len(active) == 0:
                    break
            x_k = project(x_k + alpha * xp.sign(g), x0, self.eps)
        return out_x, out_f, out_l

