"""The threat model, in one place: the closed L-inf ball of radius eps around an image, intersected
with the pixel box, B(x, eps) = {x' : |x' - x|_inf <= eps} and [0, 1]^D.

Attacks and verifiers must mean the same set, in the arithmetic the model runs in. A point is in B
when its *stored* value (float32 for a float32 model) satisfies |x' - x| <= eps, the difference
taken in float64 from the stored values, and 0 <= x' <= 1. Computing x + eps in float32 does not
give such a point: float32(0.3) = 0.30000001 > 0.3, and the sum rounds again, so a float32 step can
land up to one ulp (~6e-8 near 1) outside the ball.

* ``project`` (the attacks' output, and the MILP's counterexamples): the point of B nearest a
  candidate, stored in the image's dtype.
* ``box`` (the verifiers' input set, ``analysis.proofs.ibp``, ``analysis.proofs.crown``,
  ``analysis.proofs.milp``): B as a float64 box [l, u], rounded outward, so that it contains every
  point ``project`` returns.
"""
from __future__ import annotations

import numpy as np

from nn.backend import array_module


def project(x_adv, x, eps, clip=True):
    """The point of B(x, eps) nearest x_adv, in x's dtype (module docstring).

    x' = clip(x_adv, max(x - eps, 0), min(x + eps, 1)) in float64, rounded to x's dtype; an entry
    that the rounding put more than eps from x (|x' - x| > eps in float64) moves one step of the
    dtype back towards x. One step is enough: the rounded value is within half a step of the clipped
    one, which lies in the ball. ``clip=False``: the ball alone, without the pixel box [0, 1].
    x_adv, x: (N, ...) of one shape, x float32 or float64 -> (N, ...) in x's dtype.
    """
    xp = array_module(x)
    x64 = x.astype(np.float64)
    lo, hi = x64 - eps, x64 + eps
    if clip:
        lo, hi = xp.maximum(lo, 0.0), xp.minimum(hi, 1.0)  # 0 and 1 are exact in every float dtype
    out = xp.clip(x_adv.astype(np.float64), lo, hi).astype(x.dtype)
    over = xp.abs(out.astype(np.float64) - x64) > eps
    return xp.where(over, xp.nextafter(out, x), out)


def box(x, eps):
    """B(x, eps) as a float64 box, [l, u] = [max(x - eps, 0), min(x + eps, 1)], each bound one
    float64 step outward, so that it contains every point of the ball whatever the rounding of
    x +- eps. x: (N, ...) float -> (l, u) like x, float64."""
    xp = array_module(x)
    x64 = x.astype(np.float64)
    lo = xp.maximum(xp.nextafter(x64 - eps, -np.inf), 0.0)
    hi = xp.minimum(xp.nextafter(x64 + eps, np.inf), 1.0)
    return lo, hi
