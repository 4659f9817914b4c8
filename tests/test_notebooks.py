"""Every notebook in notebooks/ runs from top to bottom without error."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
SHOWN = {  # what an executed notebook must show, per output stream
    "01_hybrid_fit.ipynb": {"stderr": ["fit: 100%"]},  # a fit's progress shows in a notebook too
    "04_own_model.ipynb": {
        "stderr": ["fit: 100%"],
        "stdout": [
            "inputs: F [L/h]",  # the feed, read in mL/h, converted to the model's unit
            "95% band of the true state, calibrated on",  # what the band covers
        ],
    },
}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path):
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=600, resources={"metadata": {"path": str(ROOT)}}).execute()
    outputs = [o for c in notebook.cells for o in c.get("outputs", [])]
    for stream, texts in SHOWN.get(path.name, {}).items():
        text = "".join(o.get("text", "") for o in outputs if o.get("name") == stream)
        for expected in texts:
            assert expected in text, f"{path.name} {stream} lacks {expected!r}: {text[-500:]}"
