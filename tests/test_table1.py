"""Table 1 end to end at the quick sizes: the nine models, reuse, seeds, resuming after SIGKILL,
continuing to more epochs, the process pool and the command list."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from experiments import table1
from experiments.lib import paper
from experiments.lib.evaluation import ACCURACIES
from nn.checkpoint import load_checkpoint

REPO = Path(__file__).resolve().parents[1]
KEYS = ("model", "clean_acc", "fgsm_paper", "fgsm_float32", "fgsm_stable", "zero_grad_paper")


@pytest.mark.slow
def test_table1_quick_end_to_end_and_reuse(tmp_path, mnist_dir):
    out = tmp_path / "t1"
    argv = ["--quick", "--out", str(out), "--data-dir", str(mnist_dir), "--sweep", "none"]
    rows = table1.main(argv)
    assert [r["model"] for r in rows] == list(paper.MODELS)
    assert {"config.json", "table.json", "table.md", "log.txt"} <= {p.name for p in out.iterdir()}
    table = json.loads((out / "table.json").read_text())
    assert len(table["rows"]) == 9 and all(0 <= r[k] <= r["clean_acc"] + 0.2 for r in table["rows"]
                                           for k in ("fgsm_paper", "fgsm_stable"))
    md = (out / "table.md").read_text()
    # header, rule, three trainings; the paper beside ours
    assert md.count("\n| ") == 4 and "94.43" in md
    assert {r["model"]: r for r in rows}["relu_mlp-vanilla"]["clean_acc"] > 0.9
    # a second call reuses the checkpoints and their evaluations and gives the same numbers
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.glob("*.npz")}
    again = table1.main(argv + ["--only", "relu_mlp"])
    assert [r["clean_acc"] for r in again] == [r["clean_acc"]
                                               for r in rows if r["model"].startswith("relu_mlp")]
    assert mtimes == {p.name: p.stat().st_mtime_ns for p in out.glob("*.npz")}


@pytest.mark.slow
def test_table1_seeds_report_mean_and_std(tmp_path, mnist_dir):
    """--seeds trains each model once per seed (seed 0 under the usual name) and reports each cell
    as mean +- sample standard deviation of the per-seed values kept in table.json."""
    out = tmp_path / "seeds"
    rows = table1.main(["--quick", "--out", str(out), "--data-dir", str(mnist_dir), "--sweep",
                        "none", "--only", "relu_mlp-vanilla", "--seeds", "0", "1", "2"])
    assert {p.name for p in out.glob("*.npz")} == {"relu_mlp-vanilla.npz",
                                                   "relu_mlp-vanilla-seed1.npz",
                                                    "relu_mlp-vanilla-seed2.npz"}
    row = json.loads((out / "table.json").read_text())["rows"][0]
    assert row == json.loads(json.dumps(rows[0])) and row["seeds"] == [0, 1, 2]
    for k in ACCURACIES:
        values = [r[k] for r in row["per_seed"]]
        assert len(set(values)) > 1 or k != "clean_acc"  # three seeds, three different networks
        assert abs(row[k] - sum(values) / 3) < 1e-12
        assert abs(row[f"{k}_std"] - (sum((v - row[k]) ** 2 for v in values) / 2) ** 0.5) < 1e-12
    assert (f"{100 * row['clean_acc']:.2f} +- {100 * row['clean_acc_std']:.2f}"
            in (out / "table.md").read_text())


def _command(out, *extra):
    return [sys.executable, "-m", "experiments.table1", "--quick", "--only", "relu_mlp", "--out",
            str(out), "--sweep", "none", *extra]


@pytest.mark.slow
def test_table1_killed_mid_training_resumes_to_the_same_table(tmp_path, mnist_dir):
    """SIGKILL `python -m experiments.table1 --quick` while a model trains, run it again: it
    continues that model from its last epoch and writes the table an uninterrupted run writes."""
    env = {**os.environ, "SATNETS_MNIST_DIR": str(mnist_dir), "PYTHONPATH": str(REPO)}
    subprocess.run(_command(tmp_path / "straight"), env=env, cwd=REPO, check=True,
                   capture_output=True)
    killed = tmp_path / "killed"
    proc = subprocess.Popen(_command(killed), env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    # written atomically after the epoch's line
    log, ckpt = killed / "log.txt", killed / "relu_mlp-adversarial.npz"
    deadline = time.time() + 120
    while time.time() < deadline and not (ckpt.exists() and "relu_mlp-adversarial epoch   "
                                                            "1/2" in log.read_text()):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "table.json").exists()  # it died before the table
    again = subprocess.run(_command(killed), env=env, cwd=REPO, check=True,
                           capture_output=True, text=True)
    assert "relu_mlp-adversarial: resumed from epoch 1 to 2" in again.stdout
    rows = [json.loads((tmp_path / d / "table.json").read_text())["rows"]
            for d in ("straight", "killed")]
    assert [{k: r[k] for k in KEYS} for r in rows[0]] == [{k: r[k] for k in KEYS} for r in rows[1]]


@pytest.mark.slow
def test_table1_continues_a_shorter_run_to_more_epochs(tmp_path, mnist_dir, capsys):
    """Raising a model's epochs continues its finished checkpoint from its last epoch, to the table
    a run trained that long from the start writes; lowering them retrains (a run cannot be
    shortened)."""
    def run(out, epochs):
        table1.main(["--quick", "--only", "relu_mlp-vanilla", "--sweep", "none", "--out",
                     str(tmp_path / out),
                     "--data-dir", str(mnist_dir), "--set",
                     f"relu_mlp-vanilla.train.epochs={epochs}"])
        return (capsys.readouterr().out,
                json.loads((tmp_path / out / "table.json").read_text())["rows"])
    _, straight = run("straight", 2)
    run("extended", 1)
    log, extended = run("extended", 2)
    assert ("relu_mlp-vanilla: continued from epoch 1 to 2" in log
            and "resuming after epoch 1" in log)
    assert [{k: r[k] for k in KEYS} for r in straight] == [{k: r[k] for k in KEYS}
                                                           for r in extended]
    log, _ = run("extended", 1)
    assert "retraining" in log and "resuming" not in log


@pytest.mark.slow
def test_table1_jobs_and_list_give_the_table_of_one_process(tmp_path, mnist_dir, capsys):
    """--jobs 2 trains the same models in a process pool (one BLAS thread each, so their float32
    sums may round otherwise than one process's: the accuracies agree to a few points, not to the
    bit); --list prints one self-contained command per model: run in a clean environment (``env -i``
    with only PATH) from another working folder, each trains the pool's model bit for bit, and a
    last plain run only loads the checkpoints they leave."""
    base = ["--quick", "--only", "relu_mlp-vanilla", "sigmoid_mlp-vanilla", "--sweep", "none",
            "--data-dir", str(mnist_dir)]
    one = table1.main(base + ["--out", str(tmp_path / "one")])
    two = table1.main(base + ["--out", str(tmp_path / "two"), "--jobs", "2"])
    assert [r["model"] for r in one] == [r["model"] for r in two]
    assert all(abs(r["clean_acc"] - q["clean_acc"]) < 0.05 for r, q in zip(one, two))
    capsys.readouterr()
    table1.main(base + ["--out", str(tmp_path / "listed"), "--list"])
    commands = capsys.readouterr().out.strip().splitlines()
    assert len(commands) == 2 and all(" -m experiments.table1 --only " in c for c in commands)
    assert all(f"--out {tmp_path / 'listed'}" in c
               and f"SATNETS_MNIST_DIR={mnist_dir.resolve()}" in c for c in commands)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for c in commands:
        subprocess.run(c, shell=True, env={"PATH": os.environ["PATH"]}, cwd=elsewhere, check=True,
                       capture_output=True)
    for name in ("relu_mlp-vanilla", "sigmoid_mlp-vanilla"):
        pooled = load_checkpoint(tmp_path / "two" / f"{name}.npz")[0]
        listed = load_checkpoint(tmp_path / "listed" / f"{name}.npz")[0]
        for p, q in zip(pooled.params, listed.params):
            for k in p:
                assert p[k].tobytes() == q[k].tobytes(), (name, k)
    listed = table1.main(base + ["--out", str(tmp_path / "listed")])
    out = capsys.readouterr().out
    assert out.count(": loaded ") == 2 and ": training " not in out
    assert [{k: r[k] for k in KEYS} for r in two] == [{k: r[k] for k in KEYS} for r in listed]


@pytest.mark.slow
def test_table1_controls_row(tmp_path, mnist_dir):
    """--controls adds each chosen saturated model's control (its recipe without the penalty) in a
    row of its own, with no number of the paper beside it."""
    rows = table1.main(["--quick", "--out", str(tmp_path), "--data-dir", str(mnist_dir), "--sweep",
                        "none", "--only", "relu_mlp-saturated", "--controls"])
    assert [r["model"] for r in rows] == ["relu_mlp-saturated", "relu_mlp-control"]
    md = (tmp_path / "table.md").read_text()
    assert "| saturated recipe, no penalty (control) | - | - | - |" in md


def test_a_device_that_flushes_reports_no_float32_numbers(monkeypatch):
    """On the GPU (``nn.numerics.flushes_subnormals``) "float32" would compute the paper's numbers:
    the evaluation records None for them, and the table, the aggregate over seeds and the logs show
    "-"."""
    import numpy as np
    from experiments.lib import evaluation, tables
    from nn import architectures
    from nn.model import Sequential
    model = Sequential.init(architectures.mlp("sigmoid", hidden=8), seed=0)
    x = np.random.default_rng(0).random((20, 1, 28, 28), dtype=np.float32)
    y = np.arange(20) % 10
    kept = evaluation.evaluate(model, x, y, batch=8)
    monkeypatch.setattr(evaluation, "flushes_subnormals", lambda xp: True)
    flushed = evaluation.evaluate(model, x, y, batch=8)
    assert (kept["fgsm_float32"] is not None and flushed["fgsm_float32"] is None
            and flushed["zero_grad_float32"] is None)
    assert {k: v for k, v in flushed.items() if "float32" not in k} == {k: v
                                                                        for k, v in kept.items()
                                                                        if "float32" not in k}
    both = dict(evaluation.aggregate([flushed, flushed]), model="sigmoid_mlp-vanilla",
                arch_kwargs={}, n_seeds=2)
    assert (both["fgsm_float32"] is None and "fgsm_float32_std" not in both
            and both["fgsm_paper_std"] == 0.0)
    row = next(line for line in tables.format_table([both]).splitlines()
               if line.startswith("| vanilla"))
    assert " (-, " in row


@pytest.mark.slow
def test_a_terminated_pool_leaves_no_worker_training(tmp_path, mnist_dir):
    """SIGTERM to `table1 --jobs 2` while its workers train: the workers end with it (a worker left
    alive would train on beside a rerun of the same command, two writers of one run)."""
    env = {**os.environ, "SATNETS_MNIST_DIR": str(mnist_dir), "PYTHONPATH": str(REPO)}
    out = tmp_path / "pool"
    cmd = [sys.executable, "-m", "experiments.table1", "--quick", "--only", "relu_mlp-vanilla",
           "sigmoid_mlp-vanilla",
           "--sweep", "none", "--set", "vanilla.train.epochs=50", "--jobs", "2", "--out", str(out)]
    proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not ((out / "log.txt").exists()
                                          and "epoch   1/50" in (out / "log.txt").read_text()):
        time.sleep(0.05)
    children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True,
                              text=True).stdout.split()
    assert len(children) >= 2  # the two workers (and the resource tracker)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) != 0
    time.sleep(1)
    alive = [c for c in children if Path(f"/proc/{c}").exists()
             and "Z" not in Path(f"/proc/{c}/stat").read_text().split()[2]]
    assert alive == []
