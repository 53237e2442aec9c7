"""The experiment scripts run end to end and write their run folders; the benchmark counts FLOPs
right."""
import json
import os
import types
from pathlib import Path

import pytest

from experiments.lib import benchmarks
from experiments.tools import bench
from experiments import train as train_script
from nn import architectures


@pytest.mark.slow
def test_train_quick_writes_run_folder(tmp_path, mnist_dir):
    out = tmp_path / "run"
    acc = train_script.main(["relu_mlp-vanilla", "--quick", "--out", str(out),
                             "--data-dir", str(mnist_dir)])
    assert {p.name for p in out.iterdir()} == {"config.json", "recipe.json", "log.txt", "model.npz",
                                               "metrics.json"}
    metrics = json.loads((out / "metrics.json").read_text())
    recipe = json.loads((out / "recipe.json").read_text())["recipe"]
    assert metrics["test_acc"] == acc > 0.9  # 10k examples, two epochs
    assert recipe["train"]["max_train"] == 10000 and recipe["arch_kwargs"]["hidden"] == 128
    assert "test accuracy" in (out / "log.txt").read_text()
    # the same command again loads the model: no epoch is trained
    assert train_script.main(["relu_mlp-vanilla", "--quick", "--out", str(out),
                              "--data-dir", str(mnist_dir)]) == acc
    assert "loaded" in (out / "log.txt").read_text().splitlines()[-2]


def test_train_step_flops_by_hand():
    # dense 784->5 (first: forward + dW), dense 5->10 (forward + dW + dx): 2 FLOPs per multiply-add
    spec = architectures.mlp("relu", hidden=5, depth=1)
    assert benchmarks.train_step_flops(spec, batch=2) == 2 * 2 * (784 * 5 * 2 + 5 * 10 * 3)
    # a 3x3 conv 1->2 on 8x8, pool, dense 32->10: the conv's m = 1*9*2*64 multiply-adds per example
    spec = architectures.cnn(channels=(2,), hidden=4, kernel=3, input_shape=[1, 8, 8])
    m_conv, m_fc1, m_fc2 = 9 * 2 * 64, 32 * 4, 4 * 10
    assert benchmarks.train_step_flops(spec, batch=1) == 2 * (2 * m_conv + 3 * m_fc1 + 3 * m_fc2)


def test_bench_saturated_times_exp_flushed_against_exp_then_flush(capsys):
    """``--saturated``: the synthetic 784-200-200-10 has each unit's median |h| in 60-1000, and the
    line gives float32, the paper's numerics and the paper's numerics by exp then flush, with their
    ratios."""
    import numpy as np
    x = np.random.default_rng(0).random((128, 1, 28, 28), dtype=np.float32)
    from analysis.masking.saturation import saturated_sigmoid_mlp
    model = saturated_sigmoid_mlp(x)
    for h in model.preactivations(x):
        assert 59 < np.median(np.abs(h), axis=0).min() and np.median(np.abs(h), axis=0).max() < 1001
    t = bench.main(["--saturated", "--steps", "2"])
    assert set(t) == {"float32", "paper", "exp then flush"} and min(t.values()) > 0
    out = capsys.readouterr().out
    assert "saturated_sigmoid_mlp" in out and "exp then flush" in out and "x paper" in out


