"""Files stay short enough to read: no module of tasks/ over 450 lines, no file over 600 lines
unless a comment in its first lines says why ("over 600 lines because ...")."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TASKS_LIMIT = 450
LIMIT = 600
SUFFIXES = {".py", ".md", ".toml", ".cfg", ".txt", ".yml", ".yaml", ".sh"}
# outputs and environments that are not part of the source
SKIP_DIRS = {"runs", "reports", "build", "dist", "__pycache__", "node_modules"}
REASON = re.compile(r"over 600 lines because \S", re.IGNORECASE)


def source_files():
    for path in sorted(ROOT.rglob("*")):
        rel = path.relative_to(ROOT)
        if any(
            part.startswith(".")
            or part in SKIP_DIRS
            or part.endswith(".egg-info")
            or "venv" in part
            for part in rel.parts[:-1]
        ):
            continue
        if path.is_file() and (path.suffix in SUFFIXES or path.parent == ROOT / ".ci"):
            yield path


def n_lines(path: Path) -> int:
    return len(path.read_text(encoding="utf-8", errors="replace").splitlines())


def test_task_modules_are_short():
    long = {str(p.relative_to(ROOT)): n_lines(p) for p in (ROOT / "tasks").rglob("*.py")}
    long = {p: n for p, n in long.items() if n > TASKS_LIMIT}
    assert not long, f"modules of tasks/ over {TASKS_LIMIT} lines (split them by step): {long}"


def test_long_files_say_why():
    files = list(source_files())
    assert any(p.name == "setup.py" for p in files)
    long = {}
    for path in files:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        if len(lines) > LIMIT and not any(REASON.search(line) for line in lines[:20]):
            long[str(path.relative_to(ROOT))] = len(lines)
    assert not long, (
        f"files over {LIMIT} lines without a comment in their first 20 lines saying why "
        f"('over 600 lines because ...'): {long}"
    )
