"""The saturated-regime sweep: train a grid of saturated networks by the paper's method (eqs. 6-8,
Adam, no adversarial examples) and measure where their FGSM robustness comes from.

    python -m experiments.sweep                        # the sigmoid-MLP grid (--grid relu, cnn, all)
    python -m experiments.sweep & python -m experiments.sweep &   # two workers share the grid on two cores
    python -m experiments.sweep --report               # table and figure from what is there now
    python -m experiments.sweep --quick                # the CI smoke grid, seconds

Each run trains in its own folder (runs/sweep/<run name>/) with a resumable checkpoint: the same
command, run again after an interruption, continues every unfinished run where it stopped (epochs
can also be raised later: a run continues from its last epoch). A worker claims a run with a lock
file (``claim``), so several workers started with the same command share the grid, each run trained
by one of them; a lock left by a dead process is taken over. At each milestone epoch (25, 50,
100, 200, ... and the last) the parameters are kept as snap-e<epoch>.npz and evaluated on the first
--n-test test images (``evaluate``) into eval-e<epoch>.json beside it (one file per snapshot, so
that any number of processes can evaluate and report while workers train).

The report (table.md, summary.md with each run's last milestone and the frontier, table.json,
sweep.png and mechanism.png in the sweep folder) lists, per run and milestone: the
settings, clean accuracy, FGSM accuracy at eps = 0.25 in the paper's numerics (float32 with
TensorFlow's flush-to-zero, and numpy's float32 without it) and with stable (scaled) derivatives,
the fraction of exactly-zero input gradients, the median logit margin, the saturation depth per
layer (quantiles of |h|) and the training time.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path

import numpy as np

from attacks import FGSM
from analysis import audit
from analysis.saturation import log_path_bound, margin_predicts_zero
from attacks.losses import LOSSES, loss_and_input_gradient, margin
from experiments.common import Run, add_common_args, cli, count, save_figure, write_json
from nn.architectures import build_spec
from nn.backend import to_device, to_host
from nn.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from nn.mnist import load_mnist
from nn.model import Sequential
from nn.penalty import saturating_objective
from nn.train import TrainConfig, resume_state, train

KINDS = {"sigmoid_mlp": ["sigmoid"] * 3, "relu_mlp": ["relu"] * 3, "cnn": ["relu", "relu", "relu", "linear"]}
# One run's settings. lam_step: lambda rises by this every step from 0 to lam_max (the paper's 1e-3
# reaches 1.74 after 1,740 steps, four epochs at batch 128).
BASE = {"arch": "sigmoid_mlp", "hidden": 200, "lam_max": 1.74, "lam_step": 1e-3, "units": "mean", "batch": "mean",
        "derivative": "stable", "ftz": True, "lr": 1e-3, "batch_size": 128, "epochs": 1600, "seed": 0,
        "max_train": None}
MILESTONES = tuple(25 * 2 ** k for k in range(12))  # 25, 50, 100, ..., 51200
EVAL_VERSION = 3  # bump when ``evaluate`` changes: older records are recomputed from the snapshots


# Settings absent from most runs: the CNN's channels (default the paper's 32, 64); the readout's phi
# ("linear": f(z) = z, the CNN's reading of the paper's last layer, tried on an MLP; default KINDS's);
# Adam's epsilon (default 1e-8, TensorFlow's and ours; a smaller one tested whether the wide networks'
# stalled margins come from gradients whose RMS has fallen below it, where Adam's step shrinks: they
# do not, RESULTS.md).
OPTIONAL = {"channels": None, "readout": None, "adam_eps": None}


def _run(**changes):
    unknown = set(changes) - set(BASE) - set(OPTIONAL)
    if unknown:
        raise ValueError(f"unknown sweep settings {sorted(unknown)}; expected some of {sorted(BASE)}")
    return {**BASE, **changes}


# The grids, each in the order its runs are trained (the most informative first). Axes: penalty
# reduction over units and over the batch, lambda_max (a tenth to ten times the paper's), the
# annealing step, epochs (the milestones of long runs), width, learning rate, seed, the numerics
# (flush-to-zero, the penalty's derivative as TensorFlow computes it). The epochs axis comes from the
# milestones of each run; the other axes are compared at equal epochs (400 for most runs).
SIGMOID = [
    _run(epochs=3200),                                       # 0 the lead, with TensorFlow's flush-to-zero
    _run(lam_max=17.4, lam_step=1e-2, epochs=400),           # 1 ten times the paper's lambda
    _run(lr=3e-3, epochs=800),                               # 2 learning rate
    _run(derivative="paper", epochs=800),                    # 3 TensorFlow's penalty derivative
    _run(ftz=False, epochs=800),                             # 4 the lead as first probed (no flush-to-zero)
    _run(lam_max=0.174, lam_step=1e-4, epochs=400),          # 5 a tenth of the paper's lambda
    _run(lam_step=1e-4, epochs=400),                         # 6 slower annealing (40 epochs)
    _run(lr=1e-2, epochs=400),                               # 7
    _run(lr=3e-4, epochs=400),                               # 8
    _run(units="sum", lam_max=0.3, lam_step=1.5e-4, epochs=200),   # 9 the old Table 1 penalty
    _run(units="sum", epochs=100),                           # 10 the paper's 1.74, summed over units
    _run(batch="sum", epochs=100),                           # 11 summed over the batch too
    _run(batch="sum", lam_max=0.0136, lam_step=7.8e-6, epochs=400),  # 12 1.74 / 128: the batch mean's size
    _run(hidden=1000, epochs=400),                           # 13 the paper's width
    _run(hidden=500, epochs=800),                            # 14
    _run(hidden=2000, epochs=200),                           # 15
    _run(seed=1, epochs=400),                                # 16
    _run(lam_max=5.5, lam_step=3e-3, epochs=400),            # 17
    _run(lam_max=0.55, lam_step=3e-4, epochs=400),           # 18
    _run(lr=3e-3, lam_max=17.4, lam_step=1e-2, epochs=400),  # 19
    _run(lam_step=1e-2, epochs=400),                         # 20 faster annealing (0.4 epochs)
    _run(derivative="paper", ftz=False, epochs=400),         # 21
    _run(batch_size=32, epochs=200),                         # 22 four times the steps per epoch
    _run(batch_size=512, epochs=400),                        # 23 a quarter
    _run(hidden=500, adam_eps=1e-12, epochs=800),            # 24 width 500 (its margin stalls) with a tiny Adam eps
]
RELU = [
    _run(arch="relu_mlp", lam_max=3.99e-8, lam_step=1e-10, epochs=4800),  # 0 the paper's constants, long
    _run(arch="relu_mlp", lam_max=1e-2, lam_step=1e-5, epochs=400),
    _run(arch="relu_mlp", lam_max=1.0, lam_step=1e-3, epochs=400),
    _run(arch="relu_mlp", lam_max=1e-4, lam_step=1e-7, epochs=400),
    _run(arch="relu_mlp", lam_max=1e-2, lam_step=1e-5, units="sum", epochs=400),  # the old Table 1 penalty
    _run(arch="relu_mlp", lam_max=0.1, lam_step=1e-4, epochs=400),
    _run(arch="relu_mlp", lam_max=1.0, lam_step=1e-3, lr=3e-3, epochs=400),
    _run(arch="relu_mlp", lam_max=3.99e-8, lam_step=1e-10, units="sum", epochs=400),
    _run(arch="relu_mlp", lam_max=1e-2, lam_step=1e-5, ftz=False, epochs=400),
    _run(arch="relu_mlp", lam_max=10.0, lam_step=1e-2, epochs=400),
    _run(arch="relu_mlp", hidden=1000, lam_max=1e-2, lam_step=1e-5, epochs=100),
    # the CNN's reading of the paper's last layer (f(z) = z on the readout, summed over units), which
    # brought the CNN into the regime: with the paper's ReLU lambda, and with the CNN's
    _run(arch="relu_mlp", lam_max=3.99e-8, lam_step=1e-10, units="sum", readout="linear", epochs=800),
    _run(arch="relu_mlp", lam_max=1e-5, lam_step=1e-5, units="sum", readout="linear", epochs=800),
]
CNN = [  # a narrow CNN (8 and 16 channels, 256 hidden units) to find the regime at a tolerable cost
    # the paper's constants, long: FGSM (paper numerics) 21 / 51 / 98.4 % at 25 / 50 / 100 epochs, clean
    # 98.7 / 98.6 / 98.7 %: at 100 FGSM meets clean accuracy, the regime (Table 1's CNN row takes it)
    _run(arch="cnn", channels=[8, 16], hidden=256, lam_max=1e-5, lam_step=1e-5, units="sum", epochs=100),
    _run(arch="cnn", channels=[8, 16], hidden=256, lam_max=1e-2, lam_step=1e-5, epochs=50),
    _run(arch="cnn", channels=[8, 16], hidden=256, lam_max=1.0, lam_step=1e-3, epochs=50),
    _run(arch="cnn", channels=[8, 16], hidden=256, lam_max=0.0, lam_step=0.0, epochs=50),  # no penalty
    _run(arch="cnn", channels=[8, 16], hidden=256, lam_max=0.1, lam_step=1e-4, epochs=50),
    # the regime's settings at Table 2's width (32 and 64 channels, 1,024 hidden units; ~4.5x the cost an
    # epoch): FGSM 50.4 / 98.4 % at 25 / 50 epochs, clean 98.80 / 98.95 %: in the regime at 50, where
    # it stops (Table 1's CNN row takes it)
    _run(arch="cnn", hidden=1024, lam_max=1e-5, lam_step=1e-5, units="sum", epochs=50),
]
GRIDS = {
    "sigmoid": SIGMOID, "relu": RELU, "cnn": CNN,
    # everything, the most informative runs of each architecture first
    # (the wide runs last: on 2 cores one epoch of width 2000 costs ~20 of width 200)
    "all": SIGMOID[:4] + RELU[:3] + SIGMOID[4:9] + RELU[3:5] + CNN[:2] + SIGMOID[9:13] + SIGMOID[16:] + RELU[5:11]
    + CNN[2:5] + SIGMOID[13:16] + RELU[11:] + CNN[5:],
    "quick": [
        _run(hidden=16, epochs=3, max_train=2000, lam_step=1e-2),
        _run(arch="relu_mlp", hidden=16, epochs=2, max_train=2000, lam_max=1e-2, lam_step=1e-3, ftz=False,
             readout="linear"),
    ],
}


def run_name(s):
    """A readable folder name that differs between any two runs of the grids."""
    name = f"{s['arch']}-h{s['hidden']}-lam{s['lam_max']:g}-step{s['lam_step']:g}-{s['units']}units-{s['batch']}batch"
    name += f"-lr{s['lr']:g}-bs{s['batch_size']}" + ("-ftz" if s["ftz"] else "") + (
        "-tfpenalty" if s["derivative"] == "paper" else "") + f"-seed{s['seed']}"
    name += f"-n{s['max_train']}" if s["max_train"] else ""
    name += f"-readout{s['readout']}" if s.get("readout") else ""
    name += f"-adameps{s['adam_eps']:g}" if s.get("adam_eps") else ""
    return name + ("-c" + "x".join(map(str, s["channels"])) if s.get("channels") else "")


def kinds_of(s):
    """The penalty's phi per weight layer: the architecture's (KINDS), the readout's replaced by
    s['readout'] when a run sets it."""
    kinds = list(KINDS[s["arch"]])
    if s.get("readout"):
        kinds[-1] = s["readout"]
    return kinds


def arch_kwargs(s):
    if s["arch"] == "cnn":
        return {"channels": list(s.get("channels") or [32, 64]), "hidden": s["hidden"]}
    return {"hidden": s["hidden"]}


def spec_of(s):
    return build_spec(s["arch"], **arch_kwargs(s))


def train_config(s):
    eps = {"eps": s["adam_eps"]} if s.get("adam_eps") else {}
    return TrainConfig(epochs=s["epochs"], batch_size=s["batch_size"], lr=s["lr"], seed=s["seed"],
                       max_train=s["max_train"], ftz=s["ftz"], **eps)


def model_settings(s):
    """A run's settings as Table 1 writes a saturated model's (``experiments.table1.model_settings``),
    so that Table 1 can reuse a model the sweep trained with the same settings."""
    method = {"kinds": kinds_of(s), "lam_max": s["lam_max"], "lam_step": s["lam_step"], "units": s["units"]}
    method.update({k: s[k] for k, default in (("batch", "mean"), ("derivative", "stable")) if s[k] != default})
    cfg = {k: v for k, v in dataclasses.asdict(train_config(s)).items() if k != "seed"}
    return {"arch": s["arch"], "training": "saturated", "arch_kwargs": arch_kwargs(s), "train": cfg, "method": method}


def same_model(s, ms):
    """True when sweep run ``s`` trains the model of Table 1's model settings ``ms`` (epochs aside)."""
    mine = model_settings(s)
    theirs = {**ms, "train": {k: v for k, v in {**dataclasses.asdict(TrainConfig()), **ms["train"]}.items()
                              if k != "seed"}}
    mine["train"]["epochs"] = theirs["train"]["epochs"]
    return _canonical(mine) == _canonical(theirs)


