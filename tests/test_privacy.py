"""Who may touch a private name: a walk over the source, like the import-weight tests.

chantd touches no private attribute of a chantlib object (it adds transports to the library,
through its public API: ``Workspace.statistics``, ``Workspace.subscribe``, the operations),
and inside chantlib no class drives another's private state: a ``_name`` is read or set
through ``self`` or ``cls`` only. ``getattr(x, "_name")`` and friends count too.
"""

from __future__ import annotations

import ast
import glob
import os

from .conftest import ROOT

PRIVATE_GETTERS = {"getattr", "setattr", "hasattr", "delattr"}


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _trees(package: str) -> dict[str, ast.Module]:
    out = {}
    for path in sorted(glob.glob(os.path.join(ROOT, package, "*.py"))):
        with open(path, encoding="utf-8") as fh:
            out[os.path.relpath(path, ROOT)] = ast.parse(fh.read(), path)
    return out


def _own(node: ast.expr) -> bool:
    return isinstance(node, ast.Name) and node.id in ("self", "cls")


def _foreign_modules(tree: ast.Module) -> set[str]:
    """Names bound by ``import x`` of a module that is not ours (``_thread``): what the
    standard library keeps under a private name is its business, not a chantlib object."""
    return {
        (alias.asname or alias.name).split(".")[0]
        for node in ast.walk(tree) if isinstance(node, ast.Import)
        for alias in node.names if alias.name.split(".")[0] not in ("chantlib", "chantd", "chant_cli")
    }


def _accesses(tree: ast.Module):
    """(line, text, private name) of each private name reached through something else than
    ``self``/``cls``."""
    foreign = _foreign_modules(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in foreign:
            continue
        if isinstance(node, ast.Attribute) and _private(node.attr) and not _own(node.value):
            yield node.lineno, ast.unparse(node), node.attr
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in PRIVATE_GETTERS
              and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant)
              and isinstance(node.args[1].value, str) and _private(node.args[1].value) and not _own(node.args[0])):
            yield node.lineno, ast.unparse(node), node.args[1].value


def _defined(trees) -> set[str]:
    """Every private name a package defines: modules' and classes' functions, classes and
    assignments, attributes set on ``self``/``cls``, and ``__slots__`` entries."""
    names: set[str] = set()
    for tree in trees.values():
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store) and _own(node.value):
                names.add(node.attr)
            elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__slots__"
                                                      for t in node.targets):
                for elt in getattr(node.value, "elts", ()):
                    if isinstance(elt, ast.Constant) and isinstance(elt.value, str):
                        names.add(elt.value)
    return {name for name in names if _private(name)}


def test_the_walk_finds_what_it_must():
    tree = ast.parse(
        "class X:\n"
        "    def f(self, other):\n"
        "        self._ok = 1\n"
        "        other._bad\n"
        "        self.ws._index\n"
        "        getattr(other, '_hidden')\n"
        "        getattr(self, '_mine')\n"
        "        return type(self).__name__\n"
    )
    found = [text for _line, text, _name in _accesses(tree)]
    assert found == ["other._bad", "self.ws._index", "getattr(other, '_hidden')"]


def test_chantd_touches_no_private_attribute_of_chantlib():
    """A private name chantd reaches through another object must be chantd's own (a name its
    modules define), and no name chantlib defines: ``service._forget()`` from the server is
    chantd talking to itself; ``ws._index`` or ``graph._ready`` would be reading the library's
    insides."""
    chantd = _trees("chantd")
    ours = _defined(chantd)
    theirs = _defined(_trees("chantlib"))
    found = [
        f"{path}:{line}: {text}"
        for path, tree in chantd.items()
        for line, text, name in _accesses(tree)
        if name not in ours or name in theirs
    ]
    assert not found, "chantd reads chantlib's private state:\n" + "\n".join(found)


def test_no_chantlib_class_drives_another_ones_private_state():
    """Inside chantlib a ``_name`` is reached through ``self`` or ``cls`` only (a module's own
    private helpers are plain names, not attributes): what another class needs of one is a
    public method of it."""
    found = [
        f"{path}:{line}: {text}"
        for path, tree in _trees("chantlib").items()
        for line, text, _name in _accesses(tree)
    ]
    assert not found, "private state reached from outside its class:\n" + "\n".join(found)
