"""The largest classes and functions of a Python tree, by lines: a quick check on what grew too big.

python tools/sizes.py [cbwidgets] [--top 15]
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path


def sizes(root: Path) -> list[tuple[int, str, str]]:
    """(lines, kind, qualified name) of every class and function (methods included) under ``root``."""
    found = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        stack: list[tuple[ast.AST, str]] = [(tree, "")]
        while stack:
            node, prefix = stack.pop()
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                    name = f"{prefix}{child.name}"
                    kind = "class" if isinstance(child, ast.ClassDef) else "def"
                    lines = (child.end_lineno or child.lineno) - child.lineno + 1
                    found.append((lines, kind, f"{path.relative_to(root.parent)}:{name}"))
                    stack.append((child, f"{name}."))
    return sorted(found, reverse=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", default="cbwidgets")
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    rows = sizes(Path(args.root).resolve())
    for kind in ("class", "def"):
        print(f"largest {'classes' if kind == 'class' else 'functions'}:")
        for lines, _, name in [r for r in rows if r[1] == kind][: args.top]:
            print(f"  {lines:5d}  {name}")


if __name__ == "__main__":
    main()