def find_snapshot(root, ms, seed):
    """The sweep's snapshot of a model trained with Table 1's model settings ``ms`` and ``seed``, at
    exactly ms's epochs: -> path or None."""
    for folder in sorted(Path(root).glob("*/")):
        s = _read_json(folder / "settings.json", None)
        if s is not None and s.get("seed") == seed and same_model(s, ms):
            snap = folder / f"snap-e{ms['train']['epochs']}.npz"
            if snap.exists():
                return snap
    return None


def _canonical(obj):
    return json.loads(json.dumps(obj, sort_keys=True))


# ---------------------------------------------------------------------------------------------
# Evaluation of one snapshot


def _quantiles(a, qs=(0.01, 0.1, 0.5, 0.9, 0.99)):
    return [float(v) for v in np.quantile(a, qs)]


def evaluate(model, x, y, batch=500, eps=0.25):
    """The regime's measurements on test images x, y (host arrays).

    -> {clean_acc, fgsm_tf (float32 with flush-to-zero: the paper's numerics), fgsm_f32 (numpy's
    float32, subnormals kept), fgsm_stable (scaled stable derivatives), fgsm_margin (margin loss),
    zero_grad_tf, zero_grad_f32 (fraction of exactly-zero cross-entropy input gradients), margin_q
    (quantiles of the logit margin z_y - max_{j != y} z_j over correctly classified examples),
    depth_q (per layer, quantiles of |h| over units and examples), fgsm_tf_perm (FGSM in the paper's
    numerics on three copies of the network with its hidden units and channels permuted,
    ``analysis.audit.permute_units``: the same function, summed in other orders; the spread is the
    part of the number that is float32 rounding), zero_pred_margin_tf (the zero gradients predicted
    from the logit margin alone, ``analysis.saturation``); for MLPs also those predicted from depths
    and margins: zero_pred_tf (max-plus path bound), zero_pred_agree_tf (fraction of examples where
    the path bound's prediction is right)}.
    """
    xp = model.xp
    counts = {k: 0 for k in ("clean", "tf", "f32", "stable", "margin", "zero_tf", "zero_f32", "pred", "agree",
                             "pred_margin")}
    mlp = all(layer["type"] in ("flatten", "dense", "sigmoid", "relu") for layer in model.spec["layers"])
    permuted = [audit.permute_units(model, seed) for seed in (1, 2, 3)]
    perm_counts = [0] * len(permuted)
    margins, hs_all = [], None
    attacks = {"tf": FGSM(eps, ftz=True), "f32": FGSM(eps), "stable": FGSM(eps, stable=True),
               "margin": FGSM(eps, loss="margin", stable=True)}
    for i in range(0, len(x), batch):
        xb, yb = to_device(x[i:i + batch], xp, model.dtype), to_device(y[i:i + batch], xp)
        logits, _, hs = model.forward(xb)
        right = logits.argmax(axis=1) == yb
        counts["clean"] += int(right.sum())
        M, _ = margin(logits, yb)
        margins.append(to_host(-M[right]))
        for name, attack in attacks.items():
            counts[name] += int((~attack(model, xb, yb).success).sum())
        for k, pm in enumerate(permuted):
            perm_counts[k] += int((~attacks["tf"](pm, xb, yb).success).sum())
        for mode, ftz in (("zero_tf", True), ("zero_f32", False)):
            _, g, _ = loss_and_input_gradient(model, xb, yb, LOSSES["ce"], ftz=ftz)
            zero = xp.abs(g).reshape(len(xb), -1).max(axis=1) == 0
            counts[mode] += int(zero.sum())
            if ftz:
                counts["pred_margin"] += int(margin_predicts_zero(model, xb, yb, ftz=True).sum())
            if ftz and mlp:
                pred = ~np.isfinite(log_path_bound(model, xb, yb, ftz=True))
                counts["pred"] += int(pred.sum())
                counts["agree"] += int((pred == to_host(zero)).sum())
        sample = [to_host(xp.abs(h)).ravel()[::7] for h in hs]  # a fixed subsample of |h| per layer
        hs_all = sample if hs_all is None else [np.concatenate([a, b]) for a, b in zip(hs_all, sample)]
    n = len(x)
    out = {"clean_acc": counts["clean"] / n, **{f"fgsm_{k}": counts[k] / n for k in ("tf", "f32", "stable", "margin")},
           "zero_grad_tf": counts["zero_tf"] / n, "zero_grad_f32": counts["zero_f32"] / n,
           "margin_q": _quantiles(np.concatenate(margins)), "depth_q": [_quantiles(a) for a in hs_all],
           "fgsm_tf_perm": [c / n for c in perm_counts], "zero_pred_margin_tf": counts["pred_margin"] / n}
    if mlp:
        out.update(zero_pred_tf=counts["pred"] / n, zero_pred_agree_tf=counts["agree"] / n)
    return out


