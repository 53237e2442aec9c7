"""Every run folder alike: config.json is written before anything is trained or evaluated and holds
the command, the resolved options, the recipes, satnets' version, the git commit, the date, the
machine and numpy's BLAS line; an option that fails its check leaves no folder behind."""
import argparse
import json

import pytest

from experiments.lib.cli import UsageError, add_common_args
from experiments.lib.runs import Run

KEYS = {"script", "command", "options", "recipes", "version", "commit", "date", "machine", "numpy",
        "blas"}


def _args(tmp_path, *extra):
    parser = add_common_args(argparse.ArgumentParser())
    parser.add_argument("--from", dest="checkpoints", default=None)
    parser.add_argument("--models", nargs="*", default=None)
    return parser.parse_args(["--out", str(tmp_path / "run"), *extra])


def test_config_json_comes_first_and_holds_the_provenance(tmp_path):
    run = Run("weights", _args(tmp_path), recipes={"relu_mlp-vanilla": {"arch": "relu_mlp"}})
    config = json.loads((run.dir / "config.json").read_text())
    assert set(config) == KEYS
    assert (config["script"] == "experiments.weights"
            and config["command"].startswith("python -m experiments.weights"))
    assert config["options"]["out"] == str(tmp_path / "run") and "debug" not in config["options"]
    assert config["recipes"] == {"relu_mlp-vanilla": {"arch": "relu_mlp"}}
    assert "cores" in config["machine"] and config["numpy"]
    assert (run.dir / "log.txt").read_text().splitlines()[0].endswith(config["command"])


def test_a_missing_checkpoint_folder_or_model_leaves_no_folder(tmp_path):
    with pytest.raises(UsageError, match="no such folder"):
        Run("weights", _args(tmp_path, "--from", str(tmp_path / "nowhere"),
                             "--models", "relu_mlp-vanilla"))
    (tmp_path / "ckpt").mkdir()
    with pytest.raises(UsageError, match="has no checkpoint of relu_mlp-vanilla"):
        Run("weights", _args(tmp_path, "--from", str(tmp_path / "ckpt"),
                             "--models", "relu_mlp-vanilla"))
    with pytest.raises(UsageError, match="unknown model"):
        Run("weights", _args(tmp_path, "--from", str(tmp_path / "ckpt"),
                             "--models", "relu-vanilla"))
    assert not (tmp_path / "run").exists()
