"""The common-mode intervention on a sweep run (``experiments.beyond.common_mode``): its readout
shifted by its common mode, the shifted run continued with another Adam epsilon, and what is
measured along the way (the readout's sides and the evaluation per snapshot; what Adam's epsilon
leaves of the step).

A shift z -> z - s of every readout logit leaves softmax, cross-entropy, predictions, margins and
input gradients as they were (up to the float rounding of z - s) and changes only what the sigma'
penalty on the readout sees (eqs. 6-8): ``analysis.masking.readout.readout_sides``,
``shift_readout``.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from analysis.masking.readout import readout_sides, shift_readout
from experiments.lib.cli import UsageError
from experiments.lib.runs import read_json
from experiments.lib.evaluation import EVAL_VERSION, evaluate, evaluate_snapshot
from experiments.lib.intervention import ADAM_EPS, save_intervened
from experiments.lib.store import INTERVENTION
from experiments.lib.sweep_report import snapshots
from nn.checkpoint import CheckpointError, load_checkpoint
from nn.optim import step_share
from nn.train import resume_state


def shifted(model, adam, meta, source, dest, x, y):
    """Write ``dest``: the training checkpoint (model, Adam state, meta) read from ``source``, with
    its readout shifted by its common mode on (x, y), the meta marked with the intervention (the
    record: the shift, the epoch, the source, ``readout_sides`` before and after). -> the
    intervention record. Raises UsageError when the common mode is undefined (no image
    of x classified correctly)."""
    before = readout_sides(model, x, y)
    if not np.isfinite(before["common_mode"]):
        raise UsageError(f"{source}: no training image among the first {len(x)} is classified "
                         "correctly; the readout has no common mode to shift")
    shift_readout(model, before["common_mode"])
    record = {"readout_shift": before["common_mode"], "at_epoch": meta["epoch"],
              "source": str(source),
              "measured_on": f"the first {len(x)} training images", "before": before,
              "after": readout_sides(model, x, y)}
    return save_intervened(dest, model, adam, meta, record)


def trajectory(folder, x, y, xp, log, batch=500, keep=True):
    """Per snapshot of a run folder (sorted by epoch): the evaluation's headline numbers on (x, y)
    and ``readout_sides``. keep: evaluate into eval-e<epoch>.json beside each snapshot (where it is
    not there yet); else (another tool's folder) read a record there only if it was made on as many
    images, and evaluate in memory otherwise; a snapshot that cannot be read is skipped. x: test
    images (N, 1, 28, 28), y: (N,) labels. -> [{"epoch", "n_test", readout_sides' keys, "clean_acc",
    "fgsm_paper", "fgsm_stable", "zero_grad_paper"}]."""
    rows = []
    for snap in snapshots(folder):
        epoch = int(snap.stem[len("snap-e"):])
        try:
            model = load_checkpoint(snap, xp)[0]
        except CheckpointError:
            continue
        if keep:
            ev = evaluate_snapshot(snap, x, y, xp, log, batch)
        else:
            ev = read_json(snap.with_name(f"eval-e{epoch}.json"), {})
            if ev.get("version") != EVAL_VERSION or ev.get("n_test") != len(x):
                ev = evaluate(model, x, y, batch=batch, regime=True)
        rows.append({"epoch": epoch, "n_test": len(x), **readout_sides(model, x, y),
                     **{k: ev.get(k) for k in ("clean_acc", "fgsm_paper", "fgsm_stable",
                                               "zero_grad_paper")}})
    return rows


def adam_steps(folder):
    """What Adam's epsilon leaves of the step (``nn.optim.step_share``) in the run folder's last
    training state, folder/train.npz: -> {"epoch", "eps", "median": per weight layer {name: the
    median share over its entries}, "below_half": per weight layer {name: the share of entries below
    1/2, where the gradient's RMS is under epsilon}}."""
    _, meta, adam = load_checkpoint(folder / "train.npz", optimizer=True)
    cfg = meta["config"]
    # the weight layers' entries
    shares = [s for s in step_share(adam, cfg["beta2"], cfg["eps"]) if s]
    return {"epoch": meta["train_state"]["epoch"], "eps": cfg["eps"],
            "median": [{k: float(np.median(a)) for k, a in s.items()} for s in shares],
            "below_half": [{k: float((a < 0.5).mean()) for k, a in s.items()} for s in shares]}


def shift_continuations(out, run_name):
    """The continuations of run ``run_name`` in folder ``out`` that hold a train.npz: {"shift",
    "from", "eps": [Path], sorted by name} (<run>-shift<E>, <run>-from<E>, and
    <run>-shift<E>-eps<X>, the shifted run with another Adam epsilon)."""
    pattern = re.compile(re.escape(run_name) + r"-(shift|from)\d+(-eps[0-9.e+-]+)?")
    found = {"shift": [], "from": [], "eps": []}
    for p in sorted(Path(out).iterdir()):
        m = pattern.fullmatch(p.name)
        if m and (p / "train.npz").exists():
            found["eps" if m.group(2) else m.group(1)].append(p)
    return found


def eps_fork(shifted_dir, run, seed, eps, epochs, xp, log):
    """The shifted run ``shifted_dir`` continued from its last training state with Adam's epsilon
    ``eps``: <shifted_dir>-eps<eps>/ (made here if new). -> the folder. Raises UsageError when the
    shifted run has passed min(epochs)."""
    dest = shifted_dir.with_name(f"{shifted_dir.name}-eps{eps:g}")
    if (dest / "train.npz").exists():
        recorded = load_checkpoint(dest / "train.npz")[1][INTERVENTION][ADAM_EPS]
        if recorded != eps:
            raise UsageError(f"{dest} continues with Adam's epsilon {recorded!r}, not {eps!r}; "
                             "give --out another folder")
        return dest
    resumed = resume_state(shifted_dir / "train.npz", run.recipe.config(seed), xp)
    if resumed is None:
        raise UsageError(f"{shifted_dir}/train.npz holds no training state of the "
                         f"recipe {run.name}")
    model, state, meta = resumed
    if min(epochs) <= state.epoch:
        raise UsageError(f"--epochs: {shifted_dir}/train.npz is at epoch {state.epoch}; "
                         "continue to later epochs only")
    dest.mkdir(exist_ok=True)
    save_intervened(dest / "train.npz", model, state.adam, meta,
                    {ADAM_EPS: eps, "adam_eps_from": state.epoch})
    log(f"{dest.name}: Adam's epsilon {run.recipe.train['eps']:g} -> {eps:g} from epoch "
        f"{state.epoch}")
    return dest
