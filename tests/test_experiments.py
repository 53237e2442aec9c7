"""The experiment scripts run end to end and write their run folders; the benchmark counts FLOPs right."""
import json
import os
from pathlib import Path

import numpy as np
import pytest

from experiments import bench
from experiments import train as train_script
from nn import architectures
from nn.mnist import load_mnist


def test_train_quick_writes_run_folder(tmp_path, mnist_dir):
    out = tmp_path / "run"
    acc = train_script.main(["--arch", "relu_mlp", "--quick", "--out", str(out), "--data-dir", str(mnist_dir)])
    assert {p.name for p in out.iterdir()} == {"config.json", "log.txt", "model.npz", "metrics.json"}
    metrics = json.loads((out / "metrics.json").read_text())
    config = json.loads((out / "config.json").read_text())
    assert metrics["test_acc"] == acc > 0.9  # 10k examples, one epoch
    assert config["train"]["max_train"] == 10000 and config["arch_kwargs"] == {"hidden": 256}
    assert "test accuracy" in (out / "log.txt").read_text()


def test_train_step_flops_by_hand():
    # dense 784->5 (first: forward + dW), dense 5->10 (forward + dW + dx): 2 FLOPs per multiply-add
    spec = architectures.mlp("relu", hidden=5, depth=1)
    assert bench.train_step_flops(spec, batch=2) == 2 * 2 * (784 * 5 * 2 + 5 * 10 * 3)
    # a 3x3 conv 1->2 on 8x8, pool, dense 32->10: the conv's m = 1*9*2*64 multiply-adds per example
    spec = architectures.cnn(channels=(2,), hidden=4, kernel=3, input_shape=[1, 8, 8])
    m_conv, m_fc1, m_fc2 = 9 * 2 * 64, 32 * 4, 4 * 10
    assert bench.train_step_flops(spec, batch=1) == 2 * (2 * m_conv + 3 * m_fc1 + 3 * m_fc2)


def test_table1_quick_end_to_end(tmp_path, mnist_dir):
    from experiments import table1
    out = tmp_path / "t1"
    argv = ["--quick", "--out", str(out), "--data-dir", str(mnist_dir), "--sweep", "none"]
    rows = table1.main(argv)
    assert {(r["arch"], r["training"]) for r in rows} == set(table1.PAPER)
    assert {"settings.json", "table.json", "table.md", "log.txt"} <= {p.name for p in out.iterdir()}
    table = json.loads((out / "table.json").read_text())
    assert len(table["rows"]) == 9 and all(
        0 <= r[k] <= r["clean_acc"] + 0.2 for r in table["rows"] for k in ("fgsm_acc", "fgsm_stable_acc"))
    md = (out / "table.md").read_text()
    assert md.count("\n| ") == 4 and "94.43" in md  # header, rule, three trainings; paper beside ours
    vanilla = {r["arch"]: r for r in rows if r["training"] == "vanilla"}
    assert vanilla["relu_mlp"]["clean_acc"] > 0.9
    # a second call reuses the nine checkpoints and gives the same numbers
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.glob("*.npz")}
    again = table1.main(argv + ["--only", "relu_mlp"])
    assert [r["clean_acc"] for r in again] == [r["clean_acc"] for r in rows if r["arch"] == "relu_mlp"]
    assert mtimes == {p.name: p.stat().st_mtime_ns for p in out.glob("*.npz")}


