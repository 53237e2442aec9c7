"""Targeted iterative attacks (section 7): Adam on the input, and scipy's L-BFGS-B.

Both minimise the cross-entropy toward a target class, C(x, y_T) = -log p_{y_T}(x), over images x in
the box [0, 1]^784, starting from a source image, and stop for a pair at the first point where the
network predicts y_T. A pair whose source is already classified as y_T succeeds at iteration 0.

The source images follow the paper: for each class, the correctly classified test image the network
is least confident on and the one it is most confident on (``select_sources``); the grid of pairs is
every source x every other class (10 x 9 = 90 pairs, ``grid_pairs``).
"""
from __future__ import annotations

import dataclasses

import numpy as np
import scipy.optimize

from nn import softmax
from nn.backend import array_module, to_device, to_host
from nn.numerics import FORWARD_NUMERICS, check_numerics
from nn.validate import InputError, check_batch, check_count, check_number

from .losses import cross_entropy, loss_and_input_gradient
from .result import TargetedResult, perturbation_norms, verdict


def _result(model, x0, x_adv, target, **records):
    """The TargetedResult of x_adv (device) for sources x0: the model's verdict
    (``attacks.result.verdict``: an InputError where the logits are not finite), the norms, the
    records; on the host."""
    success = to_host(verdict(model, x_adv) == target)
    linf, l2 = perturbation_norms(x_adv, x0)
    return TargetedResult(to_host(x_adv), success, to_host(linf), to_host(l2), **records)


# ---------------------------------------------------------------------------------------------
# Sources and pairs


def confidence(model, x, y, batch=1000):
    """log p_y(x) for each example, from the model's logits recast to float64 with the stable
    log-softmax, so that confident float32 predictions (p_y rounds to 1) still rank.

    x: (N, ...) on the model's device, y: (N,)  ->  (N,) host float64.
    """
    check_batch(model, x, y, unit_range=False)
    check_number("batch", batch, minimum=1, integer=True)
    out = []
    for i in range(0, max(len(x), 1), batch):  # one empty slice when N = 0: an empty result
        z = to_host(model.logits(x[i:i + batch]), np.float64)
        out.append(np.take_along_axis(softmax.log_softmax_stable(z),
                                      to_host(y[i:i + batch])[:, None], 1)[:, 0])
    return np.concatenate(out)


def select_sources(model, x, y, n_classes=10, batch=1000):
    """For each class c, the index of the correctly classified example of class c with the lowest
    and the highest log p_c (section 7).  -> {"least": (n_classes,), "most": (n_classes,)} host
    ints.
    """
    logp = confidence(model, x, y, batch)  # checks x, y
    y_host = to_host(y)
    pred = np.concatenate([to_host(model.predict(x[i:i + batch]))
                           for i in range(0, max(len(x), 1), batch)])
    least, most = [], []
    for c in range(n_classes):
        idx = np.flatnonzero((y_host == c) & (pred == c))
        if idx.size == 0:
            raise InputError(f"the model classifies no example of class {c} correctly; "
                             "section 7 needs one per class")
        least.append(idx[np.argmin(logp[idx])])
        most.append(idx[np.argmax(logp[idx])])
    return {"least": np.array(least), "most": np.array(most)}


def grid_pairs(n_classes=10):
    """Every (source class, target class) with target != source, source-major.  -> (P,), (P,)."""
    s, t = np.meshgrid(np.arange(n_classes), np.arange(n_classes), indexing="ij")
    keep = s != t
    return s[keep], t[keep]


# ---------------------------------------------------------------------------------------------
# Adam on the input


def _curve_iters(max_iter, n):
    """0 and about n log-spaced iterations up to max_iter, where the loss curve is recorded."""
    return np.unique(np.concatenate([[0], np.geomspace(1, max(max_iter, 1), n).astype(int)]))


