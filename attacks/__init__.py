"""satnets.attacks: adversarial attacks with analytic input gradients."""
from .fgsm import FGSM  # noqa: F401
from .result import AttackResult, TargetedResult  # noqa: F401
