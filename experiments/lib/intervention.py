"""Continuing a training run after an intervention: the run's own recipe, from a training checkpoint
(parameters, Adam's moments, the shuffling generator) whose model or data was changed on purpose,
e.g. the readout shifted by its common mode and Adam's epsilon changed
(``experiments.beyond.common_mode``) or training images left out (``experiments.beyond.pinning``).

The change is recorded in the checkpoint's meta under ``experiments.lib.store.INTERVENTION``, so
that the model is never taken for its recipe's own (``stored_key``) and every later call continues
it the same way: a record with ``DROPPED`` trains on the training split without those images, one
with ``ADAM_EPS`` with that epsilon, at every resumption.

The pinning test's steps live here too: the run's recipe trained again to the epoch of the
intervention (``retrained_base``) and its state forked without some training images (``fork``); the
common-mode test's are ``experiments.lib.readout_shift``'s.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from analysis.masking.readout import misclassified
from experiments.lib.cli import UsageError
from experiments.lib.runs import read_json
from experiments.lib.evaluation import evaluate_snapshot
from experiments.lib.grids import sweep_run
from experiments.lib.recipes import SettingError, model_key
from experiments.lib.store import INTERVENTION, RECIPE_FILE, train_or_load
from experiments.lib.sweep_report import snapshots
from nn.backend import to_host
from nn.checkpoint import load_checkpoint, save_checkpoint
from nn.numerics import upgrade_settings
from nn.train import resume_state, train

# In an intervention record: indices into the training split (data["train"], the MNIST training file
# after its first nn.mnist.N_VALIDATION images) that the continuation trains without.
DROPPED = "dropped_train"
# In an intervention record: Adam's epsilon (nn.optim.adam_update) from epoch
# record["adam_eps_from"] on.
ADAM_EPS = "adam_eps"


def sweep_source(folder, epochs):
    """The sweep run in ``folder`` (runs/sweep/<run>, with recipe.json and train.npz), its recipe
    set to ``epochs``: -> (``experiments.lib.grids.SweepRun``, seed). Raises UsageError for any
    other folder."""
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
    """``recipe`` (an ``experiments.lib.recipes.Recipe``) set to ``epochs``, with the training
    settings the intervention ``record`` (a dict or None) changes: Adam's epsilon (``ADAM_EPS``)."""
    changes = {"eps": record[ADAM_EPS]} if record and ADAM_EPS in record else {}
    return recipe.replace("train", epochs=epochs, **changes)


def save_intervened(dest, model, adam, meta, record):
    """Write the training checkpoint ``dest``: ``model``, Adam's state ``adam`` and the ``meta`` of
    the checkpoint it came from, with the intervention ``record`` (its keys added to, or replacing,
    those of any record the checkpoint carried) and the training config it changes
    (``intervened_recipe``), so that ``nn.train.resume_state`` continues it under the changed
    settings. -> the merged record."""
    merged = {**(meta.get(INTERVENTION) or {}), **record}
    kept = carried_meta(meta)
    if ADAM_EPS in merged:
        kept["config"] = {**kept["config"], "eps": merged[ADAM_EPS]}
    save_checkpoint(dest, model, optimizer=adam, **{**kept, INTERVENTION: merged})
    return merged


def trained_indices(n_split, max_train, record):
    """The indices into the training split (of n_split images) that a run trains on: its first
    ``max_train`` (the recipe's; all when None), without the images the intervention ``record`` (a
    dict or None) drops (``DROPPED``). -> (n,) int64, increasing. The one place that decides it."""
    idx = np.arange(min(max_train or n_split, n_split))
    drop = (record or {}).get(DROPPED)
    return idx[~np.isin(idx, drop)] if drop else idx


def intervened_data(data, record, max_train=None):
    """``data`` (``nn.mnist.load_mnist``'s dict) as the intervention ``record`` trains on:
    data["train"] cut to the recipe's ``max_train`` images and without the ones the record drops
    (``trained_indices``; ``nn.train.train``'s own cut then keeps them all); unchanged without a
    record that drops any."""
    if not (record or {}).get(DROPPED):
        return data
    x, y = data["train"]
    idx = trained_indices(len(x), max_train, record)
    return {**data, "train": (x[idx], y[idx])}


