"""Uniform random noise in the L-inf ball: the floor every real attack must beat."""
from __future__ import annotations

import dataclasses

import numpy as np

from nn.backend import array_module, to_device
from nn.validate import check_batch, check_count, check_eps

from .ball import project
from .result import AttackResult


@dataclasses.dataclass(frozen=True)
class UniformNoise:
    """x + U(-eps, eps)^D projected onto the ball and [0, 1] (``attacks.ball.project``), ``draws``
    times; an example is fooled if any draw fools the model (the first such draw is kept; an example
    the model already misclassifies is returned as it is, ``AttackResult.of_search``).
    >>> result = UniformNoise(eps=0.25, draws=10)(model, x, y)
    """
    eps: float = 0.25
    draws: int = 10
    seed: int = 0

    def __post_init__(self):
        check_eps(self.eps)
        check_count("draws", self.draws)

    def __call__(self, model, x, y):
        """x: (N, ...) images in [0, 1], y: (N,) labels, on the model's device -> AttackResult."""
        check_batch(model, x, y)
        xp = array_module(x)
        rng = np.random.default_rng(self.seed)
        x_adv, fooled = x.copy(), xp.zeros(len(x), dtype=bool)
        for _ in range(self.draws):
            cand = project(x + to_device(rng.uniform(-self.eps, self.eps, x.shape), xp, x.dtype),
                           x, self.eps)
            new = (model.predict(cand) != y) & ~fooled
            x_adv[new] = cand[new]
            fooled = fooled | new
        return AttackResult.of_search(model, x, x_adv, y)
