"""Training with Adam: minibatches, seeds, per-epoch progress, checkpoints, and a stop on NaN.

The loop is generic in its objective: ``objective(model, x, y, step) -> (loss, grads, logits)``
(the default is the mean cross-entropy; the saturating penalty and adversarial training plug in
here). Data stay on the host and are moved to the model's device once.
"""
from __future__ import annotations

import dataclasses
import math
import time

import numpy as np

from .backend import to_device, to_host
from .checkpoint import save_checkpoint
from .optim import adam_init, adam_update


@dataclasses.dataclass
class TrainConfig:
    """Training settings (all JSON-able; written into the run folder and the checkpoint)."""
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    lr_decay: float = 1.0  # the learning rate is multiplied by this after every epoch
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    seed: int = 0  # seeds the initial weights and the shuffling
    max_train: int | None = None  # use only the first max_train training examples (smoke runs)


class TrainingDiverged(RuntimeError):
    """The loss or the parameters became NaN or inf."""


def cross_entropy_objective(model, x, y, step):
    """The plain objective: mean cross-entropy over the batch and its parameter gradients."""
    return model.loss_and_grads(x, y)


def accuracy(model, x, y, batch_size=1000):
    """Fraction of examples with predict(x) == y; x, y on the host, moved batch by batch."""
    xp = model.xp
    correct = 0
    for i in range(0, len(x), batch_size):
        xb = to_device(x[i:i + batch_size], xp, model.dtype)
        correct += int((to_host(model.predict(xb)) == y[i:i + batch_size]).sum())
    return correct / len(x)


def _all_finite(params):
    return all(bool(v.dtype.kind != "f" or np.isfinite(float(v.sum()))) for p in params for v in p.values())


def _last_good(checkpoint, epoch):
    if checkpoint and epoch > 1:
        return f"The last good checkpoint (epoch {epoch - 1}) is {checkpoint}."
    return "No checkpoint was written yet."


def train(model, data, cfg: TrainConfig, *, objective=cross_entropy_objective, log=print,
          checkpoint=None, checkpoint_meta=None, progress=None):
    """Train ``model`` in place with Adam on data["train"], reporting data["val"] each epoch.

    After every epoch whose parameters are finite, the checkpoint (if a path is given) is
    rewritten atomically; on a NaN/inf loss training stops with TrainingDiverged and the last
    good checkpoint stays on disk. ``progress(model, step) -> dict`` adds entries (e.g. lambda,
    saturated fraction) to each epoch's record and progress line. -> history: list of dicts.
    """
    xp = model.xp
    x_host, y_host = data["train"]
    if cfg.max_train:
        x_host, y_host = x_host[:cfg.max_train], y_host[:cfg.max_train]
    x_all = to_device(x_host, xp, model.dtype)  # (N, 1, 28, 28), on the model's device once
    y_all = to_device(y_host, xp)
    n = len(x_host)
    rng = np.random.default_rng(cfg.seed)
    state = adam_init(model.params)
    history, step, lr = [], 0, cfg.lr
    t_start = time.perf_counter()
    for epoch in range(1, cfg.epochs + 1):
        t0 = time.perf_counter()
        order = rng.permutation(n)
        loss_sum, correct = 0.0, 0
        for i in range(0, n, cfg.batch_size):
            idx = to_device(order[i:i + cfg.batch_size], xp)
            xb, yb = x_all[idx], y_all[idx]
            loss, grads, logits = objective(model, xb, yb, step)
            loss = float(loss)
            if not math.isfinite(loss):
                raise TrainingDiverged(f"loss became {loss} at epoch {epoch}, step {step}; stopped. "
                                       + _last_good(checkpoint, epoch))
            adam_update(model.params, grads, state, lr, cfg.beta1, cfg.beta2, cfg.eps)
            loss_sum += loss * len(idx)
            correct += int((logits.argmax(axis=1) == yb).sum())
            step += 1
        if not _all_finite(model.params):
            raise TrainingDiverged(f"parameters became NaN/inf in epoch {epoch}; stopped. "
                                   + _last_good(checkpoint, epoch))
        dt = time.perf_counter() - t0
        rec = {"epoch": epoch, "step": step, "lr": lr, "loss": loss_sum / n, "train_acc": correct / n,
               "val_acc": accuracy(model, *data["val"]) if "val" in data else float("nan"),
               "examples_per_s": n / dt, "seconds": dt}
        extra = progress(model, step) if progress else {}
        rec.update(extra)
        history.append(rec)
        left = (time.perf_counter() - t_start) / epoch * (cfg.epochs - epoch)
        log(f"epoch {epoch:3d}/{cfg.epochs}  loss {rec['loss']:.4f}  train {rec['train_acc']:.4f}  "
            f"val {rec['val_acc']:.4f}  {rec['examples_per_s']:8.0f} ex/s  {dt:6.1f} s  ~{left:5.0f} s left"
            + "".join(f"  {k} {v:.4g}" if isinstance(v, float) else f"  {k} {v}" for k, v in extra.items()))
        if checkpoint:
            save_checkpoint(checkpoint, model, config=dataclasses.asdict(cfg), epoch=epoch,
                            history=history, **(checkpoint_meta or {}))
        lr *= cfg.lr_decay
    return history
