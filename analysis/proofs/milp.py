"""Exact verification of ReLU MLPs by mixed-integer linear programming (Tjeng et al. 2019), with
``scipy.optimize.milp`` (HiGHS): for the examples the relaxations leave undecided.

For one image x with label y and radius eps, the network's behaviour on the box B (the eps-ball
intersected with [0, 1]) is encoded exactly. Variables: the input x' in B, and for each hidden layer
k the outputs a^k of its *live* units (upper bound u > 0; a unit with u <= 0 is 0 on all of B and
drops out, with its column of the next layer), and one binary z per *unstable* unit (l < 0 < u).
With the pre-activation h = W a^{k-1} + b + e, e the float32 layer's rounding, |e| <= delta:

* on (l >= 0): a = h, i.e.  b - delta <= a - W a^{k-1} <= b + delta;
* unstable: a >= h (a - W a^{k-1} >= b - delta), a >= 0, a <= u z, and a <= h - l (1 - z)
  (a - W a^{k-1} - l z <= b + delta - l).

With z binary these say a = relu(h) exactly (the big-M form, M from the bounds [l, u], which must
be sound: they come from ``analysis.proofs.crown``). The objective is the margin z_y - z_j =
(W_y - W_j) a^{D-1} + b_y - b_j, minimised for each j != y (the j with the weakest relaxation bound
first; HiGHS stops at a relative gap of ``MIP_GAP`` between its best margin and its proven lower
bound, since only the sign is needed): the example is *verified* when every minimum exceeds the
float32 rounding of the two logits plus the solver's tolerance, *falsified* when a minimiser is
misclassified by the model (checked in float32 and in float64: the counterexample is real), and
*unknown* when the time limit ends the search first (or a negative minimum's point is not
misclassified, within the solver's tolerances).

Soundness: HiGHS works in floating point with feasibility tolerances (1e-7 by default, scaled by the
constraint's size), so a "verified" verdict is as strong as those tolerances, not a proof in exact
arithmetic: ``VERIFY_MARGIN`` keeps a margin above them. A "falsified" verdict is always checked on
the model itself.
"""
from __future__ import annotations

import dataclasses
import time

import numpy as np
from scipy import sparse
from scipy.optimize import Bounds, LinearConstraint, milp

from analysis.proofs.crown import _float32_error, _mlp_parts, linear_bounds
from attacks import ball
from nn.backend import to_device, to_host
from nn.validate import InputError, check_batch, check_eps, check_number

# a minimum margin must exceed this (relative to 1 + |terms|) to count as proven
VERIFY_MARGIN = 1e-5
# HiGHS stops once its best margin and its proven lower bound are within this relative gap: only the
# sign matters (a best margin m > 0 then comes with a lower bound >= m / 2 > 0), not the optimum
MIP_GAP = 0.5


@dataclasses.dataclass
class Verdict:
    """One example: status 'verified', 'falsified' or 'unknown'; bound: the smallest proven lower
    bound of a margin z_y - z_j found (the MILP's dual bound, also where the time limit stopped it;
    when falsified, the negative margin of the counterexample; None if HiGHS gave none); the
    counterexample (host array of the input's shape) when falsified; seconds spent; the number of
    unstable units (binaries)."""
    status: str
    bound: float | None
    counterexample: np.ndarray | None
    seconds: float
    binaries: int


