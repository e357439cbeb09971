"""The notebooks run top to bottom without errors (executed in a temporary copy, outputs discarded)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="pip install -e '.[dev]' installs nbformat")
nbclient = pytest.importorskip("nbclient", reason="pip install -e '.[dev]' installs nbclient")

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_without_errors(path, tmp_path, monkeypatch):
    copy = Path(shutil.copy(path, tmp_path / path.name))
    notebook = nbformat.read(copy, as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"), "strip the outputs"
    monkeypatch.delenv("FGVC_MIX_CKPT", raising=False)  # train the notebook's own tiny model
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    nbclient.NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    errors = [out for cell in notebook.cells for out in cell.get("outputs", []) if out.output_type == "error"]
    assert not errors
    nbformat.write(notebook, copy)
