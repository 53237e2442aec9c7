"""Shared fixtures: the backend parametrisation and the MNIST folder."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from nn.backend import gpu_available

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(params=["numpy", "cupy"])
def xp(request):
    """Run a test body once on numpy and once on cupy (skipped without a CUDA GPU)."""
    if request.param == "numpy":
        return np
    if not gpu_available():
        pytest.skip("cupy or a CUDA GPU is not available")
    import cupy
    return cupy


@pytest.fixture(scope="session")
def mnist_dir():
    """The MNIST folder: $SATNETS_MNIST_DIR, else ../shared/data/mnist beside the repository."""
    d = os.environ.get("SATNETS_MNIST_DIR") or str(REPO.parent / "shared" / "data" / "mnist")
    if not Path(d).is_dir():
        pytest.fail(f"MNIST folder {d} not found; set SATNETS_MNIST_DIR to the folder of IDX files")
    return Path(d)
