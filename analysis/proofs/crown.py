"""Linear relaxation bounds for MLPs (CROWN, Zhang et al. 2018; the back-substitution of DeepPoly,
Singh et al. 2019): a tighter proof than interval bound propagation (``analysis.proofs.ibp``).

The MLP is x = a^0 (flattened), h^k = W^k a^{k-1} + b^k, a^k = act(h^k) for k < D, and the logits
z = h^D. Each activation is enclosed between two lines on the box [l, u] of its pre-activation,

    alpha_lo h + beta_lo  <=  act(h)  <=  alpha_hi h + beta_hi     for h in [l, u],

and a linear function f = Lam a^k + c of a layer's output is bounded from below by walking down
the layers (back-substitution): through the activation, Lam a >= Lam+ (alpha_lo h + beta_lo) +
Lam- (alpha_hi h + beta_hi) (Lam+ and Lam- its positive and negative entries), then through the
weight layer, Lam h = (Lam W) a + Lam b, down to the input box B = [l^0, u^0] (the eps-ball
intersected with [0, 1]), where min over B of Lam x = Lam m - |Lam| r (m, r: B's centre and
radius). Upper bounds are lower bounds of -f. Run for every hidden layer in turn (its box feeds the
next relaxation) and finally for the logit differences z_y - z_j: the example is verified when every
lower bound is positive. Every box is intersected with IBP's box of the same layer, so the bounds
used are never looser than IBP's.

Relaxations (elementwise, on [l, u]):

* ReLU: off (u <= 0): 0 <= a <= 0; on (l >= 0): h <= a <= h; unstable: the upper line is the chord
  u (h - l) / (u - l); the lower line is h if u >= -l, else 0 (CROWN's adaptive choice, the smaller
  area).
* sigmoid: both lines parallel to the chord, slope k = (sigma(u) - sigma(l)) / (u - l), shifted to
  touch the curve: beta_lo = min and beta_hi = max of sigma(h) - k h over [l, u], taken over the
  endpoints and the points where sigma'(h) = k, h = +-log(s / (1 - s)) with
  s = (1 + sqrt(1 - 4k)) / 2. Sound wherever l <= u, on either side of 0 or across it; in a
  saturated network both lines are nearly flat.

Soundness in floating point (as in ``analysis.proofs.ibp``): the bounds must hold for the float32
network. Its weight layer k computes W a + b + e^k with |e^k| <= delta^k = gamma^32_{n+1} (|W|
max(|l|, |u|) + |b|) (Higham's dot-product bound, n inputs per unit, on the layer's input box), so
back-substitution adds -|Lam| delta^k at each weight layer; its sigmoid is within 8 u sigma + 2^-126
of the exact one (``analysis.proofs.ibp.SIGMOID_REL``, flush-to-zero), so beta_lo and beta_hi are
widened by that. The bounds are computed in float64; their own rounding (relative ~1e-13 for these
sizes) is covered by widening each bound by gamma^64_n of the sum of the absolute values of its
terms, n the total fan-in of the chain (first order: errors of errors are left out).
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from analysis.proofs.ibp import (SIGMOID_REL, TINY32, U64, _monotone_box, _weight_box,
                                 float32_error, gamma, share_verified)
from attacks.ball import box
from nn import layers as L
from nn.backend import array_module
from nn.validate import InputError, check_batch, check_eps


@dataclasses.dataclass
class LinearBounds:
    """The result for N examples (device arrays, float64).

    pre: list of (lower, upper) boxes of the hidden pre-activations h^1 .. h^{D-1}, each (N, n_k),
    intersected with IBP's. diff_lower: (N, K) lower bounds of z_y - z_j (+inf at j = y), the larger
    of CROWN's and IBP's. verified: (N,) bool, every diff_lower > 0.
    """
    pre: list
    diff_lower: object
    verified: object


def unstable(lo, hi):
    """The ReLUs whose box [lo, hi] straddles 0, lo < 0 < hi (elementwise): neither off
    (hi <= 0) nor on (lo >= 0)."""
    return ~((lo >= 0) | (hi <= 0))


def relu_relaxation(lo, hi):
    """Lines enclosing relu on [lo, hi] (elementwise, (N, n) each) -> (alpha_lo, beta_lo, alpha_hi,
    beta_hi)."""
    xp = array_module(lo)
    on, free = lo >= 0, unstable(lo, hi)
    width = xp.where(free, hi - lo, 1.0)
    alpha_hi = xp.where(on, 1.0, xp.where(free, hi / width, 0.0))
    # + the chord's float64 rounding
    beta_hi = xp.where(free, -lo * hi / width + 4 * U64 * (hi - lo), 0.0)
    alpha_lo = xp.where(on | (free & (hi >= -lo)), 1.0, 0.0)
    return alpha_lo, xp.zeros_like(lo), alpha_hi, beta_hi


def sigmoid_relaxation(lo, hi):
    """Lines enclosing the float32 sigmoid on [lo, hi] (module docstring): chord slope k, intercepts
    the min and max of sigma(h) - k h over [lo, hi], widened by the float32 sigmoid's error.
    -> (alpha_lo, beta_lo, alpha_hi, beta_hi), each like lo."""
    xp = array_module(lo)
    s_lo, s_hi = L.sigmoid(lo), L.sigmoid(hi)
    width = hi - lo
    wide = width > 1e-8
    mid = (lo + hi) / 2
    k = xp.where(wide, (s_hi - s_lo) / xp.where(wide, width, 1.0), L.sigmoid(mid) * L.sigmoid(-mid))
    k = xp.clip(k, 0.0, 0.25)
    root = xp.sqrt(1 - 4 * k)
    one_minus_s = 2 * k / (1 + root)  # 1 - s without cancellation, s = (1 + root) / 2
    with np.errstate(divide="ignore"):  # numpy's switch; cupy does not warn
        # sigma'(+-tangent) = k, +inf at k = 0
        tangent = xp.log((1 + root) / 2) - xp.log(one_minus_s)
    # clipped points are endpoints
    cands = [lo, hi, xp.clip(tangent, lo, hi), xp.clip(-tangent, lo, hi)]
    vals = [L.sigmoid(c) - k * c for c in cands]
    beta_lo = xp.minimum(xp.minimum(vals[0], vals[1]), xp.minimum(vals[2], vals[3]))
    beta_hi = xp.maximum(xp.maximum(vals[0], vals[1]), xp.maximum(vals[2], vals[3]))
    slack = SIGMOID_REL * s_hi + TINY32 + 4 * U64 * (xp.abs(k * lo) + xp.abs(k * hi) + 1)
    return k, beta_lo - slack, k, beta_hi + slack


RELAXATIONS = {"relu": relu_relaxation, "sigmoid": sigmoid_relaxation}


def _mlp_parts(model):
    """The MLP's weight layers [(W, b) float64] and activations, checking the architecture."""
    types = [layer["type"] for layer in model.spec["layers"]]
    if types[0] == "flatten":
        types = types[1:]
        params = model.params[1:]
    else:
        params = model.params
    if (len(types) % 2 != 1 or any(t != "dense" for t in types[::2])
            or any(t not in RELAXATIONS for t in types[1::2])):
        raise InputError("linear relaxation bounds need an MLP: flatten, then dense and "
                         "relu/sigmoid layers alternating, a dense readout (a CNN: "
                         f"analysis.proofs.crown_cnn); got layers {types}")
    weights = [(p["W"].astype(np.float64), p["b"].astype(np.float64)) for p in params[::2]]
    return weights, types[1::2]


