"""One recipe, one model: a frozen recipe (architecture, training settings, objective) names a
model, and ``model_key`` alone decides whether two runs are the same model.

A recipe is built from the paper's facts (``experiments.lib.paper``) and changed from the command
line in one dialect, ``--set <models>.<part>.<key>=<value>``:

    <models>  a model (relu_mlp-saturated), an architecture (relu_mlp: its models), a training
              (saturated: its three models) or ``all``
    <part>    arch (the architecture's arguments, ``nn.architectures``), train
              (``nn.train.TrainConfig`` but the seed) or method (the objective's arguments:
              ``nn.penalty.saturating_objective``,
              ``attacks.adversarial_training.adversarial_objective``)

e.g. ``--set relu_mlp-saturated.method.lam_max=1e-6`` or ``--set saturated.train.epochs=800``.
Besides Table 1's nine models there is one control per saturated model, ``<arch>-control``: its
recipe with the plain cross-entropy (lambda = 0).
"""
from __future__ import annotations

import ast
import copy
import dataclasses
import inspect
import json

import numpy as np

from attacks.adversarial_training import adversarial_objective
from experiments.lib import paper, presets
from nn.architectures import ARCHITECTURES, build_spec
from nn.errors import UserError
from nn.model import Sequential
from nn.numerics import upgrade_settings
from nn.penalty import lambda_schedule, saturating_objective, unit_weight
from nn.spec import layer_shapes, multiply_adds
from nn.train import TrainConfig, cross_entropy_objective

OBJECTIVES = {"vanilla": cross_entropy_objective, "adversarial": adversarial_objective,
              "saturated": saturating_objective, paper.CONTROL: cross_entropy_objective}
# the paper's three, and the saturated models' controls
TRAININGS = (*paper.TRAININGS, paper.CONTROL)
PARTS = ("arch", "train", "method")


class SettingError(UserError, ValueError):
    """A --set assignment that names no setting, or gives a value of the wrong type."""


def _arguments(fn):
    """{name: default} of a function's keyword arguments (None where there is no default)."""
    return {k: None if p.default is p.empty else p.default
            for k, p in inspect.signature(fn).parameters.items() if p.kind is not p.VAR_KEYWORD}


def _defaults(arch, training):
    """Every setting a recipe of (arch, training) has, with its
    default: -> {part: {key: default}}."""
    train = {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.name != "seed"}
    method = ({} if OBJECTIVES[training] is cross_entropy_objective
              else _arguments(OBJECTIVES[training]))
    return {"arch": _arguments(ARCHITECTURES[arch]), "train": train, "method": method}


def _canonical(obj):
    return json.loads(json.dumps(obj, sort_keys=True))  # tuples -> lists, keys sorted


