"""A sequential network built from a plain-data spec, with explicit forward and backward.

A spec is JSON-able data::

    {"name": "relu_mlp", "input_shape": [1, 28, 28],
     "layers": [{"type": "flatten"},
                {"type": "dense", "units": 1000, "init": "he"}, {"type": "relu"},
                {"type": "dense", "units": 1000, "init": "he"}, {"type": "relu"},
                {"type": "dense", "units": 10, "init": "glorot"}]}

Layer types: ``dense`` (units), ``conv2d`` (channels, kernel), ``maxpool2d``, ``flatten``,
``sigmoid``, ``relu``. Parameters are a list with one dict per layer (empty for parameter-free
layers), e.g. ``params[1] == {"W": (1000, 784) array, "b": (1000,) array}``.

The *pre-activations* ``h^l`` of the paper are the outputs of the weight layers (dense and conv),
the readout's logits included: ``h^D`` is the last one. The saturating penalty and the analyses
read them, and ``backward`` accepts extra gradients ``dhs`` injected at each of them.
"""
from __future__ import annotations

import math

import numpy as np

from . import layers as L
from . import softmax
from .backend import array_module, to_device
from .numerics import FORWARD_NUMERICS, check_numerics, flush_subnormals
from .spec import WEIGHT_LAYERS, check_params, init_params
from .validate import InputError, check_images, check_labels

# ---------------------------------------------------------------------------------------------
# The composition: forward walks the layers, backward walks the caches in reverse.


# Each layer as the walker runs it: forward(params, x, numerics) -> (y, cache), vjp(dy, cache) -> dx
_FORWARD = {"dense": lambda p, x, numerics: L.dense_forward(x, p["W"], p["b"]),
            "conv2d": lambda p, x, numerics: L.conv2d_forward(x, p["W"], p["b"]),
            "maxpool2d": lambda p, x, numerics: L.maxpool2d_forward(x),
            "relu_maxpool2d": lambda p, x, numerics: L.relu_maxpool2d_forward(x),
            "flatten": lambda p, x, numerics: L.flatten_forward(x),
            "sigmoid": lambda p, x, numerics: L.sigmoid_forward(x, numerics),
            "relu": lambda p, x, numerics: L.relu_forward(x)}
_VJP = {"dense": L.dense_vjp, "conv2d": L.conv2d_vjp, "maxpool2d": L.maxpool2d_backward,
        "relu_maxpool2d": L.relu_maxpool2d_backward, "flatten": L.flatten_backward,
        "sigmoid": L.sigmoid_backward, "relu": L.relu_backward}
_PARAM_GRADS = {"dense": L.dense_param_grads, "conv2d": L.conv2d_param_grads}


def _unchanged(a):
    return a


def layer_plan(layers):
    """The layers of a spec as ``forward`` runs them: [(type, i)], i the index in ``layers`` of the
    (last) spec layer it computes, whose parameters it takes. A ReLU that a max-pool follows runs as
    one layer, ``"relu_maxpool2d"`` (``L.relu_maxpool2d_forward``: maxpool(relu(h)) computed as
    relu(maxpool(h)), the same values and gradients on a quarter of the ReLUs); every other layer
    as itself."""
    plan, i = [], 0
    while i < len(layers):
        if (layers[i]["type"] == "relu" and i + 1 < len(layers)
                and layers[i + 1]["type"] == "maxpool2d"):
            plan.append(("relu_maxpool2d", i + 1))
            i += 2
        else:
            plan.append((layers[i]["type"], i))
            i += 1
    return plan


def forward(spec, params, x, numerics="float32"):
    """x^0 = x,  x^{l+1} = layer_l(x^l), over ``layer_plan(spec["layers"])``.

    x: (N, *input_shape)  ->  (logits (N, 10), caches, hs (list of pre-activations h^l, the output
    of every weight layer, logits last)). caches: one (type, i, cache) per layer run, what
    ``backward`` and ``backward_scaled`` walk. ``numerics`` ("float32" or "paper", ``nn.numerics``):
    "paper" flushes to zero where subnormals arise in the forward pass, the sigmoid's outputs
    (weight layers and ReLU only combine values they are given).
    """
    check_numerics(numerics, FORWARD_NUMERICS)
    caches, hs = [], []
    for t, i in layer_plan(spec["layers"]):
        x, cache = _FORWARD[t](params[i], x, numerics)
        caches.append((t, i, cache))
        if t in WEIGHT_LAYERS:
            hs.append(x)
    return x, caches, hs


