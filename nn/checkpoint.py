"""Checkpoints: one ``.npz`` per model, every parameter plus a JSON description, written atomically.

Layout: arrays ``layer{i}.W`` / ``layer{i}.b`` on the host in their training dtype, and
``__meta__``, a JSON string ``{"format": ..., "spec": <model spec>, "config": <training settings>,
...}``. A checkpoint written during training also holds the optimizer: Adam's moments as arrays
``adam.m.layer{i}.W`` (likewise ``adam.v``), its step count in the meta's ``adam_t``.

Loading checks the format, then every item the file holds against the spec (``_check``): each
parameter and each Adam moment has its parameter's shape, the model's dtype and finite entries, the
step counts are whole numbers, a stored shuffling-generator state is one numpy accepts. A misfit
raises ``CheckpointError`` naming the file and the item, so a checkpoint that does not describe
a valid network (or a valid point of its training) never loads silently: a moment of the wrong
shape would otherwise broadcast into Adam's update and move the weights by orders of magnitude.
"""
from __future__ import annotations

import json
import math
import numbers
import os
import re
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

from .backend import to_device, to_host
from .model import Sequential
from .spec import SpecError, param_shapes
from .validate import UserError

FORMAT = "satnets-checkpoint/1"
# the dtypes a model's parameters may have
FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


class CheckpointError(UserError, ValueError):
    """A checkpoint file that is missing, corrupt, or does not match its own spec."""


class NoOptimizerState(CheckpointError):
    """A valid checkpoint of a model alone, asked for its Adam state (``optimizer=True``)."""


STALE_SECONDS = 3600  # a temporary file untouched this long belongs to no write in progress


def _temp_name(path):
    """The names ``atomic_write`` gives the temporary files of ``path``: ``.{name}.XXXXXXXX.tmp``
    (``tempfile.mkstemp``'s 8 random characters), a regular expression matching no other file's."""
    return re.compile(re.escape(f".{path.name}.") + r"[a-z0-9_]{8}" + re.escape(".tmp"))


def remove_stale_temps(path, now=None):
    """Delete the temporary files of ``path`` that a killed ``atomic_write`` left in its folder (up
    to a checkpoint's size each): those not modified for ``STALE_SECONDS``. A write in progress, by
    this process or another one saving the same file, is recent and stays. Called by every
    ``atomic_write`` and ``load_checkpoint`` of ``path``. -> the paths removed."""
    path = Path(path)
    now = time.time() if now is None else now
    pattern, removed = _temp_name(path), []
    try:
        candidates = [p for p in path.parent.iterdir() if pattern.fullmatch(p.name)]
    except FileNotFoundError:  # no folder yet: nothing left behind
        return removed
    for p in candidates:
        try:
            if now - p.stat().st_mtime > STALE_SECONDS:
                p.unlink()
                removed.append(p)
        except FileNotFoundError:  # removed meanwhile by another reader
            pass
    return removed


def atomic_write(path, write):
    """Call ``write(file)`` on a temporary file in path's folder, fsync, then rename onto path:
    a reader sees the old file or the complete new one, never a partial write. Stale temporary
    files of path, from writes killed midway, are removed first (``remove_stale_temps``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


ADAM = "adam."


def save_checkpoint(path, model: Sequential, optimizer=None, **meta):
    """Write model (spec + parameters), optionally the Adam state of ``nn.optim.adam_init``, and
    JSON-able ``meta`` (e.g. config=..., epoch=...) to path."""
    arrays = {f"layer{i}.{k}": to_host(v) for i, p in enumerate(model.params) for k, v in p.items()}
    if optimizer is not None:
        for moment in ("m", "v"):
            arrays.update({f"{ADAM}{moment}.layer{i}.{k}": to_host(v)
                           for i, p in enumerate(optimizer[moment]) for k, v in p.items()})
        meta["adam_t"] = optimizer["t"]
    header = json.dumps({"format": FORMAT, "spec": model.spec, **meta})
    arrays["__meta__"] = np.array(header)
    atomic_write(path, lambda f: np.savez(f, **arrays))


def load_checkpoint(path, xp=np, optimizer=False):
    """-> (Sequential with parameters in ``xp``, meta dict), and with ``optimizer`` the Adam state
    as a third item (NoOptimizerState if the file has none). Raises CheckpointError on any problem.

    Every item the file holds is checked against the spec before anything is built (``_check``):
    an array that is missing, extra, of another shape or dtype, or not finite names itself and the
    file, whether or not ``optimizer`` asks for the Adam state. Stale temporary files of an
    interrupted save of path are removed (``remove_stale_temps``)."""
    path = Path(path)
    remove_stale_temps(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            header = str(z["__meta__"])
            arrays = {k: z[k] for k in z.files if k != "__meta__"}
        meta = json.loads(header)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint") from None
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as e:
        raise CheckpointError(f"{path}: not a readable satnets checkpoint ({e})") from e
    fmt = meta.get("format") if isinstance(meta, dict) else None
    if fmt != FORMAT:
        raise CheckpointError(f"{path}: format {fmt!r}, expected {FORMAT!r}")
    shapes = _check(path, meta, arrays)
    params = [{k: to_device(arrays[f"layer{i}.{k}"], xp) for k in p} for i, p in enumerate(shapes)]
    model = Sequential(meta["spec"], params)
    if not optimizer:
        return model, meta
    if "adam_t" not in meta:
        raise NoOptimizerState(f"{path}: holds no optimizer state (train's checkpoints do; "
                               "this is a model only)")
    state = {"t": meta["adam_t"],
             **{m: [{k: to_device(arrays[f"{ADAM}{m}.layer{i}.{k}"], xp) for k in p}
                    for i, p in enumerate(shapes)]
                for m in ("m", "v")}}
    return model, meta, state


def _misfit(path, name, problem):
    """The one message of a checkpoint item that does not fit the spec: the file, the item, what is
    wrong, e.g.
    ``run/train.npz: adam.m.layer1.W has shape (60, 784); the spec expects (50, 784)``."""
    return CheckpointError(f"{path}: {name} {problem}")


def _whole(value):
    """A whole number >= 0 (a count: a step, an epoch), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 0


