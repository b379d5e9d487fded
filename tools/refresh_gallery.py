"""Refresh the README's gallery from the browser tests' newest screenshots.

    python -m pytest tests/test_widgets_jupyterlab.py tests/test_widgets_classic.py ...
    python tools/refresh_gallery.py           # copy, and say what was copied and what is missing
    python tools/refresh_gallery.py --check   # only check that README and docs/gallery agree

Each picture the README shows from docs/gallery/ is a screenshot a browser test takes under the same
name (``shot(page, "jupyterlab-e2e")`` writes jupyterlab-e2e.png to $CBW_SCREENSHOTS, by default
/tmp/cbwidgets-screenshots). Open each copied picture before committing it: a test that passes can
still photograph the wrong part of the page.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GALLERY = ROOT / "docs" / "gallery"
SHOTS = Path(os.environ.get("CBW_SCREENSHOTS", Path(tempfile.gettempdir()) / "cbwidgets-screenshots"))


def shown() -> list[str]:
    """The gallery pictures the README links, in order."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return list(dict.fromkeys(re.findall(r"\(docs/gallery/([\w.-]+\.png)\)", text)))


def problems() -> list[str]:
    """What disagrees between the README and docs/gallery/ (empty when nothing does)."""
    names = shown()
    on_disk = sorted(p.name for p in GALLERY.glob("*.png"))
    out = [f"README shows docs/gallery/{n}, which does not exist" for n in names if n not in on_disk]
    out += [f"docs/gallery/{n} is not shown in the README (delete it or link it)" for n in on_disk if n not in names]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="only check that README and docs/gallery agree")
    args = parser.parse_args()
    if not args.check:
        for name in shown():
            source = SHOTS / name
            if source.exists():
                shutil.copyfile(source, GALLERY / name)
                print(f"copied {source} -> docs/gallery/{name}")
            else:
                print(f"no screenshot {source}: run the browser test that takes it (grep tests for {name[:-4]!r})")
    found = problems()
    for line in found:
        print(line, file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
