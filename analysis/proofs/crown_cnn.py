"""Linear relaxation bounds (CROWN) through the paper's CNN (Table 2): back-substitution, as in
``analysis.proofs.crown``, through convolutions, ReLU followed by 2x2 max-pool, flatten and dense
layers.

The network is a chain of weight layers h^k = W^k a^{k-1} + b^k (conv2d, stride 1, 'same', or
dense), each but the readout followed by relu, or by relu then max-pool, which ``nn.layers``
computes as relu(maxpool(h)) (both are monotone, so they commute); flatten only reorders. Every
layer's values are handled flattened, (N, n_k), in the model's own (C, H, W) order, so flatten is
the identity and a linear function of a layer is Lam a + c with Lam (N, m, n_k).

Back-substitution through each piece (m rows at a time):

* dense: Lam h = (Lam W) a + Lam b;
* conv2d: Lam h = (W^T Lam) a + Lam b, W^T Lam the transposed convolution: the convolution's
  input gradient with each row of Lam as an output gradient (``_transpose``);
* relu on the box [l, u]: CROWN's lines (``crown.relu_relaxation``);
* relu(maxpool(h)), a window's four pre-activations h_1..h_4 with boxes [l_i, u_i]: let i* be the
  window's first position with the largest lower end, m = max_i h_i in [L, U] = [l_i*, max_i u_i].
  Lower line: relu(m) >= alpha m (CROWN's ReLU lower slope alpha in {0, 1} on [L, U]) >=
  alpha h_i*, since m >= h_i* and alpha >= 0. Upper line: if the window is decided, l_i* >= u_j
  for every j != i* (then m = h_i* everywhere in the box, and U = u_i*), relu(m) = relu(h_i*) <=
  CROWN's chord of relu on [l_i*, u_i*] at h_i*; otherwise the constant relu(U), since m <= U.
  Both lines hold for every h in the boxes: this is the max-pool relaxation of DeepPoly (Singh et
  al. 2019, section 4: the lower line through the input with the largest lower bound, the upper
  line that input when it dominates, else the constant largest upper bound), composed with
  CROWN's ReLU lines.

Boxes: the first weight layer's is IBP's (exact up to rounding). A conv layer above it gets the
bounds of the units in undecided windows (neither relu(m) = 0 everywhere, U <= 0, nor a decided
window with L >= 0, where the pair is exactly h_i*); a layer before a plain relu, every unit (as
``crown``: a stable unit's box still bounds the next layer's IBP box); every box is intersected
with IBP's from the box below. The margins z_y - z_j are bounded last and the example is verified
when all are positive, as in ``crown``. The rows of a conv unit start at the layer below from the
unit's kernel placed at its window (``conv_rows``), not from a transposed convolution of a one-hot
image.

Soundness in floating point: as in ``crown``: every weight layer's float32 error bound
(``ibp.float32_error``, n = C kh kw + 1 terms for a convolution, in any order of summation, so also
through im2col) is subtracted with |Lam| at each layer; ReLU and max-pool are exact in float32; the
chord's float64 rounding is in ``crown.relu_relaxation``; the bound's own float64 arithmetic is
covered by gamma^64 of the sum of the absolute values of its terms, the chain's fan-in counted
with every layer's input and output sizes (more than any one sum has).

Memory and time: per pass, a few float64 arrays (N, 2 rows, n_k) for the widest layer crossed
(32 x 28 x 28 = 25,088 for the paper's CNN; ``rows`` units at a time, 2 rows each) and the
transposed convolution's columns (N, 2 rows, C kh kw, H W): about 1 GB at N = 1, rows = 250. On
the paper's CNN an example takes 3-10 s of one core, most of it in the rows of the second
convolution's box, each as wide as the first convolution's output.
"""
from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np

from analysis.proofs.crown import (LinearBounds, box_bound, box_rows, margin_rows,
                                   relu_relaxation)
from analysis.proofs.ibp import (U64, _monotone_box, _weight_box, float32_error, gamma,
                                 share_verified)
from attacks.ball import box
from nn import layers as L
from nn.backend import array_module
from nn.validate import InputError, check_batch, check_eps, check_number


@dataclasses.dataclass
class Layer:
    """Weight layer k of the chain: kind 'conv2d' or 'dense'; W, b float64; in_shape and out_shape
    its input's and output's shapes without the batch; act 'relu', 'relu_pool' or None (the
    readout)."""
    kind: str
    W: object
    b: object
    in_shape: tuple
    out_shape: tuple
    act: str | None