@pytest.mark.slow
def test_targeted_grids_quick_end_to_end(tmp_path, mnist_dir, small_mnist_models):
    import numpy as np
    from experiments import adam_attack, lbfgs_grid
    folder, _ = small_mnist_models
    for script in (lbfgs_grid, adam_attack):
        out = tmp_path / script.__name__
        rows = script.main(["--quick", "--from", str(folder), "--models", "relu_mlp-vanilla",
                            "--out", str(out), "--data-dir", str(mnist_dir)])
        assert [(r["model"], r["sources"]) for r in rows] == [("relu_mlp-vanilla", "least"),
                                                              ("relu_mlp-vanilla", "most")]
        assert all(r["success"] >= 80 for r in rows)  # a vanilla net falls on nearly every pair
        with np.load(out / "relu_mlp-vanilla-most.npz") as z:
            assert z["x_adv"].shape == (90, 1, 28, 28) and z["success"].shape == (90,)
            assert (((z["x_adv"] >= 0) & (z["x_adv"] <= 1)).all()
                    and (z["target"] != z["source_index"] % 10).any())
        summary = json.loads((out / "summary.json").read_text())
        assert len(summary["rows"]) == 2 and "fooled / 90" in (out / "summary.md").read_text()
        # the same command again keeps both recorded grids; other options record the grid anew
        again = script.main(["--quick", "--from", str(folder), "--models", "relu_mlp-vanilla",
                             "--out", str(out), "--data-dir", str(mnist_dir)])
        assert again == rows and (out / "log.txt").read_text().count("kept") == 2
        script.main(["--quick", "--from", str(folder), "--models", "relu_mlp-vanilla",
                     "--sources", "most", "--numerics", "float32", "--out", str(out),
                     "--data-dir", str(mnist_dir)])
        assert (out / "log.txt").read_text().count("kept") == 2


@pytest.mark.slow
def test_analysis_scripts_quick_end_to_end(tmp_path, mnist_dir, small_mnist_models):
    from experiments import fisher_path, kurtosis_linear, rdm, weights
    folder, _ = small_mnist_models
    common = ["--quick", "--from", str(folder), "--models", "sigmoid_mlp-vanilla",
              "relu_mlp-vanilla", "--data-dir", str(mnist_dir)]
    stats = weights.main(common + ["--out", str(tmp_path / "w")])
    assert [len(s["weights"]) for s in stats.values()] == [3, 3]
    sat = stats["relu_mlp-vanilla"]["preactivations"]
    # the readout is not a hidden unit
    assert 0 < sat[0]["saturated"] < 1 and sat[-1]["saturated"] is None
    ratios = rdm.main(common + ["--out", str(tmp_path / "r")])
    # classes separate in a trained net
    assert all(len(v) == 3 and min(v) > 1 for v in ratios.values())
    paths = fisher_path.main(common + ["--out", str(tmp_path / "f")])
    assert set(paths["relu_mlp-vanilla"]) == {"1-7", "3-7", "6-9", "0-6"}
    assert all(p["length"] > 0 for p in paths["relu_mlp-vanilla"].values())
    k = kurtosis_linear.main(common + ["--out", str(tmp_path / "k"), "--dim", "2000"])
    assert k["pearson7"][0]["rise"] == 0 and k["pearson7"][-1]["rise"] > 0.1
    for d, f in [("w", "stats.json"), ("r", "rdm.npz"), ("f", "paths.npz"), ("k", "ratios.json")]:
        assert (tmp_path / d / f).exists()
    # ours beyond the paper: the audit's eps curves and the logit-scale probe
    from experiments.beyond import audit, logit_scale
    audit.main(common + ["--out", str(tmp_path / "a")])
    logit_scale.main(common + ["--scales", "1", "64", "--out", str(tmp_path / "ls")])
    # the paper's figures redrawn from these folders: every file, or (without matplotlib) none,
    # cleanly
    import importlib.util
    from experiments import figures
    written = figures.main(["--weights", str(tmp_path / "w"), "--rdm", str(tmp_path / "r"),
                            "--fisher", str(tmp_path / "f"), "--kurtosis", str(tmp_path / "k"),
                            "--audit", str(tmp_path / "a"), "--logit-scale", str(tmp_path / "ls"),
                            "--verify", str(tmp_path / "none"), "--out", str(tmp_path / "figs")])
    expected = ({f"fig{n}-{what}-{arch}.png"
                 for n, what in ((1, "weights"), (3, "rdm"), (4, "fisher"))
                 for arch in ("sigmoid_mlp", "relu_mlp")}
                | {"fig2-preactivations.png", "fig6-kurtosis.png", "fig-audit-eps.png",
                   "fig-logit-scale.png"})
    if importlib.util.find_spec("matplotlib") is None:
        assert written == []
    else:
        assert {Path(p).name for p in written} == expected
    nowhere = str(tmp_path / "none")
    assert figures.main(["--weights", nowhere, "--rdm", nowhere, "--fisher", nowhere,
                         "--kurtosis", nowhere, "--audit", nowhere, "--logit-scale", nowhere,
                         "--verify", nowhere, "--out", str(tmp_path / "figs2")]) == []


