"""Every notebook in notebooks/ runs from top to bottom without error."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path):
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=600, resources={"metadata": {"path": str(ROOT)}}).execute()
    if path.name == "01_hybrid_fit.ipynb":  # a fit's progress shows in a notebook too
        outputs = [o for c in notebook.cells for o in c.get("outputs", [])]
        text = "".join(o.get("text", "") for o in outputs if o.get("name") == "stderr")
        assert "fit: 100%" in text, text[-500:]
