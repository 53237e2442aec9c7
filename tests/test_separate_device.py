"""The quick presets run with ``--device gpu`` on arrays that behave like a separate device
(``tests/fakedevice.py``: numpy arithmetic, CuPy's refusals): any host/device crossing outside
``nn/backend.py`` fails here, on the CPU, as it would on a GPU. Needs the installed CuPy only for
the names it implements.

Raises: a host array mixed into device arithmetic or passed to a device function, ``np.asarray`` of
a device array, ``xp.asarray`` of a host array outside ``nn/backend.py``, a numpy function CuPy does
not implement applied to a device array. What it found: four host-to-device copies outside
``nn/backend.py`` (the unit permutation, the Fisher path's interpolation weights, the RDM labels,
and the audit's batching, which sent host masks to the device and back); the first three now go
through ``to_device``, the masks stay on the host. What it cannot see: a device array used to index
a host array, and numpy's C code converting one. ``array-api-strict`` models separate devices too,
but implements only the array API standard (no ``.reshape`` or ``.astype`` methods, no integer-array
assignment, no ``flatnonzero``), all of which the layers and attacks use.
"""
import numpy as np
import pytest

from tests import fakedevice

pytest.importorskip("cupy")


@pytest.fixture
def device(monkeypatch):
    fakedevice.install(monkeypatch)
    from nn.backend import get_xp
    return get_xp("gpu")


def test_the_stand_in_refuses_what_cupy_refuses(device):
    from nn.backend import array_module, to_device, to_host
    d = to_device(np.arange(6.0).reshape(2, 3), device)
    assert isinstance(d, fakedevice.DeviceArray) and array_module(d) is device
    assert isinstance(d * 2 + device.exp(d), fakedevice.DeviceArray)
    with pytest.raises(TypeError, match="host array"):
        d + np.ones(3)  # mixing host and device
    with pytest.raises(TypeError, match="host array"):
        device.where(np.ones((2, 3), bool), d, 0)
    with pytest.raises(TypeError, match="outside nn.backend"):
        np.asarray(d)
    with pytest.raises(TypeError, match="outside nn.backend"):
        device.asarray(np.ones(3))
    with pytest.raises(TypeError, match="does not dispatch"):
        np.histogram_bin_edges(d)
    assert isinstance(np.concatenate([d, d]), fakedevice.DeviceArray)  # CuPy implements it
    assert type(to_host(d)) is np.ndarray and float(d.sum()) == 15.0


def test_quick_presets_on_a_separate_device(device, tmp_path, mnist_dir):
    """table1 (which trains the models), the sweep, the audit, the analyses and the section 7
    grids."""
    from experiments import (adam_attack, fisher_path, kurtosis_linear, lbfgs_grid, rdm, table1,
                             weights)
    from experiments.beyond import audit, logit_scale, sweep, verify
    common = ["--device", "gpu", "--data-dir", str(mnist_dir)]
    models = tmp_path / "table1"
    rows = table1.main(["--quick", "--out", str(models), *common])
    assert len(rows) == 9 and all(0 <= r["fgsm_paper"] <= 1 for r in rows)
    assert sweep.main(["--quick", "--out", str(tmp_path / "sweep"), "--n-test", "200", *common])
    from_models = ["--quick", "--from", str(models), *common]
    assert audit.main([*from_models, "--models", "relu_mlp-vanilla", "sigmoid_mlp-saturated",
                       "cnn-saturated", "--out", str(tmp_path / "audit")])
    trained = ["--models", "relu_mlp-vanilla", "relu_mlp-saturated", "cnn-vanilla"]
    for script in (weights, rdm, fisher_path, logit_scale, verify):
        script.main([*from_models, *trained, "--out",
                     str(tmp_path / script.__name__.split(".")[-1])])
    kurtosis_linear.main([*from_models, "--models", "relu_mlp-saturated", "--out",
                          str(tmp_path / "kurtosis")])
    for script in (lbfgs_grid, adam_attack):
        script.main([*from_models, "--models", "relu_mlp-saturated", "cnn-vanilla", "--sources",
                     "most", "--out", str(tmp_path / script.__name__.split(".")[-1])])
