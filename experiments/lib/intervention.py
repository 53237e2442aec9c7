"""Continuing a training run after an intervention: the run's own recipe, from a training checkpoint
(parameters, Adam's moments, the shuffling generator) whose model or data was changed on purpose,
e.g. the readout shifted by its common mode and Adam's epsilon changed (``experiments.beyond.common_mode``)
or training images left out (``experiments.beyond.pinning``).

The change is recorded in the checkpoint's meta under ``experiments.lib.store.INTERVENTION``, so that the
model is never taken for its recipe's own (``stored_key``) and every later call continues it the same
way: a record with ``DROPPED`` trains on the training split without those images, one with ``ADAM_EPS``
with that epsilon, at every resumption.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from experiments.lib.cli import UsageError
from experiments.lib.runs import read_json
from experiments.lib.evaluation import evaluate_snapshot
from experiments.lib.grids import sweep_run
from experiments.lib.recipes import SettingError, model_key
from experiments.lib.store import INTERVENTION, RECIPE_FILE
from nn.checkpoint import load_checkpoint, save_checkpoint
from nn.numerics import upgrade_settings
from nn.train import resume_state, train

# In an intervention record: indices into the training split (data["train"], the MNIST training file
# after its first nn.mnist.N_VALIDATION images) that the continuation trains without.
DROPPED = "dropped_train"
# In an intervention record: Adam's epsilon (nn.optim.adam_update) from epoch record["adam_eps_from"] on.
ADAM_EPS = "adam_eps"


def sweep_source(folder, epochs):
    """The sweep run in ``folder`` (runs/sweep/<run>, with recipe.json and train.npz), its recipe set to
    ``epochs``: -> (``experiments.lib.grids.SweepRun``, seed). Raises UsageError for any other folder."""
    folder = Path(folder)
    info = read_json(folder / RECIPE_FILE, None) if folder.is_dir() else None
    if info is None or not (folder / "train.npz").exists():
        raise UsageError(f"{folder}: not a sweep run folder (needs {RECIPE_FILE} and train.npz)")
    try:
        return sweep_run(**{**upgrade_settings(info["settings"]), "epochs": epochs}), info["seed"]
    except (KeyError, TypeError, SettingError) as e:
        raise UsageError(f"{folder}/{RECIPE_FILE}: not a run this sweep can name ({e})") from None


def carried_meta(meta):
    """What a checkpoint's meta carries over to a copy of it (save_checkpoint writes the rest)."""
    return {k: v for k, v in meta.items() if k not in ("format", "spec", "adam_t")}


def intervened_recipe(recipe, record, epochs):
    """``recipe`` (an ``experiments.lib.recipes.Recipe``) set to ``epochs``, with the training settings the
    intervention ``record`` (a dict or None) changes: Adam's epsilon (``ADAM_EPS``)."""
    changes = {"eps": record[ADAM_EPS]} if record and ADAM_EPS in record else {}
    return recipe.replace("train", epochs=epochs, **changes)


def save_intervened(dest, model, adam, meta, record):
    """Write the training checkpoint ``dest``: ``model``, Adam's state ``adam`` and the ``meta`` of the
    checkpoint it came from, with the intervention ``record`` (its keys added to, or replacing, those of
    any record the checkpoint carried) and the training config it changes (``intervened_recipe``), so
    that ``nn.train.resume_state`` continues it under the changed settings. -> the merged record."""
    merged = {**(meta.get(INTERVENTION) or {}), **record}
    kept = carried_meta(meta)
    if ADAM_EPS in merged:
        kept["config"] = {**kept["config"], "eps": merged[ADAM_EPS]}
    save_checkpoint(dest, model, optimizer=adam, **{**kept, INTERVENTION: merged})
    return merged


def trained_indices(n_split, max_train, record):
    """The indices into the training split (of n_split images) that a run trains on: its first
    ``max_train`` (the recipe's; all when None), without the images the intervention ``record`` (a dict
    or None) drops (``DROPPED``). -> (n,) int64, increasing. The one place that decides it."""
    idx = np.arange(min(max_train or n_split, n_split))
    drop = (record or {}).get(DROPPED)
    return idx[~np.isin(idx, drop)] if drop else idx


def intervened_data(data, record, max_train=None):
    """``data`` (``nn.mnist.load_mnist``'s dict) as the intervention ``record`` trains on: data["train"]
    cut to the recipe's ``max_train`` images and without the ones the record drops (``trained_indices``;
    ``nn.train.train``'s own cut then keeps them all); unchanged without a record that drops any."""
    if not (record or {}).get(DROPPED):
        return data
    x, y = data["train"]
    idx = trained_indices(len(x), max_train, record)
    return {**data, "train": (x[idx], y[idx])}


def continue_run(run, seed, dest_dir, epochs, data, x_test, y_test, xp, log, batch=500):
    """Train the checkpoint dest_dir/train.npz (intervened on or not) with ``run``'s recipe, with the
    settings (``intervened_recipe``) and on the data (``intervened_data``) its intervention record
    says, to each epoch in ``epochs`` (sorted), keeping snap-e<epoch>.npz at each and evaluating it (``experiments.lib.evaluation.evaluate_snapshot``; one
    interrupted between the checkpoint and its snapshot gets the snapshot on the next call). -> None.
    Raises UsageError when the checkpoint holds no training state of the recipe."""
    ckpt = dest_dir / "train.npz"
    recipe = intervened_recipe(run.recipe, load_checkpoint(ckpt)[1].get(INTERVENTION), max(epochs))
    resumed = resume_state(ckpt, recipe.config(seed), xp)
    if resumed is None:
        raise UsageError(f"{ckpt} holds no training state that the recipe {run.name} can continue")
    model, state, meta = resumed
    keep = {"recipe": recipe.as_dict(), "seed": seed, "key": model_key(recipe, seed),
            **({INTERVENTION: meta[INTERVENTION]} if INTERVENTION in meta else {})}

    def snapshot(m, epoch):
        snap = dest_dir / f"snap-e{epoch}.npz"
        save_checkpoint(snap, m, epoch=epoch, complete=True, **keep)
        evaluate_snapshot(snap, x_test, y_test, xp, log, batch)

    passed = [e for e in epochs if e < state.epoch and not (dest_dir / f"snap-e{e}.npz").exists()]
    if passed:
        log(f"{dest_dir.name}: no snapshot at epochs {passed}, which it passed before they were asked for")
    if state.epoch in epochs and not (dest_dir / f"snap-e{state.epoch}.npz").exists():
        snapshot(model, state.epoch)

    def every_25th(line):  # the progress line of every 25th epoch, and every other line
        if not line.startswith("epoch ") or int(line.split()[1].split("/")[0]) % 25 == 0:
            log(f"{dest_dir.name} {line}")

    if state.epoch < max(epochs):
        train(model, intervened_data(data, meta.get(INTERVENTION), recipe.train["max_train"]), recipe.config(seed),
              objective=recipe.objective(), resume=state, checkpoint=ckpt, checkpoint_meta=keep,
              checkpoint_every=25, checkpoint_seconds=600,
              after_epoch=lambda m, rec: snapshot(m, rec["epoch"]) if rec["epoch"] in epochs else None,
              log=every_25th)
