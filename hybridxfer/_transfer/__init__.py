"""Transfer to a related process: strategies as plans, the validation protocol, the
choice, the similarity report, and the transfer's record."""

from .protocol import MAX_FOLDS
from .record import save_transfer
from .similarity import Similarity, anchor_sd
from .strategies import BASELINES, STRATEGIES, candidate_plans
from .transfer import STEPS, TransferResult, transfer

__all__ = [
    "BASELINES",
    "MAX_FOLDS",
    "STEPS",
    "STRATEGIES",
    "Similarity",
    "TransferResult",
    "anchor_sd",
    "candidate_plans",
    "save_transfer",
    "transfer",
]