def test_table1_seeds_report_mean_and_std(tmp_path, mnist_dir):
    """--seeds trains each model once per seed (seed 0 under the usual name) and reports each cell as
    mean +- sample standard deviation of the per-seed values kept in table.json."""
    from experiments import table1
    out = tmp_path / "seeds"
    rows = table1.main(["--quick", "--out", str(out), "--data-dir", str(mnist_dir), "--sweep", "none",
                        "--only", "relu_mlp-vanilla", "--seeds", "0", "1", "2"])
    assert {p.name for p in out.glob("*.npz")} == {"relu_mlp-vanilla.npz", "relu_mlp-vanilla-seed1.npz",
                                                    "relu_mlp-vanilla-seed2.npz"}
    row = json.loads((out / "table.json").read_text())["rows"][0]
    assert row == json.loads(json.dumps(rows[0])) and row["seeds"] == [0, 1, 2]
    for k in table1.ACCURACIES:
        values = [r[k] for r in row["per_seed"]]
        assert len(set(values)) > 1 or k != "clean_acc"  # three seeds, three different networks
        assert abs(row[k] - sum(values) / 3) < 1e-12
        assert abs(row[f"{k}_std"] - (sum((v - row[k]) ** 2 for v in values) / 2) ** 0.5) < 1e-12
    cell = f"{100 * row['clean_acc']:.2f} +- {100 * row['clean_acc_std']:.2f}"
    assert cell in (out / "table.md").read_text()


def test_table1_overrides():
    from experiments import table1
    s = table1.default_settings()
    table1.apply_override(s, "relu_mlp.saturated.lam_max=1e-3")
    table1.apply_override(s, "cnn.train.epochs=3")
    assert s["relu_mlp"]["saturated"]["lam_max"] == 1e-3 and s["cnn"]["train"]["epochs"] == 3
    import pytest
    with pytest.raises(table1.UsageError, match="no setting 'mlp'"):
        table1.apply_override(s, "mlp.train.epochs=3")


def test_targeted_grids_quick_end_to_end(tmp_path, mnist_dir, small_mnist_models):
    import numpy as np
    from experiments import adam_attack, lbfgs_grid
    folder, _ = small_mnist_models
    for script in (lbfgs_grid, adam_attack):
        out = tmp_path / script.__name__
        rows = script.main(["--quick", "--from", str(folder), "--models", "relu_mlp-vanilla",
                            "--out", str(out), "--data-dir", str(mnist_dir)])
        assert [(r["model"], r["sources"]) for r in rows] == [("relu_mlp-vanilla", "least"), ("relu_mlp-vanilla", "most")]
        assert all(r["success"] >= 80 for r in rows)  # a vanilla net falls on nearly every pair
        with np.load(out / "relu_mlp-vanilla-most.npz") as z:
            assert z["x_adv"].shape == (90, 1, 28, 28) and z["success"].shape == (90,)
            assert ((z["x_adv"] >= 0) & (z["x_adv"] <= 1)).all() and (z["target"] != z["source_index"] % 10).any()
        summary = json.loads((out / "summary.json").read_text())
        assert len(summary["rows"]) == 2 and "fooled / 90" in (out / "summary.md").read_text()
        # the same command again keeps both recorded grids; other options record the grid anew
        again = script.main(["--quick", "--from", str(folder), "--models", "relu_mlp-vanilla",
                             "--out", str(out), "--data-dir", str(mnist_dir)])
        assert again == rows and (out / "log.txt").read_text().count("kept") == 2
        script.main(["--quick", "--from", str(folder), "--models", "relu_mlp-vanilla", "--sources", "most",
                     "--no-ftz", "--out", str(out), "--data-dir", str(mnist_dir)])
        assert (out / "log.txt").read_text().count("kept") == 2


