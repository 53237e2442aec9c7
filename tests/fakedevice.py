"""A stand-in for CuPy that keeps its arrays on a pretend device: the host/device discipline of a
GPU run, checked on the CPU. Test infrastructure, not an array library: the arithmetic is
numpy's; what it adds are CuPy's refusals.

``module()`` returns a module object that the tests install as ``sys.modules["cupy"]``, so that
``nn.backend`` (which imports cupy lazily) takes it for CuPy, sees one device, and everything a
script puts on the "gpu" is a ``DeviceArray``. Like CuPy, and unlike numpy, it refuses:

* a host array (a numpy ndarray of one or more dimensions) as an operand of a device ufunc or an
  argument of a device function (``xp.where(host_mask, ...)``): TypeError;
* ``np.asarray`` / ``np.array`` / ``np.ascontiguousarray`` of a device array, and ``xp.asarray`` of
  a host array, anywhere but in ``nn.backend`` (the one module that moves data): TypeError;
* a numpy function applied to a device array (``np.concatenate(device_arrays)``) unless CuPy
  implements that function (``real_names``, read from the installed CuPy): TypeError.

What it does not catch: a device array used as an index into a host array (numpy indexes with it
silently), and numpy's C code converting a device array internally; both fail on a real GPU.
"""
from __future__ import annotations

import sys
import types

import numpy as np

_NUMPY_CONVERTERS = {name: getattr(np, name)
                     for name in ("asarray", "array", "ascontiguousarray", "asanyarray")}
MOVERS = ("nn.backend",)  # modules allowed to move arrays between host and device


class DeviceArray(np.ndarray):
    """A numpy array that behaves, for the rules above, like a cupy array on a device."""
    __module__ = "cupy._core.core"  # what nn.backend looks at to tell device arrays from host ones

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        _refuse_host(inputs + tuple(kwargs.get("out", ())), f"ufunc {ufunc.__name__}")
        inputs = _host_views(inputs)
        if "out" in kwargs:
            kwargs["out"] = _host_views(kwargs["out"])
        return _on_device(getattr(ufunc, method)(*inputs, **kwargs))

    def __array_function__(self, func, types_, args, kwargs):
        if func.__name__ not in real_names():
            raise TypeError(f"numpy.{func.__name__} applied to a device array; "
                            "CuPy does not dispatch it")
        _refuse_host(_flat(args) + _flat(tuple(kwargs.values())), f"numpy.{func.__name__}")
        return _on_device(func(*_host_views(args),
                               **{k: _host_views(v) for k, v in kwargs.items()}))

    def get(self):
        """To the host, as cupy.ndarray.get does."""
        return self.view(np.ndarray).copy()


def _flat(items):
    out = []
    for a in items:
        out.extend(_flat(a) if isinstance(a, (list, tuple)) else [a])
    return tuple(out)


def _refuse_host(items, where):
    for a in _flat(items):
        if type(a) is np.ndarray and a.ndim > 0:
            raise TypeError(f"a host array (shape {a.shape}) given to {where} on the device")


def _host_views(obj):
    if isinstance(obj, DeviceArray):
        return obj.view(np.ndarray)
    if isinstance(obj, (list, tuple)):
        return type(obj)(_host_views(a) for a in obj)
    return obj


def _on_device(obj):
    if type(obj) is np.ndarray:
        return obj.view(DeviceArray)
    if isinstance(obj, tuple):
        return tuple(_on_device(a) for a in obj)
    return obj


def _caller_module(depth=2):
    return sys._getframe(depth).f_globals.get("__name__", "")


def _guard_numpy_converter(name):
    convert = _NUMPY_CONVERTERS[name]

    def guarded(a, *args, **kwargs):
        if isinstance(a, DeviceArray) and _caller_module() not in MOVERS:
            raise TypeError(f"np.{name} of a device array outside nn.backend (CuPy: "
                            "implicit conversion to a NumPy array is not allowed)")
        return convert(a, *args, **kwargs)
    return guarded


def _device_function(name, fn):
    def call(*args, **kwargs):
        if name in ("asarray", "array", "ascontiguousarray"):
            host = [a for a in args[:1] if type(a) is np.ndarray and a.ndim > 0]
            if host and _caller_module() not in MOVERS:
                raise TypeError(f"xp.{name} of a host array outside nn.backend: "
                                "an unmarked host-to-device copy")
            return _on_device(np.ascontiguousarray(_host_views(args[0]), *args[1:], **kwargs)
                              if name == "ascontiguousarray" else fn(_host_views(args[0]),
                                                                     *args[1:], **kwargs))
        _refuse_host(args + tuple(kwargs.values()), f"xp.{name}")
        return _on_device(fn(*_host_views(args), **{k: _host_views(v) for k, v in kwargs.items()}))
    call.__name__ = name
    return call


class _Namespace(types.ModuleType):
    """numpy's names (and those of a numpy submodule), their functions returning device arrays."""

    def __init__(self, name, source):
        super().__init__(name)
        self._source = source

    def __getattr__(self, name):
        obj = getattr(self._source, name)
        if isinstance(obj, types.ModuleType):
            return _Namespace(f"{self.__name__}.{name}", obj)
        if (callable(obj) and not isinstance(obj, type) and not isinstance(obj, np.ufunc)
                and name != "errstate"):
            return _device_function(name, obj)
        if isinstance(obj, np.ufunc):
            return obj  # applied to device arrays, __array_ufunc__ applies the rules
        return obj


class _Device:
    def synchronize(self):
        pass


def module():
    """The stand-in cupy module (fresh each call)."""
    m = _Namespace("cupy", np)
    m.__version__ = "fake"
    m.ndarray = DeviceArray
    m.cuda = types.SimpleNamespace(
        runtime=types.SimpleNamespace(getDeviceCount=lambda: 1,
                                      getDeviceProperties=lambda i: {"name": b"pretend device"}),
        Device=lambda *a: _Device())
    return m


_REAL = None


def real_names():
    """The names the installed CuPy defines: the numpy functions a device array may be given to."""
    global _REAL
    if _REAL is None:
        import importlib
        real = sys.modules.get("_real_cupy") or importlib.import_module("cupy")
        _REAL = frozenset(dir(real))
    return _REAL


def install(monkeypatch):
    """Make ``import cupy`` give the stand-in and guard numpy's converters, for one test."""
    real_names()  # read the real CuPy's names before it is replaced
    monkeypatch.setitem(sys.modules, "cupy", module())
    for name in _NUMPY_CONVERTERS:
        monkeypatch.setattr(np, name, _guard_numpy_converter(name))
