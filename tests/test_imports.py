"""One import path per thing, and no import circles between the repository's modules.

The rule for package ``__init__.py`` files: a package whose documented job is to gather an
interface (a *facade*, listed in ``FACADES`` with its reason) may offer names of its own
submodules; that package path is the names' public path (``from keras_losses import DiceLoss``
in a user's code). Nothing else passes on a name it imported: no module is a second home for
another module's names (a shim), and inside the repository ``from M import name`` names the
module that defines ``name`` or a facade that offers it. Inside the library (``keras_losses``,
``architectures``) modules import from the defining module only, never through a facade.

Checked here, reading imports from the source with ``ast`` (lazy ones inside functions too):

- no re-exports: a module imports from a repository module only names it uses itself
  (facades excepted, and they offer only names of their own submodules);
- ``from M import name`` and ``m.name`` (``m`` a repository module) name the module that
  defines ``name`` (``def``, ``class`` or assignment at its top level) or a facade offering it;
- the graph "module imports module" has no cycle. A module's imports of its own parent
  packages (``tasks.nodules`` from ``tasks.nodules.config``) are not edges: Python runs the
  parent's ``__init__`` first anyway.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = (
    "keras_losses",
    "architectures",
    "data",
    "core",
    "training",
    "tasks",
    "evaluation",
    "inference",
)
LIBRARY = ("keras_losses", "architectures")

# package -> why its __init__ gathers names of its submodules
FACADES = {
    "keras_losses": "the library's public API: every loss and callback users import",
    "keras_losses.adaptive": "the public API of the adaptive GLF rules (prepare_adaptive_glf, ...)",
    "inference": "load_predictor, the entry point of predict.py and of users' own scripts",
    "tasks.ct": "the study interface tasks.load() reads: train, evaluate, reproduce, arguments",
    "tasks.hippocampus": "the study interface tasks.load() reads",
    "tasks.isic": "the study interface tasks.load() reads",
    "tasks.lossbench": "the study interface tasks.load() reads",
    "tasks.nodules": "the study interface tasks.load() reads",
}


def module_files(root: Path = ROOT) -> dict[str, Path]:
    """Dotted module name -> file, for every module of the repository's packages."""
    modules = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"))


def resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The repository module that ``name`` (a module, or a module's attribute) lives in."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return candidate
    return None


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    graph = {}
    for name, path in modules.items():
        edges = set()
        for node in ast.walk(parse(path)):
            if isinstance(node, ast.Import):
                edges.update(resolve(a.name, modules) for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                edges.update(resolve(f"{node.module}.{a.name}", modules) for a in node.names)
        graph[name] = {e for e in edges if e and e != name and not name.startswith(e + ".")}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def project_imports(tree: ast.Module):
    """(module, alias) of every ``from M import name`` of a repository package in ``tree``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] in PACKAGES:
                for alias in node.names:
                    yield node.module, alias


def reexports(path: Path, package: str | None = None) -> list[str]:
    """Names ``path`` imports from repository modules without using them itself. A facade
    (``package`` given) may offer names of its own submodules, and only those."""
    tree = parse(path)
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    names = []
    for module, alias in project_imports(tree):
        if (alias.asname or alias.name) in used:
            continue
        if package is not None and module.startswith(package + "."):
            continue
        names.append(f"{module}.{alias.name}")
    return names


def defined_names(path: Path) -> set[str]:
    """Names bound at the top level of a module by def, class or assignment (not by import)."""
    names = set()
    for node in parse(path).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
    return names


def imported_names(path: Path) -> set[str]:
    """Names a module binds by importing them (anywhere in it)."""
    names = set()
    for node in ast.walk(parse(path)):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


def offers(module: str, name: str, modules: dict[str, Path], facades=FACADES) -> bool:
    """Whether ``from module import name`` is a path to ``name`` that the rule allows."""
    if name == "*" or f"{module}.{name}" in modules or name in defined_names(modules[module]):
        return True
    if module in facades:
        return any(
            m.startswith(module + ".") and a.name == name
            for m, a in project_imports(parse(modules[module]))
        )
    return False


def second_paths(path: Path, modules: dict[str, Path], facades=FACADES) -> list[str]:
    """Names ``path`` imports through a module that does not define them: ``from M import
    name`` and ``m.name`` with ``m`` bound to a repository module by an import."""
    tree = parse(path)
    inside_library = path.is_relative_to(ROOT) and path.relative_to(ROOT).parts[0] in LIBRARY
    allowed = {} if inside_library and path.name != "__init__.py" else facades
    found, aliases = [], {}
    for module, alias in project_imports(tree):
        if module not in modules:
            continue
        if f"{module}.{alias.name}" in modules:
            aliases.setdefault(alias.asname or alias.name, set()).add(f"{module}.{alias.name}")
        elif not offers(module, alias.name, modules, allowed):
            found.append(f"{module}.{alias.name}")
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname and alias.name in modules:
                    aliases.setdefault(alias.asname, set()).add(alias.name)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            targets = aliases.get(node.value.id, set())
            if targets and not any(
                offers(m, node.attr, modules, allowed)
                or node.attr not in imported_names(modules[m])
                for m in targets
            ):
                found.append(f"{sorted(targets)[0]}.{node.attr}")
    return sorted(set(found))


def test_cycles_finds_a_circle_and_ignores_parents():
    graph = {"a.x": {"a.y"}, "a.y": {"a.z"}, "a.z": {"a.x"}, "a": {"a.x"}, "b": set()}
    assert cycles(graph) == [["a.x", "a.y", "a.z"]]


def test_import_graph_reads_lazy_imports(tmp_path):
    (tmp_path / "core").mkdir()
    (tmp_path / "core" / "__init__.py").write_text("")
    (tmp_path / "core" / "a.py").write_text("def f():\n    from core.b import g\n    return g\n")
    (tmp_path / "core" / "b.py").write_text("from core import a\n\ndef g():\n    return a\n")
    graph = import_graph(module_files(tmp_path))
    assert graph["core.a"] == {"core.b"} and graph["core.b"] == {"core.a"}
    assert cycles(graph) == [["core.a", "core.b"]]


def test_reexports_finds_unused_imports(tmp_path):
    source = tmp_path / "m.py"
    source.write_text(
        "from core.io import atomic_path, write_json\n\ndef f(p):\n    return atomic_path(p)\n"
    )
    assert reexports(source) == ["core.io.write_json"]
    facade = tmp_path / "__init__.py"
    facade.write_text("from core.io import write_json\nfrom core.errors import UserError\n")
    assert reexports(facade, "core") == []
    assert reexports(facade, "core.io") == ["core.io.write_json", "core.errors.UserError"]


def write_modules(root: Path, files: dict[str, str]) -> dict[str, Path]:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return module_files(root)


def test_second_paths_finds_names_passed_on(tmp_path, monkeypatch):
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    modules = write_modules(
        tmp_path,
        {
            "core/__init__.py": "from core.errors import UserError\n",
            "core/errors.py": "class UserError(ValueError):\n    pass\n",
            "core/cli.py": "from core.errors import UserError\n\nX = UserError\n",
            "core/user.py": (
                "from core.cli import UserError, X\nfrom core import cli\n"
                "from core import UserError as U\n\ndef f():\n    return cli.UserError, cli.X\n"
            ),
        },
    )
    user = tmp_path / "core" / "user.py"
    assert second_paths(user, modules, facades={}) == ["core.UserError", "core.cli.UserError"]
    assert second_paths(user, modules, facades={"core": ""}) == ["core.cli.UserError"]


def test_no_import_circles():
    found = cycles(import_graph(module_files()))
    assert not found, f"modules that import each other in a circle: {found}"


def test_every_facade_is_a_package():
    modules = module_files()
    assert all(modules.get(name, Path()).name == "__init__.py" for name in FACADES)


@pytest.mark.parametrize("name,path", sorted(module_files().items()), ids=sorted(module_files()))
def test_no_reexports(name, path):
    names = reexports(path, name if name in FACADES else None)
    assert not names, (
        f"{path.relative_to(ROOT)} imports {names} without using them: import each name from "
        "the module that defines it"
    )


@pytest.mark.parametrize(
    "path",
    [
        *module_files().values(),
        *sorted(ROOT.glob("*.py")),
        *sorted((ROOT / "benchmarks").rglob("*.py")),
        *sorted((ROOT / "tests").rglob("*.py")),
    ],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_names_come_from_the_module_that_defines_them(path):
    names = second_paths(path, module_files())
    assert not names, (
        f"{path.relative_to(ROOT)} imports {names} through a module that does not define them"
    )
