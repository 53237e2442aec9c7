"""Checks at the public boundary: what a user hands to satnets is checked once, where it enters, and
a mistake is reported by an error that names the argument and what is wrong with it.

Every error a user can cause by what they pass (data, a file, a setting) derives from ``UserError``;
the experiment scripts print such an error as one line and exit with status 2 (``--debug`` shows
the traceback). ``InputError`` is the one for data and numbers: it is a ``ValueError`` and a
``TypeError`` both, so code that catches either kind keeps working.

An empty batch (N = 0) is valid data, with one rule at every public entry (attacks, model methods,
verifiers, analyses): a result per example comes back empty, with the shapes and dtypes it has for
N > 0 (as numpy's own functions do: ``x_adv`` (0, 1, 28, 28) float32, ``success`` (0,) bool, logits
(0, 10)); a number that is a mean over the examples (a training loss, an accuracy, a verified
fraction) does not exist for N = 0 and is refused with an ``InputError`` naming the argument.

The checks cost O(N) reductions (labels) or one pass over the images (finite, in range): they run
once per public call (an attack, an analysis), never inside its iterations, which call the
unchecked internals.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from .backend import array_module
from .errors import UserError


class InputError(UserError, ValueError, TypeError):
    """Bad data or a bad number at a public boundary; the message names the argument."""


def check_number(name, value, *, minimum=0.0, positive=False, integer=False, maximum=None):
    """value must be a real, finite number >= minimum (> 0 with ``positive``, <= maximum if given;
    a whole number with ``integer``). -> value. Booleans are refused: eps=True is a mistake."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InputError(f"{name} must be a number, got {value!r}")
    if integer and not float(value).is_integer():
        raise InputError(f"{name} must be a whole number, got {value!r}")
    if not math.isfinite(value):
        raise InputError(f"{name} must be finite, got {value!r}")
    if positive and not value > 0:
        raise InputError(f"{name} must be positive, got {value!r}")
    if value < minimum:
        raise InputError(f"{name} must be at least {minimum:g}, got {value!r}")
    if maximum is not None and value > maximum:
        raise InputError(f"{name} must be at most {maximum:g}, got {value!r}")
    return value


def check_eps(value, name="eps"):
    """An L-inf radius on images in [0, 1]: a real number in [0, 1]. -> value.

    0 is the empty perturbation (the attack returns the clean verdict); at 1 the ball B(x, 1)
    already holds every image of the pixel box [0, 1]^D (the unbounded attack of a sanity check, the
    end of the audit's eps sweep), so an eps above 1 names that same set under another number and is
    refused. The one rule for every attack's eps and every script's --eps."""
    check_number(name, value)
    if value > 1:
        raise InputError(f"{name} must be at most 1, got {value!r}: an L-inf radius on images in "
                         f"[0, 1] (at {name} = 1 the ball already holds every image)")
    return value


def check_count(name, value):
    """An iteration count of an attack (steps, restarts, max_iter, n_queries, draws, targets): a
    whole number >= 1. -> value. A budget of 0 is no attack; ask for that with eps = 0, not a count
    of 0."""
    return check_number(name, value, minimum=1, integer=True)


def check_images(model, x, name="x", *, unit_range=True, values=True):
    """x must be images the model takes: an array of the model's device (numpy or cupy), its dtype,
    shape (N, *input_shape), and with ``values`` every entry finite and, with ``unit_range`` (the
    attacks' pixel box), in [0, 1]. -> x."""
    xp = model.xp
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        raise InputError(f"{name} must be an array of shape (N, {_shape(model)}), "
                         f"got {type(x).__name__}")
    if array_module(x) is not xp:
        raise InputError(f"{name} is a {type(x).__module__.split('.')[0]} array but the model "
                         f"lives on {xp.__name__}; move it with nn.backend.to_device")
    want = tuple(model.spec["input_shape"])
    if x.ndim != len(want) + 1 or tuple(x.shape[1:]) != want:
        raise InputError(f"{name} has shape {tuple(x.shape)}; expected (N, {_shape(model)})")
    if x.dtype != model.dtype:
        raise InputError(f"{name} has dtype {x.dtype}, the model {model.dtype}; cast it first "
                         f"(x.astype(model.dtype))")
    if values and x.size:
        if not bool(xp.isfinite(x).all()):
            bad = int((~xp.isfinite(x)).reshape(len(x), -1).any(axis=1).sum())
            raise InputError(f"{name} has NaN or infinite entries in {bad} of its {len(x)} images")
        if unit_range:
            lo, hi = float(x.min()), float(x.max())
            if lo < 0 or hi > 1:
                raise InputError(f"{name} has pixels in [{lo:g}, {hi:g}]; "
                                 "the attacks work on images in [0, 1]")
    return x


def check_labels(model, y, n, name="y", n_classes=None):
    """y must be an integer array of the model's device, of shape (n,), with every entry in [0, K)
    (K: the model's number of classes unless ``n_classes`` is given). -> y."""
    xp = model.xp
    K = n_classes if n_classes is not None else _n_classes(model)
    if not hasattr(y, "shape") or not hasattr(y, "dtype"):
        raise InputError(f"{name} must be an integer array of shape ({n},), got {type(y).__name__}")
    if array_module(y) is not xp:
        raise InputError(f"{name} is a {type(y).__module__.split('.')[0]} array but the model "
                         f"lives on {xp.__name__}; move it with nn.backend.to_device")
    if tuple(y.shape) != (n,):
        raise InputError(f"{name} has shape {tuple(y.shape)}; expected ({n},), one label per image")
    if not np.issubdtype(y.dtype, np.integer):
        raise InputError(f"{name} has dtype {y.dtype}; labels must be integers")
    if n:
        lo, hi = int(y.min()), int(y.max())
        if lo < 0 or hi >= K:
            raise InputError(f"{name} has labels in [{lo}, {hi}]; the model has {K} classes, "
                             f"so labels lie in [0, {K - 1}]")
    return y


def check_batch(model, x, y, *, unit_range=True, name_x="x", name_y="y"):
    """The images and labels of an attack or an analysis: ``check_images`` and ``check_labels``."""
    check_images(model, x, name_x, unit_range=unit_range)
    check_labels(model, y, len(x), name_y)
    return x, y


def _shape(model):
    return ", ".join(map(str, model.spec["input_shape"]))


def _n_classes(model):
    last = model.params[-1]["W"]
    return int(last.shape[0])
