"""The auto_LiRPA comparison tool: its table, and a clear refusal of what it does not compare and of
a missing library, before any run folder is made."""
import pytest

from experiments.lib import torch_twin
from experiments.lib.cli import UsageError
from experiments.tools import auto_lirpa


def test_table_gives_ours_beside_theirs_per_method():
    row = {"model": "relu_mlp-saturated", "n": 200, "eps": 0.01,
           "ours": {"ibp": 0.0, "crown": 0.51, "alpha_crown": 0.67},
           "theirs": {"ibp": 0.0, "crown": 0.33, "alpha_crown": 0.665}}
    table = auto_lirpa.format_table([row])
    assert "| relu_mlp-saturated | 200 | 0.01 | 0.0 / 0.0 | 51.0 / 33.0 | 67.0 / 66.5 |" in table


def test_refuses_a_sigmoid_mlp(tmp_path, mnist_dir, small_mnist_models):
    folder, _ = small_mnist_models
    with pytest.raises(UsageError, match="sigmoid_mlp-vanilla is not one"):
        auto_lirpa.main(["--from", str(folder), "--models", "sigmoid_mlp-vanilla",
                         "--out", str(tmp_path / "run"), "--data-dir", str(mnist_dir)])
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(torch_twin.torch_available(), reason="PyTorch is installed here")
def test_without_pytorch_it_names_the_install_line():
    with pytest.raises(UsageError, match="auto_LiRPA==0.3"):
        auto_lirpa.import_auto_lirpa()
