"""The package layers point one way: core <- data <- training/inference <- tasks, and
evaluation (metrics on arrays) never imports data. The library that installs (keras_losses,
architectures) imports nothing else of the repository.

Imports are read from the source with ``ast`` (every ``import`` and ``from ... import``, also
those inside functions), so a lazy import inside a function counts as much as a top-level one.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROJECT = (
    "core",
    "keras_losses",
    "architectures",
    "data",
    "training",
    "evaluation",
    "inference",
    "tasks",
)

# package -> top-level packages of this project it must never import
FORBIDDEN = {
    "core": set(PROJECT) - {"core"},
    "data": {"training", "tasks", "evaluation", "inference"},
    # metrics and scores work on arrays; the images they score (data/ood_sets.py) are data
    "evaluation": {"data", "tasks", "inference"},
}


LIBRARY = ("keras_losses", "architectures")


def repository_names() -> set[str]:
    """Every top-level name the repository could be imported under: packages and modules."""
    names = {p.name for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    names |= {p.stem for p in ROOT.glob("*.py")}
    return names | {p.name for p in ROOT.iterdir() if p.is_dir() and any(p.glob("*.py"))}


def imported_packages(path: Path) -> set[str]:
    """Top-level names of every absolute import in ``path``."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_imported_packages_sees_lazy_imports(tmp_path):
    source = tmp_path / "m.py"
    source.write_text(
        "import os\n\ndef f():\n    from training.io import load_model\n    import tasks.ct\n"
    )
    assert imported_packages(source) == {"os", "training", "tasks"}


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_lower_layers_do_not_import_upper_ones(package):
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no Python files under {package}/"
    offending = {
        str(f.relative_to(ROOT)): sorted(imported_packages(f) & FORBIDDEN[package]) for f in files
    }
    offending = {f: names for f, names in offending.items() if names}
    assert not offending, (
        f"{package}/ must not import {sorted(FORBIDDEN[package])}; found {offending}"
    )


def test_repository_names_cover_the_study_code():
    names = repository_names()
    assert {"data", "core", "training", "tasks", "evaluation", "inference", "train"} <= names
    assert {"evaluate", "predict", "reproduce", "benchmarks", "tests"} <= names


@pytest.mark.parametrize("package", LIBRARY)
def test_library_imports_nothing_from_the_rest_of_the_repository(package):
    forbidden = repository_names() - set(LIBRARY)
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no Python files under {package}/"
    offending = {str(f.relative_to(ROOT)): sorted(imported_packages(f) & forbidden) for f in files}
    offending = {f: names for f, names in offending.items() if names}
    assert not offending, f"{package}/ installs alone and must not import {offending}"
