"""The examples a reader copies run: README.md's Python blocks, its shell commands' flags, and the
docstring examples of the library (keras_losses, architectures).

- Every ```python block of README.md runs, in order, in one namespace (a later block may use
  what an earlier one defined), in a temporary folder.
- Every ``python X.py ...`` line of a ```bash block is parsed by the command line's own parser
  (``build_parser``), without running it: a flag that does not exist, or a value its parser
  refuses, fails here. Commands that take hours are checked this way only.
- Every docstring example (``>>>``) in a module of keras_losses or architectures runs under
  doctest with its expected output; a new example is picked up without editing this file.
"""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import inspect
import pkgutil
import re
import shlex
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
LIBRARY = ("keras_losses", "architectures")
SCRIPTS = ("train.py", "evaluate.py", "predict.py", "reproduce.py")
# Public names without a docstring example, each with the reason. Every other name of
# keras_losses.__all__, and every loss and callback keras_losses.adaptive offers, has one.
WITHOUT_EXAMPLE = {
    "PACKAGE": "a constant (the package name the losses register under), nothing to run",
    "GLFTrajectoryRecorder": "the base class of DeterministicGLFCallback and ExploratoryGLFLogger, "
    "whose examples run it",
}


def fenced_blocks(text: str, language: str) -> list[str]:
    """The bodies of the ```language blocks of a Markdown text, in order."""
    return re.findall(rf"^```{language}\n(.*?)^```", text, flags=re.S | re.M)


def shell_commands(block: str) -> list[list[str]]:
    """The ``python X.py ...`` commands of a shell block as argv lists (X.py included).

    Continued lines are joined, comments dropped, ``VAR=value`` lines expanded in later lines,
    and ``a && b`` split into its commands.
    """
    variables: dict[str, str] = {}
    commands = []
    for line in block.replace("\\\n", " ").splitlines():
        tokens = shlex.split(line, comments=True)
        if len(tokens) == 1 and re.fullmatch(r"[A-Za-z_]\w*=.*", tokens[0]):
            name, value = tokens[0].split("=", 1)
            variables[name] = value
            continue
        tokens = [
            re.sub(r"\$(\w+)", lambda m: variables.get(m.group(1), m.group(0)), t) for t in tokens
        ]
        command: list[str] = []
        for token in [*tokens, "&&"]:
            if token in ("&&", ";", "||"):
                if len(command) >= 2 and command[0] == "python" and command[1] in SCRIPTS:
                    commands.append(command[1:])
                command = []
            else:
                command.append(token)
    return commands


def readme_commands() -> list[list[str]]:
    commands = []
    for block in fenced_blocks(README.read_text(encoding="utf-8"), "bash"):
        commands.extend(shell_commands(block))
    return commands


def load_script(name: str):
    """Import a command line (train.py, ...) from the repository root as a module."""
    spec = importlib.util.spec_from_file_location(f"_readme_{Path(name).stem}", ROOT / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parse_command(argv: list[str]):
    """Parse ``argv`` (script name first) with the script's own parser; nothing runs."""
    script, args = argv[0], argv[1:]
    module = load_script(script)
    built = (
        module.build_parser(args)
        if "argv" in inspect.signature(module.build_parser).parameters
        else module.build_parser()
    )
    parser = built[0] if isinstance(built, tuple) else built
    return parser.parse_args(args)


def library_doctests() -> list[doctest.DocTest]:
    finder = doctest.DocTestFinder(exclude_empty=True)
    tests = []
    for package_name in LIBRARY:
        package = importlib.import_module(package_name)
        modules = [package] + [
            importlib.import_module(info.name)
            for info in pkgutil.walk_packages(package.__path__, f"{package_name}.")
        ]
        for module in modules:
            tests.extend(t for t in finder.find(module) if t.examples)
    return sorted(tests, key=lambda t: t.name)


# ---------------------------------------------------------------- helpers


def test_shell_commands_reads_continuations_variables_and_chains():
    block = (
        "D=../data/x\npython train.py --task lung \\\n  --data-dir $D   # comment\n"
        "python3 -m venv .venv && . .venv/bin/activate && pip install -e . && python train.py --task nodules\n"
        "ls runs\n"
    )
    assert shell_commands(block) == [
        ["train.py", "--task", "lung", "--data-dir", "../data/x"],
        ["train.py", "--task", "nodules"],
    ]


def test_fenced_blocks_finds_blocks_by_language():
    text = "a\n```python\nx = 1\n```\n```bash\nls\n```\n```python\ny = 2\n```\n"
    assert fenced_blocks(text, "python") == ["x = 1\n", "y = 2\n"]


def test_parse_command_refuses_an_unknown_flag():
    with pytest.raises((SystemExit, Exception)):
        parse_command(["train.py", "--task", "lung", "--no-such-flag", "1"])


# ---------------------------------------------------------------- README


def test_readme_has_python_and_shell_examples():
    text = README.read_text(encoding="utf-8")
    assert fenced_blocks(text, "python"), "README.md has no ```python block"
    assert readme_commands(), "README.md has no python X.py command"


def test_readme_python_blocks_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__readme__"}
    for i, block in enumerate(fenced_blocks(README.read_text(encoding="utf-8"), "python")):
        exec(compile(block, f"README.md python block {i + 1}", "exec"), namespace)


@pytest.mark.parametrize("argv", readme_commands(), ids=lambda argv: " ".join(argv)[:80])
def test_readme_command_parses(argv):
    parse_command(argv)


# ---------------------------------------------------------------- docstring examples


@pytest.mark.parametrize("test", library_doctests(), ids=lambda t: t.name)
def test_docstring_example(test, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    test.globs.setdefault("np", np)
    runner = doctest.DocTestRunner(
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False
    )
    output: list[str] = []
    runner.run(test, out=output.append)
    assert runner.failures == 0, "".join(output)


def public_losses_and_callbacks() -> set[str]:
    """Every name of keras_losses.__all__, and the losses, callbacks and models of
    keras_losses.adaptive.__all__."""
    import keras

    import keras_losses
    import keras_losses.adaptive

    kinds = (keras.losses.Loss, keras.callbacks.Callback, keras.Model)
    adaptive = {
        name
        for name in keras_losses.adaptive.__all__
        if inspect.isclass(obj := getattr(keras_losses.adaptive, name)) and issubclass(obj, kinds)
    }
    return set(keras_losses.__all__) | adaptive


def test_public_names_have_examples():
    with_example = {t.name.split(".")[-1] for t in library_doctests()}
    public = public_losses_and_callbacks()
    missing = sorted(public - with_example - set(WITHOUT_EXAMPLE))
    assert not missing, f"public names without a docstring example (>>>): {missing}"
    stale = sorted(set(WITHOUT_EXAMPLE) & with_example | set(WITHOUT_EXAMPLE) - public)
    assert not stale, f"WITHOUT_EXAMPLE lists names that have an example or are not public: {stale}"


if __name__ == "__main__":  # list what would run
    print(*(" ".join(c) for c in readme_commands()), sep="\n")
    print(*(t.name for t in library_doctests()), sep="\n")
    sys.exit(0)
