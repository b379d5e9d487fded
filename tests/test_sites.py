"""The site table: every supported family has every site kind, at modules the stock models have."""

from __future__ import annotations

import pytest

from cbwidgets import CodebookError
from cbwidgets.sites import SITE_KINDS, parse_site, sites_for, supported_model_types
from tests.tiny import FAMILIES, tiny_config, tiny_model


@pytest.mark.parametrize("family", FAMILIES)
def test_every_kind_at_every_layer_is_a_real_module(family: str) -> None:
    model = tiny_model(family, attach=False)
    sites = sites_for(model.config)
    assert list(sites) == [f"layers.{layer}.{kind}" for layer in range(2) for kind in SITE_KINDS]
    for site in sites.values():
        model.model.get_submodule(site.module)  # raises if the table names a module the model lacks
        assert site.per_head == (site.kind == "attn_preproj") and site.num_heads == 4
        assert site.hook == ("input" if site.kind in ("attn_preproj", "mlp_hidden") else "output")


def test_supported_types_cover_the_tested_families() -> None:
    assert set(FAMILIES) <= set(supported_model_types())
    assert "qwen3" in supported_model_types()


def test_a_kind_names_every_layer_and_a_name_one_site() -> None:
    sites = sites_for(tiny_config("llama"))
    assert [s.name for s in parse_site("mlp", sites)] == ["layers.0.mlp", "layers.1.mlp"]
    assert [s.module for s in parse_site("layers.1.attn_preproj", sites)] == ["model.layers.1.self_attn.o_proj"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("layers.5.mlp", "names layer 5, but this model has layers 0..1"),
        ("layers.0.mpl", "unknown site 'layers.0.mpl'"),
        ("mlps", "give a site kind"),
        (3, "give a string like 'layers.1.mlp'"),
    ],
)
def test_bad_sites_are_explained(spec: object, message: str) -> None:
    with pytest.raises(CodebookError, match=message):
        parse_site(spec, sites_for(tiny_config("gpt2")))  # type: ignore[arg-type]
