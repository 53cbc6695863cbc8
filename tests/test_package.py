"""The package's public names."""

import types

import keras_tl


def test_every_public_name_resolves_to_what_it_names():
    for name in keras_tl.__all__:
        assert getattr(keras_tl, name) is not None, name
    modules = {
        n
        for n in keras_tl.__all__
        if isinstance(getattr(keras_tl, n), types.ModuleType)
    }
    assert modules == {
        "backbones", "callbacks", "data", "distribute", "metrics",
        "optimizers", "recipes", "runs", "schedules", "text",
    }  # fmt: skip
    # A function named like its module is the function.
    assert keras_tl.export.__module__ == "keras_tl.export"
    assert keras_tl.build.__module__ == "keras_tl.builder"


# --- the package's structure: no import circle, no borrowed private names


def _modules():
    """Module name -> its syntax tree, for every file of the package."""
    import ast
    import pathlib

    root = pathlib.Path(keras_tl.__file__).parent
    modules = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(root.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = ast.parse(path.read_text("utf-8"))
    return modules


def _imports(modules):
    """Module -> [(imported module, names taken from it)], function-level
    imports included."""
    import ast

    edges = {}
    for name, tree in modules.items():
        found = []
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found += [(a.name, []) for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    if full in modules:  # `from keras_tl import groups`
                        found.append((full, []))
                    else:
                        found.append((node.module, [alias.name]))
        edges[name] = [(m, names) for m, names in found if m in modules]
    return edges


def test_no_import_circle_among_the_package_modules():
    # The root package only re-exports lazily (by name, not by import).
    edges = {
        module: sorted({m for m, _ in targets} - {"keras_tl"})
        for module, targets in _imports(_modules()).items()
        if module != "keras_tl"
    }
    visiting, done, circles = [], set(), []

    def visit(module):
        if module in visiting:
            circles.append(visiting[visiting.index(module) :] + [module])
            return
        if module in done:
            return
        visiting.append(module)
        for target in edges.get(module, []):
            visit(target)
        visiting.pop()
        done.add(module)

    for module in sorted(edges):
        visit(module)
    assert circles == []


def test_no_module_takes_another_modules_private_names():
    import ast

    modules = _modules()
    borrowed = []
    for module, targets in _imports(modules).items():
        for target, names in targets:
            borrowed += [
                f"{module} imports {target}.{n}"
                for n in names
                if n.startswith("_") and target != module
            ]
    # `lib._name` on an imported keras_tl module.
    for module, tree in modules.items():
        aliases = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    if full in modules:
                        aliases[alias.asname or alias.name] = full
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
                and aliases[node.value.id] != module
            ):
                borrowed.append(
                    f"{module} uses {aliases[node.value.id]}.{node.attr}"
                )
    assert borrowed == []


def test_every_warning_the_package_raises_has_a_category():
    """A `warnings.warn` without a category is a plain UserWarning: users
    could not filter keras_tl's alone, and the command line, which prints
    each KerasTLWarning as one line, would print it in Python's form when
    its stack level points into Keras (a callback's warning)."""
    import ast

    bare = []
    for module, tree in _modules().items():
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "warn"
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "warnings"
                and len(node.args) < 2
                and "category" not in {k.arg for k in node.keywords}
            ):
                bare.append(f"{module}:{node.lineno}")
    assert bare == []
    assert issubclass(keras_tl.KerasTLWarning, UserWarning)
