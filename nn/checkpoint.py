"""Checkpoints: one ``.npz`` per model, every parameter plus a JSON description, written atomically.

Layout: arrays ``layer{i}.W`` / ``layer{i}.b`` on the host in their training dtype, and
``__meta__``, a JSON string ``{"format": ..., "spec": <model spec>, "config": <training settings>,
...}``. Loading checks the format, rebuilds the spec and validates every parameter's shape
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

FORMAT = "satnets-checkpoint/1"


class CheckpointError(ValueError):
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


def save_checkpoint(path, model: Sequential, **meta):
    """Write model (spec + parameters) and JSON-able ``meta`` (e.g. config=..., epoch=...) to path."""
    arrays = {f"layer{i}.{k}": to_host(v) for i, p in enumerate(model.params) for k, v in p.items()}
    header = json.dumps({"format": FORMAT, "spec": model.spec, **meta})
    arrays["__meta__"] = np.array(header)
    atomic_write(path, lambda f: np.savez(f, **arrays))


def load_checkpoint(path, xp=np):
    """-> (Sequential with parameters in ``xp``, meta dict). Raises CheckpointError on any problem."""
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
    return model, meta
