"""alpha-CROWN for ReLU MLPs (Xu et al. 2021, "Fast and complete: enabling complete neural network
verification with rapid and massively parallel incomplete verifiers", ICLR; their "optimized
CROWN"): CROWN (``analysis.proofs.crown``) with the lower lines of the unstable ReLUs optimised
per example.

CROWN encloses a ReLU whose pre-activation box straddles 0 (l < 0 < u) between a lower line
alpha h and the chord s h + t, s = u / (u - l), t = -l u / (u - l). Any alpha in [0, 1] gives a
sound lower line (alpha h <= relu(h) for every h); CROWN takes alpha = 1 if u >= -l, else 0.
alpha-CROWN makes each such alpha a parameter in [0, 1] and maximises the bound it gives:

* the margins z_y - z_j of each example have their own alphas, one per unstable unit of every
  hidden layer j: alpha^{D,j}, (N, K, n_j);
* so do the bounds of each hidden layer k >= 2, whose box [l^k, u^k] sets the chords the layers
  above use: alpha^{k,j}, (N, 2 m_k, n_j), j < k, the rows of +h^k_i and -h^k_i for the m_k units
  CROWN leaves unstable in some example of the batch. Such a unit's box is the back-substituted
  bound intersected with IBP's (CROWN's rule); every other unit keeps CROWN's box, as does a unit
  CROWN proves stable in that example. Layer 1's box is IBP's, exact up to rounding.

Objective, per example (the examples' alphas are independent): J = sum_{j != y} L_j, L_j the lower
bound of z_y - z_j back-substituted with the current alphas and boxes (``crown.backsubstitute``).
Through hidden layer k a row's coefficients Lam^k on a^k become, with [.]_+ and [.]_- the positive
and negative parts, delta^k the float32 error bound of weight layer k, m and r the input box's
centre and radius,

    Lam'^k = [Lam^k]_+ alpha_k + [Lam^k]_- s_k                         (on h^k)
    c     += [Lam^k]_- t_k + Lam'^k b^k - |Lam'^k| delta^k,    Lam^{k-1} = Lam'^k W^k,
    L      = c + Lam^0 m - |Lam^0| r.

L is linear in each of its own alphas, and piecewise multilinear in them jointly: an alpha of
layer k moves the coefficients, and their signs, of every layer below. Its gradient is the reverse
pass of these lines, from the input up (G the adjoint of Lam'^k, g that of Lam^k, row by row):

    g^0 = m - sign(Lam^0) r,            G^k = g^{k-1} (W^k)^T + b^k - sign(Lam'^k) delta^k,
    dL/dalpha_k = [Lam^k]_+ G^k         (each row its own alphas; 0 for a stable unit),
    dL/ds_k = sum_rows [Lam^k]_- G^k,   dL/dt_k = sum_rows [Lam^k]_-    (the rows share the chord),
    g^k = 1[Lam^k > 0] alpha_k G^k + 1[Lam^k < 0] (s_k G^k + t_k).

The chord of an unstable unit depends on its box, dL/dl = u (dL/ds - u dL/dt) / (u - l)^2 and
dL/du = -l (dL/ds - l dL/dt) / (u - l)^2, and the box on the bounds of the rows of h^k: dl = dL+
where the +h row's bound is at least IBP's lower end, du = -dL- where minus the -h row's bound is
at most IBP's upper end (at a tie the derivative is the bound's, the side on which the box can
move). So the gradient is taken from the top down: the margins' pass gives the box adjoints
dJ/dl^j, dJ/du^j of every layer below, then the pass of layer D-1's box, weighted by its adjoints,
adds to those of the layers below it, and so on to layer 2. Left out of the gradient (not of the
bound): each bound's float64 widening (relative ~1e-13), the chord's rounding slack 4 u64 (u - l).

Ascent: Adam (Kingma & Ba 2015, beta1 0.9, beta2 0.999, eps 1e-8) on J with step size ``lr``,
every alpha clipped to [0, 1] after each of the ``steps`` steps, from CROWN's alphas (the first
evaluation is CROWN's bound, up to float64 rounding). Every evaluation gives sound bounds, so the
result keeps per margin the largest lower bound seen, and the larger of that and CROWN's (itself
never below IBP's), and per unit the tightest box seen: never looser than CROWN. steps = 0 is
CROWN.

Soundness in floating point: CROWN's (``crown`` module docstring). The bounds are
``crown.backsubstitute``'s, widened for the float32 network and the float64 arithmetic; an alpha
enters them as a chord's slope does. The float32 error bounds delta^k are those CROWN computed from
its boxes, which hold every float32 activation whatever the alphas: constants here.

Only ReLU MLPs: a sigmoid MLP or a CNN is refused with an InputError.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from analysis.proofs import crown
from analysis.proofs.crown import (LinearBounds, Relaxation, backsubstitute, box_rows,
                                   mlp_activations, propagate, relu_relaxation, unstable)
from nn.backend import array_module, to_device
from nn.validate import InputError, check_batch, check_eps, check_number

BETA1, BETA2, ADAM_EPS = 0.9, 0.999, 1e-8  # Adam's defaults (Kingma & Ba 2015, Algorithm 1)


@dataclasses.dataclass
class Problem:
    """One batch's alpha-CROWN problem: CROWN's result (crown.LinearBounds) and the Relaxation it
    was computed from (``crown.propagate``), the labels y (N,), and units {k: indices of the units
    of hidden layer k >= 2 whose box is optimised (unstable under CROWN in some example)}."""
    crown: LinearBounds
    relaxation: Relaxation
    y: object
    units: dict


def _check_relu_mlp(model):
    """An InputError unless ``model`` is a ReLU MLP."""
    acts = mlp_activations(model)
    if acts is None or any(a != "relu" for a in acts):
        raise InputError("alpha-CROWN here bounds ReLU MLPs only (flatten, dense and relu layers "
                         f"alternating, a dense readout); got layers "
                         f"{[layer['type'] for layer in model.spec['layers']]}")


def setup(model, x, y, eps):
    """CROWN on the batch and what alpha-CROWN optimises from it. x: (N, *input_shape) in [0, 1],
    y: (N,), eps in [0, 1]. -> Problem. Raises InputError for bad data or eps, and for a network
    other than a ReLU MLP."""
    check_batch(model, x, y)
    check_eps(eps)
    _check_relu_mlp(model)
    base, relaxation = propagate(model, x, y, eps)
    xp = model.xp
    units = {k: xp.flatnonzero(unstable(*base.pre[k - 1]).any(axis=0))
             for k in range(2, len(relaxation.weights))}
    return Problem(base, relaxation, y, units)


def initial_alphas(problem):
    """CROWN's lower slopes (1 if u >= -l else 0, and 0 or 1 for a stable unit), one copy per row.
    -> {(k, j): (N, rows, n_j)}: k = D the margins (K rows), 2 <= k < D the box of h^k
    (2 m_k rows), 1 <= j < k the hidden layer whose slopes they are; a box with no unit to
    optimise (m_k = 0) has none."""
    R = problem.relaxation
    D, N = len(R.weights), len(problem.y)
    rows = {D: R.margin[0].shape[1], **{k: 2 * len(u) for k, u in problem.units.items()}}
    xp = array_module(R.margin[0])
    return {(k, j): xp.broadcast_to(R.relax[j][0][:, None, :], (N, m) + R.relax[j][0].shape[1:])
            .copy() for k, m in rows.items() if m for j in range(1, k)}


def _lines(lines, box, alpha):
    """A layer's lines with alpha (N, m, n) as the lower slope of its unstable units."""
    a_lo, b_lo, a_hi, b_hi = lines
    xp = array_module(alpha)
    return xp.where(unstable(*box)[:, None, :], alpha, a_lo[:, None, :]), b_lo, a_hi, b_hi


