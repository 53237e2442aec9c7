"""Train or load a model by its recipe: the one place where a model is trained, reused, resumed or
continued, for Table 1, the sweep and ``experiments.train`` alike.

A checkpoint written here holds, besides the parameters and the training state (``nn.train``), the
recipe, the seed and their ``model_key``. A later call with the same key

* loads it when it is complete at the recipe's epochs,
* resumes it when it was interrupted before them,
* continues it when the recipe asks for more epochs than it has (a model trained to E epochs
  continues exactly to E' > E: the learning rate and lambda follow the epoch and the step, not the
  total),

and retrains from scratch when the key differs or the checkpoint lies past the recipe's epochs.
Instead of training, a model may be taken from a snapshot of the same key at exactly the recipe's
epochs that the sweep kept (``find_snapshot``).
"""
from __future__ import annotations

import json
from pathlib import Path

from experiments.lib.grids import sweep_run
from experiments.lib.recipes import Recipe, SettingError, model_key
from experiments.lib.shipped import check_shipped
from nn.backend import to_device
from nn.checkpoint import atomic_write, load_checkpoint
from nn.numerics import upgrade_settings
from nn.penalty import lambda_schedule, saturated_fraction
from nn.train import resume_state, train

# in a sweep run's folder: {"recipe": ..., "seed": ..., "settings": ...}
RECIPE_FILE = "recipe.json"
# The checkpoint meta key of a model changed outside its recipe (e.g.
# ``experiments.beyond.common_mode``'s shifted readout): such a model is never taken for its
# recipe's (``stored_key``: None).
INTERVENTION = "intervention"


def checkpoint_name(name, seed):
    """<name>.npz for seed 0 (what the analysis scripts read with --from), <name>-seed<s>.npz
    else."""
    return f"{name}.npz" if seed == 0 else f"{name}-seed{seed}.npz"


def stored_key(meta):
    """The ``model_key`` of the model a checkpoint's meta records, recomputed from what it holds:
    its recipe and seed; or the model settings and config an older Table 1 wrote; or the flat
    settings an older sweep wrote ("sweep_settings", ``experiments.lib.grids.sweep_run``'s
    arguments). Older words for the numerics are read as today's (``Recipe.from_dict``,
    ``nn.numerics.upgrade_settings``). None when it records no model, or a model changed outside its
    recipe (``INTERVENTION``)."""
    if INTERVENTION in meta:
        return None
    try:
        if "recipe" in meta:
            return model_key(Recipe.from_dict(meta["recipe"]), meta["seed"])
        if "model_settings" in meta:
            return model_key(Recipe.from_dict(meta["model_settings"]), meta["config"]["seed"])
        if "sweep_settings" in meta:
            run = sweep_run(**upgrade_settings(meta["sweep_settings"]), epochs=1)
            return model_key(run.recipe, run.seed)
    except (KeyError, TypeError, SettingError):
        return None
    return None


def find_snapshot(root, recipe, seed):
    """The sweep's snapshot (``<root>/<run>/snap-e<epochs>.npz``) of the model ``recipe`` and
    ``seed`` name, at exactly the recipe's epochs: -> path or None."""
    key = model_key(recipe, seed)
    for info in sorted(Path(root).glob(f"*/{RECIPE_FILE}")) if root else []:
        try:
            same = stored_key(json.loads(info.read_text())) == key
        except (OSError, json.JSONDecodeError):
            continue
        snap = info.with_name(f"snap-e{recipe.epochs}.npz")
        if same and snap.exists():
            return snap
    return None


def find_shipped(folder, recipe, seed):
    """The shipped model (``experiments.lib.shipped``: ``<folder>/<name>.npz``) that is the model
    ``recipe`` and ``seed`` name (the same model key, at the recipe's epochs), its checksum
    checked: -> path or None."""
    path = Path(folder) / f"{recipe.name}.npz" if folder else None
    if path is None or not path.exists():
        return None
    check_shipped(path)  # before its bytes are read as a model
    _, meta = load_checkpoint(path)
    same = stored_key(meta) == model_key(recipe, seed) and meta.get("epoch") == recipe.epochs
    return path if same else None


