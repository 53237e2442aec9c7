"""Attack losses on the logits and their analytic input gradients, in the paper's numeric mode or a
stable one.

An attack loss maps logits z (N, K) and labels (N,) to per-example values (N,) and dL/dz (N, K).
``loss_and_input_gradient`` chains dL/dz through the network's backward pass to dL/dx.

* ``cross_entropy``: C = -log p_y (the paper's loss: FGSM ascends it with the true label, the
  targeted attacks of section 7 descend it toward the target).
* ``margin``: M = max_{j != y} z_j - z_y (Carlini-Wagner / DLR family). Its gradient e_{j*} - e_y
  never passes through a softmax, so it cannot round to 0 because p_y rounds to 1.

Numeric modes: ``stable=False`` is what the paper computed (TensorFlow's float32 derivatives:
sigmoid' = y (1 - y), dC/dz = p - onehot); ``stable=True`` computes sigmoid' from the pre-activation
and dC/dz from log-softmax (see ``nn.layers``), nonzero wherever the exact derivative is nonzero in
the dtype's range. Casting model and input to float64 is the third, slowest, mode.
"""
from __future__ import annotations

from nn import layers as L
from nn.backend import array_module
from nn.model import backward


def cross_entropy(z, y, stable=False):
    """C_n = -log p_{y_n}(z_n) and dC_n/dz_n = p_n - onehot(y_n).   z: (N, K), y: (N,) -> (N,), (N, K)."""
    C, cache = L.cross_entropy_forward(z, y, stable=stable)
    dC = array_module(z).ones_like(C)
    back = L.cross_entropy_backward_stable if stable else L.cross_entropy_backward
    return C, back(dC, cache)


def margin(z, y, stable=False):
    """M_n = max_{j != y_n} z_{n,j} - z_{n,y_n}, dM_n/dz_n = e_{j*} - e_{y_n} (j* the first maximiser).

    M_n > 0 exactly when the network misclassifies x_n (ties aside). Exact in any dtype: ``stable``
    changes nothing here and is accepted for a uniform signature.
    z: (N, K), y: (N,) -> M: (N,), dM/dz: (N, K).
    """
    xp = array_module(z)
    N, K = z.shape
    rows = xp.arange(N)
    other = xp.where(xp.arange(K) == y[:, None], -xp.inf, z)  # (N, K): the true class masked out
    j = other.argmax(axis=1)
    M = other[rows, j] - z[rows, y]
    dz = xp.zeros_like(z)
    dz[rows, j] = 1
    dz[rows, y] = -1
    return M, dz


LOSSES = {"ce": cross_entropy, "margin": margin}


def loss_and_input_gradient(model, x, labels, loss=cross_entropy, *, stable=False):
    """Per-example loss L_n(h^D(x_n), labels_n), its analytic input gradient dL_n/dx_n, and the logits.

    x: (N, *input_shape) in the model's dtype and device  ->  (L: (N,), dx: like x, logits: (N, K)).
    One forward and one backward pass; ``stable`` selects the stable derivatives everywhere.
    """
    logits, caches, _ = model.forward(x)
    value, dz = loss(logits, labels, stable=stable)
    dx, _ = backward(model.spec, caches, dz, param_grads=False, input_grad=True, stable=stable)
    return value, dx, logits
