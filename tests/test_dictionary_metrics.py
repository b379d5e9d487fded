"""The standard dictionary metrics on hand-made dictionaries whose answers are known."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from cbwidgets import CodebookError
from cbwidgets.dictionary_metrics import METRIC_COLUMNS, dictionary_metrics
from cbwidgets.model import CodebookModel
from cbwidgets.sae import SAESpec, TopKSAE
from tests.tiny import tiny_data, tiny_model

SITE = "layers.1.mlp"
DATA = [tiny_data(4, 16, seed=s) for s in range(3)]


def _with_sae(kind: str) -> tuple[CodebookModel, TopKSAE]:
    """A real model with a hand-made SAE at layer 1's MLP: ``identity`` (latents +e_i and -e_i, k = d:
    it reconstructs exactly), ``zero`` (puts out zeros) or ``mean`` (puts out the mean activation)."""
    model = tiny_model(attach=False)
    d = 32
    model.attach(SITE, SAESpec(num_codes=2 * d, k=d))
    sae = model.attached[SITE]
    assert isinstance(sae, TopKSAE)
    eye = torch.eye(d)
    with torch.no_grad():
        sae.b_enc.zero_()
        sae.b_dec.zero_()
        sae.encoder.copy_(torch.cat([eye, -eye], 1))
        sae.vectors.copy_(torch.cat([eye, -eye])[None])
        if kind != "identity":
            sae.vectors.zero_()
        if kind == "mean":
            with model.codebooks_disabled():
                sae.b_dec.copy_(model.record([SITE], DATA)[SITE].mean(0))
    return model.eval(), sae


def test_a_dictionary_that_reconstructs_exactly_scores_perfectly() -> None:
    model, _ = _with_sae("identity")
    table = dictionary_metrics(model, DATA)
    assert list(table.columns) == list(METRIC_COLUMNS) and table.site.tolist() == [SITE, "all"]
    row = table.iloc[0]
    assert row.kind == "topk_sae" and row.units == 64
    assert row.fvu == pytest.approx(0, abs=1e-10) and row.cosine == pytest.approx(1, abs=1e-6)
    assert row.ce_recovered == pytest.approx(1, abs=1e-5) and row.kl == pytest.approx(0, abs=1e-6)
    assert row.ce_dictionary == pytest.approx(row.ce_clean, abs=1e-6) and row.ce_ablated > row.ce_clean
    assert row.l0 == pytest.approx(32)  # every coordinate, by its sign's latent
    assert row.dead == 0 and sum(row.density_histogram) == 64 and table.attrs["tokens"] == 3 * 4 * 15
    assert table.iloc[1].ce_dictionary == pytest.approx(row.ce_clean, abs=1e-6)  # "all": the same one dictionary


def test_a_dictionary_of_zeros_recovers_nothing_and_one_of_the_mean_explains_no_variance() -> None:
    model, _ = _with_sae("zero")
    zero = dictionary_metrics(model, DATA).iloc[0]
    assert zero.ce_recovered == pytest.approx(0, abs=1e-6) and zero.ce_dictionary == pytest.approx(zero.ce_ablated)
    with model.codebooks_disabled():
        x = model.record([SITE], DATA)[SITE]
    assert zero.fvu == pytest.approx(float(x.pow(2).sum() / (x - x.mean(0)).pow(2).sum()), rel=1e-5)
    assert zero.l0 == 32  # its latents fire as the identity's do; they only write nothing
    model, _ = _with_sae("mean")
    assert dictionary_metrics(model, DATA).iloc[0].fvu == pytest.approx(1, abs=1e-5)


def test_codebooks_get_the_same_measures() -> None:
    model = tiny_model(num_codes=16, k=2)  # per-head codebooks at attention and one at each MLP
    table = dictionary_metrics(model, DATA, reference="normalized")
    assert table.kind.iloc[:-1].eq("codebook").all() and table.attrs["reference"] == "normalized"
    heads = table.set_index("site").loc["layers.0.attn_preproj"]
    assert heads.units == 4 * 16 and heads.l0 == 4 * 2  # every head's k slots fill
    with torch.no_grad():
        codes = torch.cat([model(batch).codes.ids for batch in DATA])
    used = codes[:, :, model.names.index_of("0.mlp")].unique()
    mlp = table.set_index("site").loc["layers.0.mlp"]
    assert mlp.dead < 1 and 0 <= mlp.cosine <= 1 and mlp.fvu > 0
    with model.only("layers.0.mlp", others="normalized"):
        alone = torch.cat([model(batch).codes.ids for batch in DATA])[:, :, model.names.index_of("0.mlp")].unique()
    assert mlp.dead == pytest.approx(1 - len(alone) / 16) and len(used) > 0
    book = model.attached["layers.1.mlp"]  # against the reference "normalized": its LayerNorm of what enters it
    with torch.no_grad():
        x = model.codebook_inputs(DATA)["layers.1.mlp"]
        target, out = book.normalize(x).reshape(x.shape), book(x).output
    fvu = float((target - out).pow(2).sum() / (target - target.mean(0)).pow(2).sum())
    assert table.set_index("site").loc["layers.1.mlp"].fvu == pytest.approx(fvu, rel=1e-4)
    one = dictionary_metrics(model, DATA, reference="normalized", sites="layers.1.mlp")
    assert one.site.tolist() == ["layers.1.mlp", "all"]
    assert one.iloc[0].drop("density_histogram").equals(table.iloc[3].drop("density_histogram"))  # the same row
    both = pd.concat([table, one])  # two runs' tables side by side, as a comparison puts them
    assert len(both) == len(table) + 2 and both.attrs["density_bins"] == table.attrs["density_bins"]
    with pytest.raises(CodebookError, match="reference"):
        dictionary_metrics(model, DATA, reference="clean")
    bare = tiny_model(attach=False)
    with pytest.raises(CodebookError, match="no dictionaries attached"):
        dictionary_metrics(bare, DATA)
    bare.attach("mlp", num_codes=8)
    with pytest.raises(CodebookError, match=r"'layers\.0\.attn_preproj' has no dictionary; attached: 'layers\.0\.mlp'"):
        with bare.only("attn_preproj"):
            pass
