"""Why a long run stops moving its margins: the share of *training* examples that give training no
cross-entropy gradient at all, beside the same share on test images, at every snapshot of a run.

In the paper's float32 numerics (flush-to-zero) an example's cross-entropy gradient with respect to
the logits, dC/dz = p - onehot(y), is exactly 0 once every wrong class has p_j below 2^-126 (p_y
then rounds to 1): ``analysis.masking.saturation.margin_predicts_zero``. Such an example adds
nothing to any parameter's gradient; only the penalty still acts on it. When nearly every training
example is silent, the cross-entropy stops pushing margins up, and the test images' share of
exactly-zero input gradients (the paper-mode FGSM "robustness") stops where the test margins happen
to be.

    python -m experiments.beyond.silence runs/sweep/<run> [<run> ...] [--n 10000]

Per snapshot (snap-e<epoch>.npz) of each run folder: epoch, silent share of the first --n training
examples (the validation split held out) and of the first --n test images, the median logit margin
of each, and the median correct-class logit and the share of negative ones (correctly classified
examples). Writes silence.json, silence.md and silence-by-class.md (the median test margin of each
class: a readout unit that stops growing shows as one class's column) into the run folder
(--out, default runs/silence).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from analysis.masking.readout import silence
from experiments.lib import presets
from experiments.lib.cli import UsageError, add_common_args, cli, summary, parse, count
from experiments.lib.runs import Run, write_json
from nn.checkpoint import load_checkpoint
from nn.mnist import load_mnist


def main(argv=None):
    """Measure the silent examples at every snapshot of the given run folders; write silence.json,
    silence.md and silence-by-class.md. -> the rows, one per snapshot."""
    parser = add_common_args(argparse.ArgumentParser(description=summary(__doc__)))
    parser.add_argument("runs", nargs="+",
                        help="run folders holding snap-e<epoch>.npz (experiments.beyond.sweep)")
    parser.add_argument("--n", type=count, default=10000,
                        help="training and test examples each (default 10000)")
    args = parse(parser, argv, quick=presets.OPTIONS["silence"])
    folders = [Path(r) for r in args.runs]
    for f in folders:
        if not sorted(f.glob("snap-e*.npz")):
            raise UsageError(f"{f}: no snap-e<epoch>.npz snapshots there (python -m "
                             "experiments.beyond.sweep makes them)")
    run = Run("silence", args)
    data = load_mnist(args.data_dir)
    x_tr, y_tr = (a[:args.n] for a in data["train"])  # the training split (validation held out)
    x_te, y_te = (a[:args.n] for a in data["test"])
    rows = []
    for f in folders:
        for snap in sorted(f.glob("snap-e*.npz"), key=lambda p: int(p.stem[len("snap-e"):])):
            model, _ = load_checkpoint(snap, xp=run.xp)
            tr, te = silence(model, x_tr, y_tr), silence(model, x_te, y_te)
            rows.append({"run": f.name, "epoch": int(snap.stem[len("snap-e"):]),
                         **{f"{k}_train": v for k, v in tr.items()},
                         **{f"{k}_test": v for k, v in te.items()}})
            run.log(f"{f.name} epoch {rows[-1]['epoch']}: silent train {100 * tr['silent']:.1f} %, "
                    f"test {100 * te['silent']:.1f} %; median margin train {tr['margin']:.1f}, "
                    f"test {te['margin']:.1f}; test: median z_y {te['z_correct']:.1f}, "
                    f"z_y < 0 for {100 * te['negative']:.1f} %; median test margin by class "
                    f"{[None if v is None else round(v) for v in te['margin_by_class']]}")
    write_json(run.path("silence.json"), {"rows": rows, "options": vars(args)})
    lines = ["| run | epoch | silent training examples % | silent test images % | "
             "median margin, train | test | median z_y, test | z_y < 0, test % |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {r['run']} | {r['epoch']} | {100 * r['silent_train']:.1f} | "
              f"{100 * r['silent_test']:.1f} | {r['margin_train']:.1f} | {r['margin_test']:.1f} | "
              f"{r['z_correct_test']:.1f} | {100 * r['negative_test']:.1f} |" for r in rows]
    run.path("silence.md").write_text("\n".join(lines) + "\n")
    k = len(rows[0]["margin_by_class_test"])
    lines = ["| run | epoch | " + " | ".join(f"class {c}" for c in range(k)) + " |",
             "| --- | --- |" + " --- |" * k]
    lines += [f"| {r['run']} | {r['epoch']} | "
              + " | ".join("-" if v is None else f"{v:.0f}" for v in r["margin_by_class_test"])
              + " |" for r in rows]
    run.path("silence-by-class.md").write_text("\n".join(lines) + "\n")
    return rows


if __name__ == "__main__":
    cli(main)