def _tighten(problem, k, bnd):
    """The box of h^k from its rows' bounds bnd (N, 2 m_k) (module docstring). -> ((lo, hi),
    (d lo / d bnd+, -d hi / d bnd-)), the derivatives 0 or 1, (N, m_k) each."""
    xp = array_module(bnd)
    lo, hi = (a.copy() for a in problem.crown.pre[k - 1])
    ilo, ihi = problem.relaxation.ibp[k - 1]
    u = problem.units[k]
    free = unstable(lo[:, u], hi[:, u])  # units CROWN proves stable keep CROWN's box
    new_lo, new_hi = bnd[:, :len(u)], -bnd[:, len(u):]
    take_lo, take_hi = free & (new_lo >= ilo[:, u]), free & (new_hi <= ihi[:, u])
    lo[:, u] = xp.where(free, xp.maximum(ilo[:, u], new_lo), lo[:, u])
    hi[:, u] = xp.where(free, xp.minimum(ihi[:, u], new_hi), hi[:, u])
    return (lo, hi), (take_lo, take_hi)


def _reverse(trace, weight, rel, R):
    """The gradient of sum_rows weight * L over one back-substitution (module docstring: g, G).
    trace: its record (``crown.backsubstitute``), weight: (N, m), rel: its lines by layer.
    -> {j: (dJ/dalpha_j (N, m, n_j), dJ/ds_j (N, n_j), dJ/dt_j (N, n_j))}."""
    xp = array_module(weight)
    w = weight[..., None]  # (N, m, 1)
    lo, hi = R.x_box
    mid, rad = (lo + hi) / 2, (hi - lo) / 2
    g = w * (mid[:, None, :] - xp.sign(trace[-1]) * rad[:, None, :])  # dJ/dLam^0 (N, m, n_0)
    top, out = len(trace) - 1, {}
    for j in range(1, top + 1):
        Lam, Lam_h = trace[top - j]  # on a^j and on h^j
        W, b = R.weights[j - 1]
        # dJ/dLam'^j (N, m, n_j); d|v|/dv = sign(v), 0 at 0 (where the term |v| delta is 0)
        G = g @ W.T + w * (b - xp.sign(Lam_h) * R.deltas[j][:, None, :])
        a_lo, b_lo, a_hi, b_hi = rel[j]
        neg = xp.minimum(Lam, 0)
        out[j] = (xp.maximum(Lam, 0) * G, (neg * G).sum(axis=1), (neg * w).sum(axis=1))
        if j < top:  # dJ/dLam^j
            g = (xp.where(Lam > 0, a_lo * G + w * b_lo[:, None, :], 0.0)
                 + xp.where(Lam < 0, a_hi[:, None, :] * G + w * b_hi[:, None, :], 0.0))
    return out


