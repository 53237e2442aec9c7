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


@pytest.fixture(scope="session")
def mnist_test(mnist_dir):
    """The MNIST test images and labels (host float32, int64)."""
    from nn.mnist import load_mnist
    return load_mnist(mnist_dir)["test"]


@pytest.fixture(scope="session")
def small_mnist_models(mnist_dir, tmp_path_factory):
    """A folder of two small trained MLPs on real MNIST (784-32-32-10, one epoch on 10,000 images,
    about 93 % test accuracy), saved as the Table 1 names ``relu_mlp-vanilla.npz`` and
    ``sigmoid_mlp-vanilla.npz``, for the experiment scripts' end-to-end tests.
    -> (folder, {name: model})."""
    from nn import architectures
    from nn.checkpoint import save_checkpoint
    from nn.mnist import load_mnist
    from nn.model import Sequential
    from nn.train import TrainConfig, train
    data = load_mnist(mnist_dir)
    folder = tmp_path_factory.mktemp("models")
    models = {}
    for act in ("relu", "sigmoid"):
        model = Sequential.init(architectures.mlp(act, hidden=32), seed=0)
        train(model, data, TrainConfig(epochs=1, lr=3e-3, max_train=10000), log=lambda line: None)
        save_checkpoint(folder / f"{act}_mlp-vanilla.npz", model, complete=True)
        models[f"{act}_mlp-vanilla"] = model
    return folder, models