def test_analysis_scripts_quick_end_to_end(tmp_path, mnist_dir, small_mnist_models):
    from experiments import fisher_path, kurtosis_linear, rdm, weights
    folder, _ = small_mnist_models
    common = ["--quick", "--from", str(folder), "--models", "sigmoid_mlp-vanilla", "relu_mlp-vanilla",
              "--data-dir", str(mnist_dir)]
    stats = weights.main(common + ["--out", str(tmp_path / "w")])
    assert [len(s["weights"]) for s in stats.values()] == [3, 3]
    sat = stats["relu_mlp-vanilla"]["preactivations"]
    assert 0 < sat[0]["saturated"] < 1 and sat[-1]["saturated"] is None  # the readout is not a hidden unit
    ratios = rdm.main(common + ["--out", str(tmp_path / "r")])
    assert all(len(v) == 3 and min(v) > 1 for v in ratios.values())  # classes separate in a trained net
    paths = fisher_path.main(common + ["--out", str(tmp_path / "f")])
    assert set(paths["relu_mlp-vanilla"]) == {"1-7", "3-7", "6-9", "0-6"}
    assert all(p["length"] > 0 for p in paths["relu_mlp-vanilla"].values())
    k = kurtosis_linear.main(common + ["--out", str(tmp_path / "k"), "--dim", "2000"])
    assert k["pearson7"][0]["rise"] == 0 and k["pearson7"][-1]["rise"] > 0.1
    for d, f in [("w", "stats.json"), ("r", "rdm.npz"), ("f", "paths.npz"), ("k", "ratios.json")]:
        assert (tmp_path / d / f).exists()
    # ours beyond the paper: the audit's eps curves and the logit-scale probe
    from experiments import audit, logit_scale
    audit.main(common + ["--out", str(tmp_path / "a")])
    logit_scale.main(common + ["--scales", "1", "64", "--out", str(tmp_path / "ls")])
    # the paper's figures redrawn from these folders: every file, or (without matplotlib) none, cleanly
    import importlib.util
    from experiments import figures
    written = figures.main(["--weights", str(tmp_path / "w"), "--rdm", str(tmp_path / "r"), "--fisher",
                            str(tmp_path / "f"), "--kurtosis", str(tmp_path / "k"), "--audit", str(tmp_path / "a"),
                            "--logit-scale", str(tmp_path / "ls"), "--out", str(tmp_path / "figs")])
    expected = {f"fig{n}-{what}-{arch}.png" for n, what in ((1, "weights"), (3, "rdm"), (4, "fisher"))
                for arch in ("sigmoid_mlp", "relu_mlp")} | {"fig2-preactivations.png", "fig6-kurtosis.png",
                                                            "fig-audit-eps.png", "fig-logit-scale.png"}
    if importlib.util.find_spec("matplotlib") is None:
        assert written == []
    else:
        assert {Path(p).name for p in written} == expected
    nowhere = str(tmp_path / "none")
    assert figures.main(["--weights", nowhere, "--rdm", nowhere, "--fisher", nowhere, "--kurtosis", nowhere,
                         "--audit", nowhere, "--logit-scale", nowhere, "--out", str(tmp_path / "figs2")]) == []


def test_audit_quick_end_to_end(tmp_path, mnist_dir, small_mnist_models):
    import shutil
    from experiments import audit
    folder, _ = small_mnist_models
    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(folder / "relu_mlp-vanilla.npz", models / "relu_mlp-vanilla.npz")
    shutil.copy(folder / "relu_mlp-vanilla.npz", models / "relu_mlp-saturated.npz")  # exercises transfer
    out = tmp_path / "audit"
    rows = audit.main(["--quick", "--from", str(models), "--models", "relu_mlp-vanilla", "relu_mlp-saturated",
                       "--out", str(out), "--data-dir", str(mnist_dir)])
    vanilla, copy = rows
    assert vanilla["flags"] == {}  # a plain trained network: nothing suspicious
    assert "transfer" in copy["accuracy"] and "transfer" not in vanilla["accuracy"]
    assert vanilla["worst"] <= min(vanilla["accuracy"].values()) and vanilla["worst"] < 10
    assert vanilla["curve"][0] == vanilla["clean"] > 80 and vanilla["curve"][-1] == 0
    saved = json.loads((out / "audit.json").read_text())
    assert len(saved["rows"]) == 2 and "worst case" in (out / "audit.md").read_text()
    # run again: both rows are kept from audit.json (same options, same checkpoints), none recomputed
    again = audit.main(["--quick", "--from", str(models), "--models", "relu_mlp-vanilla", "relu_mlp-saturated",
                        "--out", str(out), "--data-dir", str(mnist_dir)])
    assert again == rows and (out / "log.txt").read_text().count("kept") == 2
    # a retrained (here: rewritten) checkpoint is audited anew; the other model's row stays in audit.json
    shutil.copy(folder / "relu_mlp-vanilla.npz", models / "relu_mlp-saturated.npz")
    os.utime(models / "relu_mlp-saturated.npz", ns=(1, 1))
    third = audit.main(["--quick", "--from", str(models), "--models", "relu_mlp-saturated",
                        "--out", str(out), "--data-dir", str(mnist_dir)])
    assert third[0]["checkpoint"][1] == 1 and (out / "log.txt").read_text().count("kept") == 2
    assert {r["model"] for r in json.loads((out / "audit.json").read_text())["rows"]} == {
        "relu_mlp-vanilla", "relu_mlp-saturated"}


