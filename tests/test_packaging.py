"""The wheel carries what users need without node or a download: the widget bundle, the models, the corpus."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_ships_the_bundle_the_models_and_the_corpus(tmp_path: Path) -> None:
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
    for part in ("codebooks.safetensors", "codebooks.json", "base/model.safetensors", "tokenizer/tokenizer.json"):
        assert f"cbwidgets/stories/storyteller_model/{part}" in names
    assert "cbwidgets/stories/data/stories.jsonl.gz" in names
    for part in ("codebooks.safetensors", "codebooks.json", "metrics.json"):
        assert f"cbwidgets/smollm_codebooks/{part}" in names
    notebooks = ROOT / "cbwidgets" / "notebooks"
    for notebook in notebooks.rglob("*.*"):  # what cbwidgets lab copies out, and the solutions
        assert f"cbwidgets/notebooks/{notebook.relative_to(notebooks).as_posix()}" in names


def test_lazy_widget_names_are_the_widget_package() -> None:
    """``cbwidgets`` lists the widget names without importing them (the core never imports the widgets)."""
    import cbwidgets
    import cbwidgets.widgets

    assert cbwidgets.widgets.__all__ == list(cbwidgets.WIDGET_NAMES)
    for name in cbwidgets.WIDGET_NAMES:  # each name is the widget package's object, reached lazily
        assert getattr(cbwidgets, name) is getattr(cbwidgets.widgets, name)
        assert name in cbwidgets.__all__


def test_the_notebooks_readme_lists_every_notebook() -> None:
    folder = Path(__file__).parents[1] / "cbwidgets" / "notebooks"
    readme = (folder / "README.md").read_text()
    missing = [p.name for p in sorted(folder.glob("*.ipynb")) if f"`{p.name}`" not in readme]
    assert missing == [], f"cbwidgets/notebooks/README.md does not list {missing}"


def _gallery_tool() -> Any:
    spec = importlib.util.spec_from_file_location("refresh_gallery", ROOT / "tools" / "refresh_gallery.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_readme_gallery_and_docs_gallery_agree() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "refresh_gallery.py"), "--check"], capture_output=True)
    assert done.returncode == 0, done.stderr.decode()


def test_the_gallery_check_finds_a_missing_and_an_unlinked_picture(tmp_path: Path) -> None:
    tool = _gallery_tool()
    (tmp_path / "docs" / "gallery").mkdir(parents=True)
    (tmp_path / "docs" / "gallery" / "kept.png").write_bytes(b"png")
    (tmp_path / "docs" / "gallery" / "stray.png").write_bytes(b"png")
    (tmp_path / "README.md").write_text("![a](docs/gallery/kept.png) ![b](docs/gallery/gone.png)")
    tool.ROOT, tool.GALLERY = tmp_path, tmp_path / "docs" / "gallery"
    assert tool.problems() == [
        "README shows docs/gallery/gone.png, which does not exist",
        "docs/gallery/stray.png is not shown in the README (delete it or link it)",
    ]
