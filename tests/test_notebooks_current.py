"""The committed notebooks' outputs come from the current code, run top to bottom in full mode.

`tools/notebooks.py execute` records a fingerprint of every package file a notebook's run imported or read
(recipes, the shipped checkpoint); a change to any of them since makes the notebook stale, and this test names
the notebook, the files and the command that re-executes it.
"""

import importlib.util
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
_spec = importlib.util.spec_from_file_location("notebook_tools", ROOT / "tools" / "notebooks.py")
tools = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tools)


def test_the_series_is_there():
    assert len(NOTEBOOKS) >= 9, [p.name for p in NOTEBOOKS]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_outputs_come_from_the_current_code(path):
    problems = tools.stale(path)
    assert not problems, f"{path.name}: {'; '.join(problems)}. Re-run: python tools/notebooks.py execute notebooks/{path.name}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_executed_top_to_bottom_without_run_metadata(path):
    nb = json.loads(path.read_text())
    counts = [c.get("execution_count") for c in nb["cells"] if c["cell_type"] == "code"]
    assert counts == list(range(1, len(counts) + 1)), f"{path.name}: execution counts {counts}"
    assert not [i for i, c in enumerate(nb["cells"]) if "execution" in c.get("metadata", {})], "cell timestamps"
    assert "version" not in nb["metadata"].get("language_info", {})


def test_fingerprints_ignore_docstrings_and_comments_but_not_code(tmp_path):
    a, b, c = tmp_path / "a.py", tmp_path / "b.py", tmp_path / "c.py"
    a.write_text('"""Doc."""\n\ndef f(x):\n    """Twice."""\n    return 2 * x  # double\n')
    b.write_text('def f(x):\n    return 2 * x\n')
    c.write_text('def f(x):\n    return 3 * x\n')
    assert tools.file_fingerprint(a) == tools.file_fingerprint(b) != tools.file_fingerprint(c)


def test_a_changed_file_makes_a_notebook_stale(tmp_path, monkeypatch):
    (tmp_path / "maskformer").mkdir()
    module = tmp_path / "maskformer" / "m.py"
    module.write_text("X = 1\n")
    monkeypatch.setattr(tools, "ROOT", tmp_path)
    nb = tmp_path / "nb.ipynb"
    record = {"mode": "full", "files": {"maskformer/m.py": tools.file_fingerprint(module)}}
    nb.write_text(json.dumps({"cells": [], "metadata": {"maskformer": record}}))
    assert tools.stale(nb) == []
    module.write_text("X = 2\n")
    assert tools.stale(nb) == ["maskformer/m.py changed"]
    nb.write_text(json.dumps({"cells": [], "metadata": {"maskformer": dict(record, mode="smoke")}}))
    assert "executed in smoke mode, not full" in tools.stale(nb)


def test_each_notebook_links_to_the_previous_and_the_next():
    # `python tools/notebooks.py nav` writes these lines; a renumbered or new notebook must not leave a dead link
    names = [p.name for p in NOTEBOOKS]
    for i, path in enumerate(NOTEBOOKS):
        cells = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "markdown"]
        expected = [names[i - 1] if i > 0 else "../README.md", names[i + 1] if i + 1 < len(names) else "../README.md"]
        for cell in (cells[0], cells[-1]):
            lines = [line for line in "".join(cell["source"]).splitlines() if tools.NAV.match(line)]
            assert len(lines) == 1, (path.name, lines)
            targets = re.findall(r"\]\(([^)]+)\)", lines[0])
            assert targets == expected, (path.name, targets)
            assert all((path.parent / t).exists() for t in targets), (path.name, targets)
