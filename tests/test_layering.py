"""The package's layers (docs/architecture.md): no module imports a module of a layer above its own."""
import ast
from pathlib import Path

import brainsim

ROOT = Path(brainsim.__file__).parent

# bottom to top; a module belongs to the layer of its longest matching prefix
LAYERS = [
    ("base", ["_types", "_frozen", "_units", "_checks", "_primitives", "_kernels", "spikes", "interrupts"]),
    ("core", ["core"]),
    ("ops", ["propagation", "delays", "event_matmul", "connectivity", "counts", "distributions"]),
    ("models", ["neurons", "synapses", "inputs", "plasticity", "astrocytes"]),
    ("projections", ["projections"]),
    ("network", ["network", "_population_step", "fused_lif"]),
    ("simulate", ["simulate", "adjoints", "monitors", "evaluation", "checkpoint", "networks", "plotting", "neo_export",
                  "sweeps"]),
    ("train", ["train", "events"]),
    ("interop", ["train.nnx", "nir"]),
    ("entry", ["cli", "__main__", "", "pynn"]),  # user-facing interfaces over the whole package
]

# Upward imports that remain, each to be removed by moving the module to the layer it belongs to (none left).
KNOWN: set = set()


def _layer(module: str) -> int:
    best, best_len = None, -1
    for rank, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (prefix == "" or module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = rank, len(prefix)
    return best


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path, module: str):
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level > 0:
            base = package.split(".") if package else []
            base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
            target = ".".join(base + ([node.module] if node.module else []))
            names = [target] if node.module else [".".join(base + [a.name]) for a in node.names]
            yield from names
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("brainsim"):
            yield node.module[len("brainsim."):] if node.module != "brainsim" else ""
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("brainsim."):
                    yield a.name[len("brainsim."):]


def test_no_module_imports_a_layer_above_it():
    upward = []
    for path in sorted(ROOT.rglob("*.py")):
        module = _module_name(path)
        for target in _imports(path, module):
            if target.startswith(module + ".") or (module, target) in KNOWN:
                continue  # a package's own submodules, or a listed exception
            if _layer(target) > _layer(module):
                upward.append(f"{module} ({LAYERS[_layer(module)][0]}) imports {target} ({LAYERS[_layer(target)][0]})")
    assert not upward, "\n".join(upward)


def test_known_exceptions_still_exist():
    # an exception that no longer occurs must be removed from KNOWN, so the list only shrinks
    found = {(_module_name(p), t) for p in ROOT.rglob("*.py") for t in _imports(p, _module_name(p))}
    assert KNOWN <= found, KNOWN - found
