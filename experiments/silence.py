"""Why a long run stops moving its margins: the share of *training* examples that give training no
cross-entropy gradient at all, beside the same share on test images, at every snapshot of a run.

In the paper's float32 numerics (flush-to-zero) an example's cross-entropy gradient with respect to
the logits, dC/dz = p - onehot(y), is exactly 0 once every wrong class has p_j below 2^-126 (p_y then
rounds to 1): ``analysis.saturation.margin_predicts_zero``. Such an example adds nothing to any
parameter's gradient; only the penalty still acts on it. When nearly every training example is
silent, the cross-entropy stops pushing margins up, and the test images' share of exactly-zero
input gradients (the paper-mode FGSM "robustness") stops where the test margins happen to be.

    python -m experiments.silence runs/sweep/<run> [<run> ...] [--n 10000]

Per snapshot (snap-e<epoch>.npz) of each run folder: epoch, silent share of the first --n training
examples (the validation split held out) and of the first --n test images, and the median logit margin
of each (correctly classified examples). Writes silence.json and silence.md into the run folder
(--out, default runs/silence).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from analysis.saturation import margin_predicts_zero
from attacks.losses import margin
from experiments.common import Run, UsageError, add_common_args, cli, count, write_json
from nn.backend import to_device, to_host
from nn.checkpoint import load_checkpoint
from nn.mnist import load_mnist


def silence(model, x, y, batch=1000):
    """-> (share of examples whose float32 (flush-to-zero) dC/dz is exactly 0, median logit margin
    z_y - max_{j != y} z_j over the correctly classified ones). x, y host arrays."""
    silent, margins = 0, []
    for i in range(0, len(x), batch):
        xb, yb = to_device(x[i:i + batch], model.xp, model.dtype), to_device(y[i:i + batch], model.xp)
        silent += int(margin_predicts_zero(model, xb, yb, ftz=True).sum())
        logits = model.logits(xb)
        M, _ = margin(logits, yb)
        margins.append(to_host(-M[logits.argmax(axis=1) == yb]))
    return silent / len(x), float(np.median(np.concatenate(margins)))


def main(argv=None):
    parser = add_common_args(argparse.ArgumentParser(description=__doc__.split("\n")[0]))
    parser.add_argument("runs", nargs="+", help="run folders holding snap-e<epoch>.npz (experiments.sweep)")
    parser.add_argument("--n", type=count, default=10000, help="training and test examples each (default 10000)")
    args = parser.parse_args(argv)
    if args.quick:
        args.n = 500
    folders = [Path(r) for r in args.runs]
    for f in folders:
        if not sorted(f.glob("snap-e*.npz")):
            raise UsageError(f"{f}: no snap-e<epoch>.npz snapshots there (python -m experiments.sweep makes them)")
    run = Run("silence", args)
    data = load_mnist(args.data_dir)
    x_tr, y_tr = (a[:args.n] for a in data["train"])  # the training split (validation held out)
    x_te, y_te = (a[:args.n] for a in data["test"])
    rows = []
    for f in folders:
        for snap in sorted(f.glob("snap-e*.npz"), key=lambda p: int(p.stem[len("snap-e"):])):
            model, _ = load_checkpoint(snap, xp=run.xp)
            (s_tr, m_tr), (s_te, m_te) = silence(model, x_tr, y_tr), silence(model, x_te, y_te)
            rows.append({"run": f.name, "epoch": int(snap.stem[len("snap-e"):]), "silent_train": s_tr,
                         "silent_test": s_te, "margin_train": m_tr, "margin_test": m_te})
            run.log(f"{f.name} epoch {rows[-1]['epoch']}: silent train {100 * s_tr:.1f} %, test {100 * s_te:.1f} %; "
                    f"median margin train {m_tr:.1f}, test {m_te:.1f}")
    write_json(run.path("silence.json"), {"rows": rows, "options": vars(args)})
    lines = ["| run | epoch | silent training examples % | silent test images % | median margin, train | test |",
             "| --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {r['run']} | {r['epoch']} | {100 * r['silent_train']:.1f} | {100 * r['silent_test']:.1f} | "
              f"{r['margin_train']:.1f} | {r['margin_test']:.1f} |" for r in rows]
    run.path("silence.md").write_text("\n".join(lines) + "\n")
    return rows


if __name__ == "__main__":
    cli(main)
