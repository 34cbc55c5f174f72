"""No unsafe deserialisation or code execution anywhere in the package source (checked on the AST)."""
import ast
import os

import pytest

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")


def _name(node) -> str:
    """Dotted name of a call target (``pickle.load``, ``eval``), or ''."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return ""


def _kw(call, name):
    return next((k.value for k in call.keywords if k.arg == name), None)


def unsafe_calls(source: str, filename: str = "<src>") -> list:
    """Every unsafe call in ``source`` as 'file:line: why'."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if not isinstance(node, ast.Call):
            continue
        name, why = _name(node.func), None
        last = name.rsplit(".", 1)[-1]
        if name in ("pickle.load", "pickle.loads", "cPickle.load", "cPickle.loads", "dill.load", "dill.loads",
                    "pickle.Unpickler", "marshal.loads", "shelve.open"):
            why = f"{name} unpickles"
        elif name == "torch.load":
            wo = _kw(node, "weights_only")
            if not (isinstance(wo, ast.Constant) and wo.value is True):
                why = "torch.load without weights_only=True"
        elif name in ("eval", "exec", "builtins.eval", "builtins.exec"):
            why = f"{name}() runs code"
        elif name in ("yaml.load", "yaml.load_all"):
            loader = _kw(node, "Loader")
            if not (loader is not None and "Safe" in _name(loader)):
                why = f"{name} without a safe Loader"
        elif name in ("yaml.unsafe_load", "yaml.full_load"):
            why = f"{name} is not safe"
        elif last == "load" and name.startswith(("np.", "numpy.")):
            ap = _kw(node, "allow_pickle")
            if ap is not None and not (isinstance(ap, ast.Constant) and ap.value is False):
                why = "numpy load with allow_pickle"
        if why:
            found.append(f"{filename}:{node.lineno}: {why}")
    return found


def _sources():
    for top in ("mpirl", "tests"):
        for d, _, files in os.walk(os.path.join(ROOT, top)):
            for f in files:
                if f.endswith(".py"):
                    yield os.path.join(d, f)


def test_package_and_tests_have_no_unsafe_calls():
    found = []
    for path in _sources():
        if os.path.samefile(path, __file__):
            continue  # this file spells the bad calls out as test data
        with open(path) as f:
            found += unsafe_calls(f.read(), os.path.relpath(path, ROOT))
    assert not found, "\n".join(found)


@pytest.mark.parametrize("code", [
    "import pickle\npickle.load(f)",
    "import pickle\nx = pickle.loads(b)",
    "import torch\ntorch.load('m.pt')",
    "import torch\ntorch.load('m.pt', weights_only=False)",
    "eval(user_text)",
    "exec(open(p).read())",
    "import yaml\nyaml.load(s)",
    "import yaml\nyaml.load(s, Loader=yaml.Loader)",
    "import numpy as np\nnp.load(p, allow_pickle=True)",
])
def test_the_scan_catches_each_unsafe_form(code):
    assert len(unsafe_calls(code)) == 1


@pytest.mark.parametrize("code", [
    "import torch\ntorch.load('m.pt', weights_only=True)",
    "import yaml\nyaml.load(s, Loader=yaml.SafeLoader)",
    "import yaml\nyaml.safe_load(s)",
    "import numpy as np\nnp.load(p)",
    "net.eval()",
    "json.loads(s)",
])
def test_the_scan_accepts_safe_forms(code):
    assert unsafe_calls(code) == []
