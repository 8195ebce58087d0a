"""The package's shape, checked so that it stays: an acyclic import graph in which no module imports a layer above its
own, checkpoint-shipped modules that import only each other, files under 500 lines and functions under 60 lines of
body (or a stated reason)."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "beyondgloss"

# Layers, lowest first: a module may import its own layer and the ones below, never one above.
# 0: the checkpoint-shipped modules at the root (a Hub checkpoint copies them: they import only each other).
# 1: libraries over them. 2: what drives training, inference and the Hub. 3: the command line.
LAYERS = {
    "beyondgloss": 1,  # the package's __init__ (registers the Auto classes; everything else loads lazily)
    "beyondgloss.utils": 1,
    "beyondgloss.data": 1,
    "beyondgloss.metrics": 1,
    "beyondgloss.descriptor": 1,
    "beyondgloss.testing": 1,
    "beyondgloss.convert": 2,
    "beyondgloss.model_card": 1,
    "beyondgloss.training": 2,
    "beyondgloss.hub": 2,
    "beyondgloss.app": 2,
    "beyondgloss.app_limits": 2,
    "beyondgloss.app_live": 2,
    "beyondgloss.benchmark": 2,
    "beyondgloss.cli": 3,
}
SHIPPED = {"configuration_beyondgloss", "modeling_beyondgloss", "processing_beyondgloss",
           "video_processing_beyondgloss", "pipeline_sign_translation", "video_io", "video_source", "frame_images",
           "video_transforms", "video_processor_settings", "losses", "dinov2_fast_path", "text_lora",
           "checkpointing", "temporal_encoder", "feature_cache", "inference_precision", "frame_encoder",
           "pretrained_beyondgloss", "outputs_beyondgloss", "generation_beyondgloss", "sign_encoder",
           "sign_translation_inputs", "sign_translation_outputs", "adapters_beyondgloss", "streaming",
           "caption_merging"}
MAX_FILE_LINES = 500
MAX_FUNCTION_LINES = 60
LONG_FUNCTIONS = {}  # "module:function" -> why it is longer (none today)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> int:
    if module.split(".")[1:2] and module.split(".")[1] in SHIPPED:
        return 0
    matches = [name for name in LAYERS if module == name or module.startswith(name + ".")]
    assert matches, f"{module} has no layer in LAYERS: add it"
    return LAYERS[max(matches, key=len)]


def imports_of(path: Path, top_level_only: bool) -> set[str]:
    """The beyondgloss modules `path` imports (all of them, or those at module level only)."""
    tree = ast.parse(path.read_text())
    here = module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom):
            base = (package[: len(package) - node.level + 1] if node.level else [])
            target = ".".join(base + ([node.module] if node.module else []))
            if target.startswith("beyondgloss"):
                found.add(target)
                found.update(f"{target}.{alias.name}" for alias in node.names
                             if (PACKAGE.parent / f"{target}.{alias.name}".replace(".", "/")).with_suffix(".py").exists())
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("beyondgloss"))
    return found


FILES = sorted(p for p in PACKAGE.rglob("*.py"))


def test_module_level_imports_are_acyclic():
    modules = {module_name(p): p for p in FILES}
    graph = {name: {m for m in imports_of(p, top_level_only=True) if m in modules and m != name}
             for name, p in modules.items()}
    # A package's __init__ re-exports its own modules: importing the package is importing them.
    state = {}

    def visit(node, trail):
        state[node] = "open"
        for nxt in graph[node]:
            if state.get(nxt) == "open":
                pytest.fail("import cycle: " + " -> ".join(trail + [node, nxt]))
            if nxt not in state:
                visit(nxt, trail + [node])
        state[node] = "done"

    for name in graph:
        if name not in state:
            visit(name, [])


def test_no_module_imports_a_layer_above_its_own():
    upward = []
    for path in FILES:
        here = module_name(path)
        for target in imports_of(path, top_level_only=False):
            if target != "beyondgloss" and layer(target) > layer(here):
                upward.append(f"{here} (layer {layer(here)}) imports {target} (layer {layer(target)})")
    assert not upward, "\n".join(upward)


def test_shipped_modules_import_only_each_other():
    for name in SHIPPED:
        path = PACKAGE / f"{name}.py"
        outside = {m for m in imports_of(path, top_level_only=False) if m.split(".")[1] not in SHIPPED}
        assert not outside, f"{name}.py is copied into checkpoints but imports {sorted(outside)}"


def test_no_file_over_the_limit():
    long = {str(p.relative_to(PACKAGE)): n for p in FILES if (n := len(p.read_text().splitlines())) > MAX_FILE_LINES}
    assert not long, f"files over {MAX_FILE_LINES} lines: {long}"


def test_no_function_over_the_limit_without_a_reason():
    long = {}
    for path in FILES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                body = node.body[1:] if ast.get_docstring(node) and len(node.body) > 1 else node.body
                lines = node.end_lineno - body[0].lineno + 1
                key = f"{module_name(path)}:{node.name}"
                if lines > MAX_FUNCTION_LINES and key not in LONG_FUNCTIONS:
                    long[key] = lines
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines of body: {long}"