# ---------------------------------------------------------------------------------------------
# Training one run, with snapshots and evaluations at the milestones


def _read_json(path, default):
    try:
        return json.loads(Path(path).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return default


def evaluate_snapshot(snap, x, y, xp, log, batch):
    """Evaluate snapshot ``snap`` (snap-e<epoch>.npz) into eval-e<epoch>.json beside it, unless that
    exists from the current EVAL_VERSION. -> the record (None if the snapshot cannot be read)."""
    snap = Path(snap)
    epoch = int(snap.stem[len("snap-e"):])
    out = snap.with_name(f"eval-e{epoch}.json")
    rec = _read_json(out, {})
    # current: this EVAL_VERSION and every measurement (CNN records from before permute_units took
    # convolutions lack these two and are recomputed)
    if rec.get("version") == EVAL_VERSION and {"fgsm_tf_perm", "zero_pred_margin_tf"} <= rec.keys():
        return rec
    try:
        model, meta = load_checkpoint(snap, xp)
    except CheckpointError as e:
        log(f"{snap.parent.name}: skipping {snap.name} ({e})")
        return None
    t0 = time.perf_counter()
    rec = {"version": EVAL_VERSION, "epoch": epoch, "train_seconds": meta.get("train_seconds"),
           "n_test": len(x), **evaluate(model, x, y, batch)}
    write_json(out, rec)
    log(f"{snap.parent.name} epoch {epoch}: clean {100 * rec['clean_acc']:.2f}  FGSM tf {100 * rec['fgsm_tf']:.1f}  "
        f"f32 {100 * rec['fgsm_f32']:.1f}  stable {100 * rec['fgsm_stable']:.1f}  margin-loss "
        f"{100 * rec['fgsm_margin']:.1f}  zero grads tf {100 * rec['zero_grad_tf']:.1f} %  median margin "
        f"{rec['margin_q'][2]:.1f}  median |h| {[round(q[2], 1) for q in rec['depth_q']]}  "
        f"({time.perf_counter() - t0:.0f} s)")
    return rec


def snapshots(folder):
    """The run's snapshots, by epoch."""
    return sorted(Path(folder).glob("snap-e*.npz"), key=lambda p: int(p.stem[len("snap-e"):]))


def claim(folder):
    """Take the run in ``folder`` for this process: create folder/lock holding our pid, atomically.
    -> True if we hold it now (also when its holder has died), False if a live process holds it."""
    lock = Path(folder) / "lock"
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                pid = int(lock.read_text() or 0)
                os.kill(pid, 0)  # raises if no such process
                return pid == os.getpid()
            except (ValueError, ProcessLookupError, FileNotFoundError):
                lock.unlink(missing_ok=True)  # a stale lock: its process is gone
                continue
            except PermissionError:
                return False  # alive, another user's
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        return True
    return False


def release(folder):
    (Path(folder) / "lock").unlink(missing_ok=True)


def train_run(s, root, data, xp, log, evaluate_on=None):
    """Train (or continue) one run to s['epochs'], keeping a snapshot at every milestone, evaluated
    at once on ``evaluate_on`` = (x, y, batch) if given."""
    folder = Path(root) / run_name(s)
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / "settings.json", s)
    path, cfg = folder / "train.npz", train_config(s)
    resumed = resume_state(path, cfg, xp, match={"sweep_settings": {k: v for k, v in s.items() if k != "epochs"}})
    if resumed and resumed[1].epoch >= s["epochs"]:
        return folder
    model = resumed[0] if resumed else Sequential.init(spec_of(s), seed=s["seed"], xp=xp)
    objective = saturating_objective(kinds_of(s), s["lam_max"], s["lam_step"], s["units"], s["batch"],
                                     s["derivative"])

    def after_epoch(m, rec):
        history.append(rec)
        if rec["epoch"] in MILESTONES or rec["epoch"] == s["epochs"]:
            snap = folder / f"snap-e{rec['epoch']}.npz"
            save_checkpoint(snap, m, settings=s, epoch=rec["epoch"], train_seconds=sum(h["seconds"] for h in history))
            if evaluate_on:
                evaluate_snapshot(snap, *evaluate_on[:2], xp, log, evaluate_on[2])

    history = list(resumed[1].history) if resumed else []
    log(f"{folder.name}: training to epoch {s['epochs']}" + (f", from epoch {resumed[1].epoch}" if resumed else ""))
    train(model, data, cfg, objective=objective, checkpoint=path, resume=resumed[1] if resumed else None,
          checkpoint_meta={"sweep_settings": {k: v for k, v in s.items() if k != "epochs"}},
          checkpoint_every=25, checkpoint_seconds=600, after_epoch=after_epoch,
          log=lambda line: log(f"{folder.name} {line}") if ("epoch" not in line or _every(line, 25)) else None)
    return folder


