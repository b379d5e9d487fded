"""Failures say what to do, and nothing is lost: a full disk, a folder that cannot be written, a
truncated or corrupt file, a torn checkpoint, fields this version does not know."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
import torch

from cbwidgets import CodebookModel
from cbwidgets.errors import CodebookError
from cbwidgets.tokfsm import load_default
from cbwidgets.train import TrainConfig, train
from tests.tiny import tiny_data, tiny_model


@pytest.fixture(scope="module")
def model() -> CodebookModel:
    return load_default()


def _files(folder: Path) -> dict[str, str]:
    """Every file under folder (hidden ones too) with a hash of its bytes."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _full_disk(written: int = 100) -> Any:
    """A stand-in for a writer that runs out of space part way: some bytes land, then ENOSPC."""

    def write(*args: Any, **kwargs: Any) -> None:
        path = next(a for a in [*args, *kwargs.values()] if isinstance(a, str | Path) and str(a).startswith("/"))
        target = Path(path) / "model.safetensors" if Path(path).is_dir() else Path(path)
        target.write_bytes(b"\0" * written)
        raise OSError(errno.ENOSPC, "No space left on device")

    return write


def test_a_full_disk_leaves_the_saved_model_as_it_was(
    model: CodebookModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import safetensors.torch

    folder = tmp_path / "saved"
    model.save_pretrained(folder)
    before = _files(folder)
    with torch.no_grad():  # a changed model, so a half-written save would show
        model.attached["layers.1.mlp"].vectors[0, 0] += 1.0
    try:
        with monkeypatch.context() as patch:
            patch.setattr(safetensors.torch, "save_file", _full_disk())
            with pytest.raises(CodebookError, match=r"disk is full; free some space") as err:
                model.save_codebooks(folder)
            assert str(folder / "codebooks.safetensors") in str(err.value)
        with monkeypatch.context() as patch:
            patch.setattr(model.model, "save_pretrained", _full_disk(1000))
            with pytest.raises(CodebookError, match=r"could not write .*base.*disk is full"):
                model.save_pretrained(folder)
    finally:
        with torch.no_grad():
            model.attached["layers.1.mlp"].vectors[0, 0] -= 1.0
    assert _files(folder) == before  # nothing changed, no temporary file left behind
    assert not [p for p in tmp_path.rglob(".*")]
    again = CodebookModel.from_pretrained(folder)
    assert torch.equal(again.attached["layers.1.mlp"].vectors, model.attached["layers.1.mlp"].vectors)


def test_a_folder_that_cannot_be_written_is_named_with_the_fix(
    model: CodebookModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        if os.access(folder, os.W_OK):  # root writes anywhere: refuse the write the way the OS would
            refuse = OSError(errno.EACCES, "Permission denied")
            monkeypatch.setattr(tempfile, "mkdtemp", lambda *a, **k: (_ for _ in ()).throw(refuse))
            monkeypatch.setattr(tempfile, "mkstemp", lambda *a, **k: (_ for _ in ()).throw(refuse))
        with pytest.raises(CodebookError, match=r"could not write .*locked.*choose a folder you own"):
            model.save_pretrained(folder)
    finally:
        folder.chmod(0o755)
    assert list(folder.iterdir()) == []


def test_a_truncated_or_corrupt_base_model_says_how_to_fix_it(model: CodebookModel, tmp_path: Path) -> None:
    folder = tmp_path / "saved"
    model.save_pretrained(folder)
    weights = folder / "base" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(CodebookError, match=r"could not load the base model from .*base.*truncated or corrupt.*save"):
        CodebookModel.from_pretrained(folder)
    model.save_pretrained(folder)
    (folder / "base" / "config.json").write_text("{ not json")
    with pytest.raises(CodebookError, match=r"base.*truncated or corrupt"):
        CodebookModel.from_pretrained(folder)


def test_unknown_fields_in_the_codebooks_json_are_reported(model: CodebookModel, tmp_path: Path) -> None:
    folder = model.save_codebooks(tmp_path / "codebooks")
    meta = json.loads((folder / "codebooks.json").read_text())
    meta["labels"] = {"1.mlp.5": "state 12"}
    (folder / "codebooks.json").write_text(json.dumps(meta))
    fresh = load_default()
    fresh.detach()
    with pytest.warns(UserWarning, match=r"does not know, and ignores: \['labels'\]"):
        fresh.load_codebooks(folder)
    assert sorted(fresh.attached) == sorted(model.attached)


def test_saving_and_loading_print_nothing(model: CodebookModel, tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    capfd.readouterr()
    model.save_pretrained(tmp_path / "saved")
    CodebookModel.from_pretrained(tmp_path / "saved")
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")


def test_a_torn_newest_checkpoint_resumes_from_the_one_before(tmp_path: Path) -> None:
    folder = tmp_path / "ck"
    config = TrainConfig(
        steps=12, batch_size=8, log_every=1, progress=False, checkpoint_every=4, checkpoint_dir=str(folder)
    )
    straight = train(tiny_model(revive_after=3), tiny_data(), config)
    assert sorted(p.name for p in folder.iterdir()) == ["step-12", "step-4", "step-8"]
    for name in ("step-12", "step-8"):  # two damaged the ways a crash or a copy can
        torn = folder / name / "model.safetensors"
        torn.write_bytes(torn.read_bytes()[:200])
    (folder / "step-12" / "trainer_state.json").write_text('{"step": 12, "hist')
    with pytest.warns(UserWarning, match=r"resumed from step-4 \(step 4\), not the newest: could not read step-12"):
        resumed = train(tiny_model(revive_after=3), tiny_data(), config, resume=True)
    assert resumed.history["loss"].tolist() == straight.history["loss"].tolist()
    for name in ("step-12", "step-8", "step-4"):
        (folder / name / "optimizer.safetensors").write_bytes(b"junk")
    with pytest.raises(CodebookError, match=r"no checkpoint in .* could be read: step-12"):
        train(tiny_model(revive_after=3), tiny_data(), config, resume=True)
