"""Adam (Kingma & Ba 2015) with bias correction, updating parameter arrays in place."""
from __future__ import annotations

import math

import numpy as np

from .backend import array_module, to_host
from .numerics import FORWARD_NUMERICS, check_numerics, smallest_normal

# On the CPU the update is applied in blocks of this many entries, so that its dozen elementwise
# passes run in the L2 cache and each array crosses main memory once: Adam is memory-bound and
# otherwise costs as much as the forward and backward passes of the MLPs. On the GPU each
# parameter is one block.
CPU_BLOCK = 1 << 15


def adam_init(params):
    """Zero first and second moments shaped like ``params`` (list of {name: array}), step t = 0."""
    return {"t": 0,
            "m": [{k: v * 0 for k, v in p.items()} for p in params],
            "v": [{k: v * 0 for k, v in p.items()} for p in params]}


def _adam_block(p, g, m, v, tmp, lr_t, eps_t, beta1, beta2, tiny=0.0):
    """In place on 1-D views: m += (1-b1)(g-m); v += (1-b2)(g^2-v); p -= lr_t m / (sqrt v + eps_t).
    With ``tiny`` > 0 (flush-to-zero), entries of m and v below it become exactly 0: a moment whose
    gradient has stopped decays geometrically into the subnormal range otherwise (~800 steps from
    1e-3 for m), where CPU arithmetic on it is many times slower."""
    xp = array_module(p)
    xp.subtract(g, m, out=tmp)
    tmp *= 1.0 - beta1
    m += tmp
    xp.multiply(g, g, out=tmp)
    tmp -= v
    tmp *= 1.0 - beta2
    v += tmp
    if tiny:
        m *= xp.abs(m) >= tiny
        v *= v >= tiny
    xp.sqrt(v, out=tmp)
    tmp += eps_t
    xp.divide(m, tmp, out=tmp)
    tmp *= lr_t
    p -= tmp


def adam_update(params, grads, state, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8,
                numerics="float32"):
    """One Adam step, in place on ``params`` and ``state``:

        m <- beta1 m + (1 - beta1) g,   v <- beta2 v + (1 - beta2) g^2,
        theta <- theta - lr_t m / (sqrt(v) + eps_t),

    with the bias corrections folded into lr_t = lr sqrt(1 - beta2^t) / (1 - beta1^t) and
    eps_t = eps sqrt(1 - beta2^t) (identical to dividing m and v by 1 - beta^t). ``numerics``:
    "float32", or "paper", which flushes the moments' subnormal entries to 0, as TensorFlow's
    flush-to-zero arithmetic does (``nn.numerics``).

    Every parameter and moment is updated in place whatever its memory layout: a C-contiguous array
    through a 1-D view, any other (Fortran order, a strided view) through a C-order copy written
    back into it, with the same arithmetic entry by entry.
    """
    check_numerics(numerics, FORWARD_NUMERICS)
    state["t"] += 1
    t = state["t"]
    c2 = math.sqrt(1.0 - beta2 ** t)
    lr_t = lr * c2 / (1.0 - beta1 ** t)
    eps_t = eps * c2
    for p, g, m, v in zip(params, grads, state["m"], state["v"]):
        for k in p:
            arrays = (p[k], g[k], m[k], v[k])
            xp = array_module(arrays[0])
            # (n,) in C order, a view if a is C-contiguous
            flat = [xp.ascontiguousarray(a).reshape(-1) for a in arrays]
            n = flat[0].size
            block = n if xp.__name__ == "cupy" else CPU_BLOCK
            tmp = xp.empty(min(block, n), dtype=flat[0].dtype)
            tiny = smallest_normal(flat[0].dtype) if numerics == "paper" else 0.0
            for s in range(0, n, block):
                e = min(s + block, n)
                _adam_block(*(a[s:e] for a in flat), tmp[:e - s], lr_t, eps_t, beta1, beta2, tiny)
            # p, m and v; an array that is not C-contiguous was updated as a copy
            for i in (0, 2, 3):
                if not arrays[i].flags.c_contiguous:
                    arrays[i][...] = flat[i].reshape(arrays[i].shape)


def step_share(state, beta2=0.999, eps=1e-8):
    """What Adam's epsilon leaves of its normalised step, per parameter entry:

        s = sqrt(v_hat) / (sqrt(v_hat) + eps),   v_hat = v / (1 - beta2^t),

    so that ``adam_update``'s step is s * lr * m_hat / sqrt(v_hat): s ~ 1 where the gradient's
    running RMS sqrt(v_hat) is far above eps, s ~ sqrt(v_hat) / eps (the step shrinks with the
    gradient) where it is far below, 0 where v is 0. state: ``adam_init``'s, after at least one
    step. -> list of {name: float64 host array shaped like the parameter}, values in [0, 1). Raises
    ValueError before any step."""
    if state["t"] < 1:
        raise ValueError("Adam's state has taken no step yet (t = 0): v_hat is undefined")
    c2 = math.sqrt(1.0 - beta2 ** state["t"])
    shares = []
    for v in state["v"]:
        shares.append({})
        for k, a in v.items():
            rms = np.sqrt(np.asarray(to_host(a), dtype=np.float64)) / c2  # sqrt(v_hat)
            shares[-1][k] = rms / (rms + eps)
    return shares
