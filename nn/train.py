"""Training with Adam: minibatches, seeds, per-epoch progress, resumable checkpoints, a stop on NaN.

The loop is generic in its objective: ``objective(model, x, y, step, numerics="float32") -> (loss,
grads, logits)`` (the default is the mean cross-entropy; the saturating penalty and adversarial
training plug in here). Data stay on the host and are moved to the model's device once.

A checkpoint holds everything the loop's future depends on: parameters, Adam's moments and step,
the training step (which sets lambda's schedule), the learning rate, the shuffling generator's state
and the history. ``resume_state`` reads it back, and training continued from it gives the same
model, bit for bit on the same machine, as a run that was never interrupted.
"""
from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path

import numpy as np

from .backend import to_device, to_host
from .checkpoint import NoOptimizerState, load_checkpoint, save_checkpoint
from .numerics import FORWARD_NUMERICS, check_numerics, upgrade_settings
from .optim import adam_init, adam_update
from .validate import InputError, check_batch, check_number


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
    numerics: str = "float32"  # or "paper": TensorFlow's float32 with flush-to-zero (nn.numerics)

    def __post_init__(self):
        for name in ("epochs", "batch_size", "seed"):
            check_number(name, getattr(self, name),
                         minimum=0 if name == "seed" else 1, integer=True)
        check_number("lr", self.lr, positive=True)
        check_number("lr_decay", self.lr_decay, positive=True)
        check_number("beta1", self.beta1, maximum=1 - 1e-12)
        check_number("beta2", self.beta2, maximum=1 - 1e-12)
        check_number("eps", self.eps, positive=True)
        if self.max_train is not None:
            check_number("max_train", self.max_train, minimum=1, integer=True)
        check_numerics(self.numerics, FORWARD_NUMERICS)

    @classmethod
    def from_dict(cls, d):
        """The config a dict of its fields describes (``dataclasses.asdict``'s, as a checkpoint or a
        run folder holds it), written today or before the numerics had one name (``"ftz": true``
        then stood for ``"numerics": "paper"``, ``nn.numerics.upgrade_settings``)."""
        return cls(**upgrade_settings(d))


@dataclasses.dataclass
class TrainState:
    """Where a training run stands after ``epoch`` complete epochs (what a checkpoint restores)."""
    epoch: int
    step: int
    lr: float  # the learning rate of the next epoch
    rng: dict  # the shuffling generator's bit_generator.state
    adam: dict  # nn.optim.adam_init's state
    history: list


class TrainingDiverged(RuntimeError):
    """The loss or the parameters became NaN or inf."""


def cross_entropy_objective(model, x, y, step, numerics="float32"):
    """The plain objective: mean cross-entropy over the batch and its parameter gradients (the
    batches come from data ``train`` checked once)."""
    return model.loss_and_grads(x, y, numerics=numerics, check=False)


def accuracy(model, x, y, batch_size=1000):
    """Fraction of examples with predict(x) == y; x, y on the host, moved batch by batch. A mean
    over examples: an empty x is refused (InputError)."""
    if len(x) == 0:
        raise InputError("x is an empty batch (N = 0); accuracy is a mean over examples")
    xp = model.xp
    correct = 0
    for i in range(0, len(x), batch_size):
        xb = to_device(x[i:i + batch_size], xp, model.dtype)
        correct += int((to_host(model.predict(xb)) == y[i:i + batch_size]).sum())
    return correct / len(x)


def _all_finite(params):
    return all(bool(v.dtype.kind != "f" or np.isfinite(float(v.sum()))) for p in params
               for v in p.values())


def _last_good(checkpoint, epoch):
    if checkpoint and epoch > 1:
        return f"The last good checkpoint (epoch {epoch - 1}) is {checkpoint}."
    return "No checkpoint was written yet."


def _resumable(cfg):
    """The settings a run can be resumed under: all but the number of epochs (a run may be
    extended)."""
    return {k: v for k, v in dataclasses.asdict(cfg).items() if k != "epochs"}


def resume_state(path, cfg: TrainConfig, xp):
    """The model and TrainState saved in checkpoint ``path`` by ``train``, if it can continue
    ``cfg``.

    -> (model, state, meta), or None when there is no checkpoint there, it holds a model without its
    training state, or it was trained with other settings (every TrainConfig field but ``epochs``
    must be equal; whether it is the same model is the caller's question,
    ``experiments.lib.store``). The state may lie past cfg.epochs: the caller decides. A corrupt
    file raises ``CheckpointError``.
    """
    if not Path(path).exists():
        return None
    try:
        model, meta, adam = load_checkpoint(path, xp, optimizer=True)
    except NoOptimizerState:
        return None
    if ("train_state" not in meta
            or _resumable(TrainConfig.from_dict(meta["config"])) != _resumable(cfg)):
        return None
    t = meta["train_state"]
    return model, TrainState(t["epoch"], t["step"], t["lr"], t["rng"], adam,
                             meta.get("history", [])), meta