@dataclasses.dataclass(frozen=True)
class TargetedAdam:
    """Minimise C(x, y_T) over x in [0, 1] by Adam on the input, projected onto the box each step.

    g_t = dC/dx (x_t),  m_t = b1 m_{t-1} + (1 - b1) g_t,  v_t = b2 v_{t-1} + (1 - b2) g_t^2,
    x_{t+1} = clip(x_t - lr * m_t / (1 - b1^{t+1}) / (sqrt(v_t / (1 - b2^{t+1})) + adam_eps), 0, 1).

    Batched over all pairs; pairs that reach the target drop out of the batch (their iterate is
    kept), so late iterations cost only the pairs still running. A pair whose gradient is exactly 0
    (float32 saturation) never moves: m = v = 0 gives a zero step. ``n_curve``: about as many
    log-spaced iterations at which the loss is recorded. ``numerics``: "float32", or "paper", the
    paper's numerics (``attacks.losses``; not "stable", whose gradient has no size for Adam's
    moments).
    >>> result = TargetedAdam(max_iter=1000, lr=0.01)(model, x0, target)
    """
    max_iter: int = 1000
    lr: float = 0.01
    betas: tuple = (0.9, 0.999)
    adam_eps: float = 1e-8
    n_curve: int = 200
    numerics: str = "float32"

    def __post_init__(self):
        check_count("max_iter", self.max_iter)
        check_number("lr", self.lr, positive=True)
        check_number("adam_eps", self.adam_eps, positive=True)
        check_number("n_curve", self.n_curve, minimum=1, integer=True)
        check_numerics(self.numerics, FORWARD_NUMERICS)
        for name, b in zip(("betas[0]", "betas[1]"), self.betas):
            check_number(name, b, maximum=1 - 1e-12)

    def __call__(self, model, x0, target):
        """x0: (P, *input_shape) source images, target: (P,) classes, both on the model's device.
        -> TargetedResult."""
        check_batch(model, x0, target, name_x="x0", name_y="target")
        max_iter, lr, eps = self.max_iter, self.lr, self.adam_eps
        xp = array_module(x0)
        P = len(x0)
        b1, b2 = self.betas
        rec = _curve_iters(max_iter, self.n_curve)
        rec_pos = {int(t): k for k, t in enumerate(rec)}
        curve = np.full((P, len(rec)), np.nan)
        iterations = np.full(P, max_iter)
        reached = np.zeros(P, bool)
        x_final = x0.copy()
        active = np.arange(P)  # host indices of the pairs still running
        x, t_a = x0.copy(), target.copy()
        m, v = xp.zeros_like(x0), xp.zeros_like(x0)
        for it in range(max_iter + 1):
            C, g, logits = loss_and_input_gradient(model, x, t_a, cross_entropy,
                                                   numerics=self.numerics, check=False)
            if it in rec_pos:
                curve[active, rec_pos[it]] = to_host(C)
            hit = to_host(logits.argmax(axis=1) == t_a)
            if hit.any() or it == max_iter or active.size == 0:
                done = hit | (it == max_iter)
                x_final[to_device(active[done], xp)] = x[to_device(np.flatnonzero(done), xp)]
                reached[active[hit]] = True
                iterations[active[hit]] = it
                keep = to_device(np.flatnonzero(~done), xp)
                active = active[~done]
                if active.size == 0:
                    break
                x, t_a, g, m, v = x[keep], t_a[keep], g[keep], m[keep], v[keep]
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * g * g
            step = (lr / (1 - b1 ** (it + 1))) * m / (xp.sqrt(v / (1 - b2 ** (it + 1))) + eps)
            x = xp.clip(x - step, 0.0, 1.0)
        return _result(model, x0, x_final, target, iterations=iterations,
                       evaluations=np.minimum(iterations, max_iter) + 1, curve=curve,
                       curve_iters=rec, stop=["target reached" if s else "budget" for s in reached])


# ---------------------------------------------------------------------------------------------
# L-BFGS-B


class _Reached(Exception):
    """Raised inside the objective to stop scipy at the first point classified as the target."""

    def __init__(self, x):
        self.x = x