def continue_run(run, seed, dest_dir, epochs, data, x_test, y_test, xp, log, batch=500):
    """Train the checkpoint dest_dir/train.npz (intervened on or not) with ``run``'s recipe, with
    the settings (``intervened_recipe``) and on the data (``intervened_data``) its intervention
    record says, to each epoch in ``epochs`` (sorted), keeping snap-e<epoch>.npz at each and
    evaluating it (``experiments.lib.evaluation.evaluate_snapshot``; one interrupted between the
    checkpoint and its snapshot gets the snapshot on the next call). -> None. Raises UsageError when
    the checkpoint holds no training state of the recipe."""
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
        log(f"{dest_dir.name}: no snapshot at epochs {passed}, which it passed before they "
            "were asked for")
    if state.epoch in epochs and not (dest_dir / f"snap-e{state.epoch}.npz").exists():
        snapshot(model, state.epoch)

    def every_25th(line):  # the progress line of every 25th epoch, and every other line
        if not line.startswith("epoch ") or int(line.split()[1].split("/")[0]) % 25 == 0:
            log(f"{dest_dir.name} {line}")

    if state.epoch < max(epochs):
        train(model, intervened_data(data, meta.get(INTERVENTION), recipe.train["max_train"]),
              recipe.config(seed),
              objective=recipe.objective(), resume=state, checkpoint=ckpt, checkpoint_meta=keep,
              checkpoint_every=25, checkpoint_seconds=600,
              after_epoch=lambda m, rec: (snapshot(m, rec["epoch"]) if rec["epoch"] in epochs
                                          else None),
              log=every_25th)


def retrained_base(run, seed, source, at, out, data, log):
    """The run's training state at epoch ``at``: its recipe trained again from scratch into
    <out>/<run>-e<at>/train.npz (resumable), compared bit for bit with the run's snap-e<at>.npz.
    -> (the checkpoint's path, a sentence for the record saying what the comparison found). Raises
    UsageError when the retrained model differs from the snapshot (another BLAS kernel or thread
    count rounds otherwise): the continuation would not continue the run it is compared with."""
    base = out.dir / f"{run.name}-e{at}"
    base.mkdir(exist_ok=True)
    recipe = run.recipe.replace("train", epochs=at)
    model, _ = train_or_load(recipe, seed, base / "train.npz", data, out.xp, log,
                             checkpoint_every=25, checkpoint_seconds=600)
    snap = source / f"snap-e{at}.npz"
    if not snap.exists():
        found = f"no snapshot {snap} to compare the retrained state with"
    else:
        theirs = load_checkpoint(snap, out.xp)[0]
        if not all(np.array_equal(to_host(a[k]), to_host(b[k]))
                   for a, b in zip(model.params, theirs.params) for k in a):
            raise UsageError(f"{base}/train.npz, the recipe trained again to epoch {at}, "
                             f"differs from {snap} (another BLAS kernel, thread count or device "
                             "rounds otherwise); intervene where it was trained")
        found = f"equal bit for bit to {snap}"
    log(f"{base.name}: retrained to epoch {at}, {found}")
    return base / "train.npz", found


def fork(run, seed, base_ckpt, retrained, drop, control, out, data, log):
    """The training state ``base_ckpt`` (epoch E) copied with its intervention record: training
    images ``drop`` left out, in <out>/<run>-e<E>-drop<I>/; with ``control``, as many other images
    of each of their labels, correctly classified and drawn at random (seeded by the run's seed), in
    <out>/<run>-e<E>-control<I>/. -> the folder (an existing one is reused, nothing drawn again).
    Raises UsageError when the state cannot be read or a label has too few images to draw."""
    resumed = resume_state(base_ckpt, run.recipe.config(seed), out.xp)
    if resumed is None:
        raise UsageError(f"{base_ckpt} holds no training state of the recipe {run.name}")
    model, state, meta = resumed
    dest = out.dir / (f"{run.name}-e{state.epoch}-{'control' if control else 'drop'}"
                      f"{'-'.join(map(str, drop))}")
    if (dest / "train.npz").exists():
        return dest
    x, y = data["train"]
    trained = trained_indices(len(x), run.recipe.train["max_train"], None)
    left_out = list(drop)
    if control:
        wrong = misclassified(model, x[trained], y[trained])["index"]
        rng, left_out = np.random.default_rng(seed), []
        for label in sorted(set(y[drop].tolist())):
            pool = np.setdiff1d(trained[y[trained] == label],
                                np.concatenate([trained[wrong], drop]))  # right, not in drop
            need = int((y[drop] == label).sum())
            if len(pool) < need:
                raise UsageError(f"--control: only {len(pool)} other correctly classified images "
                                 f"of label {label}")
            left_out += rng.choice(pool, size=need, replace=False).tolist()
        left_out.sort()
    dest.mkdir(exist_ok=True)
    record = {DROPPED: left_out, "labels": y[left_out].tolist(), "at_epoch": state.epoch,
              "source": str(base_ckpt),
              "retrained": retrained, **({"control_for": list(drop)} if control else {})}
    save_intervened(dest / "train.npz", model, state.adam, meta, record)
    log(f"{dest.name}: training images {left_out} (labels {record['labels']}) left out from epoch "
        f"{state.epoch}"
        + (f", the control for {list(drop)}" if control else ""))
    return dest


def drop_continuations(out, name):
    """The folders in ``out`` that continue run ``name`` without some training images
    (<name>-e<E>-drop<I>, <name>-e<E>-control<I>) and hold snapshots: -> [Path], sorted by name."""
    pattern = re.compile(re.escape(name) + r"-e\d+-(drop|control)[\d-]+")
    return [p for p in sorted(Path(out).iterdir()) if pattern.fullmatch(p.name) and snapshots(p)]