def test_verify_quick_end_to_end(tmp_path, mnist_dir, small_mnist_models):
    """The bracket: verified <= attacked at every eps, both non-increasing in eps; a rerun keeps it."""
    from experiments import verify
    folder, _ = small_mnist_models
    argv = ["--quick", "--from", str(folder), "--models", "relu_mlp-vanilla", "--eps", "0.003", "0.01", "0.1",
            "--out", str(tmp_path / "v"), "--data-dir", str(mnist_dir)]
    (row,) = verify.main(argv + ["--survivors", "2"])
    assert row["eps"] == [0.003, 0.01, 0.1] and row["n"] == 100
    assert row["methods"] == ["ibp", "crown", "milp"]
    by = row["verified_by"]
    assert all(i <= c <= m == v for i, c, m, v in zip(by["ibp"], by["crown"], by["milp"], row["verified"]))
    assert by["crown"][1] > by["ibp"][1]  # the relaxation proves more than intervals
    assert row["contradictions"] == [0, 0, 0]  # nothing proven robust was fooled
    assert all(t["tried"] <= 3 and t["verified"] + t["falsified"] + t["unknown"] == t["tried"] for t in row["milp"])
    assert all(v <= a for v, a in zip(row["verified"], row["attacked"]))
    assert row["verified"] == sorted(row["verified"], reverse=True) and row["verified"][0] > 0
    assert row["attacked"] == sorted(row["attacked"], reverse=True)
    assert len(row["survivors"]) == 2 and {"crown_bound", "milp", "unstable_units"} <= set(row["survivors"][0])
    assert verify.main(argv + ["--survivors", "2"]) == [row]
    assert (tmp_path / "v" / "log.txt").read_text().count("kept") == 1


def test_logit_scale_quick_end_to_end(tmp_path, mnist_dir, small_mnist_models):
    from experiments import logit_scale
    folder, _ = small_mnist_models
    out = tmp_path / "logit_scale"
    results = logit_scale.main(["--quick", "--from", str(folder), "--models", "relu_mlp-vanilla",
                                "--scales", "1", "1024", "--out", str(out), "--data-dir", str(mnist_dir)])
    (r,) = results
    small, big = r["scales"]
    assert small["clean"] == big["clean"] > 80  # the scale changes no prediction
    assert big["accuracy"]["fgsm-margin-stable"] == small["accuracy"]["fgsm-margin-stable"] < 20
    assert small["accuracy"]["fgsm-ce-paper"] < 20 and big["accuracy"]["fgsm-ce-paper"] > 60  # masked
    assert big["zero_gradient_fraction"] > 0.6 and small["zero_gradient_fraction"] == 0
    assert json.loads((out / "logit_scale.json").read_text())["results"][0]["model"] == "relu_mlp-vanilla"
    assert "FGSM CE paper" in (out / "logit_scale.md").read_text()


def test_bench_profile_reports_calls_per_step(capsys):
    import cProfile

    def layer_under_test():
        return sum(range(1000))
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(6):
        layer_under_test()
    profiler.disable()
    bench.print_profile(profiler, steps=3, top=50)
    (line,) = [ln for ln in capsys.readouterr().out.splitlines() if "layer_under_test" in ln]
    assert "   2 calls/step" in line and "ms/step" in line