@pytest.mark.slow
def test_audit_quick_end_to_end(tmp_path, mnist_dir, small_mnist_models):
    import shutil
    from experiments.beyond import audit
    folder, _ = small_mnist_models
    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(folder / "relu_mlp-vanilla.npz", models / "relu_mlp-vanilla.npz")
    shutil.copy(folder / "relu_mlp-vanilla.npz",
                models / "relu_mlp-saturated.npz")  # exercises transfer
    out = tmp_path / "audit"
    rows = audit.main(["--quick", "--from", str(models), "--models", "relu_mlp-vanilla",
                       "relu_mlp-saturated", "--out", str(out), "--data-dir", str(mnist_dir)])
    vanilla, copy = rows
    assert vanilla["flags"] == {}  # a plain trained network: nothing suspicious
    assert "transfer" in copy["accuracy"] and "transfer" not in vanilla["accuracy"]
    assert vanilla["worst"] <= min(vanilla["accuracy"].values()) and vanilla["worst"] < 10
    assert vanilla["curve"][0] == vanilla["clean"] > 80 and vanilla["curve"][-1] == 0
    saved = json.loads((out / "audit.json").read_text())
    assert len(saved["rows"]) == 2 and "worst case" in (out / "audit.md").read_text()
    # run again: both rows are kept from audit.json (same options, same checkpoints), none
    # recomputed
    again = audit.main(["--quick", "--from", str(models), "--models", "relu_mlp-vanilla",
                        "relu_mlp-saturated", "--out", str(out), "--data-dir", str(mnist_dir)])
    assert again == rows and (out / "log.txt").read_text().count("kept") == 2
    # a retrained (here: rewritten) checkpoint is audited anew; the other model's row stays in
    # audit.json
    shutil.copy(folder / "relu_mlp-vanilla.npz", models / "relu_mlp-saturated.npz")
    os.utime(models / "relu_mlp-saturated.npz", ns=(1, 1))
    third = audit.main(["--quick", "--from", str(models), "--models", "relu_mlp-saturated",
                        "--out", str(out), "--data-dir", str(mnist_dir)])
    assert third[0]["checkpoint"][1] == 1 and (out / "log.txt").read_text().count("kept") == 2
    assert {r["model"] for r in json.loads((out / "audit.json").read_text())["rows"]} == {
        "relu_mlp-vanilla", "relu_mlp-saturated"}


@pytest.mark.slow
def test_verify_quick_end_to_end(tmp_path, mnist_dir, small_mnist_models):
    """The bracket: verified <= attacked at every eps, both non-increasing in eps; a rerun keeps
    it."""
    from experiments.beyond import verify
    folder, _ = small_mnist_models
    argv = ["--quick", "--from", str(folder), "--models", "relu_mlp-vanilla",
            "--eps", "0.003", "0.01", "0.1", "--out", str(tmp_path / "v"),
            "--data-dir", str(mnist_dir)]
    (row,) = verify.main(argv + ["--survivors", "2"])
    assert row["eps"] == [0.003, 0.01, 0.1] and row["n"] == 100
    assert row["methods"] == ["ibp", "crown", "alpha_crown", "milp"]
    by = row["verified_by"]
    assert all(i <= c <= a <= m == v for i, c, a, m, v in zip(
        by["ibp"], by["crown"], by["alpha_crown"], by["milp"], row["verified"]))
    assert by["crown"][1] > by["ibp"][1]  # the relaxation proves more than intervals
    assert row["contradictions"] == [0, 0, 0]  # nothing proven robust was fooled
    assert all(t["tried"] <= 3 and t["verified"] + t["falsified"] + t["unknown"] == t["tried"]
               for t in row["milp"])
    assert all(v <= a for v, a in zip(row["verified"], row["attacked"]))
    assert row["verified"] == sorted(row["verified"], reverse=True) and row["verified"][0] > 0
    assert row["attacked"] == sorted(row["attacked"], reverse=True)
    assert (len(row["survivors"]) == 2
            and {"crown_bound", "milp", "unstable_units"} <= set(row["survivors"][0]))
    assert verify.main(argv + ["--survivors", "2"]) == [row]
    assert (tmp_path / "v" / "log.txt").read_text().count("kept") == 1