def backward(spec, caches, dlogits, dhs=None, *, param_grads=True, input_grad=False,
             numerics="float32"):
    """Reverse-mode pass: walk the caches of ``forward`` backwards from dL/dlogits.

    dlogits: (..., N, 10); leading axes are extra cotangents and need ``param_grads=False``.
    dhs: optional list (one per weight layer, like ``hs``) of extra gradients dL/dh^l added at each
    pre-activation (the saturating penalty's); entries may be None.
    -> (dx or None, grads: list of {name: array} per spec layer, empty when ``param_grads`` is
    False). Gradients below the first weight layer are skipped unless ``input_grad``: training never
    needs them. sigma' is the paper's y (1 - y), exactly 0 in float32 from h = 16.64 on
    (``nn.numerics``). ``numerics``: "float32", or "paper", which flushes every backward product to
    zero below the smallest normal number, as TensorFlow did; parameter gradients are products of
    flushed factors and are not flushed again (Adam flushes its moments, ``nn.optim``). The stable
    mode's input gradient is ``backward_scaled``.
    """
    check_numerics(numerics, FORWARD_NUMERICS,
                   "numerics (backward; the stable mode is backward_scaled)")
    flush = flush_subnormals if numerics == "paper" else _unchanged
    grads = [{} for _ in spec["layers"]]
    first_weight = min(j for j, (t, _, _) in enumerate(caches) if t in WEIGHT_LAYERS)
    d = dlogits
    # index of the next weight layer, counting down
    k = sum(t in WEIGHT_LAYERS for t, _, _ in caches)
    for j in range(len(caches) - 1, -1, -1):
        t, i, cache = caches[j]
        if t in WEIGHT_LAYERS:
            k -= 1
            if dhs is not None and dhs[k] is not None:
                d = flush(d + dhs[k])
            if param_grads:
                # from flushed factors; Adam flushes its moments
                grads[i] = _PARAM_GRADS[t](d, cache)
        if j <= first_weight and not input_grad:
            return None, grads  # nothing below has parameters
        d = flush(_VJP[t](d, cache))
    return d, grads


def backward_scaled(caches, d, log_scale):
    """The input gradient in scaled form, for any depth of saturation: dL/dx = exp(log_scale) * dx.

    d: (..., N, 10) direction of dL/dlogits, log_scale: (..., N) its log-magnitude (e.g. from
    ``softmax.cross_entropy_backward_scaled``). Walks the caches of ``forward`` like ``backward``
    (input gradient only; the forward pass in "float32", the caches then hold nothing flushed),
    with sigmoid' applied in log form (``L.sigmoid_backward_scaled``) and each example's signal
    rescaled to max |d| = 1 after every layer, its log-magnitude added to log_scale: no factor
    underflows or overflows wherever the exact derivative is nonzero, in float32 as in float64,
    where the exact input gradient itself may be far below the dtype's range (e^-200 and beyond).
    -> (dx: (..., N, *input_shape), log_scale: (..., N)).
    """
    xp = array_module(d)
    for t, _, cache in reversed(caches):
        if t == "sigmoid":
            d, log_scale = L.sigmoid_backward_scaled(d, cache, log_scale)
            continue
        d = _VJP[t](d, cache)
        n = log_scale.ndim  # the leading axes (..., N) index examples
        # (..., N); not -1: N may be 0
        s = xp.abs(d).reshape(d.shape[:n] + (math.prod(d.shape[n:]),)).max(axis=-1)
        ok = s > 0
        s = xp.where(ok, s, 1)
        d = d / s.reshape(s.shape + (1,) * (d.ndim - n))
        log_scale = log_scale + xp.log(s)
    return d, log_scale


def input_jacobian(spec, params, x):
    """The input-output Jacobian J = dh^D / dx^0 (section 6), analytic and batched.

    x: (N, *input_shape)  ->  J: (N, 10, prod(input_shape)).
    One forward pass, then one backward pass carrying all 10 one-hot cotangents at once as a
    leading axis of the upstream gradient: (10, N, 10) -> (10, N, *input_shape).
    """
    xp = array_module(x)
    logits, caches, _ = forward(spec, params, x)
    N, K = logits.shape
    eye = xp.eye(K, dtype=logits.dtype)
    cot = xp.broadcast_to(eye[:, None, :], (K, N, K))  # (K, N, K): cotangent k is e_k
    dx, _ = backward(spec, caches, cot, param_grads=False, input_grad=True)  # (K, N, *in)
    return dx.reshape(K, N, math.prod(dx.shape[2:])).transpose(1, 0, 2)  # not -1: N may be 0


