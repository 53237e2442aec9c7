"""The Square attack (Andriushchenko et al. 2020), L-inf: a gradient-free random search.

Each query changes one random square window of the perturbation to a random corner of the eps-ball
(+-eps per channel) and keeps the change if the logit margin z_y - max_{j != y} z_j went down. It
uses only forward passes, so vanishing or masked gradients cannot stop it: if it beats the gradient
attacks, the gradients were misleading (Carlini et al. 2019).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from nn.backend import array_module, to_device
from nn.validate import InputError, check_batch, check_count, check_eps, check_number

from .ball import project
from .losses import margin
from .result import AttackResult


def square_fraction(i, n_queries, p_init):
    """The fraction p of pixels in the window at query i: p_init halved at the fixed fractions
    (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000) / 10000 of the budget (the paper's
    schedule)."""
    marks = np.array([10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000]) / 10000 * n_queries
    return p_init / 2 ** int((i > marks).sum())


@dataclasses.dataclass(frozen=True)
class Square:
    """Square attack with ``n_queries`` forward passes per example at most.
    >>> result = Square(eps=0.25, n_queries=1000)(model, x, y)
    """
    eps: float = 0.25
    n_queries: int = 1000
    p_init: float = 0.05
    seed: int = 0

    def __post_init__(self):
        check_eps(self.eps)
        check_count("n_queries", self.n_queries)
        check_number("p_init", self.p_init, positive=True, maximum=1)

    def __call__(self, model, x, y):
        """x: (N, C, H, W) images in [0, 1], y: (N,) labels, on the model's device -> AttackResult.
        An example the model already misclassifies is searched like the others (so that the random
        draws of the others do not depend on it), then returned as it is
        (``AttackResult.of_search``)."""
        check_batch(model, x, y)
        if x.ndim != 4:
            raise InputError(f"x has shape {tuple(x.shape)}; the Square attack needs images "
                             "(N, C, H, W)")
        xp = array_module(x)
        N, C, H, W = x.shape
        rng = np.random.default_rng(self.seed)
        # start: vertical stripes of +-eps (one sign per column and channel)
        stripes = to_device(rng.choice([-self.eps, self.eps], size=(N, C, 1, W)), xp, x.dtype)
        x_adv = project(x + stripes, x, self.eps)
        m, _ = margin(model.logits(x_adv), y)
        m = -m  # z_y - max_{j != y} z_j: the model is fooled when it is < 0
        active = xp.flatnonzero(m >= 0)
        rows, cols = xp.arange(H)[None, :, None], xp.arange(W)[None, None, :]
        for i in range(self.n_queries - 1):
            if len(active) == 0:
                break
            n = len(active)
            s = int(round(np.sqrt(square_fraction(i, self.n_queries, self.p_init) * H * W)))
            s = min(max(s, 1), H - 1)
            r0 = to_device(rng.integers(0, H - s + 1, n), xp)[:, None, None]
            c0 = to_device(rng.integers(0, W - s + 1, n), xp)[:, None, None]
            window = (rows >= r0) & (rows < r0 + s) & (cols >= c0) & (cols < c0 + s)  # (n, H, W)
            corner = to_device(rng.choice([-self.eps, self.eps], size=(n, C, 1, 1)), xp, x.dtype)
            xa, x0 = x_adv[active], x[active]
            cand = xp.where(window[:, None], project(x0 + corner, x0, self.eps), xa)  # (n, C, H, W)
            m_new, _ = margin(model.logits(cand), y[active])
            m_new = -m_new
            better = m_new < m[active]
            x_adv[active[better]] = cand[better]
            m[active[better]] = m_new[better]
            active = active[m[active] >= 0]
        return AttackResult.of_search(model, x, x_adv, y)
