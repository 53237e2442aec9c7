"""A network's spec: plain, JSON-able data that names its layers (see ``nn.model`` for the format),
checked once, with the shapes and initial parameters it implies.

``layer_shapes`` checks a spec and gives each layer's output shape; ``param_shapes`` and
``init_params`` give the parameters' shapes and their initial values (He or Glorot, seeded);
``check_params`` checks parameters against a spec. A spec or parameters that do not describe a valid
network raise ``SpecError`` naming the layer.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from .backend import to_device
from .validate import UserError

WEIGHT_LAYERS = ("dense", "conv2d")
ACTIVATIONS = ("sigmoid", "relu")
LAYER_TYPES = WEIGHT_LAYERS + ACTIVATIONS + ("maxpool2d", "flatten")


class SpecError(UserError, ValueError):
    """A model spec, or parameters, that do not describe a valid network."""


def layer_shapes(spec):
    """Validate a spec and return the per-example output shape of every layer.

    -> list of tuples, one per layer, e.g. [(784,), (1000,), (1000,), ..., (10,)].
    """
    try:
        shape = tuple(int(s) for s in spec["input_shape"])
        layers = spec["layers"]
    except (KeyError, TypeError, ValueError) as e:
        raise SpecError(f"spec needs 'input_shape' (list of ints) and 'layers' (list): {e}") from e
    shapes = []
    for i, layer in enumerate(layers):
        try:
            shape = _layer_shape(i, layer, shape)
        except SpecError:
            raise
        except (KeyError, TypeError, ValueError) as e:
            raise SpecError(f"layer {i} ({layer}): missing or bad field {e}") from e
        shapes.append(shape)
    if not layers or layers[-1]["type"] not in WEIGHT_LAYERS:
        raise SpecError("the last layer must be a weight layer (the readout h^D)")
    return shapes


def multiply_adds(spec):
    """The forward pass's matrix-product multiply-adds per example, one count per weight layer:
    fan_in * fan_out for a dense layer, C_in * k * k * C_out * H_out * W_out for a convolution (its
    im2col product). -> list of ints, e.g. [784000, 1000000, 10000] for 784-1000-1000-10."""
    shapes = [tuple(spec["input_shape"])] + layer_shapes(spec)
    counts = []
    for layer, s_in, s_out in zip(spec["layers"], shapes[:-1], shapes[1:]):
        if layer["type"] == "dense":
            counts.append(s_in[0] * s_out[0])
        elif layer["type"] == "conv2d":
            counts.append(s_in[0] * layer["kernel"] ** 2 * s_out[0] * s_out[1] * s_out[2])
    return counts


def _layer_shape(i, layer, shape):
    """The per-example output shape of layer i given its input shape."""
    t = layer.get("type")
    if t not in LAYER_TYPES:
        raise SpecError(f"layer {i}: unknown type {t!r}; expected one of {LAYER_TYPES}")
    for field in ("units", "channels", "kernel"):
        if field in layer and (isinstance(layer[field], bool)
                               or not isinstance(layer[field], numbers.Integral)
                               or layer[field] < 1):
            raise SpecError(f"layer {i}: {field} must be a positive whole number, "
                            f"got {layer[field]!r}")
    if t == "dense":
        if len(shape) != 1:
            raise SpecError(f"layer {i}: dense needs a flat input, got shape {shape}; "
                            "add a flatten")
        shape = (int(layer["units"]),)
    elif t == "conv2d":
        if len(shape) != 3:
            raise SpecError(f"layer {i}: conv2d needs (C, H, W) input, got shape {shape}")
        k = int(layer["kernel"])
        if k % 2 == 0:
            raise SpecError(f"layer {i}: conv2d 'same' padding needs an odd kernel, got {k}")
        shape = (int(layer["channels"]),) + shape[1:]
    elif t == "maxpool2d":
        if len(shape) != 3 or shape[1] % 2 or shape[2] % 2:
            raise SpecError(f"layer {i}: maxpool2d needs (C, H, W) with even H, W; got {shape}")
        shape = (shape[0], shape[1] // 2, shape[2] // 2)
    elif t == "flatten":
        shape = (math.prod(shape),)
    return shape


def param_shapes(spec):
    """The expected shape of every parameter: list (one per layer) of {name: shape}."""
    shapes = layer_shapes(spec)
    in_shapes = [tuple(spec["input_shape"])] + shapes[:-1]
    out = []
    for layer, s_in, s_out in zip(spec["layers"], in_shapes, shapes):
        if layer["type"] == "dense":
            out.append({"W": (s_out[0], s_in[0]), "b": (s_out[0],)})
        elif layer["type"] == "conv2d":
            k = int(layer["kernel"])
            out.append({"W": (s_out[0], s_in[0], k, k), "b": (s_out[0],)})
        else:
            out.append({})
    return out


def init_params(spec, seed=0, dtype=np.float32, xp=np):
    """Random initial parameters, drawn on the host from ``numpy.random.default_rng(seed)`` (so the
    same seed gives the same network on the CPU and the GPU), then moved to ``xp``.

    W ~ N(0, 2 / fan_in) for ``init: "he"`` (layers followed by ReLU), and
    W ~ U(-a, a) with a = sqrt(6 / (fan_in + fan_out)) for ``init: "glorot"`` (the default);
    biases are 0.
    """
    rng = np.random.default_rng(seed)
    params = []
    for layer, shapes in zip(spec["layers"], param_shapes(spec)):
        if not shapes:
            params.append({})
            continue
        wshape = shapes["W"]
        fan_out, fan_in = wshape[0] * math.prod(wshape[2:]), math.prod(wshape[1:])
        init = layer.get("init", "glorot")
        if init == "he":
            W = rng.normal(0.0, math.sqrt(2.0 / fan_in), size=wshape)
        elif init == "glorot":
            a = math.sqrt(6.0 / (fan_in + fan_out))
            W = rng.uniform(-a, a, size=wshape)
        else:
            raise SpecError(f"unknown init {init!r}; expected 'he' or 'glorot'")
        params.append({"W": to_device(W, xp, dtype), "b": xp.zeros(shapes["b"], dtype=dtype)})
    return params


def check_params(spec, params):
    """Raise SpecError unless ``params`` has exactly the parameters, shapes of ``spec``."""
    expected = param_shapes(spec)
    if len(params) != len(expected):
        raise SpecError(f"spec has {len(expected)} layers, params has {len(params)}")
    for i, (p, e) in enumerate(zip(params, expected)):
        if set(p) != set(e):
            raise SpecError(f"layer {i}: parameters {sorted(p)}, spec expects {sorted(e)}")
        for name, shape in e.items():
            if tuple(p[name].shape) != shape:
                raise SpecError(f"layer {i} {name}: shape {tuple(p[name].shape)}, "
                                f"spec expects {shape}")
