"""``cbwidgets lab``: the tutorial notebooks in a working folder, opened in JupyterLab.

The notebooks ship inside the package (``cbwidgets/notebooks``), so a pip install has them. They are
copied into a folder the participant owns; a copy that is already there is never overwritten (it
may hold their answers), and the command says which ones it kept.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from .atomic import atomic_file
from .errors import CodebookError

__all__ = ["LabFolder", "copy_notebooks", "lab_command", "shipped_notebooks"]


def shipped_notebooks() -> list[Path]:
    """The tutorial notebooks in teaching order (their names are numbered), and their README."""
    folder = Path(str(resources.files("cbwidgets") / "notebooks"))
    found = sorted(folder.glob("*.ipynb"))
    if not found:
        raise CodebookError(f"no tutorial notebooks in {str(folder)!r}; reinstall cbwidgets (pip install cbwidgets).")
    return [*found, folder / "README.md"]


@dataclass
class LabFolder:
    """What ``copy_notebooks`` did: the notebooks copied, those kept as the participant left them."""

    folder: Path
    copied: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # differ from the shipped version: the participant's
    current: list[str] = field(default_factory=list)  # already there and the same as shipped

    @property
    def first(self) -> str:
        return next(name for name in sorted([*self.copied, *self.kept, *self.current]) if name.endswith(".ipynb"))

    def report(self) -> str:
        lines = [f"cbwidgets lab: tutorial notebooks in {self.folder}"]
        if self.copied:
            lines.append(f"  copied: {', '.join(self.copied)}")
        if self.kept:
            lines.append(
                f"  kept your edited copy of: {', '.join(self.kept)} (delete a file to get the shipped version back)"
            )
        if self.current:
            lines.append(f"  already up to date: {', '.join(self.current)}")
        return "\n".join(lines)


def copy_notebooks(folder: str | Path) -> LabFolder:
    """Copy the shipped notebooks into ``folder``, keeping any copy that is already there."""
    folder = Path(folder).expanduser()
    if folder.exists() and not folder.is_dir():
        raise CodebookError(f"{str(folder)!r} is a file; give a folder for the notebooks (--folder DIR).")
    done = LabFolder(folder.resolve() if folder.exists() else folder.absolute())
    for source in shipped_notebooks():
        target = folder / source.name
        if not target.exists():
            with atomic_file(target) as temporary:  # a full disk leaves no half notebook behind
                shutil.copyfile(source, temporary)
            done.copied.append(source.name)
        elif target.read_bytes() == source.read_bytes():
            done.current.append(source.name)
        else:
            done.kept.append(source.name)
    return done


def lab_command(folder: str | Path, port: int | None, browser: bool) -> list[str]:
    """The JupyterLab command line that opens ``folder`` on its first notebook."""
    if importlib.util.find_spec("jupyterlab") is None:
        raise CodebookError(
            "cbwidgets lab needs JupyterLab, which is not installed here: pip install 'cbwidgets[lab]' "
            "(or pip install jupyterlab), then run cbwidgets lab again."
        )
    done = copy_notebooks(folder)
    print(done.report(), flush=True)
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        f"--ServerApp.root_dir={done.folder}",
        f"--LabApp.default_url=/lab/tree/{done.first}",
    ]
    if port is not None:
        command.append(f"--port={port}")
    if not browser:
        command.append("--no-browser")
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # containers and Colab-like machines run as root
        command.append("--ServerApp.allow_root=True")
    return command
