"""Adam (Kingma & Ba 2015) with bias correction, updating parameter arrays in place."""
from __future__ import annotations

import math


def adam_init(params):
    """Zero first and second moments shaped like ``params`` (list of {name: array}), step t = 0."""
    return {"t": 0,
            "m": [{k: v * 0 for k, v in p.items()} for p in params],
            "v": [{k: v * 0 for k, v in p.items()} for p in params]}


def adam_update(params, grads, state, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
    """One Adam step, in place on ``params`` and ``state``:

        m <- beta1 m + (1 - beta1) g,   v <- beta2 v + (1 - beta2) g^2,
        theta <- theta - lr_t m / (sqrt(v) + eps_t),

    with the bias corrections folded into lr_t = lr sqrt(1 - beta2^t) / (1 - beta1^t) and
    eps_t = eps sqrt(1 - beta2^t) (identical to dividing m and v by 1 - beta^t). In-place updates
    avoid allocating a copy of every parameter at every step.
    """
    state["t"] += 1
    t = state["t"]
    c2 = math.sqrt(1.0 - beta2 ** t)
    lr_t = lr * c2 / (1.0 - beta1 ** t)
    eps_t = eps * c2
    for p, g, m, v in zip(params, grads, state["m"], state["v"]):
        for k in p:
            gk, mk, vk = g[k], m[k], v[k]
            mk *= beta1
            mk += (1.0 - beta1) * gk
            vk *= beta2
            vk += (1.0 - beta2) * (gk * gk)
            p[k] -= (lr_t * mk) / (vk ** 0.5 + eps_t)
