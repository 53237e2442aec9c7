"""satnets.attacks: adversarial attacks with analytic input gradients."""
from .fgsm import FGSM, AttackResult  # noqa: F401
