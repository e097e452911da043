"""The private Pyro names pyrovae relies on still exist, with the parameters it passes."""
import pyro

from pyrovae.infer import _pyro_internals


def test_private_pyro_names_are_there():
    problems = _pyro_internals.problems()
    assert not problems, (f"pyro-ppl {pyro.__version__} changed what pyrovae/infer/_pyro_internals.py uses: "
                          + "; ".join(problems) + ". Install the range setup.py pins, or port that module.")


def test_only_one_module_imports_private_pyro_names():
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "pyrovae"
    offenders = []
    for path in root.rglob("*.py"):
        if path.name == "_pyro_internals.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            private_import = (isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pyro")
                              and any(a.name.startswith("_") for a in node.names))
            private_call = isinstance(node, ast.Attribute) and node.attr in ("_get_traces", "_compute_log_r")
            if private_import or private_call:
                offenders.append(f"{path.relative_to(root.parent)}:{node.lineno}")
    assert not offenders, f"private Pyro names outside pyrovae/infer/_pyro_internals.py: {offenders}"