def mlp_activations(model):
    """The hidden layers' activations ('relu' or 'sigmoid', in order) of an MLP these bounds handle,
    or None for any other network (a CNN)."""
    try:
        return _mlp_parts(model)[1]
    except InputError:
        return None


def _float32_error(W, b, lo, hi):
    """``analysis.proofs.ibp.float32_error`` of a dense layer. W: (m, n),
    lo/hi: (N, n) -> (N, m)."""
    return float32_error("dense", lo, hi, W, b)


def backsubstitute(Lam, c, k, weights, relax, deltas, x_box, trace=None):
    """Lower bound of f = Lam a^k + c over the input box, a^k the output of hidden layer k
    (a^0 = x).

    Lam: (N, m, n_k), c: (N, m). relax[j]: the lines of activation j (1-based, as (N, n_j) arrays;
    alpha_lo may also be (N, m, n_j), a slope per row, as alpha-CROWN's); deltas[j]: the float32
    error bound of weight layer j; x_box: (lo, hi) of x, (N, n_0). trace: None, or a list that gets
    (Lam, Lam') for each activation crossed, top down (its coefficients on a^j and on h^j), then the
    input's coefficients Lam^0 (``analysis.proofs.alpha_crown`` differentiates through them).
    -> (N, m) lower bounds, widened for the float64 arithmetic (module docstring).
    """
    xp = array_module(Lam)
    mag = xp.abs(c)  # sum of |terms| so far, (N, m)
    fan_in = 0
    while k > 0:
        a_lo, b_lo, a_hi, b_hi = relax[k]
        pos, neg = xp.maximum(Lam, 0), xp.minimum(Lam, 0)
        beta = xp.einsum("nmj,nj->nm", pos, b_lo) + xp.einsum("nmj,nj->nm", neg, b_hi)
        rows = a_lo if a_lo.ndim == 3 else a_lo[:, None, :]
        Lam_h = pos * rows + neg * a_hi[:, None, :]  # (N, m, n_k): now f >= Lam_h h^k + c
        if trace is not None:
            trace.append((Lam, Lam_h))
        W, b = weights[k - 1]
        absLam = xp.abs(Lam_h)
        err = xp.einsum("nmj,nj->nm", absLam, deltas[k])  # h^k = W a^{k-1} + b + e, |e| <= delta
        c = c + beta + Lam_h @ b - err
        mag = mag + xp.abs(beta) + absLam @ xp.abs(b) + err
        Lam = Lam_h @ W  # (N, m, n_{k-1})
        fan_in += W.shape[1] + 2
        k -= 1
    if trace is not None:
        trace.append(Lam)
    lo, hi = x_box
    m, r = (lo + hi) / 2, (hi - lo) / 2
    absLam = xp.abs(Lam)
    bound = c + xp.einsum("nmj,nj->nm", Lam, m) - xp.einsum("nmj,nj->nm", absLam, r)
    mag = mag + xp.einsum("nmj,nj->nm", absLam, xp.abs(m) + r)
    return bound - gamma(fan_in + Lam.shape[-1] + 2, U64) * mag


