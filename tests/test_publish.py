"""Every published table is a rendering of a record: the render check passes on the repository, a
table edited by hand fails it, and a record carries the command, commit and machine of the run
folder it was made from, never a number typed."""
import json

import pytest

from experiments import publish
from experiments.lib import published, published_beyond, records, rendering


def test_every_table_is_its_rendering():
    """The check CI relies on: README.md, RESULTS.md and experiments/README.md hold exactly what
    ``python -m experiments.publish`` renders from results/."""
    assert publish.main(["--check"]) == []


def test_a_table_edited_by_hand_fails_the_check(tmp_path, monkeypatch):
    page = tmp_path / "page.md"
    page.write_text("text\n<!-- rendered: index -->\n" + published.index()
                    + "<!-- /rendered -->\nmore\n")
    assert rendering.differing([page]) == []
    page.write_text(page.read_text().replace("| `python -m experiments.table1` |",
                                             "| `python -m experiments.table2` |"))
    assert rendering.differing([page]) == [(str(page), "index")]
    page.write_text(rendering.render_text(page.read_text()))
    assert (rendering.differing([page]) == [] and page.read_text().startswith("text\n")
            and page.read_text().endswith("more\n"))


def _table1_run(folder):
    """A run folder as ``experiments.table1`` leaves it: config.json and table.json."""
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({
        "script": "experiments.table1", "command": "python -m experiments.table1 --jobs 2",
        "options": {"device": None},
        "commit": "0123456789abcdef", "date": "2026-12-07T06:00:00+0000",
        "machine": "a CPU, 2 cores, x86_64", "numpy": "2.4.6", "blas": "openblas"}))
    row = {"model": "relu_mlp-saturated", "clean_acc": 0.9789, "fgsm_paper": 0.9557,
           "fgsm_float32": 0.9486,
           "fgsm_stable": 0.047, "zero_grad_paper": 0.953, "margin_q": [1, 2, 437.6, 4, 5],
           "n_seeds": 1, "seeds": [0],
           "per_seed": [], "arch_kwargs": {"hidden": 200}, "not_published": 1}
    (folder / "table.json").write_text(json.dumps({"rows": [row], "seeds": [0], "device": "cpu",
                                                   "wall_seconds": 4101.0,
                                                   "eval": {"n_test": 10000}}))


def test_a_record_is_the_run_folders_numbers_and_provenance(tmp_path, monkeypatch):
    _table1_run(tmp_path / "run")
    monkeypatch.setattr(records, "RESULTS", tmp_path / "results")
    publish_record = publish.main
    monkeypatch.setattr(rendering, "FILES", ())  # render nothing of the repository's
    publish_record(["--record", "table1", "--from", str(tmp_path / "run")])
    r = records.read_record("table1")
    assert (r["command"] == "python -m experiments.table1 --jobs 2"
            and r["commit"] == "0123456789abcdef")
    assert r["wall_seconds"] == 4101.0 and r["seeds"] == [0] and r["device"] == "cpu"
    row = r["numbers"]["rows"][0]
    assert row["fgsm_paper"] == 0.9557 and "not_published" not in row
    table = published.headline()
    assert "| ReLU MLP saturated | 94.59 | **95.57** | **4.70** | **95.3** | - |" in table
    assert "`python -m experiments.table1 --jobs 2` at 0123456789ab" in table
    assert "`results/audit.json`: not published yet" in table


def _publish(monkeypatch, tmp_path, name, run):
    """``python -m experiments.publish --record name --from run`` into tmp_path/results, rendering
    none of the repository's files."""
    monkeypatch.setattr(records, "RESULTS", tmp_path / "results")
    monkeypatch.setattr(rendering, "FILES", ())
    publish.main(["--record", name, "--from", str(run)])


def test_the_benchmark_publishes_its_timings(tmp_path, monkeypatch):
    """A bench run folder's bench.json becomes the record the Performance table is rendered from:
    each workload's milliseconds per call beside PyTorch's and their ratio, each epoch's share of
    the matmul peak."""
    run = tmp_path / "bench"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({
        "script": "experiments.tools.bench", "command": "python -m experiments.tools.bench",
        "options": {"device": None, "seed": 0}, "commit": "0123456789abcdef", "date": "2026-12-07",
        "machine": "AMD EPYC, 2 cores, x86_64", "numpy": "2.4.6", "blas": "openblas"}))
    (run / "bench.json").write_text(json.dumps({
        "device": "cpu", "retained": True, "openblas_coretype": None,
        "torch": {"version": "2.13.0", "threads": 2, "rows": [
            {"workload": "relu mlp: training step", "satnets_seconds": 0.010,
             "torch_seconds": 0.0125}]},
        "peak_gflops": 100.0,
        "epochs": [{"model": "cnn (Table 2)", "steps": 430, "seconds": 40.0, "gflops": 50.0}]}))
    _publish(monkeypatch, tmp_path, "bench", run)
    table = published_beyond.bench()
    assert "| relu mlp: training step | 10.00 | 12.50 | 0.80 |" in table
    assert "| cnn (Table 2) | 430 | 40.00 | 50.0 | 0.50 |" in table
    assert "OPENBLAS_CORETYPE unset" in table and "at 0123456789ab" in table