@dataclasses.dataclass(frozen=True)
class Recipe:
    """One model of the paper: architecture ``arch`` with arguments ``arch_kwargs``, training
    settings ``train`` (``TrainConfig`` without the seed) and the objective of ``training`` with
    arguments ``method``. Build with ``Recipe.make``, which fills in every default, so that two
    recipes of the same model compare equal however they were written."""
    arch: str
    training: str
    arch_kwargs: dict
    train: dict
    method: dict

    @classmethod
    def make(cls, arch, training, arch_kwargs=None, train=None, method=None):
        """The recipe with every setting not given at its default (the architecture's,
        ``TrainConfig``'s and the objective's signatures). Raises SettingError for an unknown model
        or setting."""
        if arch not in paper.ARCHS or training not in TRAININGS:
            raise SettingError(f"no model {arch}-{training}; expected one of "
                               f"{' '.join(paper.MODELS + paper.CONTROLS)}")
        d = _defaults(arch, training)
        parts = {"arch": arch_kwargs or {}, "train": train or {}, "method": method or {}}
        filled = {}
        for part, given in parts.items():
            unknown = set(given) - set(d[part])
            if unknown:
                raise SettingError(f"{arch}-{training}: "
                                   f"no {part} setting {', '.join(sorted(unknown))}; {part} has: "
                                   f"{', '.join(sorted(d[part])) or 'nothing'}")
            filled[part] = _canonical({**d[part], **given})
        filled["arch"].pop("input_shape", None)  # MNIST's, always
        return cls(arch, training, filled["arch"], filled["train"], filled["method"])

    @classmethod
    def from_dict(cls, d):
        """A recipe from ``as_dict`` (or from the model settings an older Table 1 wrote; their old
        words for the numerics, "ftz" and the penalty's derivative "paper" / "stable", read as
        today's by ``nn.numerics.upgrade_settings``)."""
        return cls.make(d["arch"], d["training"], d.get("arch_kwargs"),
                        upgrade_settings(d.get("train") or {}),
                        upgrade_settings(d.get("method") or {}))

    def as_dict(self):
        """The recipe as a plain dict (``dataclasses.asdict``); ``from_dict`` reads it back."""
        return dataclasses.asdict(self)

    @property
    def name(self):
        """'<arch>-<training>', e.g. 'relu_mlp-saturated'."""
        return f"{self.arch}-{self.training}"

    @property
    def epochs(self):
        """The number of training epochs, train["epochs"]."""
        return self.train["epochs"]

    @property
    def readout_penalty(self):
        """The phi of the saturating penalty on the readout (eqs. 6-8: "sigmoid", "relu", "linear"),
        or None: a recipe without the penalty, or without it on the readout."""
        if self.training != "saturated" or not self.method.get("lam_max"):
            return None
        return self.method["kinds"][-1]

    def spec(self):
        """The architecture's layer spec (``nn.architectures.build_spec``)."""
        return build_spec(self.arch, **self.arch_kwargs)

    def cost(self):
        """Training's matrix-product multiply-adds per training example, the proxy for its time by
        which ``experiments.lib.jobs.run_all`` starts the longest runs first: epochs * the forward
        pass's multiply-adds (``nn.spec.multiply_adds``) * 2 for adversarial training (eq. 4: every
        step also computes the FGSM batch and trains on it)."""
        return (self.epochs * sum(multiply_adds(self.spec()))
                * (2 if self.training == "adversarial" else 1))

    def init_model(self, seed=0, xp=np):
        """A freshly initialised ``nn.model.Sequential`` of this spec (``seed``, array module
        ``xp``)."""
        return Sequential.init(self.spec(), seed=seed, xp=xp)

    def config(self, seed=0):
        """The training settings as ``nn.train.TrainConfig`` with ``seed``."""
        return TrainConfig(**self.train, seed=seed)

    def objective(self):
        """The training objective (``nn.train.train``'s ``objective``) this recipe names."""
        if OBJECTIVES[self.training] is cross_entropy_objective:
            return cross_entropy_objective
        return OBJECTIVES[self.training](**self.method)

    def replace(self, part, **changes):
        """A copy with ``changes`` to one part (arch, train or method)."""
        new = {"arch": self.arch_kwargs, "train": self.train, "method": self.method}
        new[part] = {**new[part], **changes}
        return Recipe.make(self.arch, self.training, new["arch"], new["train"], new["method"])

    def check(self):
        """Build everything the recipe names once (spec, training settings, objective), so that a
        bad value stops a run at once with its name, not after an hour. -> self."""
        layer_shapes(self.spec())
        self.config()
        self.objective()
        return self


def model_key(recipe, seed):
    """The identity of a model: every setting of ``recipe`` but the number of epochs, and the seed,
    as canonical JSON. Two runs with the same key train the same model, step for step; the one with
    more epochs continues the other (a constant or per-epoch learning rate and a per-step lambda do
    not depend on the total). Checkpoint reuse, resuming, continuing and the sweep's snapshots all
    compare this key, and nothing else."""
    d = recipe.as_dict()
    d["train"] = {k: v for k, v in d["train"].items() if k != "epochs"}
    return json.dumps({**d, "seed": seed}, sort_keys=True)


def readout_weight(recipe, n_classes, step):
    """One readout unit's penalty weight relative to one example's cross-entropy at training step
    ``step`` (``nn.penalty.unit_weight`` with lambda from ``nn.penalty.lambda_schedule``) for a
    recipe whose readout carries the sigma' penalty; None for any other, and while lambda is 0."""
    if recipe.readout_penalty != "sigmoid":
        return None
    m = recipe.method
    lam = lambda_schedule(step, m["lam_max"], m["lam_step"])
    return (unit_weight(lam, n_classes, recipe.train["batch_size"], m["units"], m["batch"])
            if lam > 0 else None)


