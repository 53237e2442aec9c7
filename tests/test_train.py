"""Adam, the training loop, checkpoints, resuming, and an end-to-end run on real MNIST."""
import dataclasses
import json

import numpy as np
import pytest

from nn import architectures
from nn.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from nn.mnist import load_mnist
from nn.model import Sequential
from nn.optim import adam_init, adam_update
from nn.penalty import saturating_objective
from nn.train import TrainConfig, TrainingDiverged, accuracy, resume_state, train


@pytest.fixture(scope="module")
def mnist(mnist_dir):
    return load_mnist(mnist_dir, allow_download=False)


def test_adam_matches_textbook_formula():
    """Several blocked in-place steps equal Kingma & Ba's Algorithm 1 written out in float64."""
    rng = np.random.default_rng(0)
    theta = rng.standard_normal(70000)  # larger than one CPU block, not a multiple of it
    params = [{"w": theta.copy()}]
    state = adam_init(params)
    m = v = np.zeros_like(theta)
    ref = theta.copy()
    for t in range(1, 4):
        g = rng.standard_normal(theta.shape)
        adam_update(params, [{"w": g}], state, lr=0.01)
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        ref = ref - 0.01 * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-8)
    np.testing.assert_allclose(params[0]["w"], ref, rtol=1e-12, atol=1e-13)


def test_adam_updates_parameters_of_any_memory_layout():
    """A Fortran-order weight (and a strided view of moments) is updated in place exactly as its
    C-order copy is: the update used to run through ``reshape(-1)``, a copy for such an array, and
    left the weight and both moments unchanged (the kind of bitsandbytes PR 1187 and DeepSpeed PR
    2489)."""
    rng = np.random.default_rng(0)
    W = rng.standard_normal((50, 784)).astype(np.float32)
    g = [{"W": rng.standard_normal(W.shape).astype(np.float32)} for _ in range(3)]
    layouts = {"C": [{"W": W.copy()}], "F": [{"W": np.asfortranarray(W)}],
               "strided": [{"W": np.zeros((50, 2 * 784), np.float32)[:, ::2]}]}
    layouts["strided"][0]["W"][...] = W
    states = {name: adam_init(params) for name, params in layouts.items()}
    for step in range(3):
        g_f = {"W": np.asfortranarray(g[step]["W"])}  # the gradient's layout does not matter either
        for name, params in layouts.items():
            adam_update(params, [g[step] if name == "C" else g_f], states[name], lr=1e-2)
    held = layouts["F"][0]["W"]
    assert held.flags.f_contiguous and not np.array_equal(held, W)  # updated where it lives
    for name in ("F", "strided"):
        np.testing.assert_array_equal(layouts[name][0]["W"], layouts["C"][0]["W"], err_msg=name)
        for moment in ("m", "v"):
            np.testing.assert_array_equal(states[name][moment][0]["W"], states["C"][moment][0]["W"])


def test_checkpoint_round_trip(tmp_path):
    model = Sequential.init(architectures.cnn(channels=(2, 3), hidden=5, kernel=3,
                                              input_shape=[1, 8, 8]), seed=3)
    path = tmp_path / "sub" / "model.npz"
    save_checkpoint(path, model, config={"lr": 0.1})
    loaded, meta = load_checkpoint(path)
    x = np.random.default_rng(0).random((4, 1, 8, 8), dtype=np.float32)
    np.testing.assert_array_equal(loaded.logits(x), model.logits(x))
    assert meta["config"] == {"lr": 0.1} and loaded.spec == model.spec
    assert [p.name for p in path.parent.iterdir()] == ["model.npz"]  # no temporary file left


def test_checkpoint_errors(tmp_path):
    model = Sequential.init(architectures.mlp("relu", hidden=4, input_shape=[1, 2, 2]))
    good = tmp_path / "good.npz"
    save_checkpoint(good, model)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing.npz")
    (tmp_path / "trunc.npz").write_bytes(good.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="not a readable"):
        load_checkpoint(tmp_path / "trunc.npz")
    with np.load(good) as z:
        arrays = dict(z)
    meta = json.loads(str(arrays["__meta__"]))
    meta["spec"]["layers"][1]["units"] = 5  # spec no longer matches the weights
    np.savez(tmp_path / "bad.npz", **{**arrays, "__meta__": np.array(json.dumps(meta))})
    with pytest.raises(CheckpointError, match=r"bad.npz: layer1.W has shape \(4, 4\); "
                                              r"the spec expects \(5, 4\)"):
        load_checkpoint(tmp_path / "bad.npz")


