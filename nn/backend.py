"""The array backend: numpy on the CPU, cupy on a CUDA GPU.

Every other module takes its array module ``xp`` from its inputs (``array_module(x)``), so one body
of layer code serves both. This is the only module that imports cupy, and the only place arrays
cross the host/device boundary (``to_device`` / ``to_host``). scipy wants host float64: convert with
``to_host(a, numpy.float64)`` at the call, nowhere else.

Which device a script uses: its ``--device`` option, else the environment variable
``SATNETS_DEVICE`` (``cpu`` or ``gpu``), else ``cpu``.
"""
from __future__ import annotations

import os

import numpy as np

from .errors import UserError

DEVICE_ENV = "SATNETS_DEVICE"
DEVICES = ("cpu", "gpu")


def _cupy():
    """The cupy module, or None when cupy is not installed or no CUDA device is usable."""
    try:
        import cupy
    except ImportError:
        return None
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            return None
    except Exception:  # cupy installed but no driver / no device
        return None
    return cupy


class DeviceError(UserError, RuntimeError):
    """A device that does not exist here: an unknown name, or 'gpu' without cupy and a CUDA GPU."""


def gpu_available() -> bool:
    """True when cupy imports and sees at least one CUDA device."""
    return _cupy() is not None


def resolve_device(device: str | None = None) -> str:
    """The device name to use: ``device`` if given, else ``$SATNETS_DEVICE``, else ``'cpu'``."""
    name = (device or os.environ.get(DEVICE_ENV) or "cpu").lower()
    if name not in DEVICES:
        raise DeviceError(f"unknown device {name!r}; expected one of {DEVICES}")
    return name


def get_xp(device: str | None = None):
    """The array module for a device name (see ``resolve_device``): numpy or cupy."""
    name = resolve_device(device)
    if name == "cpu":
        return np
    cp = _cupy()
    if cp is None:
        raise DeviceError(
            "device 'gpu' asked for, but cupy is not installed or sees no CUDA device; "
            "install the 'gpu' extra (pip install -e '.[gpu]') on a machine with an NVIDIA GPU, "
            "or use --device cpu")
    return cp


def array_module(*arrays):
    """numpy or cupy, whichever the arrays live in (numpy for host arrays and Python scalars)."""
    for a in arrays:
        if type(a).__module__.startswith("cupy"):
            import cupy
            return cupy
    return np


def to_device(a, xp, dtype=None):
    """Copy a host (or device) array into the module ``xp``, optionally casting to ``dtype``."""
    if xp is np:
        return to_host(a, dtype)
    out = xp.asarray(a)
    return out if dtype is None else out.astype(dtype, copy=False)


def to_host(a, dtype=None):
    """A numpy array with the contents of ``a`` (numpy or cupy), optionally cast to ``dtype``."""
    if type(a).__module__.startswith("cupy"):
        a = a.get()
    a = np.asarray(a)
    return a if dtype is None else a.astype(dtype, copy=False)


def synchronize(xp):
    """Wait for the device to finish queued work (a no-op on numpy); for honest timings."""
    if xp is not np:
        xp.cuda.Device().synchronize()


# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def retain_freed_memory(limit=1 << 30) -> bool:
    """Ask glibc's malloc to keep freed blocks of up to ``limit`` bytes for reuse instead of
    returning them to the operating system. -> True if the setting took effect.

    By default glibc serves every allocation above 32 MB with a fresh mmap and unmaps it on free,
    so the CNN's im2col buffers (80 MB at batch 128) are page-faulted in anew at every training
    step: numpy has no caching allocator of its own. Keeping them cuts a CPU training epoch of
    the CNN from 65 to 51 s on the 2-core reference machine (``python -m experiments.tools.bench``
    with and without ``--no-retain``; docs/performance.md, Speed of a training epoch). Process-wide,
    and the process keeps its peak memory; a no-op returning False off glibc (macOS, Windows, musl)
    and on the GPU, where cupy's memory pool already does this.
    """
    import ctypes
    import ctypes.util
    import platform
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, int(limit))
                    and libc.mallopt(_M_TRIM_THRESHOLD, 2 * int(limit)))
    except (OSError, AttributeError):
        return False
