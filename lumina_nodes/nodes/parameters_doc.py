"""Writes docs/parameters.md from the nodes' own parameter tables (each node module's ``PARAMETERS``, the table it
declares and its --help prints), so the document cannot disagree with the descriptors.

    python -m lumina_nodes.nodes.parameters_doc > docs/parameters.md      # regenerate
    python -m lumina_nodes.nodes.parameters_doc --check docs/parameters.md  # exit 1 when it is out of date
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from pathlib import Path

import lumina_nodes.nodes

HEADER = """# Parameters of Lumina's nodes

Generated from the parameter tables the nodes declare (`python -m lumina_nodes.nodes.parameters_doc >
docs/parameters.md`); `make test` fails when this file is out of date. `<executable> --help` prints the same, and on a
running node `lumina param describe <node> <name>` (or `ros2 param describe`) answers from the node itself. A value
outside its range or choices is refused: at start-up the node exits with a FATAL line naming the parameter, and a live
`param set` is answered "Setting parameter failed" with the reason. Read-only parameters can only be set at start-up
(`-p name:=value`, a parameter file, or a launch argument).
"""


def node_modules() -> list:
    """Every module of lumina_nodes.nodes that declares a node's parameter table, by executable name."""
    modules = []
    for info in sorted(pkgutil.iter_modules(lumina_nodes.nodes.__path__), key=lambda i: i.name):
        if not Path(info.module_finder.path, f"{info.name}.py").exists():
            continue  # a dangling link a symlink install keeps after a module was deleted
        module = importlib.import_module(f"lumina_nodes.nodes.{info.name}")
        if hasattr(module, "PARAMETERS"):
            modules.append(module)
    return modules


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _valid(param) -> str:
    if param.choices:
        return "one of " + ", ".join(f"`{c}`" for c in param.choices)
    if param.low is not None:
        return f"{param.low} .. {param.high}"
    return "any"


def document() -> str:
    parts = [HEADER]
    for module in node_modules():
        name = module.__name__.rsplit(".", 1)[1]
        summary = (module.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
        parts.append(f"\n## `{name}`\n\n{summary}\n")
        parts.append("\n| parameter | default | valid values | read-only | meaning |\n| --- | --- | --- | --- | --- |")
        for param in module.PARAMETERS:
            parts.append(
                f"| `{param.name}` | `{param.default!r}` | {_cell(_valid(param))} | "
                f"{'yes' if param.read_only else 'no'} | {_cell(param.description)} |"
            )
        parts.append("")
    return "\n".join(parts)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lumina_nodes.nodes.parameters_doc", description=__doc__)
    parser.add_argument("--check", metavar="FILE", help="compare with FILE instead of printing; exit 1 if it differs")
    args = parser.parse_args(argv)
    text = document()
    if args.check is None:
        sys.stdout.write(text)
        return 0
    path = Path(args.check)
    if not path.is_file() or path.read_text() != text:
        print(
            f"{path} is out of date with the nodes' parameter tables; regenerate it with:\n"
            f"  python -m lumina_nodes.nodes.parameters_doc > {path}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
