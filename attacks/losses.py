"""Attack losses on the logits and their analytic input gradients, in each numerics mode.

An attack loss maps logits z (N, K) and labels (N,) to per-example values (N,) and dL/dz (N, K).
``loss_and_input_gradient`` chains dL/dz through the network's backward pass to dL/dx.

* ``cross_entropy``: C = -log p_y (the paper's loss: FGSM ascends it with the true label, the
  targeted attacks of section 7 descend it toward the target).
* ``margin``: M = max_{j != y} z_j - z_y (Carlini-Wagner / DLR family). Its gradient e_{j*} - e_y
  never passes through a softmax, so it cannot round to 0 because p_y rounds to 1.
* ``dlr``: the difference of logits ratio M / (z_pi1 - z_pi3 + 1e-12) of Croce & Hein (2020), the
  margin divided by the spread of the top three logits: unchanged by a shift or a positive rescaling
  of the logits (APGD's second loss, ``attacks.apgd``); ``dlr_targeted``, APGD-T's, toward a chosen
  class (``Targeted`` binds the targets).

Numerics modes (``numerics=``, ``nn.numerics``):

* ``"paper"`` is what the paper computed: TensorFlow's float32 derivatives (sigmoid' = y (1 - y),
  dC/dz = p - onehot) with TensorFlow's flush-to-zero; the gradient of a saturated example is then
  exactly 0 (e^-87.34 rather than e^-103.97 is the floor).
* ``"float32"`` (the default): the same derivatives in numpy's float32, subnormals kept.
* ``"stable"`` carries each example's gradient as a direction and a log-magnitude
  (``nn.model.backward_scaled``): the CE's dC/dz from log-softmax, sigmoid' in log form, the signal
  rescaled after every layer. It is exact in direction at any depth of saturation, in float32 as in
  float64, even where the gradient itself (e^-200, say) has no float32 representation. The returned
  dx is the gradient up to a positive factor per example (max |dx_n| = 1), which is all that a
  sign step or a normalised step uses; ``scaled_input_gradient`` also returns the factor.

float64 is a dtype, not a mode: cast model and input (the slowest way).

Every log-softmax is computed shift-first (``nn.softmax.log_normalise``): a common offset of the
logits, however large, changes neither a loss nor its gradient.
"""
from __future__ import annotations

from nn import softmax
from nn.backend import array_module
from nn.model import backward, backward_scaled
from nn.numerics import check_numerics
from nn.validate import InputError, check_batch


def cross_entropy(z, y, numerics="float32"):
    """C_n = -log p_{y_n}(z_n) and dC_n/dz_n = p_n - onehot(y_n).
    z: (N, K), y: (N,) -> (N,), (N, K).

    ``numerics`` (the module docstring): "paper" flushes p to zero below float32's smallest normal
    number (TensorFlow's numerics); "stable" multiplies out the scaled form of
    ``cross_entropy_scaled``, exp(s_n) d_n, whose true class's entry is -(1 - p_y) to full relative
    precision, never the exact 0 that p_y - 1 rounds to.
    """
    xp = array_module(z)
    if check_numerics(numerics) == "stable":
        C, d, s = cross_entropy_scaled(z, y)
        return C, d * xp.exp(s)[:, None]
    C, cache = softmax.cross_entropy_forward(z, y, numerics)
    return C, softmax.cross_entropy_backward(xp.ones_like(C), cache, numerics)


def margin(z, y, numerics="float32"):
    """M_n = max_{j != y_n} z_{n,j} - z_{n,y_n}, dM_n/dz_n = e_{j*} - e_{y_n}
    (j* the first maximiser).

    M_n > 0 exactly when the network misclassifies x_n (ties aside). The same in every numerics mode
    (a difference of two logits, a gradient of 0 and +-1: nothing to round or flush); ``numerics``
    is checked and otherwise unused, so that every loss of ``LOSSES`` is called alike.
    z: (N, K), y: (N,) -> M: (N,), dM/dz: (N, K).
    """
    check_numerics(numerics)
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


