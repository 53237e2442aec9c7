"""The GPU path checked without a GPU: every ``xp.<name>`` the code calls exists in the real
CuPy, with the arguments used, and every ndarray method the code calls exists on cupy.ndarray.

CuPy imports without a GPU (only creating arrays needs one), so this runs wherever the ``gpu`` extra
is installed, CI included; it skips where cupy is not installed. It reads the source (``ast``), so
it covers every call site, also those no CPU test reaches. What it cannot see: host/device crossings
through numpy functions applied to device arrays (``np.asarray(device_array)``), which need arrays
that refuse the conversion (``tests/test_separate_device.py``).

What it found: ``xp.errstate`` (CuPy has none) in the scaled sigmoid backward, a crash on the first
``--device gpu`` audit; the code now uses numpy's switch there.
"""
import ast
import inspect
from pathlib import Path

import numpy as np
import pytest

cupy = pytest.importorskip("cupy")

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("nn", "attacks", "analysis", "experiments")


def _trees():
    """(path, syntax tree with each node's parent set) for every module of the packages."""
    for path in sorted(p for pkg in PACKAGES for p in (ROOT / pkg).glob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            for child in ast.iter_child_nodes(node):
                child.parent = node
        yield path.relative_to(ROOT), tree


def _chain(node):
    """'xp.linalg.eigvalsh' for the attribute chain of node, or None if it is not rooted at a
    name."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return ".".join([node.id] + parts[::-1])
    return None


def xp_uses():
    """{'xp.name...': [(file:line, call node or None)]} for every use of the array module ``xp``."""
    uses = {}
    for path, tree in _trees():
        calls = {id(n.func): n for n in ast.walk(tree) if isinstance(n, ast.Call)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and not isinstance(getattr(node, "parent", None),
                                                                  ast.Attribute):
                chain = _chain(node)
                if chain and chain.split(".")[0] == "xp":
                    uses.setdefault(chain, []).append((f"{path}:{node.lineno}",
                                                       calls.get(id(node))))
    return uses


def _resolve(chain):
    obj = cupy
    for part in chain.split(".")[1:]:
        obj = getattr(obj, part)
    return obj


def test_the_scan_finds_the_calls_it_should():
    """The scan itself: it sees nested names and keyword arguments (a scan that finds nothing proves
    nothing)."""
    uses = xp_uses()
    assert {"xp.where", "xp.clip", "xp.linalg.eigvalsh", "xp.exp"} <= set(uses)
    assert any(call is not None and call.keywords for sites in uses.values() for _, call in sites)


def test_every_xp_name_exists_in_cupy_with_the_arguments_used():
    missing, bad_args = [], []
    for chain, sites in sorted(xp_uses().items()):
        if chain in ("xp.__name__",):
            continue
        try:
            fn = _resolve(chain)
        except AttributeError:
            missing.append(f"{chain} ({sites[0][0]})")
            continue
        try:
            sig = inspect.signature(fn)
        except (TypeError, ValueError):
            continue  # a ufunc or a compiled function: existence is what can be checked
        for where, call in sites:
            if call is None or any(isinstance(a, ast.Starred) for a in call.args) or any(
                    k.arg is None for k in call.keywords):
                continue
            try:
                sig.bind(*[None] * len(call.args), **{k.arg: None for k in call.keywords})
            except TypeError as e:
                bad_args.append(f"{chain} at {where}: {e}")
    assert not missing, f"not in cupy {cupy.__version__}: {missing}"
    assert not bad_args, bad_args


def test_every_ndarray_method_called_exists_on_cupy_arrays():
    """Any ``<expr>.m(...)`` where m is a numpy.ndarray method must be a cupy.ndarray method too
    (the code does not know statically which expressions are arrays; names of other objects' methods
    that numpy arrays lack are not looked at)."""
    called = {}
    for path, tree in _trees():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                called.setdefault(node.func.attr, f"{path}:{node.lineno}")
    numpy_methods = {m for m in dir(np.ndarray) if not m.startswith("_")}
    # the scan sees array methods
    assert {"reshape", "astype", "sum"} <= set(called) & numpy_methods
    missing = {m: where for m, where in called.items() if m in numpy_methods
               and not hasattr(cupy.ndarray, m)}
    assert not missing, f"numpy.ndarray methods that cupy.ndarray lacks: {missing}"