def test_the_brackets_upper_bound_is_apgd_and_no_weaker_than_pgd(mnist_test, small_mnist_models):
    """The bracket's attacked share is the eps sweep's attack (APGD-CE paper, APGD-DLR stable;
    fooled masks accumulated over eps) and at most what the two PGD attacks it replaced leave on the
    same budget. (Measured, small sigmoid MLP, 200 images, 20 steps: 51.5 and 27.5 % both ways at
    eps 0.05 and 0.1, the attacks fooling different examples.)"""
    from types import SimpleNamespace

    from analysis.masking import audit
    from analysis.masking.suite import eps_sweep_attack, worst_of
    from attacks.pgd import PGD
    from experiments.lib.verification import bracket
    # an MLP without ReLU: IBP and CROWN, no MILP
    model = small_mnist_models[1]["sigmoid_mlp-vanilla"]
    x, y, eps = mnist_test[0][:200], mnist_test[1][:200], [0.05, 0.1]
    args = SimpleNamespace(sweep_steps=20, seed=0, batch=100, crown_batch=50, alpha_steps=20)
    row, _ = bracket(model, x, y, eps, args, log=lambda line: None)
    assert row["attacked"] == audit.accuracy_curve(model, x, y, eps, eps_sweep_attack(20, 0, 100))

    def pgd_pair(e):
        pair = (PGD(eps=e, steps=20, restarts=1, seed=0, numerics="paper"),
                PGD(eps=e, steps=20, restarts=1, seed=0, loss="margin", numerics="stable"))
        return lambda m, xb, yb: worst_of([a(m, xb, yb) for a in pair])
    old = audit.accuracy_curve(model, x, y, eps, pgd_pair)
    assert all(a <= o for a, o in zip(row["attacked"], old)), (row["attacked"], old)
    assert (all(v <= a for v, a in zip(row["verified"], row["attacked"]))
            and row["contradictions"] == [0, 0])


def test_an_unsound_proof_is_caught_by_the_sampled_attacks(monkeypatch, mnist_test,
                                                          small_mnist_models):
    """A prover that "verifies" every example, with the bracket's APGD pair made blind (it fools
    nothing): Square and the random points of the ball (``verification.sampled_attacks``), run on
    the examples proven robust, find the false proofs and count them as contradictions; without
    them (0 queries, 0 points) nothing would."""
    from types import SimpleNamespace

    from attacks.result import AttackResult
    from experiments.lib import verification
    model = small_mnist_models[1]["sigmoid_mlp-vanilla"]
    x, y = mnist_test[0][:60], mnist_test[1][:60]
    right = model.predict(x) == y  # no clean error: only an attack can fool these
    x, y = x[right][:40], y[right][:40]
    everything = lambda m, xb, yb, e: SimpleNamespace(  # noqa: E731
        verified=m.xp.ones(len(xb), dtype=bool))
    monkeypatch.setattr(verification.ibp, "interval_bounds", everything)
    monkeypatch.setattr(verification.crown, "linear_bounds", everything)
    blind = lambda m, xb, yb: AttackResult.of_search(m, xb, xb.copy(), yb)  # noqa: E731
    monkeypatch.setattr(verification, "eps_sweep_attack", lambda *a: lambda e: blind)
    args = SimpleNamespace(sweep_steps=5, seed=0, batch=40, crown_batch=40, alpha_steps=0,
                           square_queries=50, ball_points=50)
    row, _ = verification.bracket(model, x, y, [0.2], args, log=lambda line: None)
    assert row["verified"] == [100.0] and row["contradictions"][0] > 0
    args.square_queries = args.ball_points = 0
    row, _ = verification.bracket(model, x, y, [0.2], args, log=lambda line: None)
    assert row["contradictions"] == [0]