def table1_recipes(quick=False):
    """The nine models of Table 1 from ``experiments.lib.paper``, then the three controls (each
    saturated recipe with the plain cross-entropy): {name: Recipe}, in the paper's order. ``quick``:
    the same models at the smoke sizes of ``presets.MODELS``."""
    out = {}
    for training in paper.TRAININGS:
        for arch in paper.ARCHS:
            arch_kwargs, train, method = dict(paper.WIDTH[arch]), dict(paper.TRAIN[arch]), {}
            if arch == "cnn":
                train.update(paper.TABLE1_CNN_TRAIN)
            if training == "adversarial":
                method = dict(paper.ADVERSARIAL)
            if training == "saturated":
                arch_kwargs, train = (dict(paper.SATURATED_WIDTH[arch]),
                                      dict(paper.REGIME_TRAIN[arch]))
                method = {"kinds": list(paper.PHI[arch]), **paper.LAMBDA[arch],
                          "units": paper.UNITS[arch]}
            if quick:  # the model's own quick entry, else its architecture's
                q_arch, q_model = presets.MODELS[arch], presets.MODELS.get(f"{arch}-{training}", {})
                arch_kwargs = dict(q_model.get("arch", q_arch["arch"]))
                train.update(q_arch["train"])
                train.update(q_model.get("train", {}))
                method.update(q_model.get("method", {}))
            recipe = Recipe.make(arch, training, arch_kwargs, train, method)
            out[recipe.name] = recipe
    for arch in paper.ARCHS:
        sat = out[f"{arch}-saturated"]
        out[f"{arch}-{paper.CONTROL}"] = Recipe.make(arch, paper.CONTROL,
                                                     sat.arch_kwargs, sat.train)
    return {name: out[name] for name in paper.MODELS + paper.CONTROLS}


def select(names, only, option="--only"):
    """The names among ``names`` that ``only`` picks: each item a model, an architecture, a training
    or ``all``. -> list, in the order of ``names``. An unknown item raises SettingError naming
    ``option``."""
    if not only:
        return list(names)
    unknown = [o for o in only if o != "all"
               and o not in {*paper.ARCHS, *TRAININGS, *paper.MODELS, *paper.CONTROLS}]
    if unknown:
        raise SettingError(f"{option}: unknown {', '.join(unknown)}; expected an architecture "
                           f"({', '.join(paper.ARCHS)}), a training ({', '.join(TRAININGS)}), "
                           f"<architecture>-<training> or all")
    return [n for n in names if {"all", n, *n.split("-")} & set(only)]


def parse_value(raw):
    """A --set value: the Python literal the string ``raw`` spells (``ast.literal_eval``: a number,
    list, None, True, ...), else ``raw`` itself."""
    try:
        return ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return raw  # a word: 'mean', 'sum'


def _same_kind(old, new):
    """True when ``new`` may replace the setting ``old``: the same type, an int for a float,
    anything for an unset (None) setting or None for it."""
    if old is None or new is None:
        return True
    if isinstance(old, bool) or isinstance(new, bool):
        return isinstance(old, bool) and isinstance(new, bool)
    if isinstance(old, float):
        return isinstance(new, (int, float))
    return isinstance(new, type(old))


def set_value(settings, key, name, raw):
    """``settings`` (a dict) with settings[name] replaced by the value written ``raw``, parsed and
    of the setting's type (an int for a float becomes a float). key: the --set key, for the
    messages. Raises SettingError. -> a new dict."""
    if name not in settings:
        raise SettingError(f"--set {key}: no setting {name!r}; there are: "
                           f"{', '.join(sorted(settings)) or 'none'}")
    value, old = parse_value(raw), settings[name]
    if not _same_kind(old, value):
        raise SettingError(f"--set {key}={raw}: expected {type(old).__name__} like {old!r}, "
                           f"got {type(value).__name__}")
    return {**settings,
            name: float(value) if isinstance(old, float) and isinstance(value, int) else value}


def apply_set(recipes, assignment):
    """``recipes`` ({name: Recipe}) with one ``--set <models>.<part>.<key>=<value>`` applied (see
    the module docstring). Raises SettingError naming what was wrong. -> a new dict."""
    key, _, raw = assignment.partition("=")
    parts = key.split(".")
    if not raw or len(parts) != 3:
        raise SettingError(f"--set needs <models>.<part>.<key>=<value>, got {assignment!r}")
    who, part, name = parts
    if part not in PARTS:
        raise SettingError(f"--set {key}: no part {part!r}; expected one of {', '.join(PARTS)}")
    targets = select(list(recipes), [who], option=f"--set {key}")
    if not targets:
        raise SettingError(f"--set {key}: {who} names none of the models here "
                           f"({' '.join(recipes)})")
    out = dict(recipes)
    for n in targets:
        r = recipes[n]
        current = {"arch": r.arch_kwargs, "train": r.train, "method": r.method}[part]
        out[n] = r.replace(part, **{name: copy.deepcopy(set_value(current, key, name, raw)[name])})
    return out


def quick_recipes():
    """Table 1's nine recipes at the quick sizes (tests/test_golden.py fingerprints them)."""
    quick = table1_recipes(quick=True)
    return {name: quick[name] for name in paper.MODELS}
