"""Uncertainty of predictions: bands calibrated on held-out observations."""

from .bands import COVERS, band_widths
from .prediction import predict

__all__ = ["COVERS", "band_widths", "predict"]
