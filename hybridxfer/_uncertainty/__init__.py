"""Uncertainty of predictions: bands calibrated on held-out observations."""

from .bands import COVERS, band_widths
from .prediction import predict
from .reliability import LEVELS, reliability

__all__ = ["COVERS", "LEVELS", "band_widths", "predict", "reliability"]