def _encode(weights, boxes, deltas, x_lo, x_hi):
    """The constraint matrix of the network on the box (module docstring).
    -> (A csr, lb, ub, var_lo, var_hi, integrality, last: index array of a^{D-1}'s live variables
    and the live units they are, n_binaries)."""
    rows, lbs, ubs = [], [], []
    var_lo, var_hi, integ = [x_lo], [x_hi], [np.zeros(len(x_lo))]
    prev_idx = np.arange(len(x_lo))  # variable index of each live unit of the previous layer
    prev_live = np.arange(len(x_lo))  # which units of the previous layer they are
    n = len(x_lo)
    n_bin = 0
    for k, (W, b) in enumerate(weights[:-1]):
        lo, hi = boxes[k]
        d = deltas[k]
        live = np.where(hi > 0)[0]
        on = lo[live] >= 0
        Wl = W[np.ix_(live, prev_live)]  # (live units, live inputs)
        a_idx = n + np.arange(len(live))
        n += len(live)
        unstable = np.where(~on)[0]
        z_idx = n + np.arange(len(unstable))
        n += len(unstable)
        n_bin += len(unstable)
        var_lo += [np.zeros(len(live)), np.zeros(len(unstable))]
        var_hi += [np.maximum(hi[live], 0), np.ones(len(unstable))]
        integ += [np.zeros(len(live)), np.ones(len(unstable))]
        # a - W a_prev in [b - delta, b + delta] (on)  or  >= b - delta (unstable)
        rows.append((Wl, prev_idx, a_idx, None))  # (-W on a_prev, +1 on a, -coef on z) per row
        lbs.append(b[live] - d[live])
        ubs.append(np.where(on, b[live] + d[live], np.inf))
        # unstable: a - W a_prev - l z <= b + delta - l ;  a - u z <= 0
        u_units = live[unstable]
        rows.append((Wl[unstable], prev_idx, a_idx[unstable], (z_idx, lo[u_units])))
        lbs.append(np.full(len(unstable), -np.inf))
        ubs.append(b[u_units] + d[u_units] - lo[u_units])
        rows.append((None, None, a_idx[unstable], (z_idx, hi[u_units])))
        lbs.append(np.full(len(unstable), -np.inf))
        ubs.append(np.zeros(len(unstable)))
        prev_idx, prev_live = a_idx, live
    blocks = []  # built once n, the number of variables, is known
    for Wl, pidx, aidx, extra in rows:
        m = len(aidx)
        r = np.arange(m)
        data, ri, ci = [np.ones(m)], [r], [aidx]
        if Wl is not None and Wl.size:
            rr, cc = np.nonzero(Wl)
            data.append(-Wl[rr, cc])
            ri.append(rr)
            ci.append(pidx[cc])
        if extra is not None:
            zi, coef = extra
            data.append(-coef)
            ri.append(r)
            ci.append(zi)
        entries = (np.concatenate(data), (np.concatenate(ri), np.concatenate(ci)))
        blocks.append(sparse.csr_matrix(entries, shape=(m, n)))
    A = sparse.vstack(blocks, format="csr") if blocks else sparse.csr_matrix((0, n))
    return (A, np.concatenate(lbs), np.concatenate(ubs), np.concatenate(var_lo),
            np.concatenate(var_hi), np.concatenate(integ), (prev_idx, prev_live), n_bin)


