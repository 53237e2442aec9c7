"""The quick presets chain, as a new user without the plots extra runs them: `table1 --quick` first,
then every other script's `--quick` reads its folder by default; each writes its raw results, which
hold what they claim (shapes, ranges, accuracies and shares, the bounds below their attacks), its
config.json, and says in one line which figures it skipped."""
import json
import sys

import numpy as np
import pytest

from experiments.lib import cli as common, plotting, shipped
from experiments.lib.scripts import module

# script -> (extra arguments, a raw result file it must write, whether it draws figures)
CHAIN = [
    ("table1", [], "runs/table1-quick/table.json", False),
    ("weights", [], "runs/weights-quick/stats.json", True),
    ("rdm", [], "runs/rdm-quick/rdm.npz", True),
    ("fisher_path", [], "runs/fisher_path-quick/paths.npz", True),
    ("kurtosis_linear", ["--dim", "500"], "runs/kurtosis_linear-quick/ratios.json", True),
    ("audit", ["--models", "relu_mlp-vanilla", "relu_mlp-saturated"],
     "runs/audit-quick/audit.json", True),
    ("logit_scale", ["--models", "relu_mlp-saturated", "--scales", "1", "8"],
     "runs/logit_scale-quick/logit_scale.json", True),
    ("verify", ["--models", "relu_mlp-saturated"], "runs/verify-quick/verify.json", True),
    ("lbfgs_grid", ["--models", "relu_mlp-saturated"], "runs/lbfgs_grid-quick/summary.json", True),
    ("figures", [], None, True),
    ("sweep", ["--n-test", "200"], "runs/sweep-quick/table.json", True),
]


def _share(v):
    return 0.0 <= v <= 1.0


def _table1(path):
    rows = {r["model"]: r for r in json.loads(path.read_text())["rows"]}
    assert len(rows) == 9
    for r in rows.values():
        # every quick model beats chance (0.1) by far
        assert 0.3 < r["clean_acc"] <= 1.0, r["model"]
        assert all(_share(r[k]) for k in ("fgsm_paper", "fgsm_float32", "fgsm_stable",
                                          "zero_grad_paper"))
        assert r["n_seeds"] == 1 and len(r["per_seed"]) == 1
    for name in shipped.NAMES:  # the shipped regime MLPs stand in for the saturated MLPs: the
        r = rows[name]          # quick chain sees the masking (most gradients exactly 0, FGSM in
        assert r["arch_kwargs"]["hidden"] == 200  # the paper's numerics far above stable FGSM)
        assert r["zero_grad_paper"] > 0.5 and r["fgsm_paper"] > r["fgsm_stable"] + 0.3, r


def _weights(path):
    stats = json.loads(path.read_text())
    assert {"sigmoid_mlp-vanilla", "sigmoid_mlp-saturated", "relu_mlp-vanilla",
            "relu_mlp-saturated", "cnn-vanilla", "cnn-saturated"} == set(stats)
    for name, s in stats.items():
        # one per weight layer: a 2-hidden-layer MLP has 3, the CNN 4 (two convolutions, two dense)
        assert len(s["weights"]) == len(s["preactivations"]) == (4 if name.startswith("cnn") else 3)
    for name in shipped.NAMES:  # the regime: most hidden units saturated on the test images
        assert all(u["saturated"] > 0.5 for u in stats[name]["preactivations"][:2]), name


def _rdm(path):
    with np.load(path) as z:
        for k in z.files:
            D = z[k]
            assert D.shape == (100, 100), k  # 10 images of each class
            assert np.allclose(D, D.T) and (np.diag(D) == 0).all() and (D >= 0).all(), k


def _fisher(path):
    with np.load(path) as z:
        for k in z.files:
            if k.endswith("/p"):
                assert np.allclose(z[k].sum(axis=1), 1, atol=1e-5), k  # a softmax at every point
            elif k.endswith("/dl") or k.endswith("/sv"):
                assert (z[k] >= 0).all() and np.isfinite(z[k]).all(), k
            if k.endswith("/sv"):
                assert (np.diff(z[k], axis=1) <= 0).all(), k  # singular values in descending order


def _kurtosis(path):
    r = json.loads(path.read_text())
    assert r["pearson7"][0]["gamma2"] == 0.0  # the Gaussian baseline first
    assert all(np.isfinite(row["mean"]) and row["mean"] > 0 for row in r["pearson7"])


def _audit(path):
    for r in json.loads(path.read_text())["rows"]:
        acc = r["accuracy"]
        assert all(0 <= v <= 100 for v in acc.values())
        # the worst case over every attack
        assert r["worst"] <= min(acc.values()) and r["worst"] <= r["clean"]


def _logit_scale(path):
    for r in json.loads(path.read_text())["results"]:
        assert r["n"] == 200 and len(r["scales"]) == 2


def _verify(path):
    for r in json.loads(path.read_text())["rows"]:
        # a proof never beats an attack
        assert all(v <= a for v, a in zip(r["verified"], r["attacked"]))
        assert all(c == 0 for c in r["contradictions"])


def _grid(path):
    for r in json.loads(path.read_text())["rows"]:
        assert r["pairs"] == 90 and 0 <= r["success"] <= 90


def _sweep(path):
    for r in json.loads(path.read_text())["rows"]:
        assert _share(r["clean_acc"]) and _share(r["fgsm_paper"]) and _share(r["zero_grad_paper"])


CHECKS = {"table1": _table1, "weights": _weights, "rdm": _rdm, "fisher_path": _fisher,
          "kurtosis_linear": _kurtosis,
          "audit": _audit, "logit_scale": _logit_scale, "verify": _verify, "lbfgs_grid": _grid,
          "sweep": _sweep}


@pytest.fixture
def no_matplotlib(monkeypatch):
    """`import matplotlib` raises ImportError, as on a fresh machine without the plots extra."""
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)


@pytest.mark.slow
def test_quick_presets_chain_without_matplotlib(tmp_path, mnist_dir, monkeypatch,
                                                capsys, no_matplotlib):
    plotting.SKIPPED_FIGURES.clear()  # what earlier tests' direct main() calls left
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SATNETS_MNIST_DIR", str(mnist_dir))
    import importlib
    for script, extra, result, draws in CHAIN:
        mod = importlib.import_module(module(script))
        common.cli(mod.main, ["--quick", *extra])
        out, err = capsys.readouterr()
        if result:
            assert (tmp_path / result).exists(), f"{script} --quick wrote no {result}"
            config = json.loads((tmp_path / result).with_name("config.json").read_text())
            assert config["script"] == module(script) and config["options"]["quick"] is True
            CHECKS[script](tmp_path / result)
        skipped = [line for line in err.splitlines() if line.startswith("figures skipped")]
        if script == "figures":  # it draws nothing but figures: it says so
            assert "nothing drawn: matplotlib is not installed" in out
        elif draws:
            assert len(skipped) == 1, (script, err)
            assert ".png" in skipped[0] and 'pip install -e ".[plots]"' in skipped[0]
        else:
            assert not skipped, (script, err)
