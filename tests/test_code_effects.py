"""Code vectors, their residual contributions, logit effects and neighbours, against direct computation."""

from __future__ import annotations

import pytest
import torch

from cbwidgets import CodebookError
from cbwidgets.code_effects import code_logit_effect, code_vector, residual_vector, similar_codes
from cbwidgets.tokfsm import load_default
from tests.tiny import tiny_model


@pytest.mark.parametrize("family", ["gpt2", "gpt_neox", "llama"])
def test_head_codes_go_through_their_slice_of_the_output_projection(family: str) -> None:
    model = tiny_model(family, num_codes=8)
    proj = model.model.get_submodule(model.available_sites["layers.1.attn_preproj"].module)
    vector = code_vector(model, "1.2.5")
    padded = torch.zeros(1, 32)
    padded[0, 16:24] = vector  # head 2 of 4, head size 8
    with torch.no_grad(), model.codebooks_disabled():  # the projection itself, not the snap before it
        expected = (proj(padded) - proj(torch.zeros(1, 32)))[0]
    assert torch.allclose(residual_vector(model, "1.2.5"), expected, atol=1e-5)
    assert torch.equal(residual_vector(model, "0.mlp.3"), code_vector(model, "0.mlp.3"))


def test_logit_effect_is_the_centred_unembedding_of_the_code() -> None:
    model = load_default()
    table = code_logit_effect(model, "3.mlp.681", top=3)
    assert ((table["effect"] > 0) == (table["direction"] == "promotes")).all()
    logits = model.model.get_output_embeddings().weight.detach() @ code_vector(model, "3.mlp.681")
    logits = logits - logits.mean()
    assert table["token_id"].tolist()[:3] == logits.topk(3).indices.tolist()
    assert table["token_id"].tolist()[3:] == (-logits).topk(3).indices.tolist()
    assert table["direction"].tolist() == ["promotes"] * 3 + ["suppresses"] * 3
    assert table["effect"].iloc[0] > 0 > table["effect"].iloc[-1]
    assert set(table["token"]) <= {str(d) for d in range(10)} | {"<bos>"}


def test_similar_codes_are_nearest_by_cosine_and_exclude_the_code() -> None:
    model = load_default()
    table = similar_codes(model, "2.mlp.753", n=4)
    assert "2.mlp.753" not in set(table["code"]) and len(table) == 4
    assert table["cosine"].is_monotonic_decreasing
    first = int(table["code"].iloc[0].rsplit(".", 1)[1])
    codes = model.attached["layers.2.mlp"].vectors.detach()[0]
    expected = torch.nn.functional.cosine_similarity(codes[first], codes[753], dim=0)
    assert table["cosine"].iloc[0] == pytest.approx(float(expected), abs=1e-5)


def test_neuron_site_codes_have_no_logit_effect() -> None:
    model = tiny_model("gpt_neox", attach=False)
    model.attach("layers.0.mlp_hidden", num_codes=8)
    assert residual_vector(model, "0.mlp_hidden.3") is None
    with pytest.raises(CodebookError, match="mlp_hidden"):
        code_logit_effect(model, "0.mlp_hidden.3")


def test_small_vocabularies_never_list_a_token_both_ways() -> None:
    table = code_logit_effect(load_default(), "0.1.878", top=8)  # 11 tokens: top and bottom 8 overlap
    assert table["token_id"].is_unique
    assert (table.loc[table["direction"] == "promotes", "effect"] > 0).all()
    assert (table.loc[table["direction"] == "suppresses", "effect"] < 0).all()
