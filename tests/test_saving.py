"""Saving and loading codebooks: the whole spec travels, and files of the older format still load."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from cbwidgets import CodebookError, CodebookModel, CodebookSpec
from cbwidgets.saving import CODEBOOKS_JSON, CODEBOOKS_WEIGHTS, FORMAT_VERSION
from tests.tiny import tiny_data, tiny_model

# every setting away from its default (dim and groups are the site's: 32 wide, 4 heads)
CHANGED = CodebookSpec(
    num_codes=24,
    k=3,
    groups=2,
    similarity="euclidean",
    loss="vqvae",
    revive_after=7,
    commitment=0.6,
    eps=1e-3,
)


def test_every_setting_differs_from_its_default() -> None:
    default = CodebookSpec()
    for field in dataclasses.fields(CodebookSpec):
        if field.name != "dim":  # the site gives the width
            assert getattr(CHANGED, field.name) != getattr(default, field.name), field.name


def test_a_saved_codebook_comes_back_with_every_setting(tmp_path: Path) -> None:
    model = tiny_model("gpt_neox", attach=False)
    model.attach(["layers.0.attn_preproj", "layers.1.mlp"], CHANGED)
    specs = {site: cb.spec for site, cb in model.attached.items()}
    assert specs["layers.1.mlp"] == dataclasses.replace(CHANGED, dim=32)
    model.save_pretrained(tmp_path / "m")
    loaded = CodebookModel.from_pretrained(tmp_path / "m")
    assert {site: cb.spec for site, cb in loaded.attached.items()} == specs
    x = tiny_data(2, 9)
    with torch.no_grad():
        assert torch.equal(loaded.eval()(x).logits, model.eval()(x).logits)
    # codebooks alone, onto a fresh copy of the base model
    model.save_codebooks(tmp_path / "books")
    bare = tiny_model("gpt_neox", attach=False)
    assert bare.load_codebooks(tmp_path / "books") == list(specs)
    assert {site: cb.spec for site, cb in bare.attached.items()} == specs


def test_attach_takes_a_spec_and_keyword_changes_to_it() -> None:
    model = tiny_model("gpt_neox", attach=False)
    model.attach("mlp", CHANGED, k=1, groups=None)
    spec = model.attached["layers.0.mlp"].spec
    assert (spec.k, spec.groups, spec.commitment, spec.dim) == (1, 1, 0.6, 32)
    model.attach("attn_preproj", num_codes=12)  # keywords alone: the defaults, one group per head
    assert model.attached["layers.0.attn_preproj"].spec.groups == 4
    with pytest.raises(CodebookError, match="unknown codebook settings \\['colour'\\]"):
        model.attach("attn", colour="red")
    with pytest.raises(CodebookError, match=r"dim=16, but site 'layers\.0\.block' is 32 wide"):
        model.attach("layers.0.block", CodebookSpec(dim=16))


def test_files_of_format_version_1_still_load(tmp_path: Path) -> None:
    """Version 1 named the code vectors "codes" and saved no eps: both are read as they were meant."""
    model = tiny_model("llama", num_codes=16, k=2)
    folder = model.save_pretrained(tmp_path / "m")
    meta = json.loads((folder / CODEBOOKS_JSON).read_text())
    assert meta["version"] == FORMAT_VERSION == 2
    meta["version"] = 1
    for spec in meta["sites"].values():
        del spec["eps"]
    (folder / CODEBOOKS_JSON).write_text(json.dumps(meta))
    tensors = load_file(str(folder / CODEBOOKS_WEIGHTS))
    old = {key.replace("/vectors", "/codes"): value for key, value in tensors.items()}
    assert any(key.endswith("/codes") for key in old)
    save_file(old, str(folder / CODEBOOKS_WEIGHTS))
    loaded = CodebookModel.from_pretrained(folder)
    for site, cb in loaded.attached.items():
        assert torch.equal(cb.vectors, model.attached[site].vectors) and cb.spec == model.attached[site].spec


def test_a_newer_format_is_refused_with_what_to_do(tmp_path: Path) -> None:
    folder = tiny_model("gpt2", num_codes=16).save_pretrained(tmp_path / "m")
    meta = json.loads((folder / CODEBOOKS_JSON).read_text())
    meta["version"] = 9
    (folder / CODEBOOKS_JSON).write_text(json.dumps(meta))
    with pytest.raises(CodebookError, match=r"format version 9; this cbwidgets reads versions 1, 2\. Upgrade"):
        CodebookModel.from_pretrained(folder)


def test_settings_given_by_position_still_attach_and_warn() -> None:
    model = tiny_model("gpt_neox", attach=False)
    with pytest.warns(DeprecationWarning, match="name them"):
        model.attach("mlp", 20, 2)  # the order attach took before CodebookSpec: num_codes, k, ...
    assert (model.attached["layers.0.mlp"].num_codes, model.attached["layers.0.mlp"].k) == (20, 2)
    with pytest.raises(CodebookError, match="attach takes a CodebookSpec or settings by name, got 'big'"):
        model.attach("attn", "big")
    with pytest.raises(CodebookError, match="give settings by name"):
        model.attach("attn", CodebookSpec(), 3)
