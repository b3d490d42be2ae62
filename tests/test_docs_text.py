"""The front page and the docs read as reference: README.md is short, with short paragraphs, and
no user-facing text (README, docs, docstrings, help, printed messages) speaks of our process.

Project history belongs in CHANGELOG.md and docs/history/, which are not checked here.
"""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MAX_README_LINES = 200
MAX_PARAGRAPH_LINES = 8
# "issue 15", "issue #18", "session 2" (also in anchors: "issue-15-session-2")
HISTORY = re.compile(r"\b(issue|session)[ #-]*\d+", re.I)
USER_FACING_CODE = (
    "keras_losses",
    "architectures",
    "data",
    "tasks",
    "training",
    "evaluation",
    "inference",
    "core",
)


def paragraphs(text: str) -> list[list[str]]:
    """Runs of prose lines outside fenced blocks, tables and lists."""
    runs, current, fenced = [], [], False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        prose = not fenced and line.strip() and not line.startswith(("```", "|", "#", "- ", "  "))
        if prose:
            current.append(line)
        elif current:
            runs.append(current)
            current = []
    return runs + ([current] if current else [])


def user_facing_files() -> list[Path]:
    files = [README, *sorted((ROOT / "docs").glob("*.md")), *sorted(ROOT.glob("*.py"))]
    for package in USER_FACING_CODE:
        files.extend(sorted((ROOT / package).rglob("*.py")))
    return files


def test_paragraphs_skip_code_tables_and_lists():
    text = "a\nb\n\n```\nc\nd\n```\n| t |\n- item\n  more\ne\n"
    assert paragraphs(text) == [["a", "b"], ["e"]]


def test_history_pattern():
    assert HISTORY.search("see docs/lung.md (issue 15)")
    assert HISTORY.search("#why-alpha_n-runs-issue-15-session-2")
    assert HISTORY.search("issue #18")
    assert not HISTORY.search("an issue with 3 seeds")


def test_readme_is_a_front_page():
    text = README.read_text(encoding="utf-8")
    lines = text.splitlines()
    assert len(lines) <= MAX_README_LINES, (
        f"README.md has {len(lines)} lines (at most {MAX_README_LINES})"
    )
    long = [p[0][:60] for p in paragraphs(text) if len(p) > MAX_PARAGRAPH_LINES]
    assert not long, f"README.md paragraphs over {MAX_PARAGRAPH_LINES} lines, starting: {long}"
    assert "## Results at a glance" in text


@pytest.mark.parametrize("path", user_facing_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_user_facing_text_has_no_project_history(path):
    hits = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()[:100]}"
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if HISTORY.search(line)
    ]
    assert not hits, "history belongs in CHANGELOG.md or docs/history/:\n" + "\n".join(hits)


LINK = re.compile(r"\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = path.read_text(encoding="utf-8")
    found = {slug(m) for m in re.findall(r"^#+ (.+)$", text, flags=re.M)}
    return found | set(re.findall(r'<a id="([^"]+)"', text))


def test_slug_matches_github():
    assert slug("Measured (`--quick`, 3 seeds)") == "measured---quick-3-seeds"
    assert slug("The paper's claims, one by one") == "the-papers-claims-one-by-one"
    assert (
        slug("The main job on the phantom: why alpha_N runs")
        == "the-main-job-on-the-phantom-why-alpha_n-runs"
    )


@pytest.mark.parametrize(
    "doc",
    [README, ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").rglob("*.md"))],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_relative_links_resolve(doc):
    broken = []
    for target in LINK.findall(doc.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:
        path, _, anchor = target.partition("#")
        file = (doc.parent / path).resolve() if path else doc
        if not file.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            broken.append(f"{target} (no such heading)")
    assert not broken, f"{doc.relative_to(ROOT)}: broken links {broken}"