def test_same_seed_same_model(mnist):
    spec = architectures.mlp("sigmoid", hidden=32)
    cfg = TrainConfig(epochs=1, max_train=1000, seed=7)
    a, b = Sequential.init(spec, seed=7), Sequential.init(spec, seed=7)
    train(a, mnist, cfg, log=lambda s: None)
    train(b, mnist, cfg, log=lambda s: None)
    for pa, pb in zip(a.params, b.params):
        for k in pa:
            np.testing.assert_array_equal(pa[k], pb[k])
    c = Sequential.init(spec, seed=8)
    train(c, mnist, TrainConfig(epochs=1, max_train=1000, seed=8), log=lambda s: None)
    assert not np.array_equal(a.params[1]["W"], c.params[1]["W"])


def test_nan_stops_training_and_keeps_last_good_checkpoint(mnist, tmp_path):
    model = Sequential.init(architectures.mlp("relu", hidden=16), seed=0)
    ckpt = tmp_path / "model.npz"
    calls = {"n": 0}

    def objective(m, x, y, step, numerics="float32"):  # poisons the loss in the second epoch
        loss, grads, logits = m.loss_and_grads(x, y)
        calls["n"] += 1
        return (loss * np.nan if step >= 8 else loss), grads, logits

    lines = []
    with pytest.raises(TrainingDiverged,
                       match=r"loss became nan at epoch 2, step 8.*last good checkpoint"):
        train(model, mnist, TrainConfig(epochs=3, max_train=1000), objective=objective,
              log=lines.append, checkpoint=ckpt)
    loaded, meta = load_checkpoint(ckpt)
    assert meta["epoch"] == 1 and len(lines) == 1
    assert all(np.isfinite(v).all() for p in loaded.params for v in p.values())


@pytest.mark.slow
def test_end_to_end_mnist(mnist, tmp_path):
    """A small MLP trained for under a minute on the CPU reaches at least 95 % test accuracy, and
    its checkpoint gives identical logits."""
    model = Sequential.init(architectures.mlp("relu", hidden=256), seed=0)
    ckpt = tmp_path / "model.npz"
    history = train(model, mnist, TrainConfig(epochs=2), log=print, checkpoint=ckpt)
    acc = accuracy(model, *mnist["test"])
    print(f"test accuracy {acc:.4f}")
    assert acc >= 0.95
    assert history[-1]["val_acc"] >= 0.95
    loaded, _ = load_checkpoint(ckpt)
    x = mnist["test"][0][:500]
    np.testing.assert_array_equal(loaded.logits(x), model.logits(x))


def test_retain_freed_memory_takes_effect_on_glibc_and_nowhere_else():
    """The allocator setting the CPU scripts apply (large numpy temporaries reused between steps):
    mallopt accepts it on Linux with glibc; elsewhere it is a no-op that says so. (Its speed effect
    is a benchmark figure, RESULTS.md, not a test.)"""
    import platform
    from nn.backend import retain_freed_memory
    glibc = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    assert retain_freed_memory() is glibc


