"""The quick presets chain, as a new user without the plots extra runs them: `table1 --quick` first,
then every other script's `--quick` reads its folder by default; each writes its raw results and says
in one line which figures it skipped."""
import sys

import pytest

from experiments.lib import cli as common, plotting
from experiments.lib.scripts import module

# script -> (extra arguments, a raw result file it must write, whether it draws figures)
CHAIN = [
    ("table1", [], "runs/table1-quick/table.json", False),
    ("weights", [], "runs/weights-quick/stats.json", True),
    ("rdm", [], "runs/rdm-quick/rdm.npz", True),
    ("fisher_path", [], "runs/fisher_path-quick/paths.npz", True),
    ("kurtosis_linear", ["--dim", "500"], "runs/kurtosis_linear-quick/ratios.json", True),
    ("audit", ["--models", "relu_mlp-vanilla", "relu_mlp-saturated"], "runs/audit-quick/audit.json", True),
    ("logit_scale", ["--models", "relu_mlp-saturated", "--scales", "1", "8"], "runs/logit_scale-quick/logit_scale.json",
     True),
    ("verify", ["--models", "relu_mlp-saturated"], "runs/verify-quick/verify.json", True),
    ("lbfgs_grid", ["--models", "relu_mlp-saturated"], "runs/lbfgs_grid-quick/summary.json", True),
    ("figures", [], None, True),
    ("sweep", ["--n-test", "200"], "runs/sweep-quick/table.json", True),
]


@pytest.fixture
def no_matplotlib(monkeypatch):
    """`import matplotlib` raises ImportError, as on a fresh machine without the plots extra."""
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)


def test_quick_presets_chain_without_matplotlib(tmp_path, mnist_dir, monkeypatch, capsys, no_matplotlib):
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
        skipped = [line for line in err.splitlines() if line.startswith("figures skipped")]
        if script == "figures":  # it draws nothing but figures: it says so
            assert "nothing drawn: matplotlib is not installed" in out
        elif draws:
            assert len(skipped) == 1, (script, err)
            assert ".png" in skipped[0] and 'pip install -e ".[plots]"' in skipped[0]
        else:
            assert not skipped, (script, err)
