"""The package's layers: a module imports only its own layer and lower ones (README,
"Architecture"), and ``import hybridxfer`` stays light."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
LAYERS = (  # lowest first; a module may import its own layer and those before it
    "kinetics",
    "_core",
    "_data",
    "_solve",
    "_fit",
    "_uncertainty",
    "_io",
    "_transfer",
    "_twin",
    "_scale",
    "_report",
    "hybridxfer",  # the top: __init__, arrays, cli, demo
)
MODULES = sorted([*(ROOT / "hybridxfer").rglob("*.py"), *(ROOT / "kinetics").rglob("*.py")])


def _name(path: Path) -> str:
    """Dotted module name of a file: ``hybridxfer._fit.engine``, ``hybridxfer`` for
    ``hybridxfer/__init__.py``."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module: str) -> str | None:
    """The layer of a dotted module name; None outside hybridxfer and kinetics."""
    parts = module.split(".")
    if parts[0] == "kinetics":
        return "kinetics"
    if parts[0] != "hybridxfer":
        return None
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else "hybridxfer"


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in the file."""
    name = _name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    return _imports_in(path.read_text(encoding="utf-8"), package)


def _imports_in(source: str, package: str) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in `source`, a module of `package`,
    at any depth (inside functions too), in line order; ``from X import a`` gives
    ``X.a`` (``a`` may be a submodule)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                anchor = parts[: len(parts) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return sorted(found)


def test_every_subpackage_has_a_layer():
    packages = {p.parent.name for p in (ROOT / "hybridxfer").glob("*/__init__.py")}
    assert packages <= set(LAYERS), f"put {sorted(packages - set(LAYERS))} in LAYERS"


@pytest.mark.parametrize("path", MODULES, ids=[_name(p) for p in MODULES])
def test_no_module_imports_a_higher_layer(path):
    own = LAYERS.index(_layer(_name(path)))
    wrong = [
        f"{path.relative_to(ROOT)}:{line} imports {module} (layer {_layer(module)} is above "
        f"{LAYERS[own]})"
        for line, module in _imports(path)
        if _layer(module) is not None and LAYERS.index(_layer(module)) > own
    ]
    assert not wrong, "\n".join(wrong)


def test_the_check_sees_relative_absolute_and_function_level_imports():
    """The parser on a module of _io written to break the rules in each way."""
    source = (
        "from .._transfer import transfer\n"
        "import hybridxfer._report.report\n"
        "def f():\n"
        "    from .. import __version__\n"
        "    from ..arrays import solve\n"
        "from .saved_model import load_fit\n"
        "import numpy\n"
    )
    modules = [m for _, m in _imports_in(source, "hybridxfer._io")]
    assert modules == [
        "hybridxfer._transfer.transfer",
        "hybridxfer._report.report",
        "hybridxfer.__version__",
        "hybridxfer.arrays.solve",
        "hybridxfer._io.saved_model.load_fit",
        "numpy",
    ]
    layers = [_layer(m) for m in modules]
    assert layers == ["_transfer", "_report", "hybridxfer", "hybridxfer", "_io", None]


def test_import_hybridxfer_loads_neither_matplotlib_nor_the_report_code():
    code = (
        "import sys, jax, hybridxfer\n"
        "assert jax.config.jax_enable_x64\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib'"
        " or m.startswith('hybridxfer._report')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
