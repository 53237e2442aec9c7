"""The numerics modes, and the float32 arithmetic that the paper's results depend on.

One keyword, ``numerics=``, names the arithmetic of a gradient wherever one is computed (``NUMERICS``):

* ``"paper"``: float32 as TensorFlow computed it for the paper: the derivatives y (1 - y) of the
  sigmoid and p - onehot(y) of the cross-entropy, which round to exactly 0 in saturation, with
  flush-to-zero of subnormal results (below).
* ``"float32"``: the same derivatives in numpy's float32, subnormals kept (the default).
* ``"stable"``: the scaled stable input gradient (``nn.model.backward_scaled``): each example's
  signal carried as a direction and a log-magnitude, exact in direction at any depth of saturation.
  A mode of input gradients only: a forward pass, training and Adam compute in "paper" or "float32"
  (``FORWARD_NUMERICS``).

float64 is a dtype, not a mode: cast the model and the input (``model.astype(np.float64)``).

Float32 facts that decide whether a saturated network's gradient is exactly 0. Each is a constant
here that tests/test_numerics.py recomputes from the code's own arithmetic:

* **Rounding to 1.** The code's sigma(h) = 1 / (1 + e), e = exp(-h) (``nn.layers.sigmoid``), is
  exactly 1.0 once 1 + e rounds to 1, e <= 2^-24: from h = 24 ln 2 ~ 16.64 on (``SIGMOID_ONE``;
  a correctly rounded sigma would reach 1 only past 25 ln 2 ~ 17.33). There the paper's y (1 - y) and
  the penalty's s (1 - s) are exactly 0. Likewise p_y rounds to 1, and p_y - 1 is exactly 0, once the
  other classes' share sum_{j != y} exp(z_j - z_y) is at most 2^-24 (one runner-up: a logit margin of
  16.64, ``P_Y_ONE_MARGIN``) where the largest logit is 0; the log-softmax rounds z_y + log-sum-exp
  where it keeps the rounding of recorded numbers, so a larger largest logit brings it earlier
  (``nn.softmax.log_softmax``: from 14.44 for logits (d, 0), from 11.09 for top logits of 500 and more).
* **Underflow.** float32's smallest normal number is 2^-126 ~ e^-87.34 (``LOG_SMALLEST_NORMAL``),
  its smallest subnormal 2^-149 ~ e^-103.28 (``LOG_SMALLEST_SUBNORMAL``), and exp(-a) rounds to 0
  once it is below half of that, a > 150 ln 2 ~ 103.97 (``EXP_UNDERFLOW``). So sigma(h) for h <
  -103.97, the stable sigma'(h) = e / (1 + e)^2 for |h| > 103.97 and p_j for a margin over 103.97
  are exactly 0. TensorFlow, which the paper used, runs its CPU threads and GPU kernels in
  *flush-to-zero* mode: every subnormal result is replaced by 0, so its values vanish below
  e^-87.34 instead (``FTZ_UNDERFLOW``, |h| or margin > 87.34). numpy keeps subnormals, and subnormal
  operands also make CPU arithmetic many times slower.

``flush_subnormals`` emulates flush-to-zero where subnormals arise in a network (each layer's output
and each backward product in the "paper" mode, ``nn.model.forward`` and ``nn.model.backward``). It
works at the granularity of whole arrays: the partial sums inside one matrix product are not
flushed, which differs from hardware flush-to-zero only when many subnormal products add up to a
normal number.

``log_sigmoid_prime`` is the sigmoid's derivative in log form, which never underflows; the scaled
backward pass of ``nn.model.backward_scaled`` carries each example's signal as a direction and a
log-scale built on it, so an input gradient survives at any depth of saturation (section 7's attacks
and the audit need only its direction).
"""
from __future__ import annotations

import math

from .backend import array_module
from .validate import InputError

NUMERICS = ("paper", "float32", "stable")
FORWARD_NUMERICS = ("paper", "float32")  # the modes of a forward pass, of training and of Adam

# float32 thresholds, in units of the argument (h, or a logit margin); tests/test_numerics.py finds
# each from the code's arithmetic
SIGMOID_ONE = 24 * math.log(2)  # ~16.64: sigmoid(h) == 1.0 exactly for float32 h >= this
P_Y_ONE_MARGIN = 24 * math.log(2)  # ~16.64: p_y == 1.0 from this margin on (one runner-up, largest logit 0)
LOG_SMALLEST_NORMAL = -126 * math.log(2)  # ~ -87.34: log of 2^-126
LOG_SMALLEST_SUBNORMAL = -149 * math.log(2)  # ~ -103.28: log of 2^-149
FTZ_UNDERFLOW = -LOG_SMALLEST_NORMAL  # ~87.34: exp(-a) is subnormal, so 0 under flush-to-zero, for a > this
EXP_UNDERFLOW = 150 * math.log(2)  # ~103.97: exp(-a) rounds to 0 in float32 for a > this


def check_numerics(numerics, allowed=NUMERICS, name="numerics"):
    """``numerics`` must be one of ``allowed`` (``NUMERICS``, or ``FORWARD_NUMERICS`` where only a
    forward pass or training is computed). -> numerics; an InputError naming ``name`` otherwise."""
    if isinstance(numerics, str) and numerics in allowed:
        return numerics
    why = ""
    if numerics == "stable":
        why = ("; 'stable' is the scaled input gradient (nn.model.backward_scaled), a direction without its "
               "size: no mode of a forward pass, of training, of Adam or of an attack that needs the size")
    raise InputError(f"{name} must be one of {', '.join(map(repr, allowed))}, got {numerics!r}{why}")


def upgrade_settings(d):
    """A settings dict (a ``TrainConfig``'s, an objective's) written before the numerics had one name, in
    today's words: ``"ftz": true / false`` -> ``"numerics": "paper" / "float32"``, the penalty's
    ``"derivative": "paper" / "stable"`` -> ``"autodiff" / "closed_form"``. Today's dicts pass
    unchanged. The one place where the old words are read. -> a new dict."""
    d = dict(d)
    if "ftz" in d:
        ftz = d.pop("ftz")
        d.setdefault("numerics", "paper" if ftz else "float32")
    if d.get("derivative") in _OLD_DERIVATIVES:
        d["derivative"] = _OLD_DERIVATIVES[d["derivative"]]
    return d


_OLD_DERIVATIVES = {"paper": "autodiff", "stable": "closed_form"}


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
    to 0 in float32 once |h| > 103.97 (``EXP_UNDERFLOW``; 87.34 with flush-to-zero). h: any shape ->
    the same shape.
    """
    xp = array_module(h)
    a = xp.abs(h)
    return -a - 2 * xp.log1p(xp.exp(-a))