def box_rows(W, b, delta, N):
    """The rows whose lower bounds bound h = W a + b (float32, error at most delta) from both
    sides: lower(+h) and lower(-h) = -upper(h). W: (m, n), b: (m,), delta: (N, m) ->
    Lam = [W; -W] (N, 2m, n), c = [b; -b] - [delta; delta] (N, 2m)."""
    xp = array_module(W)
    Lam = xp.broadcast_to(xp.concatenate([W, -W])[None], (N, 2 * W.shape[0], W.shape[1]))
    c = xp.broadcast_to(xp.concatenate([b, -b])[None], (N, 2 * W.shape[0]))
    return Lam, c - xp.concatenate([delta, delta], axis=1)


def margin_rows(W, b, delta, y):
    """The rows of the margins z_y - z_j = (W_y - W_j) a + b_y - b_j, each logit's float32 error
    (delta, (N, K)) subtracted. W: (K, n), y: (N,) -> Lam (N, K, n), c (N, K)."""
    xp = array_module(W)
    Lam = W[y][:, None, :] - W[None]
    c = (b[y][:, None] - b[None]) - (delta[xp.arange(len(y)), y][:, None] + delta)
    return Lam, c


def box_bound(Lam, c, lo, hi):
    """Lower bound of Lam a + c over the box lo <= a <= hi (IBP's bound of the margins on the last
    hidden box): Lam m + c - |Lam| r, m and r the box's centre and radius, widened for its float64
    arithmetic. Lam: (N, K, n), c: (N, K), lo, hi: (N, n) -> (N, K)."""
    xp = array_module(Lam)
    m, r = (lo + hi) / 2, (hi - lo) / 2
    absLam = xp.abs(Lam)
    return (xp.einsum("nkd,nd->nk", Lam, m) + c - xp.einsum("nkd,nd->nk", absLam, r)
            - gamma(Lam.shape[-1] + 2, U64) * (xp.einsum("nkd,nd->nk", absLam, xp.abs(m) + r)
                                                + xp.abs(c)))