def parse(model):
    """The model as a chain of Layers: weight layers (conv2d, dense), each followed by relu, relu
    then maxpool2d, or nothing (the last, a dense readout); flatten anywhere between. Raises
    InputError for any other network."""
    shape, chain, layers = tuple(model.spec["input_shape"]), [], model.spec["layers"]
    types = [layer["type"] for layer in layers]
    i = 0
    while i < len(layers):
        t, p = types[i], model.params[i]
        if t == "flatten":
            shape, i = (math.prod(shape),), i + 1
            continue
        if t not in ("conv2d", "dense") or (t == "conv2d") != (len(shape) == 3):
            break
        W, b = p["W"].astype(np.float64), p["b"].astype(np.float64)
        out = (W.shape[0],) + shape[1:] if t == "conv2d" else (W.shape[0],)
        act = None
        if types[i + 1:i + 3] == ["relu", "maxpool2d"] and t == "conv2d":
            act, i = "relu_pool", i + 3
        elif types[i + 1:i + 2] == ["relu"]:
            act, i = "relu", i + 2
        else:
            i += 1
        chain.append(Layer(t, W, b, shape, out, act))
        shape = out if act != "relu_pool" else (out[0], out[1] // 2, out[2] // 2)
        if act is None:
            break
    if not chain or i != len(layers) or chain[-1].act is not None or chain[-1].kind != "dense":
        raise InputError("CROWN through a CNN needs conv2d and dense layers, each followed by relu "
                         "or relu then maxpool2d, and a dense readout; got layers " + str(types))
    return chain


def _unpool(coef, window, shape):
    """Each window's coefficient onto its chosen position. coef: (N, m, C*h*w), window: (N, C, h,
    2, w, 2) float one-hot of each window's position i*, shape (C, H, W) -> (N, m, C*H*W)."""
    N, m = coef.shape[:2]
    C, H, W = shape
    coef = coef.reshape(N, m, C, H // 2, 1, W // 2, 1)
    return (coef * window[:, None]).reshape(N, m, -1)


def pool_relaxation(lo, hi):
    """Lines enclosing relu(maxpool(h)) on the boxes [lo, hi] of h, (N, C, H, W) each (module
    docstring). -> (window, alpha_lo, alpha_hi, beta_hi): window (N, C, H/2, 2, W/2, 2), 1.0 at
    the position i* of each window, else 0.0, and relu(max h) >= alpha_lo h_i*,
    relu(max h) <= alpha_hi h_i* + beta_hi, each (N, C*H/2*W/2)."""
    xp = array_module(lo)
    low, masks = L.maxpool2d_forward(lo)  # l_i* (the largest lower end), and i*
    top = L.maxpool2d_forward(hi)[0]  # U, the largest upper end
    # the largest upper end of the three positions other than i*
    rest = [xp.where(k, -xp.inf, hi[..., i::2, j::2]) for (i, j), k in zip(L.WINDOW, masks)]
    decided = low >= xp.maximum(xp.maximum(rest[0], rest[1]), xp.maximum(rest[2], rest[3]))
    a_lo, _, a_hi, b_hi = relu_relaxation(low, top)
    a_hi = xp.where(decided, a_hi, 0.0)
    b_hi = xp.where(decided, b_hi, xp.maximum(top, 0.0))
    N, C, h, w = low.shape
    window = xp.zeros((N, C, h, 2, w, 2))
    for (i, j), mask in zip(L.WINDOW, masks):
        window[:, :, :, i, :, j] = mask
    return window, a_lo.reshape(N, -1), a_hi.reshape(N, -1), b_hi.reshape(N, -1)


def conv_rows(W, units, out_shape):
    """Rows of a conv2d layer's matrix ('same' padding, stride 1) for some of its output units:
    W (O, C, kh, kw), units: flat indices into out_shape (O, H, Wd) -> (R, C*H*Wd), row r holding
    W[o] placed at the window of unit (o, y, x), so that h_unit = row . a + b[o]."""
    xp = array_module(W)
    O, C, kh, kw = W.shape
    _, H, Wd = out_shape
    ph, pw = (kh - 1) // 2, (kw - 1) // 2
    o, y, x = xp.unravel_index(units, out_shape)
    rows = xp.zeros((len(units), C, H + 2 * ph, Wd + 2 * pw))
    r = xp.arange(len(units))
    for i in range(kh):
        for j in range(kw):
            rows[r, :, y + i, x + j] = W[o, :, i, j]
    return rows[:, :, ph:ph + H, pw:pw + Wd].reshape(len(units), -1)


def _transpose(layer, Lam):
    """Lam (N, m, n_out) on h -> (N, m, n_in), the coefficients on a = the layer's input. For a
    convolution, the transposed convolution (``nn.conv.col2im`` of W^T Lam, here with the rows
    outermost, so that W^T Lam is one batched product with no transposing copy)."""
    if layer.kind == "dense":
        return Lam @ layer.W
    xp = array_module(Lam)
    N, m = Lam.shape[:2]
    O, C, kh, kw = layer.W.shape
    _, H, W = layer.in_shape
    ph, pw = (kh - 1) // 2, (kw - 1) // 2
    cols = layer.W.reshape(O, -1).T @ Lam.reshape(N * m, O, H * W)  # (N m, C kh kw, H W)
    cols = cols.reshape(N * m, C, kh, kw, H, W)
    out = xp.zeros((N * m, C, H + 2 * ph, W + 2 * pw))
    for i in range(kh):
        for j in range(kw):
            out[:, :, i:i + H, j:j + W] += cols[:, :, i, j]
    return out[:, :, ph:ph + H, pw:pw + W].reshape(N, m, -1)


def _bias(layer):
    """b over every output unit, (n_out,): a conv channel's b[o] at each of its H W units."""
    return array_module(layer.b).repeat(layer.b, math.prod(layer.out_shape[1:]))


def backsubstitute(Lam, c, k, chain, relax, deltas, x_box):
    """Lower bound of f = Lam a^k + c over the input box, a^k the output of activation k (a^0 = x).
    Lam: (N, m, n_k) flat, c: (N, m); relax[j]: activation j's lines ('relu':
    ``crown.relu_relaxation``'s, 'relu_pool': ``pool_relaxation``'s); deltas[j]: (N, n_j), weight
    layer j's float32 error bound; x_box (lo, hi) (N, n_0). -> (N, m), widened for float64."""
    xp = array_module(Lam)
    mag, fan_in = xp.abs(c), 0
    while k > 0:
        layer = chain[k - 1]
        pos, neg = xp.maximum(Lam, 0), xp.minimum(Lam, 0)
        if layer.act == "relu_pool":
            window, a_lo, a_hi, b_hi = relax[k]
            beta = xp.einsum("nmj,nj->nm", neg, b_hi)
            Lam_h = _unpool(pos * a_lo[:, None] + neg * a_hi[:, None], window,
                            layer.out_shape)
        else:
            a_lo, b_lo, a_hi, b_hi = relax[k]
            beta = xp.einsum("nmj,nj->nm", pos, b_lo) + xp.einsum("nmj,nj->nm", neg, b_hi)
            Lam_h = pos * a_lo[:, None] + neg * a_hi[:, None]  # (N, m, n_k) on h^k
        bias, absLam = _bias(layer), xp.abs(Lam_h)
        err = xp.einsum("nmj,nj->nm", absLam, deltas[k])
        c = c + beta + Lam_h @ bias - err
        mag = mag + xp.abs(beta) + absLam @ xp.abs(bias) + err
        Lam = _transpose(layer, Lam_h)
        fan_in += Lam_h.shape[-1] + Lam.shape[-1] + 2
        k -= 1
    lo, hi = x_box
    m, r = (lo + hi) / 2, (hi - lo) / 2
    absLam = xp.abs(Lam)
    bound = c + xp.einsum("nmj,nj->nm", Lam, m) - xp.einsum("nmj,nj->nm", absLam, r)
    mag = mag + xp.einsum("nmj,nj->nm", absLam, xp.abs(m) + r)
    return bound - gamma(fan_in + 2, U64) * mag


def _to_bound(layer, lo, hi):
    """Flat indices of the units of ``layer`` whose box back-substitution tightens: every unit
    before a plain relu (as ``crown``; a stable unit's box bounds the next layer's IBP box), the
    units of undecided windows before relu then max-pool (module docstring), in any example.
    lo, hi: (N, n_k)."""
    xp = array_module(lo)
    if layer.act == "relu":
        return xp.arange(lo.shape[1])
    shape = (len(lo),) + layer.out_shape
    window, a_lo, a_hi, b_hi = pool_relaxation(lo.reshape(shape), hi.reshape(shape))
    exact = ((a_lo == a_hi) & (b_hi == 0)).reshape(shape[:2] + (shape[2] // 2, shape[3] // 2))
    undecided = xp.repeat(xp.repeat(~exact, 2, axis=-2), 2, axis=-1)  # (N, C, H, W)
    return xp.flatnonzero(undecided.reshape(len(lo), -1).any(axis=0))


def _relaxation(layer, lo, hi):
    """The lines of the layer's activation on the boxes lo, hi (N, n_k) of its pre-activation."""
    if layer.act == "relu":
        return relu_relaxation(lo, hi)
    shape = (len(lo),) + layer.out_shape
    return pool_relaxation(lo.reshape(shape), hi.reshape(shape))


def _act_box(layer, lo, hi):
    """IBP's box of the activation's output (flat), from the box of h (flat)."""
    if layer.act == "relu":
        return _monotone_box("relu", lo, hi)
    shape = (len(lo),) + layer.out_shape
    out = [L.relu_maxpool2d_forward(v.reshape(shape))[0].reshape(len(lo), -1) for v in (lo, hi)]
    return tuple(out)


def linear_bounds(model, x, y, eps, rows=250):
    """CROWN bounds through the CNN ``model`` (or any chain ``parse`` accepts) on images x
    (N, *input_shape) in [0, 1], labels y (N,), at L-inf radius eps. rows: units back-substituted
    per pass (memory, module docstring). -> crown.LinearBounds (pre: the (lo, hi) boxes of the
    hidden pre-activations, flat (N, n_k); diff_lower (N, K): z_y - z_j >= diff_lower at every
    point of the ball, in the float32 network, +inf at j = y; verified (N,)). Raises InputError
    for bad data, eps or rows, or a network ``parse`` refuses."""
    check_batch(model, x, y)
    check_eps(eps)
    check_number("rows", rows, minimum=1, integer=True)
    chain = parse(model)
    xp, N = model.xp, len(x)
    if N == 0:  # an empty batch: empty boxes and bounds, as ``crown`` and ``ibp`` give
        empty = [xp.zeros((0, math.prod(layer.out_shape))) for layer in chain[:-1]]
        return LinearBounds([(e, e.copy()) for e in empty], xp.zeros((0, chain[-1].W.shape[0])),
                            xp.zeros(0, bool))
    x_box = box(x.reshape(N, -1), eps)
    relax, deltas, boxes = {}, {}, []
    a_lo, a_hi = x_box
    for k, layer in enumerate(chain[:-1], start=1):
        lo_in, hi_in = (v.reshape((N,) + layer.in_shape) for v in (a_lo, a_hi))
        deltas[k] = float32_error(layer.kind, lo_in, hi_in, layer.W, layer.b).reshape(N, -1)
        lo, hi = (v.reshape(N, -1) for v in _weight_box(layer.kind, lo_in, hi_in, layer.W,
                                                           layer.b))
        if k > 1:
            units = _to_bound(layer, lo, hi)
            for s in range(0, len(units), rows):
                u = units[s:s + rows]
                W = (conv_rows(layer.W, u, layer.out_shape) if layer.kind == "conv2d"
                     else layer.W[u])
                Lam, c = box_rows(W, _bias(layer)[u], deltas[k][:, u], N)
                bnd = backsubstitute(Lam, c, k - 1, chain, relax, deltas, x_box)
                lo[:, u] = xp.maximum(lo[:, u], bnd[:, :len(u)])
                hi[:, u] = xp.minimum(hi[:, u], -bnd[:, len(u):])
        boxes.append((lo, hi))
        relax[k] = _relaxation(layer, lo, hi)
        a_lo, a_hi = _act_box(layer, lo, hi)
    top, D = chain[-1], len(chain)
    deltas[D] = float32_error("dense", a_lo, a_hi, top.W, top.b)  # (N, K)
    Lam, c = margin_rows(top.W, top.b, deltas[D], y)  # (N, K, n), (N, K)
    lower = xp.maximum(backsubstitute(Lam, c, D - 1, chain, relax, deltas, x_box),
                       box_bound(Lam, c, a_lo, a_hi))  # and IBP's on the last box
    lower[xp.arange(N), y] = xp.inf
    return LinearBounds(boxes, lower, (lower > 0).all(axis=1))


def verified_fraction(model, x, y, eps, batch=1, rows=250):
    """The share of examples CROWN through the CNN proves robust at radius eps, ``batch`` examples
    per pass (memory: the module docstring). x, y on the host or the model's device. -> float in
    [0, 1]."""
    return share_verified(functools.partial(linear_bounds, rows=rows), model, x, y, eps, batch)
