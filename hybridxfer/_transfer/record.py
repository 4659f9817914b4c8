"""A transfer's record: the transferred model saved with why it was chosen."""

from __future__ import annotations

import os
from pathlib import Path

from .._io.saved_model import save_fit, write_record
from .transfer import TransferResult

__all__ = ["CANDIDATES", "SUMMARY", "save_transfer"]

SUMMARY = "transfer.txt"
"""The record's summary: :meth:`TransferResult.summary`."""
CANDIDATES = "candidates.csv"
"""The record's table of candidates: :attr:`TransferResult.candidates`."""


def save_transfer(result: TransferResult, folder: str | os.PathLike) -> Path:
    """Write a transfer's model and its record to `folder`.

    The model is :func:`~hybridxfer.save_fit` of ``result.fit`` (it loads with
    :func:`~hybridxfer.load_fit`); the record, written with
    :func:`~hybridxfer.write_record` (so that a later fit saved to the folder removes
    it), is ``transfer.txt`` (:meth:`TransferResult.summary`: the strategy and why,
    the candidates' scores, the similarity report and any warning) and
    ``candidates.csv`` (``result.candidates``: each candidate's losses per view,
    score and values trained).

    Args:
        result: the transfer (:func:`~hybridxfer.transfer`).
        folder: the folder to write (created if needed).

    Returns:
        The folder's path.

    Raises:
        SavedModelError: as :func:`~hybridxfer.save_fit`.
    """
    folder = save_fit(result.fit, folder)
    write_record(folder, SUMMARY, result.summary() + "\n")
    write_record(folder, CANDIDATES, result.candidates.to_csv(index=False))
    return folder
