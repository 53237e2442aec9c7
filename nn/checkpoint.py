"""Checkpoints: one ``.npz`` per model, every parameter plus a JSON description, written atomically.

Layout: arrays ``layer{i}.W`` / ``layer{i}.b`` on the host in their training dtype, and
``__meta__``, a JSON string ``{"format": ..., "spec": <model spec>, "config": <training settings>,
...}``. A checkpoint written during training also holds the optimizer: Adam's moments as arrays
``adam.m.layer{i}.W`` (likewise ``adam.v``), its step count in the meta's ``adam_t``. Loading checks the format, rebuilds the spec and validates every parameter's shape
against it, so a checkpoint that does not describe a valid network never loads silently.
"""
from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from .backend import to_device, to_host
from .model import Sequential, SpecError
from .validate import UserError

FORMAT = "satnets-checkpoint/1"


class CheckpointError(UserError, ValueError):
    """A checkpoint file that is missing, corrupt, or does not match its own spec."""


def atomic_write(path, write):
    """Call ``write(file)`` on a temporary file in path's folder, fsync, then rename onto path:
    a reader sees the old file or the complete new one, never a partial write."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
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
    as a third item (CheckpointError if the file has none). Raises CheckpointError on any problem."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["__meta__"]))
            arrays = {k: z[k] for k in z.files if k != "__meta__"}
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint") from None
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as e:
        raise CheckpointError(f"{path}: not a readable satnets checkpoint ({e})") from e
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: format {meta.get('format')!r}, expected {FORMAT!r}")
    spec = meta["spec"]
    adam = {k[len(ADAM):]: arrays.pop(k) for k in list(arrays) if k.startswith(ADAM)}
    params = []
    try:
        for i, layer in enumerate(spec["layers"]):
            names = sorted(k.split(".", 1)[1] for k in arrays if k.split(".", 1)[0] == f"layer{i}")
            params.append({k: to_device(arrays.pop(f"layer{i}.{k}"), xp) for k in names})
        if arrays:
            raise SpecError(f"arrays not in the spec: {sorted(arrays)}")
        model = Sequential(spec, params)
    except (SpecError, KeyError, TypeError) as e:
        raise CheckpointError(f"{path}: parameters do not match the spec: {e}") from e
    if not optimizer:
        return model, meta
    try:
        state = {"t": int(meta["adam_t"]),
                 **{m: [{k: to_device(adam.pop(f"{m}.layer{i}.{k}"), xp) for k in p} for i, p in enumerate(params)]
                    for m in ("m", "v")}}
    except KeyError as e:
        raise CheckpointError(f"{path}: no complete optimizer state ({e} missing)") from e
    return model, meta, state