def _every(line, k):
    """True for the progress lines of every k-th epoch (and resume notes): keeps logs of long runs short."""
    try:
        return int(line.split()[1].split("/")[0]) % k == 0
    except (IndexError, ValueError):
        return True


# ---------------------------------------------------------------------------------------------
# The report


def collect(root):
    """-> list of rows, one per run and evaluated milestone, sorted by run then epoch."""
    rows = []
    for folder in sorted(Path(root).glob("*/")):
        s = _read_json(folder / "settings.json", None)
        if s is None:
            continue
        for snap in snapshots(folder):
            rec = _read_json(snap.with_name(f"eval-e{snap.stem[len('snap-e'):]}.json"), None)
            if rec:
                rows.append({"run": folder.name, **s, **rec})
    return rows


def format_table(rows):
    head = ("| run | epoch | clean % | FGSM tf % | FGSM tf, permuted units/channels % | FGSM f32 % | FGSM stable % | "
            "FGSM margin % | zero grads tf % | predicted: path / margin % | median margin | median abs h per layer | "
            "train min |")
    lines = [head, "|" + " --- |" * (head.count("|") - 1)]
    for r in rows:
        perm = r.get("fgsm_tf_perm") or []
        perm = f"{100 * min(perm):.1f}-{100 * max(perm):.1f}" if perm else "-"
        lines.append(f"| {r['run']} | {r['epoch']} | {100 * r['clean_acc']:.2f} | {100 * r['fgsm_tf']:.1f} | {perm} | "
                     f"{100 * r['fgsm_f32']:.1f} | {100 * r['fgsm_stable']:.1f} | {100 * r['fgsm_margin']:.1f} | "
                     f"{100 * r['zero_grad_tf']:.1f} | {_pct(r.get('zero_pred_tf'))} / {_pct(r.get('zero_pred_margin_tf'))} | "
                     f"{r['margin_q'][2]:.1f} | "
                     f"{' / '.join(f'{q[2]:.1f}' for q in r['depth_q'])} | "
                     f"{(r['train_seconds'] or 0) / 60:.0f} |")
    return "\n".join(lines) + "\n"


