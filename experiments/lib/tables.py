"""Table 1's parts: one model trained (or loaded) and evaluated, and the markdown table beside the
paper.

``train_and_evaluate`` is a module-level function of plain-data arguments, so that a process pool
(``experiments.lib.jobs``) can run the nine models side by side. Its result is kept beside the
checkpoint (<name>[-seed<s>].eval.json, with the model's key, the evaluation settings and the
checkpoint's size and time): a model evaluated once is not evaluated again, so separate processes
(``--list``) can each train and evaluate one model, and a last ``table1`` run assembles the table in
seconds.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from experiments.lib import paper
from experiments.lib.runs import FileLog, write_json
from experiments.lib.evaluation import evaluate, percent
from experiments.lib.recipes import Recipe
from experiments.lib.store import checkpoint_name, train_or_load
from nn.backend import get_xp
from nn.mnist import load_mnist


def train_and_evaluate(task):
    """task: {"recipe": Recipe.as_dict(), "seed", "folder", "sweep", "shipped", "data_dir",
    "device", "eval"} -> the evaluation (``experiments.lib.evaluation.evaluate``) with
    "train_seconds" and "eval_seconds" added, computed once per checkpoint and evaluation settings
    and read back from <checkpoint>.eval.json after."""
    recipe, seed, folder = Recipe.from_dict(task["recipe"]), task["seed"], Path(task["folder"])
    log, xp, ev = FileLog(folder / "log.txt"), get_xp(task["device"]), task["eval"]
    path = folder / checkpoint_name(recipe.name, seed)
    saved = path.with_suffix(".eval.json")
    data = load_mnist(task["data_dir"])
    model, meta = train_or_load(recipe, seed, path, data, xp, log, sweep=task["sweep"],
                                shipped=task.get("shipped"))
    stamp = [path.stat().st_size, path.stat().st_mtime_ns]
    try:
        old = json.loads(saved.read_text())
        if old["key"] == meta["key"] and old["eval"] == ev and old["stamp"] == stamp:
            return old["result"]
    except (OSError, ValueError, KeyError):
        pass
    t0 = time.perf_counter()
    x, y = data["test"][0][:ev["n_test"]], data["test"][1][:ev["n_test"]]
    kinds = recipe.method.get("kinds") or list(paper.PHI[recipe.arch])
    result = evaluate(model, x, y, eps=ev["eps"], clip=ev["clip"], batch=ev["batch"], kinds=kinds)
    seconds = meta.get("train_seconds") or sum(h.get("seconds", 0.0)
                                               for h in meta.get("history", []))
    result.update(train_seconds=seconds, eval_seconds=time.perf_counter() - t0)
    write_json(saved, {"key": meta["key"], "eval": ev, "stamp": stamp, "result": result})
    clean, fgsm = paper.TABLE1.get(recipe.name, ("-", "-"))
    log(f"{recipe.name}" + (f" (seed {seed})" if seed else "")
        + f": clean {100 * result['clean_acc']:.2f} %  "
        f"FGSM paper {100 * result['fgsm_paper']:.2f} %  "
        f"float32 {percent(result['fgsm_float32'], 2)} %  "
        f"stable {100 * result['fgsm_stable']:.2f} %  (the paper: {clean} / {fgsm})  median margin "
        f"{result['margin_q'][2]:.1f}  zero_grad_paper {100 * result['zero_grad_paper']:.1f} %  "
        f"saturated_frac {result['saturated_frac']}")
    return result


def _cell(r, k):
    """An accuracy in %, with +- its standard deviation over seeds when there are several."""
    if r[k] is None:
        return "-"
    return f"{100 * r[k]:.2f}" + (f" +- {100 * r[f'{k}_std']:.2f}"
                                  if r.get("n_seeds", 1) > 1 else "")


def format_table(rows):
    """Markdown: one line per training, one column pair per architecture, the paper beside ours;
    over several seeds each cell is mean +- standard deviation. rows: dicts with "model",
    "arch_kwargs" and ``experiments.lib.evaluation.ACCURACIES``."""
    lines = ["| training | " + " | ".join(f"{a} paper | {a} ours" for a in paper.ARCHS) + " |",
             "| --- |" + " --- | --- |" * len(paper.ARCHS)]
    by = {r["model"]: r for r in rows}
    controls = any(paper.CONTROL in name for name in by)
    for t in paper.TRAININGS + ((paper.CONTROL,) if controls else ()):
        cells = []
        for a in paper.ARCHS:
            paper_cell = ("{:.2f} / {:.2f}".format(*paper.TABLE1[f"{a}-{t}"])
                          if t != paper.CONTROL else "-")
            r = by.get(f"{a}-{t}")
            ours = (f"{_cell(r, 'clean_acc')} / {_cell(r, 'fgsm_paper')} "
                    f"({_cell(r, 'fgsm_float32')}, {_cell(r, 'fgsm_stable')})" if r else "-")
            cells += [paper_cell, ours]
        label = "saturated recipe, no penalty (control)" if t == paper.CONTROL else t
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    sizes = "; ".join(f"{r['model']} {r['arch_kwargs']}" for r in rows)
    return "\n".join(lines) + ("\n\n(clean test accuracy % / FGSM accuracy % at eps = 0.25 with "
                               "the paper's numerics (float32 with TensorFlow's flush-to-zero); "
                               "in brackets, FGSM with numerics float32 (numpy's, subnormals "
                               "kept; - on a GPU, whose float32 flushes them) and stable"
                               + (f"; sizes: {sizes}" if sizes else "") + ")\n")
