"""Eq. 9: representational dissimilarity matrices (Figures 3 and 7).

d(a, b) = (1 / n) sum_i (phi(h_i^{l,a}) - phi(h_i^{l,b}))^2 for the n units of layer l, over a set
of images sorted by class; and the summary of a layer, mean between-class dissimilarity over mean
within-class dissimilarity (> 1 when classes separate).
"""
from __future__ import annotations

import math

import numpy as np

from nn.backend import array_module, to_device
from nn.validate import InputError


def sample_per_class(y, n_per_class, seed=0, n_classes=10):
    """n_per_class random indices of each class, sorted by class (the RDM's row order).

    y: (N,) host labels  ->  (n_classes * n_per_class,) indices.
    """
    rng = np.random.default_rng(seed)
    out = []
    for c in range(n_classes):
        idx = np.flatnonzero(y == c)
        if idx.size < n_per_class:
            raise ValueError(f"class {c} has {idx.size} examples, fewer than {n_per_class}")
        out.append(np.sort(rng.choice(idx, n_per_class, replace=False)))
    return np.concatenate(out)


def rdm(r):
    """D_ab = (1/n) ||r_a - r_b||^2 (eq. 9) for representations r: (M, n) (one row per image,
    the layer's phi(h) flattened)  ->  D: (M, M), symmetric, zero diagonal, nonnegative.

    Through the Gram matrix, ||r_a||^2 + ||r_b||^2 - 2 r_a . r_b, in float64: one (M, n) x (n, M)
    product instead of M^2 difference vectors. Rounding leaves errors of ~1e-16 (||r_a||^2 / n)
    where two different rows are identical, and tiny negatives, which are clipped to 0.
    """
    xp = array_module(r)
    r = r.reshape(len(r), math.prod(r.shape[1:])).astype(xp.float64)  # not -1: M may be 0
    sq = (r * r).sum(axis=1)
    D = (sq[:, None] + sq[None, :] - 2 * (r @ r.T)) / r.shape[1]
    D = xp.maximum(D, 0.0)
    D = (D + D.T) / 2  # exactly symmetric
    D[xp.arange(len(D)), xp.arange(len(D))] = 0.0
    return D


def between_within_ratio(D, labels):
    """mean_{a, b: y_a != y_b} D_ab / mean_{a != b: y_a = y_b} D_ab.  D: (M, M), labels: (M,).
    Means over pairs: an empty D is refused (InputError)."""
    if len(D) == 0:
        raise InputError("D is empty (M = 0); the ratio is of means over pairs of images")
    xp = array_module(D)
    labels = to_device(labels, xp)  # (M,), where D lives
    same = labels[:, None] == labels[None, :]
    off = ~xp.eye(len(D), dtype=bool)
    within = float(D[same & off].mean())
    between = float(D[~same].mean())
    return between / within if within > 0 else float("inf")
