"""The floor plan: the package's folders are its layers, and the names of a run folder are spelled once.

Both are read from the source (its AST), so a new import or a new literal that breaks them fails here,
with the file and line, before it reaches a review.
"""

from __future__ import annotations

import ast
from pathlib import Path

import signal_al
import signal_al.core.run_layout as run_layout

PACKAGE = Path(signal_al.__file__).parent

#: The layers, bottom first: a module may import from its own layer and from the layers below it only.
#: (docs/design.md, "Package map", says what each holds.)
LAYERS: tuple[tuple[str, ...], ...] = (
    ("core",),
    ("assets",),
    ("data",),
    ("neighbors",),
    ("classifier",),
    ("rewards",),
    ("strategies",),
    ("generation",),
    ("trainers",),
    ("config",),  # signal_al/config.py: the experiment config, made of the sections of the layers below
    ("engine",),
    ("experiments",),
    ("integrations",),
    ("cli", "requirements"),  # the command line, and the maintainer's tool beside the server's lock file
)
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}
#: What may stand at the package root besides the layer folders.
ROOT_MODULES = {"__init__.py", "config.py"}


def _layer(module: str) -> str:
    """The layer of a dotted module name inside the package (the package itself: ``core``)."""
    parts = module.split(".")[1:]
    return parts[0] if parts else "core"


def _module_of(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    return (PACKAGE / name).is_dir() or (PACKAGE / f"{name}.py").is_file()


def _imports(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` of every import of the package in ``path``, inside functions too."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names if alias.name.split(".")[0] == "signal_al"]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "signal_al":
            if node.module == "signal_al":  # from signal_al import assets (a module), __version__ (a name)
                found += [(node.lineno, f"signal_al.{alias.name}" if _is_module(alias.name) else "signal_al")
                          for alias in node.names]
            else:
                found.append((node.lineno, node.module))
            assert node.level == 0, f"{path}:{node.lineno}: a relative import"
    return found


def test_the_root_holds_only_the_layer_folders_init_and_config() -> None:
    entries = {p.name for p in PACKAGE.iterdir() if p.name != "__pycache__" and not p.name.startswith(".")}
    modules = {name for name in entries if name.endswith(".py")}
    folders = {name for name in entries if (PACKAGE / name).is_dir()}
    assert modules == ROOT_MODULES
    assert folders == set(RANK) - {"config"}, "every folder is a layer of LAYERS (and of docs/design.md)"


def test_no_import_runs_from_a_lower_layer_to_a_higher_one() -> None:
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = _layer(_module_of(path))
        for line, module in _imports(path):
            target = _layer(module)
            assert target in RANK, f"{path}:{line}: {module} is in no layer"
            if RANK[target] > RANK[source]:
                upward.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {source} imports {module} ({target})")
    assert not upward, "imports from a lower layer to a higher one:\n" + "\n".join(upward)


def test_the_layer_check_sees_an_upward_import(tmp_path: Path) -> None:
    """The check above reads lazy imports inside functions too (a test of the test)."""
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from signal_al.engine.loop import ActiveLearningRun\n")
    assert _imports(module) == [(2, "signal_al.engine.loop")]
    assert RANK[_layer("signal_al.engine.loop")] > RANK[_layer("signal_al.rewards.score")]


# --- run-folder names ---------------------------------------------------------------------------

#: Every name run_layout defines, and the prefix of its checkpoint folders.
RUN_FOLDER_NAMES = {value for name, value in vars(run_layout).items()
                    if name.isupper() and isinstance(value, str) and "*" not in value and "[" not in value}
RUN_FOLDER_PREFIXES = ("classifier-round-",)


def _strings(tree: ast.AST) -> list[tuple[int, str]]:
    """``(line, text)`` of every string literal that is not a docstring, f-string pieces included."""
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docstrings.add(id(first.value))
    return sorted((node.lineno, node.value) for node in ast.walk(tree)
                  if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings)


def _stray(text: str) -> bool:
    """Whether ``text`` spells a run-folder name: the name itself, or a path with it as a part (prose, with
    spaces, only mentions one)."""
    if any(c.isspace() for c in text):
        return False
    parts = text.split("/")
    return any(part in RUN_FOLDER_NAMES or part.startswith(RUN_FOLDER_PREFIXES) for part in parts)


def test_every_run_folder_name_is_spelled_only_in_run_layout() -> None:
    assert {"state.json", "config.yaml", "metrics.jsonl", "adapters", "rl", "vllm-server.log"} <= RUN_FOLDER_NAMES
    stray = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == Path(run_layout.__file__):
            continue
        for line, text in _strings(ast.parse(path.read_text(encoding="utf-8"))):
            if _stray(text):
                stray.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {text!r}")
    assert not stray, "run-folder names spelled outside signal_al/core/run_layout.py:\n" + "\n".join(stray)


def test_the_literal_check_sees_a_stray_name() -> None:
    tree = ast.parse('"""The run writes state.json."""\npath = run_dir / "rl" / f"round-{r}.jsonl"\n'
                     'log = f"{run_dir}/vllm-server.log"\nhelp = "see RUN_DIR/state.json"\n')
    assert [text for _, text in _strings(tree) if _stray(text)] == ["rl", "/vllm-server.log"]
