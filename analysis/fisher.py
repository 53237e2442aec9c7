"""Section 6, eqs. 10-13: the Fisher information metric of the softmax output, pulled back to the
input space through the analytic Jacobian, along straight paths between images (Figure 4).

Never a D x D matrix where a K x D factor suffices (K = 10 classes, D = 784 pixels):
G^F = diag(p) - p p^T factors as A^T A with A = diag(sqrt p) - sqrt(p) p^T (because sum_k p_k = 1),
so G^in = J^T G^F J = B^T B with B = A J (K x D): its nonzero spectrum is that of B B^T (K x K),
and dx^T G^in dx = ||B dx||^2 = ||A (J dx)||^2.
"""
from __future__ import annotations

import numpy as np

from nn.softmax import softmax
from nn.backend import array_module, to_device, to_host
from nn.validate import check_images, check_number


def fisher_metric_logits(p):
    """G^F = diag(p) - p p^T (eq. 11): the Fisher metric of the categorical output in logit
    coordinates, equal to the Hessian of the cross-entropy in the logits.
    p: (N, K) -> (N, K, K)."""
    xp = array_module(p)
    return p[:, :, None] * xp.eye(p.shape[1], dtype=p.dtype) - p[:, :, None] * p[:, None, :]


def fisher_sqrt(p):
    """A = diag(sqrt p) - sqrt(p) p^T, with A^T A = G^F (eq. 11 as a factor: ``length_element`` and
    ``pullback_factor`` use it, never the dense G^F).  p: (N, K) -> (N, K, K)."""
    xp = array_module(p)
    s = xp.sqrt(p)
    return s[:, :, None] * xp.eye(p.shape[1], dtype=p.dtype) - s[:, :, None] * p[:, None, :]


def pullback_factor(J, p):
    """B = A J with B^T B = G^in = J^T G^F J (eq. 12).  J: (N, K, D), p: (N, K) -> (N, K, D)."""
    return fisher_sqrt(p) @ J


def pullback_metric(J, p):
    """G^in = J^T G^F J as a dense (N, D, D) array: for tests and small inputs only."""
    return J.transpose(0, 2, 1) @ fisher_metric_logits(p) @ J


def length_element(J, p, v):
    """dl = sqrt(v^T G^in v) = ||A (J v)|| (eq. 13, through eqs. 11-12 in factored form:
    G^in = J^T A^T A J), per example.  J: (N, K, D), p: (N, K), v: (N, D) or (D,) -> (N,)."""
    xp = array_module(J)
    v = xp.broadcast_to(v, (J.shape[0], J.shape[2]))
    Jv = (J @ v[:, :, None])[:, :, 0]  # (N, K)
    return xp.sqrt((((fisher_sqrt(p) @ Jv[:, :, None])[:, :, 0]) ** 2).sum(axis=1))


def singular_values(M):
    """Singular values of each (K, D) matrix of M: (N, K, D), descending, from the eigenvalues of
    the K x K Gram matrix M M^T computed in float64.  -> (N, K).  (Values below ~1e-8 of the largest
    are rounding noise of the squaring.)"""
    xp = array_module(M)
    M = M.astype(xp.float64)
    ev = xp.linalg.eigvalsh(M @ M.transpose(0, 2, 1))  # (N, K), ascending
    return xp.sqrt(xp.maximum(ev, 0.0))[:, ::-1]


def pullback_spectrum(J, p):
    """The K largest eigenvalues of G^in = the squared singular values of B = A J.  -> (N, K).
    One of them is always ~0: G^F annihilates the all-ones direction of the logits."""
    return singular_values(pullback_factor(J, p)) ** 2


def kl_divergence(p, q):
    """KL(p || q) = sum_k p_k (log p_k - log q_k) per row, from probabilities, with 0 log 0 = 0: a
    class to which p gives no mass adds nothing, whatever q gives it (a float32 softmax rounds many
    to 0), and a class with p_k > 0 = q_k adds +inf.  p, q: (N, K) arrays or nested
    lists -> (N,)."""
    xp = array_module(p, q)
    p, q = xp.asarray(p), xp.asarray(q)
    mass = p > 0
    # 0 (0 - 0) where p_k = 0
    return (p * (xp.log(xp.where(mass, p, 1)) - xp.log(xp.where(mass, q, 1)))).sum(axis=1)


def interpolation_path(x_a, x_b, n):
    """x(t) = (1 - t) x_a + t x_b at n evenly spaced t in [0, 1] (eq. 13's straight path).
    -> (t: (n,) host, x: (n, *x_a.shape))."""
    xp = array_module(x_a)
    t = np.linspace(0.0, 1.0, n)
    tt = to_device(t, xp, x_a.dtype).reshape((n,) + (1,) * x_a.ndim)
    return t, (1 - tt) * x_a[None] + tt * x_b[None]


def path_geometry(model, x_a, x_b, n=200):
    """The whole path in one batched call: probabilities, length element dl/dt = sqrt(v^T G^in v)
    with v = x_b - x_a, and the singular values of J, at n points of the straight path from x_a to
    x_b.

    x_a, x_b: (*input_shape) on the model's device  ->  dict of host arrays
    t (n,), p (n, K), dl (n,), sv (n, K), and the path length sum(dl) dt (trapezoid).
    """
    for name, end in (("x_a", x_a), ("x_b", x_b)):
        check_images(model, end[None] if hasattr(end, "ndim") else end, name, unit_range=False)
    check_number("n", n, minimum=2, integer=True)
    t, x = interpolation_path(x_a, x_b, n)
    p = softmax(model.logits(x))
    J = model.jacobian(x)  # (n, K, D)
    v = (x_b - x_a).reshape(-1)
    dl = length_element(J, p, v)
    dl_h = to_host(dl, np.float64)
    return {"t": t, "p": to_host(p, np.float64), "dl": dl_h, "sv": to_host(singular_values(J)),
            "length": float(np.trapezoid(dl_h, t))}
