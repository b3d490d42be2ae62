"""What `pip install .` puts into site-packages: the library (keras_losses, architectures) and
nothing with a generic top-level name (data, core, training, ...).

The wheel's contents are checked in the default run (a build without isolation, a few seconds).
The full check, a non-editable install into a fresh virtual environment and imports from another
folder, runs with ``-m slow``.
"""

from __future__ import annotations

import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = {"keras_losses", "architectures"}
STUDY = ("data", "core", "training", "tasks", "evaluation", "inference")
SCRIPTS = ("train", "evaluate", "predict", "reproduce")


def source_copy(dest: Path) -> Path:
    """The files a build reads (setup.py, README, licence, every package and root module),
    copied so that the build leaves nothing in the checkout."""
    dest.mkdir()
    for name in ("setup.py", "pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, dest / name)
    for path in ROOT.iterdir():
        if path.is_dir() and (path / "__init__.py").exists():
            shutil.copytree(path, dest / path.name, ignore=shutil.ignore_patterns("__pycache__"))
        elif path.suffix == ".py":
            shutil.copy2(path, dest / path.name)
    return dest


def build_wheel(tmp_path: Path) -> Path:
    src = source_copy(tmp_path / "src")
    out = tmp_path / "wheel"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(src),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = out.glob("*.whl")
    return wheel


def test_wheel_holds_only_the_library(tmp_path):
    wheel = build_wheel(tmp_path)
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == LIBRARY, f"the wheel installs {sorted(top)}"
    assert "keras_losses/adaptive/trajectory.py" in names  # subpackages come along


@pytest.mark.slow
def test_install_from_outside_the_checkout(tmp_path):
    wheel = build_wheel(tmp_path)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    # The dependencies (TensorFlow, Keras) come from this interpreter's site-packages, appended
    # to the fresh environment's path; the package itself is installed only into the fresh one.
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(purelib, "parent_site.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    subprocess.run(
        [str(python), "-m", "pip", "install", "--no-deps", "-q", str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    def run(code: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(python), "-c", code],
            cwd=elsewhere,
            capture_output=True,
            text=True,
            timeout=300,
            env={"PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "3"},
        )

    ok = run("import keras_losses, architectures; print(keras_losses.__file__)")
    assert ok.returncode == 0, ok.stderr
    assert str(venv) in ok.stdout, ok.stdout
    for name in (*STUDY, *SCRIPTS):
        proc = run(f"import {name}")
        assert proc.returncode != 0 and "ModuleNotFoundError" in proc.stderr, (
            f"`import {name}` works outside the checkout: {proc.stdout}{proc.stderr}"
        )
