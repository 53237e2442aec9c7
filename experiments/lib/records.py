"""Records: the small JSON files under ``results/`` that every published number comes from.

A record is made from one run folder by ``python -m experiments.publish --record NAME --from RUN``,
never typed: it copies from the folder's ``config.json`` the command that made it (which reruns it),
the git commit, the date, the machine, numpy and its BLAS line and the device, and from its result
file the numbers, under the names the code gives them (``experiments.lib.evaluation``,
``analysis.masking.audit``). The tables of README.md and RESULTS.md are rendered from records
(``experiments.lib.rendering``), so a table cannot drift from its numbers.

Record fields: ``record`` (its name), ``script``, ``command``, ``commit``, ``date``, ``machine``,
``numpy``, ``blas``, ``device``, ``seeds``, ``wall_seconds``, ``numbers``.
"""
from __future__ import annotations

import json
from pathlib import Path

from experiments.lib.cli import UsageError
from experiments.lib.runs import write_json

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "results"  # the committed records


def _table1(folder):
    """Table 1's run (``experiments.table1``): its rows as table.json holds them, the per-seed
    evaluations kept (the spread over seeds is computed from them)."""
    t = _read(folder / "table.json")
    keep = ("model", "clean_acc", "fgsm_paper", "fgsm_float32", "fgsm_stable", "zero_grad_paper",
            "margin_q", "saturated_frac", "train_seconds", "eval_seconds", "n_seeds", "seeds",
            "per_seed", "arch_kwargs", "clean_acc_std", "fgsm_paper_std", "fgsm_float32_std",
            "fgsm_stable_std")
    rows = [{k: r[k] for k in keep if k in r} for r in t["rows"]]
    return ({"rows": rows, "eval": t["eval"], "jobs": t.get("jobs")}, t["seeds"],
            t.get("wall_seconds"), t["device"])


def _audit(folder):
    """The gradient-masking audit's run (``experiments.beyond.audit``): per model the accuracy under
    every attack, the worst case, the exactly-zero gradient shares, the eps curve and the flags."""
    a = _read(folder / "audit.json")
    keep = ("model", "n", "clean", "accuracy", "worst", "strongest", "zero_gradient_fraction",
            "eps", "curve", "flags", "seconds")
    rows = [{k: r[k] for k in keep if k in r} for r in a["rows"]]
    wall = sum(r.get("seconds", 0.0) for r in a["rows"])
    options = {k: v for k, v in a["options"].items()
               if k not in ("out", "debug", "device", "data_dir", "models")}
    return {"rows": rows, "options": options}, [a["options"]["seed"]], wall, None


def _targeted(folder):
    """A targeted grid's run (``experiments.lbfgs_grid``, ``experiments.adam_attack``): per model
    and source kind the pairs fooled of 90, the median iterations and distances over the
    successes and the stop reasons; the paper's statement for the attack."""
    t = _read(folder / "summary.json")
    options = {k: v for k, v in t["options"].items()
               if k not in ("out", "debug", "device", "data_dir")}
    wall = sum(r["seconds"] for r in t["rows"])
    return ({"attack": t["attack"], "rows": t["rows"], "paper": t["paper"], "options": options},
            [t["options"]["seed"]], wall, None)


def _verify(folder):
    """The proofs' run (``experiments.beyond.verify``): per model and eps the share verified by each
    method, the share attacked, the undecided share, the MILP's tally, the contradictions (must be
    0) and each method's seconds; the survivors' per-image details stay in the run folder."""
    v = _read(folder / "verify.json")
    keep = ("model", "n", "eps", "methods", "verified_by", "verified", "attacked", "undecided",
            "milp", "contradictions", "seconds", "total_seconds")
    rows = [{k: r[k] for k in keep if k in r} for r in v["rows"]]
    options = {k: o for k, o in v["options"].items()
               if k not in ("out", "debug", "device", "data_dir", "models")}
    return ({"rows": rows, "options": options}, [v["options"]["seed"]],
            sum(r["total_seconds"] for r in rows), None)


def _bench(folder):
    """The benchmark's run (``experiments.tools.bench``): seconds per call of each workload beside
    PyTorch's, the matmul peak and each epoch's seconds and GFLOP/s."""
    b = _read(folder / "bench.json")
    return b, [], None, b["device"]


def _evaluation(folder):
    """The shipped models' evaluation (``experiments.beyond.evaluate``)."""
    e = _read(folder / "evaluation.json")
    return {"rows": e["rows"], "eval": e["eval"]}, [e["seed"]], e["wall_seconds"], e["device"]


def _analysis(result_file):
    """A paper's analysis whose result file is small JSON kept whole (weights: stats.json; eq. 9:
    ratios.json; section 6: paths.json; section 8: ratios.json; the logit-scale probe)."""
    def kind(folder):
        config = _read(folder / "config.json")
        return (_read(folder / result_file), [config["options"].get("seed", 0)],
                _log_seconds(folder), None)
    return kind


def _log_seconds(folder):
    """Seconds from the first to the last line of a run folder's log.txt (its wall time when the run
    ran once, uninterrupted), or None."""
    import datetime
    stamps = [line[1:9] for line in (Path(folder) / "log.txt").read_text().splitlines()
              if line.startswith("[")]
    if len(stamps) < 2:
        return None
    first, last = (datetime.datetime.strptime(s, "%H:%M:%S") for s in (stamps[0], stamps[-1]))
    return (last - first).total_seconds() % 86400


# the script whose run folder a record is made from -> how its numbers are read
KINDS = {"experiments.table1": _table1, "experiments.beyond.audit": _audit,
         "experiments.beyond.evaluate": _evaluation, "experiments.lbfgs_grid": _targeted,
         "experiments.adam_attack": _targeted, "experiments.tools.bench": _bench,
         "experiments.beyond.verify": _verify,
         "experiments.weights": _analysis("stats.json"),
         "experiments.rdm": _analysis("ratios.json"),
         "experiments.fisher_path": _analysis("paths.json"),
         "experiments.kurtosis_linear": _analysis("ratios.json"),
         "experiments.beyond.logit_scale": _analysis("logit_scale.json"),
         "experiments.tools.auto_lirpa": _analysis("auto_lirpa.json")}


def _read(path):
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file; the run did not finish, or it is not the run "
                         "folder of the command its config.json names") from None


def make_record(name, folder):
    """The record ``name`` of the run folder ``folder`` (its config.json and result file). -> dict.
    Raises UsageError when the folder has no config.json or was made by a script with no record
    kind."""
    folder = Path(folder)
    config = _read(folder / "config.json")
    kind = KINDS.get(config["script"])
    if kind is None:
        raise UsageError(f"{folder}: made by {config['script']}, which publishes no record; "
                         f"records come from {', '.join(sorted(KINDS))}")
    numbers, seeds, wall, device = kind(folder)
    return {"record": name, "script": config["script"], "command": config["command"],
            "commit": config["commit"], "date": config["date"], "machine": config["machine"],
            "numpy": config["numpy"], "blas": config["blas"],
            "device": device or config["options"].get("device") or "cpu", "seeds": seeds,
            "wall_seconds": wall, "numbers": numbers}


def write_record(record, results=None):
    """Write ``record`` as <results>/<name>.json (atomically; default results/). -> the path."""
    path = Path(results or RESULTS) / f"{record['record']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, record)
    return path


def read_record(name, results=None):
    """The record <results>/<name>.json (default results/), or None when it has not been
    published."""
    path = Path(results or RESULTS) / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None