def _check(path, meta, arrays):
    """Check every item of a checkpoint against its spec; -> the spec's parameter shapes, a list
    (one per layer) of {name: shape}.

    - the spec describes a valid network;
    - the arrays are exactly the spec's parameters ``layer{i}.{k}``, plus, if the file holds an Adam
      state (any ``adam.`` array or ``adam_t``), both moments ``adam.m.`` / ``adam.v.`` of every
      one;
    - each has the shape the spec gives its parameter, the model's dtype (that of the readout's
      weight, float32 or float64), and only finite entries; ``adam.v`` (a mean of g^2) none below 0;
    - ``adam_t`` is a whole number >= 0; a ``train_state`` has whole epoch and step >= 0, a finite
      learning rate > 0, and a shuffling-generator state numpy takes back unchanged.
    """
    if "spec" not in meta:
        raise _misfit(path, "spec", "is missing; a checkpoint describes its network")
    try:
        shapes = param_shapes(meta["spec"])
    except (SpecError, KeyError, TypeError) as e:
        raise CheckpointError(f"{path}: its spec does not describe a valid network: {e}") from e
    want = {f"layer{i}.{k}": shape for i, p in enumerate(shapes) for k, shape in p.items()}
    adam = "adam_t" in meta or any(k.startswith(ADAM) for k in arrays)
    if adam:
        want.update({f"{ADAM}{m}.{name}": shape for m in ("m", "v")
                     for name, shape in list(want.items())})
    for name, shape in want.items():
        if name not in arrays:
            raise _misfit(path, name, f"is missing; the spec expects an array of shape {shape}")
    extra = sorted(set(arrays) - set(want))
    if extra:
        raise _misfit(path, ", ".join(extra),
                      ("is" if len(extra) == 1 else "are") + " not in the spec (its arrays: "
                      + ", ".join(want) + ")")
    readout = f"layer{len(shapes) - 1}.W"
    dtype = arrays[readout].dtype
    if dtype not in FLOAT_DTYPES:
        raise _misfit(path, readout,
                      f"has dtype {dtype}; a model's parameters are float32 or float64")
    for name, shape in want.items():
        a = arrays[name]
        if tuple(a.shape) != shape:
            raise _misfit(path, name, f"has shape {tuple(a.shape)}; the spec expects {shape}")
        if a.dtype != dtype:
            raise _misfit(path, name,
                          f"has dtype {a.dtype}; the model's is {dtype} (that of {readout})")
        bad = a.size - int(np.count_nonzero(np.isfinite(a)))
        if bad:
            raise _misfit(path, name, f"has {bad} NaN or infinite entries of {a.size}")
        if name.startswith(f"{ADAM}v.") and (a < 0).any():
            raise _misfit(path, name, f"has {int((a < 0).sum())} negative entries; "
                                      "Adam's second moment is >= 0")
    if adam and not _whole(meta.get("adam_t")):
        got = f"is {meta['adam_t']!r}" if "adam_t" in meta else "is missing"
        raise _misfit(path, "adam_t", f"{got}; Adam's step count is a whole number >= 0")
    if "train_state" in meta:
        _check_train_state(path, meta["train_state"])
    return shapes


def _check_train_state(path, ts):
    """``nn.train``'s TrainState fields as saved: epoch, step, lr and the shuffling generator's
    state."""
    if not isinstance(ts, dict):
        raise _misfit(path, "train_state", f"is {ts!r}; expected a dict of epoch, step, lr and rng")
    for key in ("epoch", "step"):
        if not _whole(ts.get(key)):
            raise _misfit(path, f"train_state.{key}",
                          f"is {ts.get(key)!r}; expected a whole number >= 0")
    lr = ts.get("lr")
    if isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not math.isfinite(lr) or lr <= 0:
        raise _misfit(path, "train_state.lr", f"is {lr!r}; expected a finite learning rate > 0")
    state = ts.get("rng")
    kind = (getattr(np.random, str(state.get("bit_generator")), None)
            if isinstance(state, dict) else None)
    try:
        if not (isinstance(kind, type) and issubclass(kind, np.random.BitGenerator)):
            raise ValueError("no numpy bit generator named")
        generator = kind()
        generator.state = state
        if generator.state != state:
            raise ValueError("numpy does not take it back unchanged")
    except (ValueError, TypeError, KeyError, OverflowError) as e:
        raise _misfit(path, "train_state.rng", f"is not a generator state ({e})") from e