@dataclasses.dataclass
class Relaxation:
    """What CROWN built for N examples, from which alpha-CROWN starts: weights [(W, b)] float64;
    x_box (lo, hi) (N, n_0); relax {k: lines of activation k}; deltas {k: (N, n_k)}, the float32
    error bounds of weight layers 1 .. D; margin (Lam, c), the rows of z_y - z_j (margin_rows);
    ibp: IBP's boxes (lo, hi) of the hidden pre-activations, (N, n_k) each, before CROWN's."""
    weights: list
    x_box: tuple
    relax: dict
    deltas: dict
    margin: tuple
    ibp: list


def linear_bounds(model, x, y, eps):
    """CROWN bounds for the MLP ``model`` on images x (N, *input_shape) in [0, 1], labels y (N,), at
    L-inf radius eps. -> LinearBounds (module docstring: formulas and floating-point margins).
    Memory: (N, 2 n_k, n_{k-1}) float64 per hidden layer; pass batches of tens of examples for the
    paper's width 1000."""
    return propagate(model, x, y, eps)[0]


def propagate(model, x, y, eps):
    """``linear_bounds``, and the Relaxation it was computed from. -> (LinearBounds, Relaxation)."""
    check_batch(model, x, y)
    check_eps(eps)
    weights, acts = _mlp_parts(model)
    xp = model.xp
    N = len(x)
    # the attacks' ball (attacks.ball); N may be 0
    x_box = box(x.reshape(N, math.prod(x.shape[1:])), eps)
    relax, deltas, boxes, ibp_boxes = {}, {}, [], []
    a_lo, a_hi = x_box
    for k, (W, b) in enumerate(weights[:-1], start=1):
        deltas[k] = _float32_error(W, b, a_lo, a_hi)
        # IBP's (widened) box of h^k from the previous box
        lo, hi = _weight_box("dense", a_lo, a_hi, W, b)
        ibp_boxes.append((lo, hi))
        if k > 1:  # CROWN's box of h^k: lower bounds of +h^k and -h^k, in one pass
            Lam, c = box_rows(W, b, deltas[k], N)
            bnd = backsubstitute(Lam, c, k - 1, weights, relax, deltas, x_box)
            lo, hi = xp.maximum(lo, bnd[:, :W.shape[0]]), xp.minimum(hi, -bnd[:, W.shape[0]:])
        boxes.append((lo, hi))
        relax[k] = RELAXATIONS[acts[k - 1]](lo, hi)
        a_lo, a_hi = _monotone_box(acts[k - 1], lo, hi)  # widened for the float32 sigmoid
    W, b = weights[-1]
    D = len(weights)
    deltas[D] = _float32_error(W, b, a_lo, a_hi)  # (N, K)
    Lam, c = margin_rows(W, b, deltas[D], y)  # (N, K, n), (N, K)
    crown = backsubstitute(Lam, c, D - 1, weights, relax, deltas, x_box)
    lower = xp.maximum(crown, box_bound(Lam, c, a_lo, a_hi))  # and IBP's on the last box
    lower[xp.arange(N), y] = xp.inf
    return (LinearBounds(boxes, lower, (lower > 0).all(axis=1)),
            Relaxation(weights, x_box, relax, deltas, (Lam, c), ibp_boxes))


def verified_fraction(model, x, y, eps, batch=25):
    """The share of examples CROWN proves robust at radius eps, in batches. -> float in [0, 1]."""
    return share_verified(linear_bounds, model, x, y, eps, batch)