def test_sweep_quick_end_to_end_and_resumes(tmp_path, mnist_dir):
    """The sweep's quick grid trains, snapshots and evaluates every run, writes the report; a run whose
    epochs are raised continues from its last epoch instead of starting over."""
    from experiments import sweep
    out = tmp_path / "sweep"
    argv = ["--quick", "--out", str(out), "--data-dir", str(mnist_dir), "--n-test", "300"]
    rows = sweep.main(argv)
    assert {r["run"] for r in rows} == {sweep.run_name(s) for s in sweep.GRIDS["quick"]}
    assert {"table.md", "table.json", "log.txt"} <= {p.name for p in out.iterdir()}
    for r in rows:
        assert 0 <= r["fgsm_tf"] <= r["clean_acc"] and 0 <= r["zero_grad_tf"] <= 1
        assert len(r["depth_q"]) == 3 and r["n_test"] == 300
    first = sweep.GRIDS["quick"][0]
    folder = out / sweep.run_name(first)
    snaps = {p.name: p.stat().st_mtime_ns for p in folder.glob("snap-*.npz")}
    assert set(snaps) == {f"snap-e{first['epochs']}.npz"}
    lines = []
    longer = dict(first, epochs=first["epochs"] + 1)
    sweep.train_run(longer, out, load_mnist(mnist_dir), np, lines.append)
    assert any(f"from epoch {first['epochs']}" in line for line in lines)
    assert {p.name: p.stat().st_mtime_ns for p in folder.glob("snap-*.npz")}.items() >= snaps.items()
    assert (folder / f"snap-e{first['epochs'] + 1}.npz").exists()
    assert sweep.main(argv + ["--report"])  # the report alone re-reads every run
    # Table 1 finds the sweep's snapshot of a model trained with its settings, and only that one
    ms = sweep.model_settings(first)
    assert sweep.find_snapshot(out, ms, first["seed"]) == folder / f"snap-e{first['epochs']}.npz"
    assert sweep.find_snapshot(out, ms, first["seed"] + 1) is None
    assert sweep.find_snapshot(out, {**ms, "train": {**ms["train"], "lr": 0.5}}, first["seed"]) is None


def test_sweep_evaluates_cnns_on_permuted_channels_and_renews_incomplete_records(tmp_path):
    """The sweep's evaluation permutes a CNN's channels too (three summation orders of the same
    function) and predicts its zero gradients from the margin; a stored record of the current version
    without these (written before convolutions could be permuted) is recomputed, a complete one is
    reused as it is."""
    from experiments import sweep
    from nn.checkpoint import save_checkpoint
    from nn.model import Sequential
    model = Sequential.init(architectures.cnn(channels=(3, 4), hidden=5, kernel=3, input_shape=[1, 8, 8]), seed=0)
    x = np.random.default_rng(0).random((6, 1, 8, 8)).astype(np.float32)
    y = model.logits(x).argmax(axis=1)  # its own labels: every image correct, margins to measure
    rec = sweep.evaluate(model, x, y, batch=4)
    assert len(rec["fgsm_tf_perm"]) == 3 and all(0 <= a <= 1 for a in rec["fgsm_tf_perm"])
    assert 0 <= rec["zero_pred_margin_tf"] <= 1  # the margin's prediction for every model,
    assert "zero_pred_tf" not in rec  # the depth-and-margin one for MLPs only
    snap = tmp_path / "snap-e1.npz"
    save_checkpoint(snap, model)
    stale = {k: v for k, v in rec.items() if k not in ("fgsm_tf_perm", "zero_pred_margin_tf")}
    (tmp_path / "eval-e1.json").write_text(json.dumps({"version": sweep.EVAL_VERSION, "epoch": 1, **stale}))
    renewed = sweep.evaluate_snapshot(snap, x, y, np, lambda line: None, batch=4)
    assert renewed["fgsm_tf_perm"] == rec["fgsm_tf_perm"] and "zero_pred_margin_tf" in renewed
    stored = json.loads((tmp_path / "eval-e1.json").read_text())
    assert stored["fgsm_tf_perm"] == rec["fgsm_tf_perm"]
    (tmp_path / "eval-e1.json").write_text(json.dumps({**stored, "clean_acc": -1}))  # a marker: reused, not redone
    assert sweep.evaluate_snapshot(snap, x, y, np, lambda line: None, batch=4)["clean_acc"] == -1