def progress_for(recipe, probe):
    """Per-epoch extras for the training log: lambda and each layer's saturated fraction on
    ``probe`` (device images) for a saturated recipe; nothing
    otherwise. -> progress(model, step) -> dict."""
    if recipe.training != "saturated":
        return None
    m = recipe.method

    def progress(model, step):
        hs = model.preactivations(probe)
        return {"lambda": lambda_schedule(step, m["lam_max"], m["lam_step"]),
                "saturated": [round(saturated_fraction(h, k), 3) for h, k in zip(hs, m["kinds"])]}
    return progress


def train_or_load(recipe, seed, path, data, xp, log, *, sweep=None, shipped=None, label=None,
                  **train_kwargs):
    """The model ``recipe`` and ``seed`` name, from checkpoint ``path`` or trained into it.

    data: ``nn.mnist.load_mnist``'s dict (host arrays); xp: numpy or cupy; log: one line -> None;
    sweep: a sweep folder whose snapshots may stand in (``find_snapshot``); shipped: a folder of
    shipped models that may stand in (``find_shipped``); train_kwargs go to
    ``nn.train.train`` (checkpoint_every, after_epoch, ...). -> (model, meta): meta holds "recipe",
    "seed", "key", "history" (one record per epoch trained) and "from" (how it was obtained:
    "checkpoint", "sweep snapshot <path>", "shipped <path>", "resumed", "continued" or
    "trained").
    Raises CheckpointError for a corrupt file at ``path``.
    """
    path, key, cfg = Path(path), model_key(recipe, seed), recipe.config(seed)
    label = label or recipe.name + (f" (seed {seed})" if seed else "")
    meta_out = {"recipe": recipe.as_dict(), "seed": seed, "key": key}
    if path.exists():
        model, meta = load_checkpoint(path, xp)
        if stored_key(meta) == key and meta.get("complete") and meta.get("epoch") == recipe.epochs:
            log(f"{label}: loaded {path} (the same recipe)")
            return model, {**meta, **meta_out, "from": "checkpoint"}
    snap = find_snapshot(sweep, recipe, seed)
    if snap is not None:
        atomic_write(path, lambda f: f.write(snap.read_bytes()))  # a whole file or none
        model, meta = load_checkpoint(path, xp)
        log(f"{label}: taken from the sweep's {snap} (the same recipe)")
        return model, {**meta, **meta_out, "from": f"sweep snapshot {snap}"}
    shipped = find_shipped(shipped, recipe, seed)
    if shipped is not None:
        if not path.exists() or path.read_bytes() != shipped.read_bytes():
            atomic_write(path, lambda f: f.write(shipped.read_bytes()))
        model, meta = load_checkpoint(path, xp)
        log(f"{label}: the shipped {shipped} (the same recipe and seed)")
        return model, {**meta, **meta_out, "from": f"shipped {shipped}"}
    resumed = resume_state(path, cfg, xp)
    if resumed and (stored_key(resumed[2]) != key or resumed[1].epoch > recipe.epochs):
        log(f"{label}: {path} holds another model or a longer run; retraining")
        resumed = None
    how = "trained"
    if resumed:
        how = "continued" if resumed[2].get("complete") else "resumed"
        log(f"{label}: {how} from epoch {resumed[1].epoch} to {recipe.epochs}")
    model = resumed[0] if resumed else recipe.init_model(seed, xp)
    probe = to_device(data["val"][0][:500], xp) if "val" in data else None
    log(f"{label}: training {cfg}  {recipe.method}")
    history = train(model, data, cfg, objective=recipe.objective(),
                    log=lambda line: log(f"{label} {line}"),
                    checkpoint=path, checkpoint_meta=meta_out,
                    resume=resumed[1] if resumed else None,
                    progress=progress_for(recipe, probe) if probe is not None else None,
                    **train_kwargs)
    return model, {**meta_out, "complete": True, "epoch": recipe.epochs,
                   "history": history, "from": how}