def _chord_gradient(lo, hi, ds, dt):
    """(dJ/dl, dJ/du) of the unstable units through the chord's slope s and intercept t
    (module docstring), 0 for the stable ones. All (N, n)."""
    xp = array_module(lo)
    free = unstable(lo, hi)
    width2 = xp.where(free, hi - lo, 1.0) ** 2
    return (xp.where(free, hi * (ds - hi * dt) / width2, 0.0),
            xp.where(free, -lo * (ds - lo * dt) / width2, 0.0))


def evaluate(problem, alphas, gradient=True):
    """The bounds at the given alphas and, with ``gradient``, the gradient of the objective
    J = sum_n sum_{j != y_n} L_nj (module docstring). alphas: like ``initial_alphas``, in [0, 1].
    -> (L (N, K) the margins' lower bounds, sound for the float32 network (the row j = y
    meaningless), boxes [(lo, hi)] (N, n_k) per hidden layer, {(k, j): dJ/dalpha} or None)."""
    R, y = problem.relaxation, problem.y
    D = len(R.weights)
    xp = array_module(R.margin[0])
    boxes, relax, passes = list(problem.crown.pre), dict(R.relax), {}
    for k in range(2, D + 1):
        if k < D and not len(problem.units[k]):
            continue
        rel = {j: _lines(relax[j], boxes[j - 1], alphas[(k, j)]) for j in range(1, k)}
        if k == D:
            Lam, c = R.margin
        else:
            u, (W, b) = problem.units[k], R.weights[k - 1]
            Lam, c = box_rows(W[u], b[u], R.deltas[k][:, u], len(y))
        trace = [] if gradient else None
        bnd = backsubstitute(Lam, c, k - 1, R.weights, rel, R.deltas, R.x_box, trace)
        passes[k] = (rel, trace, bnd)
        if k < D:
            boxes[k - 1], take = _tighten(problem, k, bnd)
            relax[k] = relu_relaxation(*boxes[k - 1])
            passes[k] += (take,)
    lower = passes[D][2]
    if not gradient:
        return lower, boxes, None
    dbox = {j: [xp.zeros_like(lo), xp.zeros_like(lo)] for j, (lo, _) in enumerate(boxes, 1)}
    grads = {}
    for k in sorted(passes, reverse=True):  # the margins, then the boxes from the top down
        rel, trace, bnd = passes[k][:3]
        if k == D:
            weight = (xp.arange(lower.shape[1])[None] != y[:, None]).astype(np.float64)
        else:
            u, (take_lo, take_hi) = problem.units[k], passes[k][3]
            weight = xp.concatenate([xp.where(take_lo, dbox[k][0][:, u], 0.0),
                                     xp.where(take_hi, -dbox[k][1][:, u], 0.0)], axis=1)
        for j, (dalpha, ds, dt) in _reverse(trace, weight, rel, R).items():
            grads[(k, j)] = xp.where(unstable(*boxes[j - 1])[:, None, :], dalpha, 0.0)
            dl, du = _chord_gradient(*boxes[j - 1], ds, dt)
            dbox[j][0] += dl
            dbox[j][1] += du
    return lower, boxes, grads


