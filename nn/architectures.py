"""The paper's three architectures as model specs (plain data, see ``nn.model``).

* ``sigmoid_mlp`` / ``relu_mlp``: two hidden layers and a readout, D = 3 weight layers,
  784-H-H-10 (H = 1000 by default; the paper's range is 200-2000).
* ``cnn`` (Table 2): conv5x5x32-ReLU, maxpool 2x2, conv5x5x64-ReLU, maxpool 2x2, FC1024-ReLU, FC10,
  with 'same' padding.
"""
from __future__ import annotations

import functools
import numbers

from .spec import SpecError

MNIST_SHAPE = [1, 28, 28]
N_CLASSES = 10


def _size(name, value):
    """A layer size given by the user: a positive whole number, returned as int (JSON-able)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise SpecError(f"{name} must be a positive whole number, got {value!r}")
    return int(value)


def mlp(activation="relu", hidden=1000, depth=2, input_shape=MNIST_SHAPE):
    """A fully connected net: flatten, ``depth`` x (dense H, activation), dense 10."""
    if activation not in ("relu", "sigmoid"):
        raise SpecError(f"activation must be 'relu' or 'sigmoid', got {activation!r}")
    init = "he" if activation == "relu" else "glorot"
    layers = [{"type": "flatten"}]
    for _ in range(depth):
        layers += [{"type": "dense", "units": _size("hidden", hidden), "init": init},
                   {"type": activation}]
    layers.append({"type": "dense", "units": N_CLASSES, "init": "glorot"})
    return {"name": f"{activation}_mlp", "input_shape": list(input_shape), "layers": layers}


def cnn(channels=(32, 64), hidden=1024, kernel=5, input_shape=MNIST_SHAPE):
    """The CNN of the paper's Table 2."""
    layers = []
    for c in channels:
        layers += [{"type": "conv2d", "channels": _size("channels", c),
                    "kernel": _size("kernel", kernel), "init": "he"},
                   {"type": "relu"}, {"type": "maxpool2d"}]
    layers += [{"type": "flatten"},
               {"type": "dense", "units": _size("hidden", hidden), "init": "he"},
               {"type": "relu"}, {"type": "dense", "units": N_CLASSES, "init": "glorot"}]
    return {"name": "cnn", "input_shape": list(input_shape), "layers": layers}


ARCHITECTURES = {
    "sigmoid_mlp": functools.partial(mlp, "sigmoid"),
    "relu_mlp": functools.partial(mlp, "relu"),
    "cnn": cnn,
}


def build_spec(arch, **kwargs):
    """The spec of a named architecture ('sigmoid_mlp', 'relu_mlp', 'cnn')."""
    if arch not in ARCHITECTURES:
        raise SpecError(f"unknown architecture {arch!r}; expected one of {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[arch](**kwargs)