def test_publish_refuses_a_folder_without_a_record_kind(tmp_path, capsys):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"script": "experiments.beyond.silence"}))
    with pytest.raises(SystemExit) as e:
        from experiments.lib.cli import cli
        cli(publish.main, ["--record", "x", "--from", str(folder)])
    assert e.value.code == 2 and "publishes no record" in capsys.readouterr().err


def _config(folder, script, command):
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({
        "script": script, "command": command, "options": {"device": None, "seed": 0},
        "commit": "0123456789abcdef", "date": "2026-12-07", "machine": "a CPU, 2 cores, x86_64",
        "numpy": "2.4.6", "blas": "openblas"}))


def test_the_seeds_record_renders_mean_std_and_each_seed(tmp_path, monkeypatch):
    """Table 1 over seeds: each cell mean +- sample std, then each seed's FGSM (paper / stable)."""
    run = tmp_path / "seeds"
    _config(run, "experiments.table1", "python -m experiments.table1 --seeds 0 1 --out s")
    per_seed = [{"clean_acc": c, "fgsm_paper": p, "fgsm_float32": p, "fgsm_stable": s}
                for c, p, s in ((0.97, 0.90, 0.30), (0.96, 0.80, 0.20))]
    row = {"model": "sigmoid_mlp-saturated", "clean_acc": 0.965, "clean_acc_std": 0.00707,
           "fgsm_paper": 0.85, "fgsm_paper_std": 0.0707, "fgsm_float32": 0.85,
           "fgsm_float32_std": 0.0707, "fgsm_stable": 0.25, "fgsm_stable_std": 0.0707,
           "n_seeds": 2, "seeds": [0, 1], "per_seed": per_seed, "arch_kwargs": {"hidden": 200}}
    (run / "table.json").write_text(json.dumps({"rows": [row], "seeds": [0, 1], "device": "cpu",
                                                "wall_seconds": 10.0, "eval": {}}))
    _publish(monkeypatch, tmp_path, "seeds", run)
    table = published.seeds()
    assert "96.50 +- 0.71 / 85.00 +- 7.07" in table
    assert "| sigmoid MLP saturated | 90.00 / 30.00 | 80.00 / 20.00 |" in table
    assert "`python -m experiments.table1 --seeds 0 1 --out s` at 0123456789ab" in table


def test_the_proofs_record_renders_each_method_and_its_time(tmp_path, monkeypatch):
    """verify.json -> the record: per model and eps IBP / CROWN / alpha-CROWN / MILP and the
    attacked share, then each method's seconds and the contradictions; survivors stay behind."""
    run = tmp_path / "verify"
    _config(run, "experiments.beyond.verify", "python -m experiments.beyond.verify")
    row = {"model": "relu_mlp-saturated", "n": 500, "eps": [0.01, 0.03],
           "methods": ["ibp", "crown", "alpha_crown", "milp"],
           "verified_by": {"ibp": [1.0, 0.0], "crown": [50.0, 1.0], "alpha_crown": [66.2, 1.4],
                           "milp": [66.4, 1.4]},
           "verified": [66.4, 1.4], "attacked": [90.0, 40.0], "undecided": [23.6, 38.6],
           "milp": [], "contradictions": [0, 0], "total_seconds": 100.0, "survivors": [1],
           "seconds": {"ibp": 1.0, "crown": 20.0, "alpha_crown": 50.0, "milp": 9.0,
                       "attack": 20.0}}
    (run / "verify.json").write_text(json.dumps({"rows": [row], "options": {"seed": 0,
                                                                            "out": "x"}}))
    _publish(monkeypatch, tmp_path, "verify", run)
    r = records.read_record("verify")
    assert "survivors" not in r["numbers"]["rows"][0] and r["wall_seconds"] == 100.0
    assert "out" not in r["numbers"]["options"]
    table = published_beyond.verify()
    assert ("| ReLU MLP saturated | 500 | 1.0/50.0/66.2/66.4 (90.0) | 0.0/1.0/1.4/1.4 (40.0) |"
            in table)
    assert "| ReLU MLP saturated | 1 | 20 | 50 | 9 | 20 | 0 |" in table
