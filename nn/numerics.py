"""The numerics modes, and the float32 arithmetic that the paper's results depend on.

One keyword, ``numerics=``, names the arithmetic of a gradient wherever one is computed
(``NUMERICS``):

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
  a correctly rounded sigma would reach 1 only past 25 ln 2 ~ 17.33). There the paper's y (1 - y)
  and the penalty's s (1 - s) are exactly 0. Likewise p_y rounds to 1, and p_y - 1 is exactly 0,
  once the other classes' share sum_{j != y} exp(z_j - z_y) is at most 2^-24 (one runner-up: a logit
  margin of 16.64, ``P_Y_ONE_MARGIN``) where the largest logit is 0; the log-softmax rounds
  z_y + log-sum-exp where it keeps the rounding of recorded numbers, so a larger largest logit
  brings it earlier (``nn.softmax.log_softmax``: from 14.44 for logits (d, 0), from 11.09 for top
  logits of 500 and more).
* **Underflow.** float32's smallest normal number is 2^-126 ~ e^-87.34 (``LOG_SMALLEST_NORMAL``),
  its smallest subnormal 2^-149 ~ e^-103.28 (``LOG_SMALLEST_SUBNORMAL``), and exp(-a) rounds to 0
  once it is below half of that, a > 150 ln 2 ~ 103.97 (``EXP_UNDERFLOW``). So sigma(h) for h <
  -103.97, the stable sigma'(h) = e / (1 + e)^2 for |h| > 103.97 and p_j for a margin over 103.97
  are exactly 0. TensorFlow, which the paper used, runs its CPU threads and GPU kernels in
  *flush-to-zero* mode: every subnormal result is replaced by 0, so its values vanish below
  e^-87.34 instead (``FTZ_UNDERFLOW``, |h| or margin > 87.34). numpy keeps subnormals, and subnormal
  operands also make CPU arithmetic many times slower.

**On the GPU the hardware flushes.** CuPy compiles every kernel with ``-ftz=true``
(``cupy/cuda/compiler.py``), as TensorFlow's GPU kernels were: float32 results below 2^-126 are 0
and subnormal operands are read as 0 (measured with CuPy 14 on an NVIDIA H200: exp(-90) -> 0, 2^-130
times 1 -> 0). There the "float32" mode cannot keep subnormals and computes, in every elementwise
step, what "paper" computes; ``flushes_subnormals`` measures it, and ``experiments.lib.evaluation``
reports no float32 numbers on such a device rather than the paper's under another name.

``flush_subnormals`` emulates flush-to-zero where subnormals arise in a network (each layer's output
and each backward product in the "paper" mode, ``nn.model.forward`` and ``nn.model.backward``). It
works at the granularity of whole arrays: the partial sums inside one matrix product are not
flushed, which differs from hardware flush-to-zero only when many subnormal products add up to a
normal number.

``exp_flushed`` is exp followed by that flush, bit for bit, deciding from the argument first: exp is
never asked for a subnormal result, which some x86 processors compute many times more slowly
(numpy's exp of 25,600 float32 arguments took 200 us at -90 against 16 us at -50 or -105 on an Intel
Xeon, while on an AMD EPYC with AVX-512 it takes as long at every argument; a deeply saturated
network has units all across that band). The paper's numerics use it wherever an exp's result is
flushed (the sigmoid's forward, the cross-entropy's p), and ``log_sigmoid_prime`` in every mode, as
its result is the same either way.

``log_sigmoid_prime`` is the sigmoid's derivative in log form, which never underflows; the scaled
backward pass of ``nn.model.backward_scaled`` carries each example's signal as a direction and a
log-scale built on it, so an input gradient survives at any depth of saturation (section 7's attacks
and the audit need only its direction).
"""
from __future__ import annotations

import contextlib
import math

import numpy as np

from .backend import array_module, to_device, to_host
from .validate import InputError

NUMERICS = ("paper", "float32", "stable")
FORWARD_NUMERICS = ("paper", "float32")  # the modes of a forward pass, of training and of Adam

# float32 thresholds, in units of the argument (h, or a logit margin); tests/test_numerics.py finds
# each from the code's arithmetic
SIGMOID_ONE = 24 * math.log(2)  # ~16.64: sigmoid(h) == 1.0 exactly for float32 h >= this
# ~16.64: p_y == 1.0 from this margin on (one runner-up, largest logit 0)
P_Y_ONE_MARGIN = 24 * math.log(2)
LOG_SMALLEST_NORMAL = -126 * math.log(2)  # ~ -87.34: log of 2^-126
LOG_SMALLEST_SUBNORMAL = -149 * math.log(2)  # ~ -103.28: log of 2^-149
# ~87.34: exp(-a) is subnormal, so 0 under flush-to-zero, for a > this
FTZ_UNDERFLOW = -LOG_SMALLEST_NORMAL
EXP_UNDERFLOW = 150 * math.log(2)  # ~103.97: exp(-a) rounds to 0 in float32 for a > this