def _pct(v):
    return "-" if v is None else f"{100 * v:.1f}"


def frontier(rows):
    """The best paper-numerics FGSM accuracy reached at each clean accuracy (per arch, any run, any
    milestone): -> {arch: [(clean %, best FGSM tf % among rows at least this clean), ...]}."""
    out = {}
    for arch in sorted({r["arch"] for r in rows}):
        rs = sorted((r for r in rows if r["arch"] == arch), key=lambda r: -r["clean_acc"])
        best, pts = -1.0, []
        for r in rs:
            if r["fgsm_tf"] > best:
                best = r["fgsm_tf"]
                point = (round(100 * r["clean_acc"], 2), round(100 * best, 1))
                if pts and pts[-1][0] == point[0]:
                    pts[-1] = point  # the same clean accuracy: keep the best
                else:
                    pts.append(point)
        out[arch] = pts
    return out


def short_label(s):
    """The settings in which a run differs from BASE (epochs aside), e.g. 'lr 0.003, ftz False'."""
    diff = [f"{k} {v}" for k, v in s.items() if k in BASE and k not in ("arch", "epochs") and v != BASE[k]]
    diff += [f"{k} {v}" for k, v in s.items() if k in OPTIONAL and v is not None]
    return ", ".join(diff) or "paper's lambda, units mean (the lead)"