def test_sweep_readout_setting_replaces_only_the_readouts_phi():
    """readout="linear" puts f(z) = z on the readout's penalty (the CNN's reading) and nowhere else: a
    run of its own, whose training objective differs from the plain run's by lambda * sum_j z_j."""
    from experiments import sweep
    from nn.model import Sequential
    from nn.penalty import saturating_objective
    plain = sweep._run(arch="relu_mlp", lam_max=0.5, units="sum")
    linear = dict(plain, readout="linear")
    assert sweep.kinds_of(plain) == ["relu"] * 3 and sweep.kinds_of(linear) == ["relu", "relu", "linear"]
    assert sweep.model_settings(linear)["method"]["kinds"] == ["relu", "relu", "linear"]
    assert sweep.run_name(linear) != sweep.run_name(plain)
    model = Sequential.init(architectures.mlp("relu", hidden=8), seed=0, dtype=np.float64)
    x = np.random.default_rng(0).random((4, 1, 28, 28))
    y = np.arange(4)
    z = model.logits(x)
    losses = {}
    for name, s in (("plain", plain), ("linear", linear)):
        objective = saturating_objective(sweep.kinds_of(s), s["lam_max"], s["lam_step"], s["units"], s["batch"])
        losses[name] = float(objective(model, x, y, 10 ** 6)[0])  # lambda at its maximum
    expected = 0.5 * (z.sum(axis=1) - np.maximum(z, 0).sum(axis=1)).mean()  # units summed, batch averaged
    assert losses["linear"] - losses["plain"] == pytest.approx(expected, rel=1e-12)


def test_sweep_grid_all_holds_every_run_once_and_adam_eps_is_a_run_of_its_own():
    """--grid all trains each run of the three architectures' grids exactly once; adam_eps reaches the
    optimizer and names its own run folder, and runs without it keep their names and Adam's 1e-8."""
    from experiments import sweep
    names = [sweep.run_name(s) for s in sweep.GRIDS["all"]]
    assert len(names) == len(set(names))
    assert set(names) == {sweep.run_name(s) for s in sweep.SIGMOID + sweep.RELU + sweep.CNN}
    plain = sweep._run(hidden=500)
    tiny = dict(plain, adam_eps=1e-12)
    assert sweep.train_config(plain).eps == 1e-8 and sweep.train_config(tiny).eps == 1e-12
    assert sweep.run_name(tiny) == sweep.run_name(plain) + "-adameps1e-12"
    assert not sweep.same_model(tiny, sweep.model_settings(plain))


def test_table1_saturated_models_are_sweep_runs():
    """Each saturated model of the default Table 1 is one of the sweep's runs, snapshotted at its epoch,
    so the sweep's training serves Table 1 (and the quick presets of both agree too)."""
    from experiments import sweep, table1
    cases = [(table1.default_settings(), arch, "all") for arch in table1.ARCHS]
    for settings, arch, grid in cases + [(table1.quick_settings(), "sigmoid_mlp", "quick")]:
        ms = table1.model_settings(settings, arch, "saturated")
        epochs = ms["train"]["epochs"]
        runs = [s for s in sweep.GRIDS[grid] if sweep.same_model(s, ms)]
        assert any(epochs in sweep.MILESTONES and s["epochs"] >= epochs or s["epochs"] == epochs for s in runs)


def test_table1_killed_mid_training_resumes_to_the_same_table(tmp_path, mnist_dir):
    """SIGKILL `python -m experiments.table1 --quick` while a model trains, run it again: it continues
    that model from its last epoch and writes the table an uninterrupted run writes."""
    import os
    import signal
    import subprocess
    import sys
    import time
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "SATNETS_MNIST_DIR": str(mnist_dir), "PYTHONPATH": str(repo)}

    def command(out):
        return [sys.executable, "-m", "experiments.table1", "--quick", "--only", "relu_mlp", "--out", str(out),
                "--sweep", "none"]
    subprocess.run(command(tmp_path / "straight"), env=env, cwd=repo, check=True, capture_output=True)
    killed = tmp_path / "killed"
    proc = subprocess.Popen(command(killed), env=env, cwd=repo, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = killed / "log.txt"
    deadline = time.time() + 120
    ckpt = killed / "relu_mlp-adversarial.npz"  # written atomically after the epoch's log line
    while time.time() < deadline and not (ckpt.exists() and "relu_mlp-adversarial epoch   1/2" in log.read_text()):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "table.json").exists()  # it died before the table
    again = subprocess.run(command(killed), env=env, cwd=repo, check=True, capture_output=True, text=True)
    assert "relu_mlp-adversarial.npz: training interrupted; resuming" in again.stdout
    assert "resuming after epoch 1" in again.stdout
    rows = [json.loads((tmp_path / d / "table.json").read_text())["rows"] for d in ("straight", "killed")]
    keys = ("arch", "training", "clean_acc", "fgsm_acc", "fgsm_f32_acc", "fgsm_stable_acc", "zero_grad_frac")
    assert [{k: r[k] for k in keys} for r in rows[0]] == [{k: r[k] for k in keys} for r in rows[1]]