def dlr(z, y, numerics="float32"):
    """The difference of logits ratio (Croce & Hein 2020), DLR_n = M_n / D_n with M_n the
    ``margin`` max_{j != y} z_j - z_y (= -(z_y - max_{j != y} z_j)) and D_n = z_pi1 - z_pi3 + 1e-12,
    pi_n the classes sorted by decreasing logit;

        dDLR_n/dz_n = (e_{j*} - e_y - DLR_n (e_pi1 - e_pi3)) / D_n
        (quotient rule, j* the runner-up)

    (``_dlr_parts``). DLR > 0 exactly when the margin is, and a common shift or positive factor of
    the logits leaves it unchanged (the 1e-12 aside). Off ties it is smooth; at a tie (of the
    runner-up, of pi1 or of pi3) the gradient is that of one of the pieces, as for ``margin``. Where
    y is pi3 the ratio is 1 - 1e-12 / D, flat: its gradient rounds to 0 in float32. The same in
    every numerics mode (ratios of logit differences, no exponential to round or flush);
    ``numerics`` is checked only. z: (N, K) with K >= 3, y: (N,) -> DLR: (N,), dDLR/dz: (N, K).
    """
    check_numerics(numerics)
    L, g, D = _dlr_parts(z, y)
    return L, g / D[:, None]


def dlr_targeted(z, y, target, numerics="float32"):
    """The targeted DLR of APGD-T (Croce & Hein 2020), toward the class t_n = target[n]:
    DLR_t,n = -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2 + 1e-12) = (z_t - z_y) / D_n, and

        dDLR_t,n/dz_n = (e_t - e_y - DLR_t,n (e_pi1 - (e_pi3 + e_pi4) / 2)) / D_n.

    Maximised, it pushes z_t above z_y; positive once it is. t = y gives 0, flat. Ties, scale and
    numerics as ``dlr``. z: (N, K) with K >= 4, y, target: (N,) -> DLR_t: (N,), dDLR_t/dz: (N, K).
    """
    check_numerics(numerics)
    L, g, D = _dlr_parts(z, y, target)
    return L, g / D[:, None]


def _dlr_parts(z, y, target=None):
    """The DLR (``target`` None) or the targeted DLR: its value L_n, the numerator of its gradient,
    g_n = dnum_n - L_n dD_n (``dlr``, ``dlr_targeted``), and D_n.
    z: (N, K), y and target: (N,) -> (N,), (N, K), (N,)."""
    xp = array_module(z)
    N, K = z.shape
    # D = sum_i c_i z_{pi_i} + 1e-12 over (rank i, c_i): z_pi1 - z_pi3, or
    # z_pi1 - (z_pi3 + z_pi4) / 2
    terms = ((0, 1.0), (2, -1.0)) if target is None else ((0, 1.0), (2, -0.5), (3, -0.5))
    if K < len(terms) + 1:
        name = "dlr" if target is None else "targeted dlr"
        raise InputError(f"the {name} loss needs at least {len(terms) + 1} classes, "
                         f"the logits have {K}")
    rows = xp.arange(N)
    if target is None:
        num, g = margin(z, y)  # num = z_j* - z_y: (N,), g = e_j* - e_y: (N, K)
    else:
        num, g = z[rows, target] - z[rows, y], xp.zeros_like(z)
        g[rows, target] = 1
        g[rows, y] -= 1  # t = y: 0
    order = xp.argsort(-z, axis=1)  # (N, K): pi, largest logit first (any order among ties)
    D = sum(c * z[rows, order[:, i]] for i, c in terms) + 1e-12  # (N,), > 0
    L = num / D
    for i, c in terms:
        g[rows, order[:, i]] -= c * L  # the ranks differ: each statement writes one entry per row
    return L, g, D


def cross_entropy_scaled(z, y):
    """C_n and dC_n/dz_n = exp(s_n) d_n in scaled form (``softmax.cross_entropy_backward_scaled``).
    z: (N, K), y: (N,) -> C: (N,), d: (N, K), s: (N,)."""
    C, cache = softmax.cross_entropy_forward(z, y, "stable")
    d, s = softmax.cross_entropy_backward_scaled(cache)
    return C, d, s


def margin_scaled(z, y):
    """M_n and dM_n/dz_n (entries 0 and +-1, already of unit scale): log-scale 0."""
    M, dz = margin(z, y)
    return M, dz, array_module(z).zeros(len(M), dtype=z.dtype)