def verify_example(model, x, y, eps, time_limit=60.0, bounds=None, max_binaries=None):
    """Decide one example (x: (1, *input_shape), y: (1,)) of a ReLU MLP exactly, within time_limit
    seconds in all. ``bounds``: its ``analysis.proofs.crown.linear_bounds`` (computed if None).
    ``max_binaries``: give up at once ('unknown', with CROWN's bound) when the relaxation leaves
    more unstable units than this (each doubles the search space; on this CPU about 80 of them take
    5-50 s with the paper's width 1000, and 2,000 make no progress in minutes). -> Verdict."""
    check_batch(model, x, y)
    check_eps(eps)
    check_number("time_limit", time_limit, minimum=0)
    if len(x) != 1:
        raise InputError(f"x has {len(x)} examples; verify_example decides one, "
                         "x of shape (1, ...)")
    weights, acts = _mlp_parts(model)
    if any(a != "relu" for a in acts):
        raise InputError(f"the MILP encoding is exact for ReLU MLPs only; this one has {acts}")
    t0 = time.perf_counter()
    lb = bounds if bounds is not None else linear_bounds(model, x, y, eps)
    if bool(to_host(lb.verified)[0]):
        return Verdict("verified", float(np.min(to_host(lb.diff_lower)[0])), None,
                       time.perf_counter() - t0, 0)
    host = [(to_host(W), to_host(b)) for W, b in weights]
    boxes = [(to_host(lo)[0], to_host(hi)[0]) for lo, hi in lb.pre]
    x_lo, x_hi = (to_host(a)[0] for a in ball.box(x.reshape(1, -1), eps))
    deltas, a_lo, a_hi = [], x_lo, x_hi
    for (W, b), box in zip(host, boxes + [None]):  # each weight layer's rounding, on its input box
        deltas.append(_float32_error(W, b, a_lo[None], a_hi[None])[0])
        if box is not None:
            a_lo, a_hi = np.maximum(box[0], 0), np.maximum(box[1], 0)
    A, c_lo, c_hi, v_lo, v_hi, integ, (last_idx, last_live), n_bin = _encode(
        host, boxes, deltas, x_lo, x_hi)
    if max_binaries is not None and n_bin > max_binaries:
        return Verdict("unknown", float(np.min(to_host(lb.diff_lower)[0])), None,
                       time.perf_counter() - t0, n_bin)
    A_one = sparse.hstack([A, sparse.csr_matrix((A.shape[0], 1))], format="csr")
    integ_one, lo_one, hi_one = np.append(integ, 0), np.append(v_lo, 1.0), np.append(v_hi, 1.0)
    W, b = host[-1]
    yy = int(to_host(y)[0])
    order = [j for j in np.argsort(to_host(lb.diff_lower)[0]) if j != yy]
    best = np.inf
    for j in order:
        left = time_limit - (time.perf_counter() - t0)
        if left <= 0:
            return Verdict("unknown", None if best == np.inf else best, None,
                           time.perf_counter() - t0, n_bin)
        cost = np.zeros(A.shape[1] + 1)  # the last variable is fixed at 1 and carries the constant
        row = W[yy, last_live] - W[j, last_live]
        cost[last_idx] = row
        # the objective is the margin itself
        cost[-1] = b[yy] - b[j] - deltas[-1][yy] - deltas[-1][j]
        res = milp(cost, constraints=[LinearConstraint(A_one, c_lo, c_hi)], integrality=integ_one,
                   bounds=Bounds(lo_one, hi_one),
                   options={"time_limit": max(left, 0.01), "disp": False, "mip_rel_gap": MIP_GAP})
        if res.x is not None and res.fun < 0:
            # the attacks' ball
            xc = ball.project(res.x[:len(x_lo)], to_host(x).reshape(-1), eps).reshape(x.shape)
            xd = to_device(xc, model.xp, model.dtype)
            fooled = (to_host(model.predict(xd))[0] != yy
                      and to_host(model.astype(np.float64).predict(xd.astype(np.float64)))[0] != yy)
            if fooled:
                return Verdict("falsified", float(res.fun), xc, time.perf_counter() - t0, n_bin)
            return Verdict("unknown", float(res.fun), None, time.perf_counter() - t0, n_bin)
        dual = getattr(res, "mip_dual_bound", None)
        if dual is None or not np.isfinite(dual):
            return Verdict("unknown", None, None, time.perf_counter() - t0, n_bin)
        margin = dual  # a proven lower bound of this margin, also when the time ran out
        if res.status != 0:
            return Verdict("unknown", float(min(best, margin)), None,
                           time.perf_counter() - t0, n_bin)
        # too close to 0 to call
        if margin <= VERIFY_MARGIN * (1 + np.abs(row).sum() + abs(b[yy] - b[j])):
            return Verdict("unknown", float(margin), None, time.perf_counter() - t0, n_bin)
        best = min(best, margin)
    return Verdict("verified", float(best), None, time.perf_counter() - t0, n_bin)
