"""(shim, replaced by the redesign) Table 1's recipes as frozen objects."""
from __future__ import annotations

import dataclasses

from nn.architectures import build_spec
from nn.model import Sequential


@dataclasses.dataclass(frozen=True)
class Recipe:
    arch: str
    training: str
    arch_kwargs: dict
    train: dict
    method: dict

    def spec(self):
        return build_spec(self.arch, **self.arch_kwargs)

    def init_model(self, seed=0, xp=None):
        import numpy as np
        return Sequential.init(self.spec(), seed=seed, xp=xp or np)

    def objective(self):
        from experiments.table1 import objective_for
        return objective_for({"training": self.training, "method": self.method})


def quick_recipes():
    from experiments.table1 import ARCHS, TRAININGS, model_settings, quick_settings
    s = quick_settings()
    out = {}
    for a in ARCHS:
        for t in TRAININGS:
            ms = model_settings(s, a, t)
            out[f"{a}-{t}"] = Recipe(a, t, ms["arch_kwargs"], ms["train"], ms["method"])
    return out