def test_table1_continues_a_shorter_run_to_more_epochs(tmp_path, mnist_dir, capsys):
    """Raising a model's epochs continues its finished checkpoint from its last epoch, to the table a
    run trained that long from the start writes; lowering them retrains (a run cannot be shortened)."""
    from experiments import table1

    def run(out, epochs):
        table1.main(["--quick", "--only", "relu_mlp-vanilla", "--sweep", "none", "--out", str(tmp_path / out),
                     "--data-dir", str(mnist_dir), "--set", f"relu_mlp.train.epochs={epochs}"])
        return capsys.readouterr().out, json.loads((tmp_path / out / "table.json").read_text())["rows"]
    _, straight = run("straight", 2)
    run("extended", 1)
    log, extended = run("extended", 2)
    assert "relu_mlp-vanilla.npz: continuing from epoch 1 to 2" in log and "resuming after epoch 1" in log
    keys = ("clean_acc", "fgsm_acc", "fgsm_f32_acc", "fgsm_stable_acc", "zero_grad_frac")
    assert [{k: r[k] for k in keys} for r in straight] == [{k: r[k] for k in keys} for r in extended]
    log, _ = run("extended", 1)
    assert "settings changed; retraining" in log and "resuming" not in log


def test_silence_counts_examples_without_a_training_signal(tmp_path, mnist_dir, small_mnist_models):
    """A network whose readout is scaled by 1000 predicts the same, but every correctly classified
    example's float32 cross-entropy gradient is then exactly 0: silent shares equal the accuracies."""
    from analysis.audit import scale_logits
    from experiments import silence
    from nn.checkpoint import save_checkpoint
    from nn.mnist import load_mnist
    _, models = small_mnist_models
    model = models["relu_mlp-vanilla"]
    run = tmp_path / "run"
    run.mkdir()
    save_checkpoint(run / "snap-e1.npz", model, complete=True)
    save_checkpoint(run / "snap-e2.npz", scale_logits(model, 1000.0), complete=True)
    rows = silence.main([str(run), "--quick", "--out", str(tmp_path / "s"), "--data-dir", str(mnist_dir)])
    assert [r["epoch"] for r in rows] == [1, 2]
    assert rows[0]["silent_train"] < 0.05 and rows[0]["silent_test"] < 0.05
    data = load_mnist(mnist_dir)
    acc = float((model.predict(data["test"][0][:500]) == data["test"][1][:500]).mean())
    assert rows[1]["silent_test"] == pytest.approx(acc, abs=0.01)
    assert rows[1]["margin_test"] == pytest.approx(1000 * rows[0]["margin_test"], rel=1e-3)
    assert rows[1]["z_correct_test"] == pytest.approx(1000 * rows[0]["z_correct_test"], rel=1e-3)
    assert rows[1]["negative_test"] == rows[0]["negative_test"]  # scaling keeps every logit's sign
    assert len((tmp_path / "s" / "silence.md").read_text().splitlines()) == 4  # header, rule, two snapshots
    from experiments.common import cli
    with pytest.raises(SystemExit) as e:
        cli(silence.main, [str(tmp_path / "empty")])  # a folder without snapshots: one line, exit 2
    assert e.value.code == 2