def train(model, data, cfg: TrainConfig, *, objective=cross_entropy_objective, log=print,
          checkpoint=None, checkpoint_meta=None, progress=None, resume: TrainState | None = None,
          checkpoint_every=1, checkpoint_seconds=None, after_epoch=None):
    """Train ``model`` in place with Adam on data["train"], reporting data["val"] each epoch.

    After every ``checkpoint_every``-th epoch whose parameters are finite, after any epoch that ends
    ``checkpoint_seconds`` or more after the last write (slow runs lose little to an interruption),
    and after the last, the checkpoint (if a path is given) is rewritten atomically with the full
    training state; on a
    NaN/inf loss training stops with TrainingDiverged and the last good checkpoint stays on disk.
    ``resume``: a TrainState from ``resume_state`` (``model`` then is the model it came with):
    training continues after its epoch, up to cfg.epochs. ``progress(model, step) -> dict`` adds
    entries (e.g. lambda, saturated fraction) to each epoch's record and progress line;
    ``after_epoch(model, record)`` is called after each epoch (e.g. to keep snapshots).
    -> history: list of dicts, one per epoch since the start of the run.
    """
    xp = model.xp
    x_host, y_host = data["train"]
    if cfg.max_train:
        x_host, y_host = x_host[:cfg.max_train], y_host[:cfg.max_train]
    x_all = to_device(x_host, xp, model.dtype)  # (N, 1, 28, 28), on the model's device once
    y_all = to_device(y_host, xp)
    check_batch(model, x_all, y_all, unit_range=False, name_x='data["train"] images',
                name_y='data["train"] labels')
    n = len(x_host)
    if n == 0:
        raise InputError('data["train"] images: an empty training set (N = 0); '
                         'the loss is a mean over examples')
    rng = np.random.default_rng(cfg.seed)
    if resume is None:
        state, history, step, lr, first = adam_init(model.params), [], 0, cfg.lr, 1
    else:
        rng.bit_generator.state = resume.rng
        state, history, step, lr, first = (resume.adam, list(resume.history), resume.step,
                                           resume.lr, resume.epoch + 1)
        log(f"resuming after epoch {resume.epoch} (step {step})")
    t_start, done_before = time.perf_counter(), first - 1
    t_saved = t_start
    for epoch in range(first, cfg.epochs + 1):
        t0 = time.perf_counter()
        order = rng.permutation(n)
        loss_sum, correct = 0.0, 0
        for i in range(0, n, cfg.batch_size):
            idx = to_device(order[i:i + cfg.batch_size], xp)
            xb, yb = x_all[idx], y_all[idx]
            loss, grads, logits = objective(model, xb, yb, step, numerics=cfg.numerics)
            loss = float(loss)
            if not math.isfinite(loss):
                raise TrainingDiverged(f"loss became {loss} at epoch {epoch}, step {step}; "
                                       "stopped. " + _last_good(checkpoint, epoch))
            adam_update(model.params, grads, state, lr, cfg.beta1, cfg.beta2, cfg.eps,
                        numerics=cfg.numerics)
            loss_sum += loss * len(idx)
            correct += int((logits.argmax(axis=1) == yb).sum())
            step += 1
        if not _all_finite(model.params):
            raise TrainingDiverged(f"parameters became NaN/inf in epoch {epoch}; stopped. "
                                   + _last_good(checkpoint, epoch))
        dt = time.perf_counter() - t0
        rec = {"epoch": epoch, "step": step, "lr": lr, "loss": loss_sum / n,
               "train_acc": correct / n,
               "val_acc": accuracy(model, *data["val"]) if "val" in data else float("nan"),
               "examples_per_s": n / dt, "seconds": dt}
        extra = progress(model, step) if progress else {}
        rec.update(extra)
        history.append(rec)
        left = (time.perf_counter() - t_start) / (epoch - done_before) * (cfg.epochs - epoch)
        log(f"epoch {epoch:3d}/{cfg.epochs}  loss {rec['loss']:.4f}  train {rec['train_acc']:.4f}  "
            f"val {rec['val_acc']:.4f}  {rec['examples_per_s']:8.0f} ex/s  {dt:6.1f} s  "
            f"~{left:5.0f} s left"
            + "".join(f"  {k} {v:.4g}" if isinstance(v, float) else f"  {k} {v}"
                      for k, v in extra.items()))
        lr *= cfg.lr_decay
        overdue = (checkpoint_seconds is not None
                   and time.perf_counter() - t_saved >= checkpoint_seconds)
        if checkpoint and (epoch % checkpoint_every == 0 or epoch == cfg.epochs or overdue):
            t_saved = time.perf_counter()
            ts = {"epoch": epoch, "step": step, "lr": lr, "rng": rng.bit_generator.state}
            save_checkpoint(checkpoint, model, optimizer=state,
                            config=dataclasses.asdict(cfg), epoch=epoch,
                            history=history, train_state=ts, complete=epoch == cfg.epochs,
                            **(checkpoint_meta or {}))
        if after_epoch:
            after_epoch(model, rec)
    return history