def test_logit_scale_quick_end_to_end(tmp_path, mnist_dir, small_mnist_models):
    from experiments.beyond import logit_scale
    folder, _ = small_mnist_models
    out = tmp_path / "logit_scale"
    results = logit_scale.main(["--quick", "--from", str(folder), "--models", "relu_mlp-vanilla",
                                "--scales", "1", "1024", "--out", str(out),
                                "--data-dir", str(mnist_dir)])
    (r,) = results
    small, big = r["scales"]
    assert small["clean"] == big["clean"] > 80  # the scale changes no prediction
    assert big["accuracy"]["fgsm-margin-stable"] == small["accuracy"]["fgsm-margin-stable"] < 20
    assert (small["accuracy"]["fgsm-ce-float32"] < 20
            and big["accuracy"]["fgsm-ce-float32"] > 60)  # masked
    assert big["zero_gradient_fraction"] > 0.6 and small["zero_gradient_fraction"] == 0
    assert (json.loads((out / "logit_scale.json").read_text())["results"][0]["model"]
            == "relu_mlp-vanilla")
    assert "FGSM CE float32" in (out / "logit_scale.md").read_text()


def test_bench_profile_reports_calls_per_step(capsys):
    import cProfile

    def layer_under_test():
        return sum(range(1000))
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(6):
        layer_under_test()
    profiler.disable()
    benchmarks.print_profile(profiler, steps=3, top=50)
    (line,) = [ln for ln in capsys.readouterr().out.splitlines() if "layer_under_test" in ln]
    assert "   2 calls/step" in line and "ms/step" in line


def test_silence_counts_examples_without_a_training_signal(tmp_path, mnist_dir, small_mnist_models):
    """A network whose readout is scaled by 1000 predicts the same, but every correctly classified
    example's float32 cross-entropy gradient is then exactly 0: silent shares equal the
    accuracies."""
    from analysis.masking.audit import scale_logits
    from experiments.beyond import silence
    from nn.checkpoint import save_checkpoint
    from nn.mnist import load_mnist
    _, models = small_mnist_models
    model = models["relu_mlp-vanilla"]
    run = tmp_path / "run"
    run.mkdir()
    save_checkpoint(run / "snap-e1.npz", model, complete=True)
    save_checkpoint(run / "snap-e2.npz", scale_logits(model, 1000.0), complete=True)
    rows = silence.main([str(run), "--quick", "--out", str(tmp_path / "s"),
                         "--data-dir", str(mnist_dir)])
    assert [r["epoch"] for r in rows] == [1, 2]
    assert rows[0]["silent_train"] < 0.05 and rows[0]["silent_test"] < 0.05
    data = load_mnist(mnist_dir)
    acc = float((model.predict(data["test"][0][:500]) == data["test"][1][:500]).mean())
    assert rows[1]["silent_test"] == pytest.approx(acc, abs=0.01)
    assert rows[1]["margin_test"] == pytest.approx(1000 * rows[0]["margin_test"], rel=1e-3)
    assert rows[1]["z_correct_test"] == pytest.approx(1000 * rows[0]["z_correct_test"], rel=1e-3)
    assert rows[1]["negative_test"] == rows[0]["negative_test"]  # scaling keeps every logit's sign
    # header, rule, two snapshots
    assert len((tmp_path / "s" / "silence.md").read_text().splitlines()) == 4
    from experiments.lib.cli import cli
    with pytest.raises(SystemExit) as e:
        cli(silence.main, [str(tmp_path / "empty")])  # a folder without snapshots: one line, exit 2
    assert e.value.code == 2


def test_blas_names_a_forced_openblas_kernel(monkeypatch):
    """A kernel forced by OPENBLAS_CORETYPE changes every product's speed and roundings: the run
    logs and the benchmark name it; with threadpoolctl the kernel OpenBLAS actually runs is named
    too."""
    from experiments.lib.runs import hardware
    from experiments.lib.jobs import blas
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    assert "OPENBLAS_CORETYPE=Haswell" in blas() and "OPENBLAS_CORETYPE=Haswell" in hardware()
    monkeypatch.delenv("OPENBLAS_CORETYPE")
    monkeypatch.setitem(__import__("sys").modules, "threadpoolctl", None)  # not installed
    assert blas() == "" and "(" not in hardware()


def test_blas_reads_the_running_kernel_with_threadpoolctl():
    pytest.importorskip("threadpoolctl")
    import numpy as np
    from experiments.lib.jobs import blas
    np.ones((64, 64)) @ np.ones((64, 64))  # BLAS loaded
    assert " kernels, " in blas() and " threads" in blas()


