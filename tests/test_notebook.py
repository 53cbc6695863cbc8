"""The Colab notebook runs top to bottom on CPU with tiny settings."""

import os

import pytest

NOTEBOOK = os.path.join(
    os.path.dirname(__file__), "..", "notebooks", "colab_tpu.ipynb"
)


@pytest.mark.slow
def test_colab_notebook_runs_on_cpu(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    monkeypatch.setenv("KERAS_TL_NOTEBOOK_TINY", "1")
    monkeypatch.setenv("KERAS_TL_NOTEBOOK_OUT", str(tmp_path))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(
        notebook, timeout=900, kernel_name="python3"
    ).execute()
    outputs = "".join(
        output.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    )
    assert "keras_tl: default strategy on CPU" in outputs
    assert "float32 steps_per_execution = 1" in outputs
    assert "accuracy" in outputs
    for folder in ("image_classifier", "text_classifier"):
        assert os.path.exists(tmp_path / folder / "saved_model.pb")
        assert os.path.exists(tmp_path / folder / "model_card.json")
