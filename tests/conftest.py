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
    """The MNIST folder, found as the loader finds it (``nn.mnist``): $SATNETS_MNIST_DIR, else
    ../shared/data/mnist beside the repository (CI's copy), else the per-user cache, downloaded
    there from the public mirrors if it is not there yet."""
    from nn.mnist import ENV_DIR, cache_dir, load_mnist
    for d in (os.environ.get(ENV_DIR), REPO.parent / "shared" / "data" / "mnist"):
        if d and Path(d).is_dir():
            return Path(d)
    load_mnist()  # the cache, downloaded if missing; a clear MNISTError where that is impossible
    return cache_dir()


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
