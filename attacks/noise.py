"""Uniform random noise in the L-inf ball: the floor every real attack must beat."""
from __future__ import annotations

import numpy as np

from nn.backend import array_module, to_device
from nn.validate import check_batch, check_number


def uniform_noise(model, x, y, eps=0.25, draws=10, seed=0):
    """x + U(-eps, eps)^D clipped to [0, 1], ``draws`` times; an example counts as fooled if any draw
    fools the model (the first such draw is kept).  -> (x_adv, fooled (N,) bool)."""
    check_batch(model, x, y)
    check_number("eps", eps)
    check_number("draws", draws, integer=True)
    xp = array_module(x)
    rng = np.random.default_rng(seed)
    x_adv, fooled = x.copy(), model.predict(x) != y
    for _ in range(draws):
        cand = xp.clip(x + to_device(rng.uniform(-eps, eps, x.shape), xp, x.dtype), 0.0, 1.0)
        new = (model.predict(cand) != y) & ~fooled
        x_adv[new] = cand[new]
        fooled = fooled | new
    return x_adv, fooled
