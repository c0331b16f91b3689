"""Every notebook in notebooks/ executes top to bottom without an error (nbclient),
and every cell that plots shows its figure (an ``image/png`` output)."""

import pathlib
import re

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = sorted((pathlib.Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))

# A cell plots if it calls pyplot (plt.boxplot, plt.show, ...), a crossjax
# plot_* helper, an Axes' .plot, or displays an image file.
PLOTS = re.compile(r"\bplt\.\w+\(|\bplot_\w*\(|\.plot\(|display\(\s*Image\(")


def plotting_cells(nb):
    return [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and PLOTS.search(c.source)]


def test_notebooks_exist():
    names = {p.name for p in NOTEBOOKS}
    assert {"quickstart.ipynb", "monte_carlo.ipynb"} <= names
    for p in NOTEBOOKS:  # each of today's notebooks plots something
        assert plotting_cells(nbformat.read(p, as_version=4)), p.name


def test_plot_detection():
    new = nbformat.v4.new_code_cell
    nb = nbformat.v4.new_notebook(
        cells=[
            new("import matplotlib.pyplot as plt"),
            new("plt.boxplot([1, 2])\nplt.show()"),
            new("ax = circuit.plot_ir_drop(G, V, p)"),
            new("display(Image(filename='a.png'))"),
            new("print('plot')"),
        ]
    )
    assert plotting_cells(nb) == [1, 2, 3]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
@pytest.mark.slow
def test_notebook_executes(path, tmp_path):
    nb = nbformat.read(path, as_version=4)
    sources = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert not re.search(r"matplotlib\.use\(", sources), (
        f"{path.name} forces a matplotlib backend: its plots would not appear; use %matplotlib inline"
    )
    client = nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()  # raises CellExecutionError on the first failing cell
    errors = [
        o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.get("output_type") == "error"
    ]
    assert not errors
    plots = plotting_cells(nb)
    blank = [i for i in plots if not any("image/png" in o.get("data", {}) for o in nb.cells[i].get("outputs", []))]
    assert not blank, f"{path.name}: plotting cells {blank} show no image/png output"
