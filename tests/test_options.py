"""Every command-line option takes effect in every preset: --quick sets defaults, an option given
explicitly wins over them, and the quick presets read what `table1 --quick` writes."""
import importlib

import pytest

from experiments.lib import cli as common
from experiments.lib.scripts import module

# script -> (module whose main parses, {option: (quick value, a value given explicitly)})
CASES = {
    "audit": ("beyond.audit", {"n_test": (100, 7), "n_test_cnn": (50, 7), "pgd_steps": (10, 3),
                               "restarts": (2, 3),
                        "square_queries": (50, 9), "sweep_steps": (5, 3)}),
    "logit_scale": ("beyond.logit_scale", {"n_test": (200, 7), "n_test_cnn": (50, 7)}),
    "verify": ("beyond.verify", {"n_test": (100, 7), "sweep_steps": (5, 3), "milp_max": (3, 2),
                                 "milp_time": (5.0, 2.5), "square_queries": (20, 4),
                                 "ball_points": (20, 0)}),
    "fisher_path": ("fisher_path", {"points": (20, 5)}),
    "kurtosis_linear": ("kurtosis_linear", {"draws": (10, 3)}),
    "rdm": ("rdm", {"per_class": (10, 4)}),
    "lbfgs_grid": ("lib.targeted_grid", {"max_iter": (10, 3)}),
    "adam_attack": ("lib.targeted_grid", {"max_iter": (100, 3)}),
    "bench": ("tools.bench", {"steps": (20, 3)}),
}


class Parsed(Exception):
    """Raised by the stand-in for ``parse``: carries the parsed options, so that nothing runs."""


def _parsed(monkeypatch, script, parser_module, argv):
    mod = importlib.import_module(f"experiments.{parser_module}")

    def parse(parser, argv=None, quick=None):
        raise Parsed(common.parse(parser, argv, quick))
    monkeypatch.setattr(mod, "parse", parse)
    with pytest.raises(Parsed) as got:
        importlib.import_module(module(script)).main(argv)
    return got.value.args[0]


@pytest.mark.parametrize("script", sorted(CASES))
def test_quick_sets_defaults_and_explicit_options_win(monkeypatch, script):
    parser_module, options = CASES[script]
    quick = _parsed(monkeypatch, script, parser_module, ["--quick"])
    for dest, (preset, given) in options.items():
        assert getattr(quick, dest) == preset, dest
        flag = "--" + dest.replace("_", "-")
        explicit = _parsed(monkeypatch, script, parser_module, ["--quick", flag, str(given)])
        assert getattr(explicit, dest) == given, f"{script} --quick {flag} {given} was ignored"
    # the quick presets chain: they read what table1 --quick writes
    if "checkpoints" in vars(quick):
        assert quick.checkpoints == common.QUICK_TABLE1
        plain = _parsed(monkeypatch, script, parser_module, [])
        assert plain.checkpoints == common.TABLE1


def test_errors_inside_a_model_loop_name_the_model():
    with pytest.raises(common.UsageError, match="^relu_mlp-saturated: no example of class 0"):
        with common.about("relu_mlp-saturated"):
            raise common.UsageError("no example of class 0")


def test_whole_numbers_take_zero_and_counts_do_not():
    """``whole`` (0: none, as --ball-points 0) and ``count`` (at least 1) refuse what lies outside,
    naming the bound."""
    import argparse
    assert common.whole("0") == 0 and common.count("3") == 3
    for fn, bad, said in ((common.whole, "-1", "at least 0"), (common.count, "0", "at least 1"),
                          (common.whole, "1.5", "whole number")):
        with pytest.raises(argparse.ArgumentTypeError, match=said):
            fn(bad)
