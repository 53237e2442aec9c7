"""Loading a checkpoint checks every item it holds against its spec (nn.checkpoint._check): an array
of another shape or dtype, a non-finite entry, a missing or extra array, a bad step count or
generator state raises CheckpointError naming the item and the file, with or without the optimizer
state."""
import json
import os
import re
import time

import numpy as np
import pytest

from nn import architectures
from nn.backend import to_host
from nn.checkpoint import CheckpointError, NoOptimizerState, load_checkpoint, save_checkpoint
from nn.model import Sequential
from nn.train import TrainConfig, resume_state, train


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A checkpoint written by ``train``: a 784-50-50-10 ReLU MLP after one epoch on 64 random
    images, with its Adam state and train_state (so layer1.W and its moments are (50, 784))."""
    rng = np.random.default_rng(0)
    data = {"train": (rng.random((64, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, 64))}
    path = tmp_path_factory.mktemp("ckpt") / "train.npz"
    model = Sequential.init(architectures.mlp("relu", hidden=50), seed=0)
    train(model, data, TrainConfig(epochs=1, batch_size=16), log=lambda line: None, checkpoint=path)
    return path


def _doctor(src, dst, arrays=None, meta=None):
    """Copy checkpoint src to dst with some arrays replaced (None: removed) and meta items replaced
    (None: removed); -> dst."""
    with np.load(src) as z:
        items = dict(z)
    header = json.loads(str(items.pop("__meta__")))
    for k, v in (arrays or {}).items():
        items.pop(k) if v is None else items.__setitem__(k, v)
    for k, v in (meta or {}).items():
        header.pop(k) if v is None else header.__setitem__(k, v)
    np.savez(dst, __meta__=np.array(json.dumps(header)), **items)
    return dst


def _array(path, name):
    with np.load(path) as z:
        return z[name].copy()


def _with(path, name, index, value, dtype=None):
    a = _array(path, name).astype(dtype or np.float32)
    a[index] = value
    return a


# name of the case -> (doctored arrays, doctored meta, what the message must say after "<file>: ")
CASES = {
    "moment of another layer's shape": (
        {"adam.m.layer1.W": np.zeros((60, 784), np.float32)}, None,
        "adam.m.layer1.W has shape (60, 784); the spec expects (50, 784)"),
    "NaN weight": (lambda p: {"layer1.W": _with(p, "layer1.W", (3, 7), np.nan)}, None,
                   "layer1.W has 1 NaN or infinite entries of 39200"),
    "infinite bias": (lambda p: {"layer3.b": _with(p, "layer3.b", 0, -np.inf)}, None,
                      "layer3.b has 1 NaN or infinite entries of 50"),
    "float64 bias in a float32 "
    "model": (lambda p: {"layer1.b": _array(p, "layer1.b").astype(np.float64)}, None,
                                        "layer1.b has dtype float64; the model's is float32 (that "
                                        "of layer5.W)"),
    "float64 "
    "moment": (lambda p: {"adam.v.layer3.W": _array(p, "adam.v.layer3.W").astype(np.float64)}, None,
                       "adam.v.layer3.W has dtype float64; the model's is float32"),
    "integer readout": (lambda p: {"layer5.W": _array(p, "layer5.W").astype(np.int32)}, None,
                        "layer5.W has dtype int32; a model's parameters are float32 or float64"),
    "missing moment": ({"adam.v.layer1.b": None}, None,
                       "adam.v.layer1.b is missing; the spec expects an array of shape (50,)"),
    "NaN first moment": (lambda p: {"adam.m.layer5.b": _with(p, "adam.m.layer5.b", 2, np.nan)},
                         None, "adam.m.layer5.b has 1 NaN or infinite entries of 10"),
    "infinite second "
    "moment": (lambda p: {"adam.v.layer3.W": _with(p, "adam.v.layer3.W", (0, 0), np.inf)}, None,
                               "adam.v.layer3.W has 1 NaN or infinite entries of 2500"),
    "negative second "
    "moment": (lambda p: {"adam.v.layer1.W": _with(p, "adam.v.layer1.W", (1, 1), -1e-3)}, None,
                               "adam.v.layer1.W has 1 negative entries"),
    "array not in the spec": ({"adam.m.layer0.W": np.zeros((1,), np.float32)}, None,
                              "adam.m.layer0.W is not in the spec"),
    "step count not whole": (None, {"adam_t": 1.5},
                             "adam_t is 1.5; Adam's step count is a whole number >= 0"),
    "step count missing": (None, {"adam_t": None}, "adam_t is missing"),
    "negative training step": (None, lambda m: {"train_state": {**m["train_state"], "step": -1}},
                               "train_state.step is -1; expected a whole number >= 0"),
    "NaN learning rate": (None, lambda m: {"train_state": {**m["train_state"], "lr": float("nan")}},
                          "train_state.lr is nan; expected a finite learning rate > 0"),
    "generator state of another kind": (
        None, lambda m: {"train_state": {**m["train_state"], "rng": {**m["train_state"]["rng"],
                                                                     "bit_generator": "os"}}},
        "train_state.rng is not a generator state"),
    "generator state not whole": (
        None, lambda m: {"train_state": {**m["train_state"],
                                         "rng": {**m["train_state"]["rng"],
                                                 "state": {"state": 1.5, "inc": 3}}}},
        "train_state.rng is not a generator state"),
}


def _meta(path):
    with np.load(path) as z:
        return json.loads(str(z["__meta__"]))


@pytest.mark.parametrize("optimizer", [False, True])
@pytest.mark.parametrize("case", list(CASES))
def test_every_misfit_names_the_item_and_the_file(trained, tmp_path, case, optimizer):
    arrays, meta, says = CASES[case]
    arrays = arrays(trained) if callable(arrays) else arrays
    meta = meta(_meta(trained)) if callable(meta) else meta
    bad = _doctor(trained, tmp_path / "bad.npz", arrays, meta)
    with pytest.raises(CheckpointError, match=re.escape(f"{bad}: {says}")):
        load_checkpoint(bad, optimizer=optimizer)


def test_a_misfit_stops_resuming_instead_of_restarting(trained, tmp_path):
    """resume_state restarts training only from a model without optimizer state; a checkpoint whose
    Adam state is damaged is an error, not a silent fresh start."""
    cfg = TrainConfig(epochs=2, batch_size=16)
    assert resume_state(trained, cfg, np)[1].epoch == 1
    for name, arrays in (("moment", {"adam.m.layer1.W": np.zeros((60, 784), np.float32)}),
                         ("missing", {"adam.v.layer1.b": None})):
        bad = _doctor(trained, tmp_path / f"{name}.npz", arrays)
        with pytest.raises(CheckpointError, match=re.escape(f"{bad}: adam.")):
            resume_state(bad, cfg, np)
    model_only = tmp_path / "model.npz"
    save_checkpoint(model_only, load_checkpoint(trained)[0])
    with pytest.raises(NoOptimizerState, match="holds no optimizer state"):
        load_checkpoint(model_only, optimizer=True)
    assert resume_state(model_only, cfg, np) is None


def test_a_good_checkpoint_loads_whole(trained, xp):
    """What passes the checks is what was saved, on either backend, moments and step included."""
    model, meta, state = load_checkpoint(trained, xp, optimizer=True)
    assert model.xp is xp and model.dtype == np.float32
    with np.load(trained) as z:
        for i, p in enumerate(model.params):
            for k, v in p.items():
                np.testing.assert_array_equal(to_host(v), z[f"layer{i}.{k}"])
                for m in ("m", "v"):
                    np.testing.assert_array_equal(to_host(state[m][i][k]),
                                                  z[f"adam.{m}.layer{i}.{k}"])
    assert state["t"] == meta["adam_t"] == meta["train_state"]["step"] == 4


def test_save_and_load_remove_stale_temporary_files(tmp_path):
    """A checkpoint write killed midway left its temporary file (up to 64 MB) beside the checkpoint
    forever. The next save or load of that checkpoint removes its own stale ones (untouched for an
    hour); a recent one, maybe a write in progress, and other files' stay. (Found in this project,
    no public report.)"""
    model = Sequential.init(architectures.mlp("relu", hidden=4, input_shape=[1, 2, 2]), seed=0)
    path = tmp_path / "m.npz"

    def leftover(name, age_s):
        p = tmp_path / name
        p.write_bytes(b"the first bytes of a zip file")
        t = time.time() - age_s
        os.utime(p, (t, t))
        return p
    day = 24 * 3600
    stale, recent = leftover(".m.npz.abcd_123.tmp", day), leftover(".m.npz.efgh5678.tmp", 10)
    others = [leftover(".m2.npz.abcd1234.tmp", day), leftover(".m.npz.abcd1234.tmp.keep", day)]
    save_checkpoint(path, model)
    assert not stale.exists() and recent.exists() and all(p.exists() for p in others)
    stale = leftover(".m.npz.zzzz0000.tmp", day)
    load_checkpoint(path)
    assert not stale.exists() and recent.exists()
