"""Rotary positions in the first layers only: what later layers receive, that it survives saving,
caching and generation, and that bad settings are refused by name."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from cbwidgets.errors import CodebookError
from cbwidgets.model import CodebookModel
from cbwidgets.rotary_layers import CONFIG_KEY, rotary_layers, set_rotary_layers
from cbwidgets.tokfsm import FSMRecipe, TokFSM, build_default_model

from .tiny import tiny_config, tiny_data


def _model(family: str = "gpt_neox", layers: Any = None, codebooks: bool = True) -> CodebookModel:
    config = tiny_config(family)
    config.num_hidden_layers = 3
    set_rotary_layers(config, layers)
    model = CodebookModel.from_config(config, seed=0).eval()
    if codebooks:
        model.attach(["attn_preproj", "mlp"], num_codes=16, k=1)
    return model


def _attention(model: CodebookModel, layer: int) -> torch.nn.Module:
    prefix = "gpt_neox.layers" if model.config.model_type == "gpt_neox" else "model.layers"
    name = "attention" if model.config.model_type == "gpt_neox" else "self_attn"
    return model.model.get_submodule(f"{prefix}.{layer}.{name}")


@pytest.mark.parametrize("family", ["gpt_neox", "llama"])
def test_layers_from_n_on_get_the_identity_rotation_and_the_first_keep_theirs(family: str) -> None:
    model = _model(family, layers=1)
    seen: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def catch(layer: int):  # type: ignore[no-untyped-def]
        def hook(module: torch.nn.Module, args: Any, kwargs: dict[str, Any], out: Any) -> None:
            seen[layer] = kwargs["position_embeddings"]

        return hook

    handles = [_attention(model, i).register_forward_hook(catch(i), with_kwargs=True) for i in range(3)]
    try:
        model(tiny_data(2, 12))
    finally:
        for handle in handles:
            handle.remove()
    cos0, sin0 = seen[0]
    assert sin0.abs().max() > 0.1 and not torch.equal(cos0, torch.ones_like(cos0))  # layer 0 keeps its positions
    for layer in (1, 2):
        cos, sin = seen[layer]
        assert torch.equal(cos, torch.ones_like(cos)) and torch.equal(sin, torch.zeros_like(sin))


def test_the_setting_changes_the_computation_and_nothing_else() -> None:
    """Same weights: positions in layer 0 only give other logits than the stock model, positions
    in all three layers give the stock model's exactly; a copy of the model keeps its hooks."""
    ids = tiny_data(4, 10)
    stock, nope = _model(codebooks=False), _model(layers=1, codebooks=False)
    nope.model.load_state_dict(stock.model.state_dict())
    with torch.no_grad():
        same = nope.model(ids).logits
        again = copy.deepcopy(nope).model(ids).logits  # a copy keeps the hooks
        assert torch.equal(same, again)
        assert not torch.allclose(stock.model(ids).logits, same, atol=1e-4)
        everywhere = _model(layers=3, codebooks=False)  # positions in all three layers: the stock model
        everywhere.model.load_state_dict(stock.model.state_dict())
        assert torch.equal(everywhere.model(ids).logits, stock.model(ids).logits)


def test_the_setting_is_saved_with_the_model_and_put_back_on_load(tmp_path: Path) -> None:
    model = _model(layers=np.int64(2))  # a numpy count, as the library's own tables hand out
    assert rotary_layers(model.config) == 2 and type(rotary_layers(model.config)) is int
    ids = tiny_data(3, 12)
    with torch.no_grad():
        before = model(ids).logits
    folder = model.save_pretrained(tmp_path / "m")
    loaded = CodebookModel.from_pretrained(folder).eval()
    assert rotary_layers(loaded.config) == 2
    with torch.no_grad():
        assert torch.allclose(loaded(ids).logits, before, atol=1e-6)
    # the same weights read with positions everywhere differ: the setting, not chance, made them equal
    config = json.loads((folder / "base" / "config.json").read_text())
    assert config[CONFIG_KEY] == 2
    del config[CONFIG_KEY]
    (folder / "base" / "config.json").write_text(json.dumps(config))
    with torch.no_grad():
        assert not torch.allclose(CodebookModel.from_pretrained(folder).eval()(ids).logits, before, atol=1e-4)