ARCH_NAMES = {"sigmoid_mlp": "sigmoid MLP", "relu_mlp": "ReLU MLP", "cnn": "CNN"}


def draw(rows, path):
    """One row of panels per architecture: FGSM accuracy (paper numerics) and the median logit margin
    against epochs, one line per run; FGSM against clean accuracy with the paper's saturated model;
    the runs' legend beside them (inside a panel it hid lines)."""
    from experiments.table1 import PAPER  # table1 imports this module: import it when drawing
    archs = [a for a in ARCH_NAMES if any(r["arch"] == a for r in rows)]

    def fill(axes):
        import matplotlib  # save_figure calls fill only when matplotlib is installed
        colours = matplotlib.colormaps["tab20"].colors  # more runs per panel than tab10 has colours
        for row_axes, arch in zip(axes, archs):
            ax, mx, bx, lx = row_axes
            rs = [r for r in rows if r["arch"] == arch]
            floor = min((100 * r["clean_acc"] for r in rs if r["clean_acc"] >= 0.9), default=1) - 1  # runs that learned
            collapsed = 0
            for k, run in enumerate(sorted({r["run"] for r in rs})):
                rr = [r for r in rs if r["run"] == run]
                colour = colours[k % len(colours)]
                ax.plot([r["epoch"] for r in rr], [100 * r["fgsm_tf"] for r in rr], marker="o", ms=3, color=colour,
                        ls="-" if k < len(colours) else "--", label=short_label(rr[0]))
                mx.plot([r["epoch"] for r in rr], [max(r["margin_q"][2], 0.1) for r in rr], marker="o", ms=3,
                        color=colour)
                kept = [r for r in rr if 100 * r["clean_acc"] >= floor]
                collapsed += len(rr) - len(kept)
                bx.scatter([100 * r["clean_acc"] for r in kept], [100 * r["fgsm_tf"] for r in kept], s=12,
                           color=colour)
            ticks = [m for m in MILESTONES if m <= max(r["epoch"] for r in rs)]
            for a in (ax, mx):
                a.set_xscale("log")
                a.minorticks_off()  # the milestones are the ticks; log minor labels would overlap them
                if ticks:
                    a.set_xticks(ticks, [str(m) for m in ticks])
                a.set_xlabel("epochs (constant learning rate)")
            ax.set_ylabel("FGSM accuracy, eps 0.25 (%)")
            ax.set_title(f"{ARCH_NAMES[arch]}: FGSM in the paper's numerics")
            ax.set_ylim(0, 100)
            lx.axis("off")
            lx.legend(*ax.get_legend_handles_labels(), fontsize=7, loc="center left", frameon=False,
                      title=f"{ARCH_NAMES[arch]} runs", title_fontsize=8)
            mx.axhline(87.3, color="gray", ls="--", lw=0.8)
            mx.set_yscale("log")  # from collapsed runs (~0) to runaway CNN logits (~1e8)
            mx.set_ylim(0.1, max(mx.get_ylim()[1], 300))
            mx.text(0.02, 95, "p_j flushes to 0 (log 2^-126)", fontsize=7, color="gray",
                    transform=mx.get_yaxis_transform())  # x in axes fraction, y in data
            mx.set_ylabel("median logit margin z_y - max z_j (log; 0.1 = <= 0.1)")
            mx.set_title(f"{ARCH_NAMES[arch]}: logit margin")
            c, f = PAPER[(arch, "saturated")]
            bx.scatter([c], [f], marker="*", s=160, color="black", label="the paper's saturated model")
            bx.axvline(c - 1, color="gray", ls=":", lw=0.8)
            bx.set_xlim(min(floor, c - 2), 100)
            bx.set_xlabel("clean test accuracy (%)" + (f"; {collapsed} milestones below {floor:.0f} % not shown"
                                                         if collapsed else ""))
            bx.set_ylabel("FGSM accuracy, eps 0.25 (%)")
            bx.set_ylim(0, 100)
            bx.set_title(f"{ARCH_NAMES[arch]}: every run and milestone")
            bx.legend(fontsize=7, loc="lower left")
    return save_figure(path, fill, shape=(len(archs), 4), figsize=(21, 4.6 * len(archs)), dpi=72)


