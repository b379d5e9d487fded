"""The shipped TokFSM model and the recipe that makes it: loaded and measured for real."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from cbwidgets import CodebookError, CodebookModel
from cbwidgets.tokfsm import (
    FSMRecipe,
    TokFSM,
    build_default_model,
    first_transition_accuracy,
    load_default,
    train_default,
    transition_accuracy,
)
from cbwidgets.tokfsm.default import DEFAULT_MODEL_DIR, save_default


@pytest.fixture(scope="module")
def default() -> CodebookModel:
    return load_default()


def test_shipped_model_is_small_and_loads_fast() -> None:
    size = sum(f.stat().st_size for f in DEFAULT_MODEL_DIR.rglob("*") if f.is_file())
    assert size < 14 * 2**20, f"shipped model is {size / 2**20:.1f} MB"  # 12 MB: 10,000 codes per MLP
    load_default()  # warm the imports
    start = time.perf_counter()
    model = load_default()
    assert time.perf_counter() - start < 5.0  # about a second; generous for a loaded CI machine
    assert not model.training
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_shipped_model_has_the_reference_shape(default: CodebookModel) -> None:
    config = default.config
    assert (config.num_hidden_layers, config.hidden_size, config.num_attention_heads) == (4, 128, 4)
    assert (config.intermediate_size, config.max_position_embeddings) == (512, 128)
    assert list(default.attached) == [f"layers.{i}.{kind}" for i in range(4) for kind in ("attn_preproj", "mlp")]
    assert [(cb.num_codes, cb.k) for cb in default.attached.values()] == [(1000, 1), (10000, 1)] * 4
    assert [cb.groups for cb in default.attached.values()] == [4, 1] * 4
    assert len(default.names.labels) == 20


def test_shipped_model_knows_the_world(default: CodebookModel) -> None:
    fsm = TokFSM()
    accuracy = float(first_transition_accuracy(default, fsm)["accuracy"].mean())
    assert accuracy >= 0.97, f"first-transition accuracy {accuracy:.3f}"
    walks = float(transition_accuracy(default, fsm, num_samples=16, new_states=40)["accuracy"].mean())
    assert walks >= 0.9, f"sampled transition accuracy {walks:.3f} over 40-state walks"


def test_shipped_model_codes_are_on(default: CodebookModel) -> None:
    fsm = TokFSM()
    ids = fsm.sample(4, 128, seed=3)
    codes = default(ids).codes
    assert codes.ids.shape == (4, 128, 20, 1)
    assert bool((codes.ids >= 0).all())
    with default.codebooks_disabled(), torch.no_grad():
        base = default(ids).logits
    with torch.no_grad():
        snapped = default(ids).logits
    assert not torch.allclose(base, snapped)  # the codes really replace activations


def test_load_default_prints_no_rope_warning(capfd: pytest.CaptureFixture[str]) -> None:
    load_default()
    assert "factor field" not in capfd.readouterr().err


def test_recipe_trains_saves_and_reloads(tmp_path: Path) -> None:
    recipe = FSMRecipe(base_steps=4, finetune_steps=2, kmeans_sequences=8, kmeans_iters=1, batch_size=4, mlp_codes=64)
    trained = train_default(recipe, progress=False)
    assert [book.num_codes for book in trained.model.attached.values()] == [1000, 64] * 4
    assert set(trained.seconds) == {"base", "kmeans", "finetune"}
    assert list(trained.history["phase"].unique()) == ["base", "finetune"]
    assert trained.history["lm_loss"].notna().all()
    folder = save_default(trained, tmp_path / "m", half=False)
    assert json.loads((folder / "recipe.json").read_text())["base_steps"] == 4
    loaded = load_default(folder)
    ids = TokFSM().sample(2, 32, seed=1)
    assert torch.equal(loaded(ids).codes.ids, trained.model(ids).codes.ids)
    assert torch.equal(loaded(ids).logits, trained.model(ids).logits)
    with pytest.raises(CodebookError, match="holds no saved TokFSM model"):
        load_default(tmp_path)


def test_build_default_model_is_untrained_but_complete() -> None:
    model = build_default_model(seed=1)
    assert [book.num_codes for book in model.attached.values()] == [1000, 10000] * 4  # the shipped model's
    assert all(int(book.hits.sum()) == 0 for book in model.attached.values())
    assert model.config.rope_parameters["factor"] == pytest.approx(1 / torch.pi)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"base_steps": -1}, "base_steps=-1"),
        ({"finetune_steps": -1}, "finetune_steps=-1"),
        ({"kmeans_sequences": 0}, "kmeans_sequences"),
        ({"mlp_codes": 0}, "mlp_codes=0"),
        ({"rotary_layers": 0}, "rotary_layers=0"),
    ],
)
def test_bad_recipes_are_explained(changes: dict[str, int], message: str) -> None:
    with pytest.raises(CodebookError, match=message):
        FSMRecipe(**changes)


@pytest.mark.parametrize("rotary_layers", [None, 2])
def test_train_fsm_command_trains_saves_and_reports(tmp_path: Path, rotary_layers: int | None) -> None:
    from cbwidgets.rotary_layers import rotary_layers as rotary_layers_of

    out = tmp_path / "fsm"
    extra = [] if rotary_layers is None else ["--rotary-layers", str(rotary_layers)]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "cbwidgets",
            "train-fsm",
            "--out",
            str(out),
            "--base-steps",
            "3",
            "--code-steps",
            "1",
            "--no-progress",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "first-transition accuracy" in done.stdout and "reference" in done.stdout
    assert f"saved to {out}" in done.stdout and "load_default(" in done.stdout
    loaded = load_default(out)
    assert len(loaded.attached) == 8
    assert rotary_layers_of(loaded.config) == rotary_layers
    assert json.loads((out / "recipe.json").read_text())["rotary_layers"] == rotary_layers
    assert (out / "codebooks.safetensors").exists() and (out / "base" / "config.json").exists()
    assert "factor field" not in done.stderr


def test_train_fsm_rejects_bad_steps(capsys: pytest.CaptureFixture[str]) -> None:
    from cbwidgets.cli import main

    with pytest.raises(SystemExit):
        main(["train-fsm", "--base-steps", "-1"])
    assert "--base-steps -1 is not valid" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train-fsm", "--rotary-layers", "5"])
    assert "rotary_layers=5 is more than the model's 4 layers" in capsys.readouterr().err