def dlr_scaled(z, y):
    """DLR_n and dDLR_n/dz_n = exp(s_n) d_n with max_k |d_{n,k}| = 1: d_n = g_n / |g_n|_max and
    s_n = log |g_n|_max - log D_n (``dlr``; s_n = -log D_n where g_n is exactly 0)."""
    return _ratio_scaled(*_dlr_parts(z, y))


def dlr_targeted_scaled(z, y, target):
    """``dlr_targeted`` in the scaled form of ``dlr_scaled``."""
    return _ratio_scaled(*_dlr_parts(z, y, target))


def _ratio_scaled(L, g, D):
    """(L, g, D) of ``_dlr_parts`` -> (L, d, s) with g / D = exp(s) d, max_k |d_{n,k}| = 1."""
    xp = array_module(g)
    m = xp.abs(g).max(axis=1)  # (N,)
    m = xp.where(m > 0, m, 1)
    return L, g / m[:, None], xp.log(m) - xp.log(D)


class Targeted:
    """A targeted loss (``dlr_targeted``) bound to its targets, t: (N,), and called like the losses
    of ``LOSSES``, (z, y, numerics) -> (L, dL/dz), with its scaled form as ``.scaled``: for
    APGD-T."""

    def __init__(self, target):
        self.target = target

    def __call__(self, z, y, numerics="float32"):
        return dlr_targeted(z, y, self.target, numerics)

    def scaled(self, z, y):
        return dlr_targeted_scaled(z, y, self.target)


LOSSES = {"ce": cross_entropy, "margin": margin, "dlr": dlr}
SCALED = {cross_entropy: cross_entropy_scaled, margin: margin_scaled, dlr: dlr_scaled}


def loss_function(name):
    """The attack loss called ``name`` ("ce", "margin" or "dlr"), or an InputError naming the
    choices."""
    try:
        return LOSSES[name]
    except (KeyError, TypeError):
        raise InputError(f"loss must be one of {sorted(LOSSES)}, got {name!r}") from None


def scaled_input_gradient(model, x, labels, loss=cross_entropy, *, check=True):
    """The "stable" mode: per-example loss L_n, its input gradient as a direction dx_n
    (max |dx_n| = 1) and log-magnitude s_n with dL_n/dx_n = exp(s_n) dx_n, and the logits.

    x: (N, *input_shape) -> (L: (N,), dx: like x, s: (N,), logits: (N, K)). One forward pass and one
    scaled backward pass (``nn.model.backward_scaled``); dx is 0 only where the exact gradient is.
    ``check=False`` skips the input checks (``nn.validate``): for attacks' inner loops, whose inputs
    were checked once on entry.
    """
    if check:
        check_batch(model, x, labels, unit_range=False, name_y="labels")
    logits, caches, _ = model.forward(x)
    value, d, s = (loss.scaled if isinstance(loss, Targeted) else SCALED[loss])(logits, labels)
    dx, s = backward_scaled(caches, d, s)
    return value, dx, s, logits


def loss_and_input_gradient(model, x, labels, loss=cross_entropy, *,
                            numerics="float32", check=True):
    """Per-example loss L_n(h^D(x_n), labels_n), its analytic input gradient dL_n/dx_n, and the
    logits.

    x: (N, *input_shape) in the model's dtype and device  ->  (L: (N,), dx: like x, logits: (N, K)).
    One forward and one backward pass in ``numerics`` ("paper", "float32" or "stable"; the module
    docstring): with "stable", dx is the gradient's direction (a positive multiple of it per
    example). ``check=False``: no input checks, as in ``scaled_input_gradient``.
    """
    if check:
        check_numerics(numerics)
        check_batch(model, x, labels, unit_range=False, name_y="labels")
    if numerics == "stable":
        value, dx, _, logits = scaled_input_gradient(model, x, labels, loss, check=False)
        return value, dx, logits
    logits, caches, _ = model.forward(x, numerics)
    value, dz = loss(logits, labels, numerics=numerics)
    dx, _ = backward(model.spec, caches, dz, param_grads=False, input_grad=True, numerics=numerics)
    return value, dx, logits
