"""The wheel carries what users need without node or a download: the widget bundle and the default model."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_ships_the_bundle_and_the_default_model(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    (wheel,) = tmp_path.glob("cbwidgets-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for built in (ROOT / "cbwidgets" / "widgets" / "static").iterdir():
        assert f"cbwidgets/widgets/static/{built.name}" in names
    for part in ("codebooks.safetensors", "codebooks.json", "base/model.safetensors", "tokenizer/tokenizer.json"):
        assert f"cbwidgets/tokfsm/default_model/{part}" in names