def test_bench_says_when_openblas_is_held_to_a_kernel(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    monkeypatch.setattr(bench, "matmul_gflops", lambda xp: 1.0)
    monkeypatch.setattr(bench, "epoch_gflops", lambda spec, xp, steps: (1.0, 1.0))
    result = bench.main(["--no-torch", "--steps", "1", "--out", str(tmp_path / "b")])
    assert "env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE" in capsys.readouterr().out
    written = json.loads((tmp_path / "b" / "bench.json").read_text())
    assert written == result and written["openblas_coretype"] == "Haswell"
    assert written["peak_gflops"] == 1.0 and len(written["epochs"]) == 2


def test_tables_name_the_eps_they_ran_at():
    """The audit's table footer was a fixed "L-inf eps = 0.25" whatever --eps was (and so was the
    logit-scale probe's): each names the eps its attacks used. (Found in this project, no public
    report.)"""
    from experiments.beyond import audit as audit_script, logit_scale
    row = {"model": "relu_mlp-vanilla", "n": 10, "clean": 90.0, "accuracy": {"fgsm-ce-paper": 50.0},
           "worst": 1.0, "strongest": "pgd-ce-paper", "flags": {}}
    assert "L-inf eps = 0.1;" in audit_script.format_table([row], 0.1)
    probe = {"model": "relu_mlp-vanilla", "median_margin": 5.0, "scales": [
        {"scale": 1, "clean": 90.0, "zero_gradient_fraction": 0.0,
         "accuracy": dict.fromkeys(logit_scale.ATTACKS, 1.0)}]}
    assert "FGSM at L-inf eps = 0.05;" in logit_scale.format_table([probe], 0.05)


def test_benchmark_divides_by_the_count_a_workload_ran(monkeypatch):
    """The PyTorch comparison's workloads read ``reps`` when they ran, after the loop over
    architectures had left it at the CNN's 3, while each time was divided by the workload's own
    count (10 for the MLPs). Now the count is handed to each call and the division uses that same
    value (``experiments.lib.benchmarks.per_call_times``): on a clock that a fake workload advances
    by 0.25 s per repetition, one repetition takes 0.25 s whatever the count. (Found in this
    project, no public report.)"""
    clock = [0.0]
    from experiments.lib import benchmarks
    monkeypatch.setattr(benchmarks, "time", types.SimpleNamespace(perf_counter=lambda: clock[0],
                                                                  sleep=lambda s: None))
    ran = []

    def workload(reps):
        ran.append(reps)
        clock[0] += 0.25 * reps

    for reps in (10, 3):
        ran.clear()
        assert benchmarks.per_call_times({"ours": workload, "torch": workload}, reps, repeats=3,
                                         warmup=1) == {"ours": 0.25, "torch": 0.25}
        # (1 warm-up + 3 timed rounds) x 2 workloads, each of reps repetitions
        assert ran == [reps] * 8


def test_benchmark_lets_the_other_sides_threads_settle(monkeypatch):
    """Each timed call of the comparison starts after a pause (``benchmarks.SETTLE``) that the
    timing does not include: the other library's spinning worker threads must not share the
    cores with it, nor the pause count as its time."""
    from experiments.lib import benchmarks
    clock, events = [0.0], []
    monkeypatch.setattr(benchmarks, "time", types.SimpleNamespace(
        perf_counter=lambda: clock[0],
        sleep=lambda s: (events.append(("sleep", s)), clock.__setitem__(0, clock[0] + s))))

    def workload(name):
        def run(reps):
            events.append(("run", name))
            clock[0] += 0.1 * reps
        return run

    t = benchmarks.per_call_times({"ours": workload("ours"), "torch": workload("torch")}, 2,
                                  repeats=2, warmup=0)
    assert t == pytest.approx({"ours": 0.1, "torch": 0.1}, abs=1e-12)  # pauses are not timed
    assert events == [("sleep", benchmarks.SETTLE), ("run", "ours"),
                      ("sleep", benchmarks.SETTLE), ("run", "torch")] * 2
    assert benchmarks.SETTLE >= 0.2