def optimise(problem, steps=20, lr=0.1):
    """Projected Adam ascent on J from CROWN's alphas (module docstring): ``steps`` steps of size
    lr, alpha clipped to [0, 1] after each. -> crown.LinearBounds: pre the tightest boxes seen,
    diff_lower (N, K) the largest sound lower bounds of z_y - z_j seen, never below CROWN's
    (+inf at j = y), verified (N,) bool."""
    base, y = problem.crown, problem.y
    alphas = initial_alphas(problem)
    moments = {key: (0.0, 0.0) for key in alphas}
    best, pre = base.diff_lower.copy(), list(base.pre)
    xp = array_module(best)
    for t in range(1, steps + 2):
        lower, boxes, grads = evaluate(problem, alphas, gradient=t <= steps)
        best = xp.maximum(best, lower)
        pre = [(xp.maximum(lo, a), xp.minimum(hi, b)) for (lo, hi), (a, b) in zip(pre, boxes)]
        for key in (alphas if t <= steps else ()):  # Adam (Kingma & Ba 2015, Algorithm 1)
            m1, m2 = moments[key]
            g = grads[key]
            m1, m2 = BETA1 * m1 + (1 - BETA1) * g, BETA2 * m2 + (1 - BETA2) * g * g
            moments[key] = m1, m2
            step = (m1 / (1 - BETA1 ** t)) / (xp.sqrt(m2 / (1 - BETA2 ** t)) + ADAM_EPS)
            alphas[key] = xp.clip(alphas[key] + lr * step, 0.0, 1.0)
    best[xp.arange(len(y)), y] = xp.inf
    return LinearBounds(pre, best, (best > 0).all(axis=1))


def _check_settings(steps, lr):
    check_number("steps", steps, minimum=0, integer=True)
    check_number("lr", lr, positive=True)


def linear_bounds(model, x, y, eps, steps=20, lr=0.1):
    """alpha-CROWN bounds for the ReLU MLP ``model`` on images x (N, *input_shape) in [0, 1], labels
    y (N,), at L-inf radius eps: ``setup`` then ``optimise``. -> crown.LinearBounds (pre: (N, n_k)
    boxes; diff_lower: (N, K), z_y - z_j >= diff_lower for every point of the ball, in the float32
    network; verified: (N,)). steps: Adam steps, a whole number >= 0 (0: CROWN); lr > 0: their size
    on alphas in [0, 1]. Raises InputError for bad data, eps, steps or lr, or a network other than
    a ReLU MLP. Memory: a few float64 arrays (N, 2 n_k, n_j) per hidden layer k >= 2 and j < k
    (the back-substitution, its record and gradient, the alphas and Adam's moments)."""
    _check_settings(steps, lr)
    return optimise(setup(model, x, y, eps), steps, lr)


def verified_fraction(model, x, y, eps, batch=25, steps=20, lr=0.1):
    """The share of examples alpha-CROWN proves robust at radius eps. CROWN
    (``crown.linear_bounds``) runs on every batch first; only the examples it leaves unproved are
    optimised (a proof cannot be lost), again in batches of ``batch``. x, y on the host or the
    model's device. -> float in [0, 1]. Raises InputError as ``linear_bounds``, and for an empty x
    or a bad batch."""
    check_number("batch", batch, minimum=1, integer=True)
    _check_settings(steps, lr)
    if len(x) == 0:
        raise InputError("x is an empty batch (N = 0); a verified fraction is a mean over examples")
    xp = model.xp
    x, y = to_device(x, xp, model.dtype), to_device(y, xp)
    check_batch(model, x, y)
    check_eps(eps)
    _check_relu_mlp(model)
    done = xp.concatenate([crown.linear_bounds(model, x[i:i + batch], y[i:i + batch], eps).verified
                           for i in range(0, len(x), batch)])
    todo = xp.flatnonzero(~done)
    n = int(done.sum())
    for i in range(0, len(todo), batch):
        part = todo[i:i + batch]
        n += int(linear_bounds(model, x[part], y[part], eps, steps, lr).verified.sum())
    return n / len(x)
