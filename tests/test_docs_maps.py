"""The "Where things are" map of each study (docs/<study>.md) names files and definitions that exist.

The map is the table right under "### Where things are". Its rows name ``path`` (a file or folder
of the project) or ``path::Name`` (a function, class or constant defined at the top level of that
Python file); every such name is checked here, so a move or rename that forgets the map fails.
"""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STUDIES = {
    "lung": "ct",
    "nodules": "nodules",
    "isic": "isic",
    "hippocampus": "hippocampus",
    "loss-benchmark": "lossbench",
}
HEADING = "### Where things are"
# `data/ct.py`, `data/ct.py::prepare_ct_data`, `tasks/ct/` (a path has a slash or a suffix)
REFERENCE = re.compile(r"`([\w.-]+(?:/[\w.-]*)*(?:\.\w+|/)(?:::\w+)?)`")


def map_rows(doc: Path) -> list[str]:
    """The table rows right under the map's heading."""
    text = doc.read_text(encoding="utf-8")
    assert HEADING in text, f"{doc.relative_to(ROOT)}: no '{HEADING}' section"
    rows = []
    for line in text.split(HEADING, 1)[1].lstrip("\n").splitlines():
        if not line.startswith("|"):
            break
        rows.append(line)
    assert len(rows) > 2, f"{doc.relative_to(ROOT)}: '{HEADING}' is not followed by a table"
    return rows


def top_level_names(path: Path) -> set[str]:
    names = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
    return names


def test_reference_pattern():
    text = "`data/ct.py::prepare_ct_data`, `tasks/ct/`, `--paper`, `README.md`, `D(i_mal, i_ben)`"
    assert REFERENCE.findall(text) == ["data/ct.py::prepare_ct_data", "tasks/ct/", "README.md"]


@pytest.mark.parametrize("study", sorted(STUDIES))
def test_map_names_only_what_exists(study):
    doc = ROOT / "docs" / f"{study}.md"
    refs = REFERENCE.findall("\n".join(map_rows(doc)))
    package = f"tasks/{STUDIES[study]}/"
    assert any(r.startswith(package) for r in refs), f"{doc.name}: the map never names {package}"
    missing = []
    for ref in refs:
        path, _, name = ref.partition("::")
        if not (ROOT / path).exists():
            missing.append(f"{ref} (no such file)")
        elif name and name not in top_level_names(ROOT / path):
            missing.append(f"{ref} (no top-level {name} in {path})")
    assert not missing, f"docs/{study}.md, '{HEADING}': {missing}"
