"""Write each exercise notebook from its solution notebook (the solutions are the source).

    python tools/make_exercises.py          # write cbwidgets/notebooks/NN_name.ipynb
    python tools/make_exercises.py --check  # exit 1 when a shipped exercise notebook is out of date

In a solution notebook, the lines from ``# BEGIN SOLUTION`` to ``# END SOLUTION`` are replaced by
``answer = ...``; outputs are cleared (a participant's first run writes them).
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "cbwidgets" / "notebooks"
BEGIN, END = "# BEGIN SOLUTION", "# END SOLUTION"
BLANK = "answer = ...  # your answer here"


def without_solutions(source: str) -> str:
    lines, out, inside = source.splitlines(), [], False
    for line in lines:
        if line.strip() == BEGIN:
            inside = True
            out.append(line[: len(line) - len(line.lstrip())] + BLANK)
        elif line.strip() == END:
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"a {BEGIN} without its {END}")
    return "\n".join(out)


def exercise_notebook(solution: Path) -> nbformat.NotebookNode:
    nb = nbformat.read(solution, as_version=4)
    # only what does not change when the solution is run again: its outputs and run metadata go
    nb.metadata = {"kernelspec": nb.metadata["kernelspec"], "language_info": {"name": "python"}}
    for cell in nb.cells:
        cell.metadata = {}
        if cell.cell_type == "code":
            cell.source = without_solutions(cell.source)
            cell.outputs, cell.execution_count = [], None
    return nb


def main(check: bool) -> int:
    stale = []
    for solution in sorted((NOTEBOOKS / "solutions").glob("*.ipynb")):
        target = NOTEBOOKS / solution.name
        text = nbformat.writes(exercise_notebook(solution)) + "\n"
        if check:
            if not target.exists() or target.read_text() != text:
                stale.append(target.name)
        else:
            target.write_text(text)
            print(f"wrote {target.relative_to(ROOT)}")
    if stale:
        print(f"out of date (run python tools/make_exercises.py): {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main("--check" in sys.argv[1:]))
