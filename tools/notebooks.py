"""Execute the notebooks for committing, and tell when a committed notebook's outputs are stale.

    python tools/notebooks.py execute notebooks/03_transformer_decoder.ipynb   # full mode, in place
    python tools/notebooks.py execute --all                                    # the whole series, in order
    python tools/notebooks.py execute --smoke --output /tmp/03.ipynb notebooks/03_transformer_decoder.ipynb
    python tools/notebooks.py check                                            # what tests/test_notebooks_current.py checks
    python tools/notebooks.py nav                                              # previous/next links after renumbering

`execute` runs a notebook top to bottom in a fresh kernel, in the notebook's folder, in full mode
(``SMOKE=0``) unless ``--smoke`` is given. While it runs, the kernel records which of the package's modules it
imported and which files under ``maskformer/`` and ``notebooks/assets/`` it opened (the YAML recipes, the shipped
checkpoint). The notebook's metadata then records a fingerprint of each of those files next to the mode:

    "maskformer": {"mode": "full", "files": {"maskformer/loss.py": "3f2a...", ...}}

A Python file's fingerprint is the SHA-256 of its syntax tree without docstrings (as ``ast.unparse`` writes it), so reformatting, comments and
docstrings do not make a notebook stale, while any change to code does; other files are hashed byte for byte.
Run-specific metadata (cell execution timestamps, the Python patch version) is dropped.

`check` recomputes the fingerprints from the working tree and lists every notebook whose outputs came from other
code, with the files that changed and the command that brings it up to date.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import os
import re
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
TRACKED = ("maskformer/", "notebooks/assets/")  # files under these folders count for a notebook's fingerprint

# Runs in the kernel before the first cell (not stored in history): record every file opened under ROOT.
_START = f"""
import os as _os, sys as _sys
_MF_OPENED = set()
def _mf_audit(event, args, _root={str(ROOT)!r} + _os.sep):
    if event == "open" and isinstance(args[0], (str, bytes, _os.PathLike)):
        _path = _os.path.abspath(_os.fsdecode(args[0]))
        if _path.startswith(_root):
            _MF_OPENED.add(_path)
