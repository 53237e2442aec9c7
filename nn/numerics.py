"""Float32 arithmetic that the paper's results depend on: flush-to-zero and log-domain derivatives.

Two facts of float32 decide whether a saturated network's gradient is exactly 0:

* **Rounding to 1.** sigma(h) rounds to exactly 1.0 once h > ~17.3, and p_y to exactly 1.0 once
  the logit margin exceeds ~16.6, so the paper's products y (1 - y) and p_y - 1 are exactly 0 there.
* **Underflow.** Values below the smallest *normal* float32, 2^-126 ~ 1.18e-38 (e^-87.3), are
  *subnormal* down to 2^-149 ~ 1.4e-45 (e^-103.3); below that they are 0. TensorFlow, which the
  paper used, runs its CPU threads and GPU kernels in *flush-to-zero* mode: every subnormal result
  is replaced by 0, so its gradients vanish at e^-87.3 rather than e^-103.3. numpy does not, and
  subnormal operands also make CPU arithmetic many times slower.

``flush_subnormals`` emulates flush-to-zero where subnormals arise in a network (each layer's output
and each backward product: ``nn.model.forward(..., ftz=True)`` and ``backward(..., ftz=True)``). It
works at the granularity of whole arrays: the partial sums inside one matrix product are not
flushed, which differs from hardware flush-to-zero only when many subnormal products add up to a
normal number.

``log_sigmoid_prime`` is the sigmoid's derivative in log form, which never underflows; the scaled
backward pass of ``nn.model.backward_scaled`` carries each example's signal as a direction and a
log-scale built on it, so an input gradient survives at any depth of saturation (section 7's attacks
and the audit need only its direction).
"""
from __future__ import annotations

from .backend import array_module


def smallest_normal(dtype):
    """The smallest positive normal number of a float dtype: 2^-126 (float32), 2^-1022 (float64)."""
    import numpy as np
    return float(np.finfo(dtype).tiny)


def flush_subnormals(a):
    """a with every entry of magnitude below the dtype's smallest normal number replaced by exactly 0
    (flush-to-zero, TensorFlow's float32 setting). Normal numbers, zeros, infinities and NaN pass
    unchanged. a: any float array -> a new array of the same shape and dtype."""
    xp = array_module(a)
    return a * (xp.abs(a) >= smallest_normal(a.dtype))  # NaN * False stays NaN, as it should


def log_sigmoid_prime(h):
    """log sigma'(h) = log(e / (1 + e)^2) = -|h| - 2 log1p(e),  e = exp(-|h|)  (even in h).

    Finite for every finite h in any dtype (~ -|h| for large |h|), where sigma'(h) itself underflows
    to 0 in float32 once |h| > ~103 (~87 with flush-to-zero). h: any shape -> the same shape.
    """
    xp = array_module(h)
    a = xp.abs(h)
    return -a - 2 * xp.log1p(xp.exp(-a))
