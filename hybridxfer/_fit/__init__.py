"""The fit engine: configuration and results, plans and validation, member starts and
controls, the optax step, the member scheduler, checkpoints, diagnosis, intervals and
profiles."""

from .config import FitConfig, FitError, FitResult
from .engine import Members, fit, train
from .intervals import parameter_table
from .plan import NETWORK_MODES, Plan
from .profile import profile_likelihood
from .validation import Validation

__all__ = [
    "NETWORK_MODES",
    "FitConfig",
    "FitError",
    "FitResult",
    "Members",
    "Plan",
    "Validation",
    "fit",
    "parameter_table",
    "profile_likelihood",
    "train",
]