_sys.addaudithook(_mf_audit)
"""
# Runs after the last cell: print the package modules imported and the files opened, as JSON.
_END = """
import json as _json
print(_json.dumps(sorted(_MF_OPENED | {getattr(_m, "__file__", None) or "" for _m in list(_sys.modules.values())})))
"""


def file_fingerprint(path: Path) -> str:
    """SHA-256 (16 hex digits) of a Python file's syntax tree without docstrings, or of any other file's bytes."""
    data = path.read_bytes()
    if path.suffix == ".py":
        tree = ast.parse(data)
        for node in ast.walk(tree):
            body = getattr(node, "body", None)
            if (isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body
                    and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                    and isinstance(body[0].value.value, str)):
                node.body = body[1:] or [ast.Pass()]
        data = ast.unparse(tree).encode()  # the code without comments, docstrings or formatting; stable across Pythons
    return hashlib.sha256(data).hexdigest()[:16]


def tracked_files(paths: list[str]) -> list[str]:
    """The repository-relative paths among ``paths`` that count for the fingerprint."""
    out = set()
    for p in paths:
        if not p:
            continue
        try:
            rel = Path(p).resolve().relative_to(ROOT).as_posix()
        except ValueError:
            continue
        if rel.startswith(TRACKED) and "__pycache__" not in rel and (ROOT / rel).is_file():
            out.add(rel)
    return sorted(out)


def execute(path: Path, smoke: bool = False, output: Path | None = None, timeout: int = 3600) -> None:
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:  # cells added by a script may lack the id that nbformat 4.5 requires
        if "id" not in cell and nb.nbformat_minor >= 5:
            cell.id = uuid.uuid4().hex[:8]
    env = dict(os.environ, SMOKE="1" if smoke else "0")
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=False,
                            resources={"metadata": {"path": str(path.parent)}})
    def hidden(code: str):  # run code in the kernel outside the notebook's history; returns the cell
        nb.cells.append(nbformat.v4.new_code_cell(code))
        try:
            return client.execute_cell(nb.cells[-1], len(nb.cells) - 1, store_history=False)
        finally:
            probe_cell = nb.cells.pop()
            assert probe_cell.source == code

    started = time.time()
    with client.setup_kernel(env=env):
        hidden(_START)
        for index, cell in enumerate(nb.cells):
            client.execute_cell(cell, index)
        probe = hidden(_END)
    opened = json.loads("".join(o.get("text", "") for o in probe.outputs if o.get("name") == "stdout"))
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
    nb.metadata.get("language_info", {}).pop("version", None)
    nb.metadata.pop("widgets", None)
    files = tracked_files(opened)
    changed = [rel for rel in files if (ROOT / rel).stat().st_mtime > started]
    mode = "smoke" if smoke else "full"
    nb.metadata["maskformer"] = {"mode": f"{mode}, but files changed during the run" if changed else mode,
                                 "files": {rel: file_fingerprint(ROOT / rel) for rel in files}}
    nbformat.write(nb, output or path)
    if changed:  # the outputs may come from the old code, the fingerprint is of the new: the check will fail
        print(f"warning: {', '.join(changed)} changed while {path.name} ran; execute it again", file=sys.stderr)


def stale(path: Path) -> list[str]:
    """Why the committed outputs of ``path`` are not those of the current code; empty when they are."""
    nb = json.loads(path.read_text())
    record = nb.get("metadata", {}).get("maskformer")
    if not record:
        return ["no fingerprint recorded: it was not executed with tools/notebooks.py"]
    problems = [] if record.get("mode") == "full" else [f"executed in {record.get('mode')} mode, not full"]
    for rel, digest in record.get("files", {}).items():
        if not (ROOT / rel).is_file():
            problems.append(f"{rel} no longer exists")
        elif file_fingerprint(ROOT / rel) != digest:
            problems.append(f"{rel} changed")
    if not any(rel.startswith("maskformer/") and rel.endswith(".py") for rel in record.get("files", {})):
        problems.append("the recorded run imported no maskformer module")
    return problems


NAV = re.compile(r"^\[(?:← [^\n]*|README\]\(\.\./README\.md\)) · [^\n]*$", re.M)


def navigation() -> None:
    """Rewrite every notebook's previous/next lines (its first and last markdown cells) from the titles and order
    of the series, after a notebook is added, renumbered or retitled. Markdown only: the outputs stay valid."""
    import nbformat

    paths = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    books = [nbformat.read(p, as_version=4) for p in paths]
    titles = [b.cells[0].source.splitlines()[0].lstrip("# ").strip() for b in books]
    for i, (path, nb) in enumerate(zip(paths, books)):
        prev = f"[← {titles[i - 1]}]({paths[i - 1].name})" if i > 0 else "[README](../README.md)"
        nxt = f"[{titles[i + 1]} →]({paths[i + 1].name})" if i + 1 < len(paths) else "[README](../README.md)"
        for cell in nb.cells:
            if cell.cell_type == "markdown":
                cell.source = NAV.sub(f"{prev} · {nxt}", cell.source)
        nbformat.write(nb, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("execute", help="run notebooks top to bottom in a fresh kernel and record the fingerprint")
    run.add_argument("notebooks", nargs="*", type=Path)
    run.add_argument("--all", action="store_true", help="every notebook of the series, in order")
    run.add_argument("--smoke", action="store_true", help="SMOKE=1: quick, for trying changes (the check wants full)")
    run.add_argument("--output", type=Path, help="write here instead of in place (one notebook only)")
    sub.add_parser("check", help="list the notebooks whose outputs came from other code")
    sub.add_parser("nav", help="rewrite the previous/next links of every notebook from the series' order and titles")
    args = parser.parse_args(argv)
    if args.command == "execute":
        paths = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")) if args.all else args.notebooks
        if not paths or (args.output and len(paths) > 1):
            parser.error("give one or more notebooks, or --all (and --output only with one notebook)")
        for path in paths:
            print(f"executing {path} ({'smoke' if args.smoke else 'full'} mode) ...", flush=True)
            execute(path, smoke=args.smoke, output=args.output)
        return 0
    if args.command == "nav":
        navigation()
        return 0
    bad = {p.name: stale(p) for p in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))}
    for name, problems in bad.items():
        if problems:
            print(f"{name}: {'; '.join(problems)}. Re-run: python tools/notebooks.py execute notebooks/{name}")
    return 1 if any(bad.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