def fgsm_from_zeros(r):
    """The paper-numerics FGSM accuracy predicted from two measurements: an image whose float32
    gradient is exactly 0 is not moved (sign(0) = 0) and stays correct, the others fall as they do
    under the true gradient's direction: z + (1 - z) a_stable (z: zero-gradient share)."""
    z = r["zero_grad_tf"]
    return z + (1 - z) * r["fgsm_stable"]


def draw_mechanism(rows, path):
    """Measured fraction of exactly-zero input gradients (paper numerics) against the fraction
    predicted from depths and margins (max-plus path bound, MLPs) and from the margin alone (every
    model), for every run and milestone; the diagonal is a perfect prediction. Right: FGSM in the
    paper's numerics against ``fgsm_from_zeros``."""
    rs = [r for r in rows if r.get("zero_pred_margin_tf") is not None]

    def fill(axes):
        ax, bx = axes[0]
        for arch, marker in (("sigmoid_mlp", "o"), ("relu_mlp", "s"), ("cnn", "^")):
            rr = [r for r in rs if r["arch"] == arch]
            if not rr:
                continue
            bounded = [r for r in rr if r.get("zero_pred_tf") is not None]
            if bounded:
                ax.scatter([100 * r["zero_pred_tf"] for r in bounded], [100 * r["zero_grad_tf"] for r in bounded],
                           marker=marker, s=14, label=f"{ARCH_NAMES[arch]}: path bound (depths and margin)")
            ax.scatter([100 * r["zero_pred_margin_tf"] for r in rr], [100 * r["zero_grad_tf"] for r in rr],
                       marker=marker, s=14, facecolors="none", edgecolors="gray",
                       label=f"{ARCH_NAMES[arch]}: margin alone")
            bx.scatter([100 * fgsm_from_zeros(r) for r in rr], [100 * r["fgsm_tf"] for r in rr], marker=marker, s=14,
                       label=ARCH_NAMES[arch])
        ax.plot([0, 100], [0, 100], color="black", lw=0.8)
        ax.set_xlabel("predicted exactly-zero input gradients (%)")
        ax.set_ylabel("measured exactly-zero input gradients (%)")
        ax.set_title("exact float32 zeros: predicted, then measured")
        ax.legend(fontsize=7)
        bx.plot([0, 100], [0, 100], color="black", lw=0.8)
        bx.set_xlabel("z + (1 - z) x FGSM accuracy with stable derivatives (%)\n(z: share of exactly-zero gradients)")
        bx.set_ylabel("FGSM accuracy, eps 0.25, paper numerics (%)")
        bx.set_title("FGSM = unmoved images + true-gradient survivors")
        bx.legend(fontsize=7)
    return bool(rs) and save_figure(path, fill, shape=(1, 2), figsize=(12, 5))