class Sequential:
    """A spec and its parameters: the model. The methods are thin, stateless wrappers of
    ``forward`` / ``backward``; nothing computed is stored on the object.

    >>> model = Sequential(spec, init_params(spec, seed=0))
    """

    def __init__(self, spec, params):
        check_params(spec, params)
        self.spec = spec
        self.params = params

    @classmethod
    def init(cls, spec, seed=0, dtype=np.float32, xp=np):
        return cls(spec, init_params(spec, seed=seed, dtype=dtype, xp=xp))

    @property
    def xp(self):
        return array_module(self.params[-1]["W"])

    @property
    def dtype(self):
        return self.params[-1]["W"].dtype

    def astype(self, dtype):
        """A copy of the model with every parameter cast (float64 for checks and analysis)."""
        return Sequential(self.spec, [{k: v.astype(dtype) for k, v in p.items()}
                                      for p in self.params])

    def to(self, xp):
        """A copy of the model with its parameters in the array module ``xp``."""
        return Sequential(self.spec, [{k: to_device(v, xp) for k, v in p.items()}
                                      for p in self.params])

    def _check_input(self, x):
        """Shape, dtype and device of x (O(1): the model's methods run inside attacks' loops; the
        attacks and analyses check the values once, ``nn.validate``)."""
        check_images(self, x, values=False)

    def forward(self, x, numerics="float32"):
        """-> (logits, caches, hs); see ``forward`` (``numerics``: "float32" or "paper")."""
        self._check_input(x)
        return forward(self.spec, self.params, x, numerics)

    def logits(self, x):
        """h^D(x): (N, 10)."""
        return self.forward(x)[0]

    def predict(self, x):
        """argmax_k h^D_k(x): (N,) integer classes."""
        return self.logits(x).argmax(axis=1)

    def preactivations(self, x):
        """[h^1, ..., h^D]: the output of every weight layer, shapes (N, ...)."""
        return self.forward(x)[2]

    def loss_and_grads(self, x, y, weights=None, penalty=None, numerics="float32", check=True):
        """Weighted cross-entropy plus an optional penalty on the pre-activations, and dL/dparams.

        L = sum_n w_n C_n + R(h^1, ..., h^D), with w_n = 1/N by default (the batch mean).
        weights: optional (N,) per-example weights w_n (adversarial training, eq. 4, uses them).
        penalty: optional function hs -> (R, dR/dhs) (the saturating penalty, eqs. 6-8).
        numerics: "float32", or "paper": flush-to-zero in the forward and backward passes
        (TensorFlow's numerics, ``nn.numerics``).
        check: the labels are checked (``nn.validate``); training's objectives pass False, their
        batches come from data that ``nn.train.train`` checked once.
        -> (L as a 0-d array, grads: list of {name: array}, logits).
        An empty batch is refused (InputError): the loss and the penalty are means over examples.
        """
        if len(x) == 0:
            raise InputError("x is an empty batch (N = 0); the training loss is a mean over "
                             "examples and has none")
        logits, caches, hs = self.forward(x, numerics)
        if check:
            check_labels(self, y, len(x))
        C, ce_cache = softmax.cross_entropy_forward(logits, y)
        if weights is None:
            weights = self.xp.full((x.shape[0],), 1.0 / x.shape[0], dtype=logits.dtype)
        loss = (weights * C).sum()
        dhs = None
        if penalty is not None:
            R, dhs = penalty(hs)
            loss = loss + R
        dlogits = softmax.cross_entropy_backward(weights, ce_cache, numerics)
        _, grads = backward(self.spec, caches, dlogits, dhs=dhs, numerics=numerics)
        return loss, grads, logits

    def loss_and_input_gradient(self, x, y):
        """Per-example cross-entropy C_n and its input gradient dC_n/dx_n (what FGSM uses).

        x: (N, 1, 28, 28), y: (N,)  ->  (C: (N,), dx: (N, 1, 28, 28)).
        """
        logits, caches, _ = self.forward(x)
        check_labels(self, y, len(x))
        C, ce_cache = softmax.cross_entropy_forward(logits, y)
        dlogits = softmax.cross_entropy_backward(self.xp.ones_like(C), ce_cache)
        dx, _ = backward(self.spec, caches, dlogits, param_grads=False, input_grad=True)
        return C, dx

    def input_gradient(self, x, y):
        """dC_n/dx_n for each example (analytic, batched): (N, *input_shape)."""
        return self.loss_and_input_gradient(x, y)[1]

    def vjp(self, x, v):
        """v^T J for each example: cotangent v (N, 10) on the logits -> (N, *input_shape)."""
        logits, caches, _ = self.forward(x)
        if tuple(getattr(v, "shape", ())) != tuple(logits.shape):
            raise InputError(f"v has shape {tuple(getattr(v, 'shape', ()))}; expected "
                             f"{tuple(logits.shape)}, one cotangent per example on the logits")
        dx, _ = backward(self.spec, caches, v, param_grads=False, input_grad=True)
        return dx

    def jacobian(self, x):
        """J = dh^D/dx^0: (N, 10, prod(input_shape)); see ``input_jacobian``."""
        self._check_input(x)
        return input_jacobian(self.spec, self.params, x)