def check_numerics(numerics, allowed=NUMERICS, name="numerics"):
    """``numerics`` must be one of ``allowed`` (``NUMERICS``, or ``FORWARD_NUMERICS`` where only a
    forward pass or training is computed). -> numerics; an InputError naming ``name`` otherwise."""
    if isinstance(numerics, str) and numerics in allowed:
        return numerics
    why = ""
    if numerics == "stable":
        why = ("; 'stable' is the scaled input gradient (nn.model.backward_scaled), "
               "a direction without its size: no mode of a forward pass, of training, "
               "of Adam or of an attack that needs the size")
    raise InputError(f"{name} must be one of {', '.join(map(repr, allowed))}, "
                     f"got {numerics!r}{why}")


def upgrade_settings(d):
    """A settings dict (a ``TrainConfig``'s, an objective's) written before the numerics had one
    name, in today's words: ``"ftz": true / false`` -> ``"numerics": "paper" / "float32"``, the
    penalty's ``"derivative": "paper" / "stable"`` -> ``"autodiff" / "closed_form"``. Today's dicts
    pass unchanged. The one place where the old words are read. -> a new dict."""
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
    return float(np.finfo(dtype).tiny)


def flushes_subnormals(xp):
    """True where the array module's float32 arithmetic flushes subnormals to zero (CuPy: every
    kernel is compiled with ``-ftz=true``), False where it keeps them (numpy). Measured once per
    module, not assumed: exp(-90) (subnormal, ~8.2e-40) and 2^-130 * 1 in float32 must both be
    nonzero for False. xp: numpy or cupy -> bool."""
    if xp.__name__ not in _FLUSHES:
        e = to_host(xp.exp(to_device(np.array([-90.0], np.float32), xp)))
        one = to_host(to_device(np.array([2.0 ** -130], np.float32), xp)
                      * to_device(np.ones(1, np.float32), xp))
        _FLUSHES[xp.__name__] = bool(e[0] == 0 or one[0] == 0)
    return _FLUSHES[xp.__name__]


_FLUSHES = {}  # array module name -> flushes_subnormals' answer


def flush_subnormals(a):
    """a with every entry of magnitude below the dtype's smallest normal number replaced by exactly
    0 (flush-to-zero, TensorFlow's float32 setting). Normal numbers, zeros, infinities and NaN pass
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
    # exp_flushed: where exp(-a) would be subnormal (a > 87.34 in float32, a > 708 in float64), 2
    # log1p(e) is far below half an ulp of a, so -a - 2 log1p(e) rounds to -a with e subnormal or 0
    # alike: the same bits
    return -a - 2 * xp.log1p(exp_flushed(-a))


# ---------------------------------------------------------------------------------------------
# exp with flush-to-zero, deciding from the argument


_EXP_FLOORS = {}  # (array module, dtype) -> exp_normal_floor's answer, found once
_DECIDE_FIRST = [True]  # False inside ``exp_then_flush``


def exp_normal_floor(xp, dtype):
    """The smallest float32 a whose exp(a), as ``xp.exp`` computes it, is a normal number
    (>= 2^-126): the float32 next to -87.34 (log 2^-126, ``LOG_SMALLEST_NORMAL``). Found once per
    array module from the exp of every float32 in [-88, -87] (131,073 numbers), which must be
    subnormal below it and normal from it on, and exactly 0 at those below it moved 1000 lower (what
    ``exp_flushed`` computes). None for other dtypes, or for an exp that is not monotone there:
    ``exp_flushed`` then computes exp and flushes."""
    key = (xp.__name__, np.dtype(dtype).name)
    if key not in _EXP_FLOORS:
        _EXP_FLOORS[key] = _find_exp_normal_floor(xp) if np.dtype(dtype) == np.float32 else None
    return _EXP_FLOORS[key]


def _find_exp_normal_floor(xp):
    # negative floats: larger bits, larger magnitude
    lo, hi = np.array([-88, -87], np.float32).view(np.int32)
    # every float32 from -88 up to -87
    a = np.arange(lo, hi - 1, -1, dtype=np.int32).view(np.float32)
    normal = to_host(xp.exp(to_device(a, xp))) >= smallest_normal(np.float32)
    i = int(normal.argmax())
    moved = to_host(xp.exp(to_device(a[:i] - np.float32(1000), xp)))
    if i == 0 or normal[:i].any() or not normal[i:].all() or moved.any():
        return None
    return a[i]


def exp_flushed(a):
    """flush_subnormals(exp(a)), bit for bit, without asking exp for a subnormal result.

    Arguments below ``exp_normal_floor`` (where exp(a) < 2^-126, which the flush makes 0) are moved
    1000 lower first, where exp is exactly 0 on its fast path; every other argument, NaN and the
    infinities included, goes to exp unchanged (a - 0 = a). Other dtypes than float32, and inside
    ``exp_then_flush``: exp, then ``flush_subnormals``. a: any float array -> a new array, same
    shape and dtype.
    """
    xp = array_module(a)
    floor = exp_normal_floor(xp, a.dtype) if _DECIDE_FIRST[0] else None
    if floor is None:
        return flush_subnormals(xp.exp(a))
    # 1000 lower where exp(a) would be flushed
    return xp.exp(a - xp.multiply(a < floor, 1000, dtype=a.dtype))


@contextlib.contextmanager
def exp_then_flush():
    """Within this block ``exp_flushed`` computes exp, then flushes: the same bits by the plain
    path, as every exp was flushed before it decided from the argument (for benchmarks and
    tests)."""
    before = _DECIDE_FIRST[0]
    _DECIDE_FIRST[0] = False
    try:
        yield
    finally:
        _DECIDE_FIRST[0] = before