def test_setting_it_on_a_live_model_takes_effect_at_the_next_forward() -> None:
    model = _model()
    ids = tiny_data(3, 12)
    with torch.no_grad():
        stock = model(ids).logits
        set_rotary_layers(model.config, np.int64(1))
        changed = model(ids).logits
        set_rotary_layers(model.config, None)
        back = model(ids).logits
    assert not torch.allclose(changed, stock, atol=1e-4)
    assert torch.equal(back, stock)
    setattr(model.config, CONFIG_KEY, "first")  # written around the checks: refused at the next forward
    with pytest.raises(CodebookError, match="rotary_layers='first'"):
        model(ids)


def test_a_hand_edited_config_is_checked_when_loaded(tmp_path: Path) -> None:
    folder = _model(layers=1).save_pretrained(tmp_path / "m")
    config = json.loads((folder / "base" / "config.json").read_text())
    config[CONFIG_KEY] = 7
    (folder / "base" / "config.json").write_text(json.dumps(config))
    with pytest.raises(CodebookError, match="rotary_layers=7 is more than the model's 3 layers"):
        CodebookModel.from_pretrained(folder)


def test_cached_steps_and_generation_agree_with_the_whole_forward() -> None:
    model = _model(layers=1)
    ids = tiny_data(2, 12)
    with torch.no_grad():
        whole = model(ids).logits
        first = model(ids[:, :8], use_cache=True)
        rest = model(ids[:, 8:], cache=first.cache, use_cache=True)
    assert torch.allclose(rest.logits, whole[:, 8:], atol=1e-5)
    out = model.generate(ids[:1, :6], max_new_tokens=5, top_k=1)  # greedy, one token at a time with a cache
    with torch.no_grad():
        greedy = ids[:1, :6]
        for _ in range(5):
            greedy = torch.cat([greedy, model(greedy).logits[:, -1:].argmax(-1)], dim=1)
    assert torch.equal(out.ids, greedy)


@pytest.mark.parametrize(
    ("family", "value", "message"),
    [
        ("gpt_neox", 0, "rotary_layers=0"),
        ("gpt_neox", 4, "rotary_layers=4 is more than the model's 3 layers"),
        ("gpt_neox", "two", "rotary_layers='two'"),
        ("gpt_neox", True, "rotary_layers=True"),
        ("gpt2", 1, "a 'gpt2' model has none"),
    ],
)
def test_bad_settings_are_refused_by_name(family: str, value: Any, message: str) -> None:
    config = tiny_config(family)
    config.num_hidden_layers = 3
    with pytest.raises(CodebookError, match=message):
        set_rotary_layers(config, value)
    assert not hasattr(config, CONFIG_KEY)


def test_the_tokfsm_recipe_takes_the_setting_and_the_default_model_keeps_positions_everywhere() -> None:
    assert FSMRecipe().rotary_layers is None
    recipe = FSMRecipe(rotary_layers=torch.tensor(2))
    assert recipe.rotary_layers == 2 and type(recipe.rotary_layers) is int
    assert recipe.to_dict()["rotary_layers"] == 2
    with pytest.raises(CodebookError, match="rotary_layers=5 is more than the model's 4 layers"):
        FSMRecipe(rotary_layers=5)
    fsm = TokFSM()
    assert rotary_layers(build_default_model(fsm, mlp_codes=64, num_codes=16).config) is None
    assert rotary_layers(build_default_model(fsm, mlp_codes=64, num_codes=16, rotary_layers=2).config) == 2
    small = FSMRecipe(num_codes=16, mlp_codes=64, rotary_layers=np.int64(1), seed=3).untrained_model(fsm)
    assert rotary_layers(small.config) == 1
    assert {book.num_codes for book in small.attached.values()} == {16, 64}
