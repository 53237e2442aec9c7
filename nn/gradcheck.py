"""Finite-difference checks (float64), used by the test suite and by later modules' tests.

Centred differences: df/dx_i ~ (f(x + h e_i) - f(x - h e_i)) / (2h), truncation error O(h^2) and
rounding error O(eps_64 / h); with h = 1e-6 both are ~1e-10 relative, so a correct analytic
gradient agrees to ~1e-8 and a threshold of 1e-6 catches real bugs.
"""
from __future__ import annotations

import numpy as np

from .backend import array_module


def numerical_gradient(f, x, h=1e-6):
    """Gradient of a scalar function f at x by centred differences, perturbing x in place (and
    restoring it): grad_i = (f(x + h e_i) - f(x - h e_i)) / (2h).

    f: x -> scalar (float or 0-d array);  x: float64 array (numpy or cupy) of any memory layout
    (C or Fortran order, a strided view)  ->  (x.shape), C order. Raises TypeError unless x is
    float64. Loops over entries by index: for the small test networks only.
    """
    if x.dtype != np.float64:
        raise TypeError(f"finite differences need float64, got {x.dtype}")
    xp = array_module(x)
    grad = xp.zeros(x.shape, dtype=x.dtype)
    for i in np.ndindex(*x.shape):  # indexing x itself, never a reshaped copy of it
        old = float(x[i])
        x[i] = old + h
        fp = float(f(x))
        x[i] = old - h
        fm = float(f(x))
        x[i] = old
        grad[i] = (fp - fm) / (2 * h)
    return grad


def numerical_jvp(f, x, u, h=1e-6):
    """Directional derivative J u = (f(x + h u) - f(x - h u)) / (2h) of an array function f."""
    return (f(x + h * u) - f(x - h * u)) / (2 * h)


def rel_error(a, b):
    """max |a - b| / max(max |a|, max |b|): error relative to the scale of the gradient."""
    xp = array_module(a, b)
    scale = max(float(xp.abs(a).max()), float(xp.abs(b).max()))
    return float(xp.abs(a - b).max()) / scale if scale > 0 else 0.0