def lbfgs_objective(model, target_class, shape, numerics="float32"):
    """The function scipy minimises: v (D,) host float64 -> (C(x, y_T), dC/dx (D,) host float64),
    with x = v reshaped to ``shape`` and cast to the model's dtype and device. The gradient is the
    analytic one, computed where the model lives; only the scipy boundary is host float64.
    -> (fun, last) where ``last`` holds the logits of the latest evaluation.
    """
    xp = model.xp
    t = to_device(np.array([target_class]), xp)
    last = {}

    def fun(v):
        x = to_device(v.reshape(shape), xp, model.dtype)
        C, g, logits = loss_and_input_gradient(model, x, t, cross_entropy,
                                               numerics=numerics, check=False)
        last["logits"], last["x"] = logits, x
        return float(C[0]), to_host(g, np.float64).ravel()

    return fun, last


@dataclasses.dataclass(frozen=True)
class TargetedLBFGS:
    """Minimise C(x, y_T) over the box [0, 1] with ``scipy.optimize.minimize(method="L-BFGS-B",
    jac=True)``, one pair at a time (scipy is not batched), stopping at the first evaluated point
    the network classifies as y_T; at most ``max_iter`` L-BFGS iterations per pair. ``numerics``:
    "float32", or "paper", the paper's numerics (``attacks.losses``; not "stable": L-BFGS needs the
    gradient's size).

    iterations counts L-BFGS iterations: success during iteration k (its line search included) is
    recorded as k, the source itself as 0. curve[p, k] is the loss after iteration k.
    >>> result = TargetedLBFGS(max_iter=1000)(model, x0, target)
    """
    max_iter: int = 1000
    numerics: str = "float32"

    def __post_init__(self):
        check_count("max_iter", self.max_iter)
        check_numerics(self.numerics, FORWARD_NUMERICS)

    def __call__(self, model, x0, target):
        """x0: (P, *input_shape) source images, target: (P,) classes, on the model's device.
        -> TargetedResult."""
        check_batch(model, x0, target, name_x="x0", name_y="target")
        max_iter = self.max_iter
        x0_host, t_host = to_host(x0), to_host(target)
        P, shape = len(x0_host), (1,) + x0_host.shape[1:]
        D = int(np.prod(shape))
        curve = np.full((P, max_iter + 1), np.nan)
        iterations = np.zeros(P, int)
        evaluations = np.zeros(P, int)
        x_adv = x0_host.copy()
        stop = []
        bounds = scipy.optimize.Bounds(np.zeros(D), np.ones(D))
        for p in range(P):
            fun, last = lbfgs_objective(model, int(t_host[p]), shape, self.numerics)
            state = {"it": 0, "evals": 0, "f": None}

            def counted(v):
                f, g = fun(v)
                state["evals"] += 1
                state["f"] = f
                if int(last["logits"].argmax()) == t_host[p]:
                    raise _Reached(to_host(last["x"]))
                return f, g

            def callback(intermediate_result):
                state["it"] += 1
                curve[p, state["it"]] = state["f"]

            v0 = x0_host[p].astype(np.float64).ravel()
            try:
                f0, _ = fun(v0)
                curve[p, 0] = f0
                if int(last["logits"].argmax()) == t_host[p]:
                    raise _Reached(to_host(last["x"]))
                res = scipy.optimize.minimize(counted, v0, jac=True, method="L-BFGS-B",
                                              bounds=bounds, callback=callback,
                                              options={"maxiter": max_iter})
                x_adv[p] = res.x.reshape(shape[1:]).astype(x_adv.dtype)
                iterations[p] = state["it"]
                stop.append(str(res.message))
            except _Reached as r:
                x_adv[p] = r.x[0]
                iterations[p] = state["it"] + (state["evals"] > 0)  # found inside iteration it + 1
                stop.append("target reached")
            evaluations[p] = state["evals"] + 1
        return _result(model, x0, to_device(x_adv, model.xp), target, iterations=iterations,
                       evaluations=evaluations, curve=curve,
                       curve_iters=np.arange(max_iter + 1), stop=stop)