@pytest.mark.parametrize("numerics", ["float32", "paper"])
def test_resume_equals_an_uninterrupted_run(mnist, tmp_path, numerics):
    """A run interrupted after epoch 2 of 3 and resumed from its checkpoint ends bit for bit where
    an uninterrupted run ends: parameters, Adam's moments, lambda's schedule position, the
    shuffling."""
    spec = architectures.mlp("sigmoid", hidden=16)
    cfg = TrainConfig(epochs=3, max_train=1000, seed=3, lr_decay=0.9, numerics=numerics)
    objective = saturating_objective(["sigmoid"] * 3, 1.74, 0.05, units="mean")
    quiet = lambda line: None  # noqa: E731
    straight = Sequential.init(spec, seed=3)
    full = train(straight, mnist, cfg, objective=objective, log=quiet,
                 checkpoint=tmp_path / "a.npz")

    class Stop(Exception):
        pass

    def interrupt(model, rec):
        if rec["epoch"] == 2:
            raise Stop
    with pytest.raises(Stop):
        train(Sequential.init(spec, seed=3), mnist, cfg, objective=objective, log=quiet,
              checkpoint=tmp_path / "b.npz", after_epoch=interrupt)
    model, state, meta = resume_state(tmp_path / "b.npz", cfg, np)
    assert (state.epoch, state.step) == (2, 16) and meta["complete"] is False
    resumed = train(model, mnist, cfg, objective=objective, log=quiet,
                    checkpoint=tmp_path / "b.npz", resume=state)
    for pa, pb in zip(straight.params, model.params):
        for k in pa:
            np.testing.assert_array_equal(pa[k], pb[k])
    _, _, adam_a = load_checkpoint(tmp_path / "a.npz", optimizer=True)
    _, _, adam_b = load_checkpoint(tmp_path / "b.npz", optimizer=True)
    assert adam_a["t"] == adam_b["t"] == 24
    for moment in ("m", "v"):
        for pa, pb in zip(adam_a[moment], adam_b[moment]):
            for k in pa:
                np.testing.assert_array_equal(pa[k], pb[k])
    timing = ("seconds", "examples_per_s")
    assert [{k: v for k, v in h.items() if k not in timing} for h in full] == \
        [{k: v for k, v in h.items() if k not in timing} for h in resumed]
    # another run's settings, or no checkpoint at all: nothing to resume
    assert resume_state(tmp_path / "b.npz",
                        TrainConfig(epochs=3, max_train=1000, seed=4), np) is None
    assert resume_state(tmp_path / "none.npz", cfg, np) is None
    # a finished run extends: more epochs continue from the last one
    longer = dataclasses.replace(cfg, epochs=4)
    model, state, _ = resume_state(tmp_path / "b.npz", longer, np)
    assert state.epoch == 3 and len(train(model, mnist, longer, objective=objective, log=quiet,
                                          resume=state)) == 4
    # a slow run is checkpointed by time as well: every epoch here, though checkpoint_every is 100
    saved = []
    train(Sequential.init(spec, seed=3), mnist, cfg, objective=objective, log=quiet,
          checkpoint=tmp_path / "c.npz", checkpoint_every=100, checkpoint_seconds=0.0,
          after_epoch=lambda m, rec: saved.append(resume_state(tmp_path / "c.npz",
                                                               cfg, np)[1].epoch))
    assert saved == [1, 2, 3]


@pytest.mark.parametrize("ftz, numerics", [(True, "paper"), (False, "float32")])
def test_a_checkpoint_of_the_ftz_spelling_resumes(mnist, tmp_path, ftz, numerics):
    """Checkpoints written before the numerics had one name hold ``"ftz": true / false`` in their
    config: they resume under ``numerics="paper" / "float32"`` and under nothing else
    (``TrainConfig.from_dict``)."""
    cfg = TrainConfig(epochs=2, max_train=300, numerics=numerics)
    path = tmp_path / "old.npz"
    train(Sequential.init(architectures.mlp("relu", hidden=8)), mnist,
          dataclasses.replace(cfg, epochs=1), log=lambda line: None, checkpoint=path)
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    meta = json.loads(str(arrays["__meta__"]))
    del meta["config"]["numerics"]
    meta["config"]["ftz"] = ftz  # as the file was written before
    arrays["__meta__"] = np.array(json.dumps(meta))
    np.savez(path, **arrays)
    model, state, _ = resume_state(path, cfg, np)
    assert state.epoch == 1
    other = "float32" if numerics == "paper" else "paper"
    assert resume_state(path, dataclasses.replace(cfg, numerics=other), np) is None
    assert TrainConfig.from_dict(meta["config"]) == dataclasses.replace(cfg, epochs=1)


def test_train_config_refuses_the_stable_mode():
    with pytest.raises(ValueError, match="numerics must be one of 'paper', 'float32', "
                                         "got 'stable'; 'stable' is the"):
        TrainConfig(numerics="stable")
    with pytest.raises(ValueError, match="numerics must be one of 'paper', 'float32', got True"):
        TrainConfig(numerics=True)