def latest(rows):
    """One row per run: its last evaluated milestone."""
    last = {}
    for r in rows:
        if r["run"] not in last or r["epoch"] > last[r["run"]]["epoch"]:
            last[r["run"]] = r
    return sorted(last.values(), key=lambda r: (r["arch"], r["run"]))


def format_frontier(rows):
    lines = ["| architecture | clean accuracy at least % | best FGSM in the paper's numerics % |", "| --- | --- | --- |"]
    for arch, pts in frontier(rows).items():
        lines += [f"| {ARCH_NAMES[arch]} | {c:.2f} | {f:.1f} |" for c, f in pts]
    return "\n".join(lines) + "\n"


def report(root, log):
    rows = collect(root)
    table = format_table(rows)
    Path(root, "table.md").write_text(table)
    Path(root, "summary.md").write_text(format_table(latest(rows)) + "\n" + format_frontier(rows))
    write_json(Path(root, "table.json"), {"rows": rows, "frontier": frontier(rows)})
    if rows and draw(rows, Path(root, "sweep.png")):
        log(f"figure {Path(root, 'sweep.png')}")
    if rows and draw_mechanism(rows, Path(root, "mechanism.png")):
        log(f"figure {Path(root, 'mechanism.png')}")
    log("\n" + table)
    return rows


def main(argv=None):
    parser = add_common_args(argparse.ArgumentParser(description=__doc__.split("\n")[0]))
    parser.add_argument("--grid", choices=sorted(GRIDS), default="sigmoid")
    parser.add_argument("--report", action="store_true", help="only (re)evaluate snapshots and write the report")
    parser.add_argument("--n-test", type=count, default=2000, help="test images per evaluation (default 2000)")
    parser.add_argument("--batch", type=count, default=500)
    args = parser.parse_args(argv)
    grid = "quick" if args.quick else args.grid
    run = Run("sweep", args)
    data = load_mnist(args.data_dir)
    x, y = data["test"][0][:args.n_test], data["test"][1][:args.n_test]
    root = run.dir
    if not args.report:
        for s in GRIDS[grid]:
            folder = Path(root) / run_name(s)
            folder.mkdir(parents=True, exist_ok=True)
            if not claim(folder):
                continue  # another worker trains it
            try:
                train_run(s, root, data, run.xp, run.log, evaluate_on=(x, y, args.batch))
            finally:
                release(folder)
    for folder in sorted(p for p in Path(root).glob("*/") if (p / "settings.json").exists()):
        for snap in snapshots(folder):  # those not evaluated yet, or by an older EVAL_VERSION
            evaluate_snapshot(snap, x, y, run.xp, run.log, args.batch)
    return report(root, run.log)


if __name__ == "__main__":
    cli(main)
