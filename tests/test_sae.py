"""TopK SAEs behind the codebook's interface: a known answer on planted features, attached in a
real transformers model, every intervention's meaning, saving, fitting and joint training."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cbwidgets import CodebookError
from cbwidgets.cached_fit import fit_activations, fit_cached
from cbwidgets.codebook import CodebookSpec
from cbwidgets.dictionary import Dictionary, build_dictionary, spec_from_dict
from cbwidgets.interventions import Ablate, Add, Force, Patch, Scale
from cbwidgets.model import CodebookModel
from cbwidgets.sae import SAESpec, TopKSAE
from cbwidgets.train import TrainConfig, train
from tests.tiny import tiny_data, tiny_model

SITE = "layers.1.mlp"


def _planted(n: int = 8192, d: int = 32, features: int = 64, k: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row the sum of k of ``features`` unit directions, at sizes 1-2, plus an offset."""
    g = torch.Generator().manual_seed(1)
    directions = F.normalize(torch.randn(features, d, generator=g), dim=-1)
    which = torch.stack([torch.randperm(features, generator=g)[:k] for _ in range(n)])
    sizes = 1 + torch.rand(n, k, generator=g)
    return (sizes[..., None] * directions[which]).sum(1) + 0.5, directions


def test_a_topk_sae_finds_planted_sparse_features() -> None:
    """The known answer: inputs made of 3 of 64 directions; an SAE of 64 latents with k = 3 explains
    them (fraction of variance unexplained < 0.15; measured 0.06) and has a decoder row within cosine
    0.9 of at least 80 % of the directions (measured 92 %)."""
    torch.manual_seed(0)
    x, directions = _planted()
    sae = TopKSAE(SAESpec(num_codes=64, dim=32, k=3, dead_after=20))
    sae.init_from(x, torch.Generator().manual_seed(2))
    optimizer = torch.optim.Adam(sae.parameters(), lr=3e-3)
    sae.train()
    g = torch.Generator().manual_seed(3)
    for _ in range(1500):
        loss = sae(x[torch.randint(0, len(x), (256,), generator=g)]).loss
        assert loss is not None
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        sae.constrain()
        sae.update_usage(sae.take_step_hits())
    sae.eval()
    with torch.no_grad():
        snap = sae(x)
    fvu = float((snap.output - x).pow(2).sum() / (x - x.mean(0)).pow(2).sum())
    found = (directions @ sae.vectors[0].t()).max(1).values
    assert fvu < 0.15 and float((found > 0.9).float().mean()) >= 0.8, (fvu, found)
    assert torch.allclose(sae.vectors.norm(dim=-1), torch.ones(1, 64), atol=1e-5)  # unit decoder rows
    assert snap.ids.shape == (8192, 1, 3) and snap.values is not None and bool((snap.values >= 0).all())
    assert float(sae.typical_values().mean()) > 0.5  # learned from the values it fired with


def test_the_spec_refuses_what_an_sae_cannot_be_and_saves_its_kind() -> None:
    spec = SAESpec(num_codes=np.int64(64), dim=torch.tensor(8), k=4)
    assert (spec.num_codes, spec.dim, spec.k) == (64, 8, 4) and isinstance(spec.num_codes, int)
    assert spec_from_dict(spec.to_dict()) == spec and spec.to_dict()["kind"] == "topk_sae"
    assert spec_from_dict(CodebookSpec(num_codes=8).to_dict()) == CodebookSpec(num_codes=8)
    assert isinstance(build_dictionary(spec), TopKSAE) and isinstance(build_dictionary(spec), Dictionary)
    for bad, message in [
        ({"k": 65}, "k=65 is larger than num_codes=64"),
        ({"groups": 4}, "an SAE reads its whole site"),
        ({"aux_coef": -1}, "aux_coef=-1 is not valid"),
        ({"dead_after": 0}, "dead_after"),
    ]:
        with pytest.raises(CodebookError, match=message):
            spec.with_settings(**bad)
    with pytest.raises(CodebookError, match="unknown SAE settings"):
        spec.with_settings(similarity="cosine")
    with pytest.raises(CodebookError, match="unknown dictionary kind 'pca'"):
        spec_from_dict({"kind": "pca"})
    with pytest.raises(CodebookError, match="dim=8"):
        TopKSAE(spec)(torch.zeros(2, 9))


@pytest.fixture()
def model() -> CodebookModel:
    """A real transformers model with codebooks at layer 0 and a TopK SAE at layer 1's MLP."""
    model = tiny_model(attach=False)
    model.attach("layers.0.mlp", num_codes=16, k=2)
    model.attach(SITE, SAESpec(num_codes=48, k=4))
    model.eval()
    torch.manual_seed(0)
    model.attached[SITE].init_from(model.record([SITE], tiny_data(8))[SITE])
    return model


def _site(model: CodebookModel, ids: torch.Tensor, *interventions: object) -> tuple[torch.Tensor, ...]:
    """The SAE's output, ids and values at its site for ``ids`` under the interventions."""
    with torch.no_grad(), model.intervene(*interventions):
        out = model(ids, capture=True)
    column = model.names.index_of("1.mlp")
    assert out.codes.values is not None
    return out.outputs[SITE], out.codes.ids[:, :, column], out.codes.values[:, :, column]


def test_an_sae_reads_as_codes_with_values_beside_a_codebook(model: CodebookModel) -> None:
    ids = tiny_data(2, 8)
    out = model(ids)
    assert model.names.labels == ("0.mlp", "1.mlp") and "TopKSAE" in repr(model.attached[SITE])
    values = out.codes.values
    assert values is not None and values.shape == out.codes.ids.shape == (2, 8, 2, 4)
    sae_values, book_values = values[:, :, 1], values[:, :, 0]
    assert bool((sae_values[out.codes.ids[:, :, 1] >= 0] > 0).all())  # a latent that fired has a value
    assert set(book_values.unique().tolist()) <= {0.0, 1.0} and bool((book_values[..., :2] == 1).all())
    frame = out.codes.to_frame()
    assert "value" in frame and frame.query("codebook == '1.mlp' and id >= 0").value.gt(0).all()
    with pytest.raises(CodebookError, match="values must have the ids' shape"):
        type(out.codes)(out.codes.ids, out.codes.codebooks, values[..., :2])


def test_each_intervention_means_the_natural_thing_for_an_sae(model: CodebookModel) -> None:
    sae = model.attached[SITE]
    assert isinstance(sae, TopKSAE)
    ids = tiny_data(1, 8, seed=3)
    clean, clean_ids, clean_values = _site(model, ids)
    latent = int(clean_ids[0, -1, 0])
    name = f"1.mlp.{latent}"
    at = clean_ids[0, -1] == latent

    out, got, values = _site(model, ids, Ablate(name, positions=[-1], mode="drop"))  # gone, the rest as they were
    assert int(got[0, -1][at]) == -1 and float(values[0, -1][at]) == 0.0
    direction = sae.vectors[0, latent]
    assert torch.allclose(out[0, -1], clean[0, -1] - clean_values[0, -1][at] * direction, atol=1e-5)
    assert torch.equal(out[0, :-1], clean[0, :-1])

    _, got, _ = _site(model, ids, Ablate(name, positions=[-1]))  # substitute: the next latent takes the slot
    assert latent not in got[0, -1].tolist()

    out, got, values = _site(model, ids, Scale(name, np.float32(2.0), positions=[-1]))
    assert torch.allclose(values[0, -1][at], 2 * clean_values[0, -1][at])
    assert torch.allclose(out[0, -1], clean[0, -1] + clean_values[0, -1][at] * direction, atol=1e-5)

    absent = next(c for c in range(sae.num_codes) if c not in clean_ids[0, 0].tolist())
    _, got, values = _site(model, ids, Force(f"1.mlp.{absent}", positions=[0]))
    slot = got[0, 0] == absent
    assert bool(slot.any()) and float(values[0, 0][slot]) >= float(sae.typical_values()[absent]) - 1e-6

    out, got, values = _site(model, ids, Force(f"1.mlp.{absent}", positions=[0], value=np.float32(7.5)))
    slot = got[0, 0] == absent  # at exactly the value asked for, along its direction; other tokens as they were
    assert bool(slot.any()) and float(values[0, 0][slot]) == 7.5
    assert torch.allclose(out[0, 0], sae.decode(got[0, :1].clamp_min(0), values[0, :1])[0], atol=1e-5)
    assert torch.equal(out[0, 1:], clean[0, 1:])

    out, _, _ = _site(model, ids, Add(f"1.mlp.{absent}", strength=torch.tensor(0.5), positions=[0]))
    added = 0.5 * sae.typical_values()[absent] * sae.vectors[0, absent]
    assert torch.allclose(out[0, 0], clean[0, 0] + added, atol=1e-5)

    other = tiny_data(1, 8, seed=4)
    with torch.no_grad():
        source = model(other).codes
    out, got, values = _site(model, ids, Patch(source, "1.mlp", positions=[2]))  # its latents, at its sizes
    column = model.names.index_of("1.mlp")
    assert source.values is not None
    assert torch.equal(got[0, 2], source.ids[0, 2, column]) and torch.equal(values[0, 2], source.values[0, 2, column])
    expected = sae.decode(source.ids[0, 2, column][None], source.values[0, 2, column][None])[0]
    assert torch.allclose(out[0, 2], expected, atol=1e-5) and torch.equal(out[0, 3:], clean[0, 3:])


def test_an_sae_saves_and_loads_beside_codebooks(model: CodebookModel, tmp_path: Path) -> None:
    ids = tiny_data(2, 8)
    with torch.no_grad():
        before = model(ids)
    model.save_pretrained(tmp_path / "m")
    again = CodebookModel.from_pretrained(tmp_path / "m").eval()
    assert isinstance(again.attached[SITE], TopKSAE) and again.attached[SITE].spec == model.attached[SITE].spec
    with torch.no_grad():
        after = again(ids)
    assert torch.equal(after.codes.ids, before.codes.ids) and torch.allclose(after.logits, before.logits, atol=1e-6)


def test_fit_cached_and_joint_training_train_an_sae(model: CodebookModel) -> None:
    data = tiny_data(32, 16)
    codes_before = model.attached["layers.0.mlp"].vectors.detach().clone()
    table = fit_cached(model, data, steps=120, batch_tokens=256, lr=3e-3, sites=np.str_(SITE))
    assert set(table.site) == {SITE}  # only the SAE: the codebook keeps what it learned
    assert torch.equal(model.attached["layers.0.mlp"].vectors, codes_before)
    curve = table[table.site == SITE].reconstruction.tolist()
    assert curve[-1] < 0.7 * curve[0], curve
    sae = model.attached[SITE]
    assert isinstance(sae, TopKSAE) and not sae.training and int(sae.hits.sum()) > 0
    assert torch.allclose(sae.vectors.norm(dim=-1), torch.ones(1, sae.num_codes), atol=1e-5)
    hits = sae.hits.clone()
    train(model, data, TrainConfig(steps=3, batch_size=8, lr=1e-3, log_every=1, progress=False))
    assert int(sae.hits.sum()) > int(hits.sum()) and float(sae.value_sum.sum()) > 0
    assert torch.allclose(sae.vectors.norm(dim=-1), torch.ones(1, sae.num_codes), atol=1e-5)  # kept after steps
    assert model.usage().query("codebook == '1.mlp'").num_codes.iloc[0] == 48


def test_code_effects_and_graphs_read_sae_latents_exactly(
    model: CodebookModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Removing a code can move an SAE's later values where it changes no later id, so the screen
    that proves removals quiet by ids is not used for a model with an SAE: every effect is run."""
    from cbwidgets import circuits
    from cbwidgets.circuits import NextToken, ablation_effects, code_graph

    def screen(*args: object) -> None:
        raise AssertionError("the quiet-removal screen ran on a model with an SAE")

    monkeypatch.setattr(circuits, "quiet_removals", screen)
    ids = tiny_data(1, 10, seed=5)
    table = ablation_effects(model, ids, NextToken(3), mode="drop", codebooks="0.mlp")
    assert len(table) > 0
    row = table.iloc[0]
    with torch.no_grad():
        clean = model(ids).logits[0, -1, 3]
        with model.ablate(row.code, positions=[int(row.position)], mode="drop"):
            ablated = model(ids).logits[0, -1, 3]
    assert row.effect == pytest.approx(float(clean - ablated), abs=1e-5)
    assert row.effect != 0  # a layer-0 code feeds the SAE's values at layer 1
    nodes, edges = code_graph(model, ids, NextToken(3), nodes=4)
    assert len(nodes) == 4 and set(edges.source) | set(edges.target) <= set(nodes.code)


def test_an_index_keeps_latent_values_and_ranks_examples_by_them(model: CodebookModel, tmp_path: Path) -> None:
    from cbwidgets.index import CodeIndex

    docs = [row.tolist() for row in tiny_data(12, 16, seed=7)]
    index = CodeIndex.build(model, docs, batch_size=4, progress=False)
    assert index.values is not None and index.values.dtype == np.float16 and index.values.shape == (12 * 16, 2, 4)
    column = model.names.index_of("1.mlp")
    with torch.no_grad():
        out = model(torch.tensor(docs)).codes
    assert out.values is not None
    ids, values = out.ids[:, :, column].reshape(-1, 4), out.values[:, :, column].reshape(-1, 4)
    latent = int(np.bincount(ids[ids >= 0].numpy()).argmax())  # the busiest latent
    name = f"1.mlp.{latent}"
    expected = (values * (ids == latent)).sum(1)[(ids == latent).any(1)].numpy()
    assert np.allclose(index.code_values(name), expected, rtol=1e-3, atol=1e-3)  # float16 on disk
    top = index.top_examples(name, n=5)
    assert (
        len(top) == 5
        and top.value.is_monotonic_decreasing
        and top.value.iloc[0] == pytest.approx(expected.max(), rel=1e-3)
    )
    again = CodeIndex.open(index.save(tmp_path / "index"))
    assert again.values is not None and np.array_equal(np.asarray(again.values), index.values)
    assert np.allclose(index.code_values("0.mlp.1"), 1.0)  # a codebook's codes have value 1 where they fire
    plain = CodeIndex.build(tiny_model(num_codes=8), docs, progress=False)
    assert plain.values is None and "value" not in plain.top_examples("0.mlp.1").columns


def test_the_heatmap_shades_sae_latents_by_their_values(model: CodebookModel, page: Any) -> None:
    import cbwidgets
    from tests.browser import shot
    from tests.harness import mount

    ids = tiny_data(1, 12, seed=8)
    view = cbwidgets.heatmap(model, ids)
    column = model.names.index_of("1.mlp")
    with torch.no_grad():
        values = model(ids).codes.values
    assert values is not None and np.array_equal(view.values, values[0].numpy())
    mount(page, view)
    cells = page.locator(f".cbw-hm-cell[data-n='{column}']")
    shades = cells.evaluate_all("cs => cs.map((c) => [Number(c.dataset.value), getComputedStyle(c).backgroundColor])")
    assert len(shades) == 12 and all(value > 0 for value, _ in shades)
    strongest = max(shades)[0]
    assert strongest == pytest.approx(float(values[0, :, column, 0].max()), rel=1e-5)
    assert len({colour for _, colour in shades}) > 1  # shaded by value, not one colour per id
    book = page.locator(f".cbw-hm-cell[data-n='{1 - column}']").first  # a codebook: no values to shade by
    assert book.get_attribute("data-value") is None
    assert "1.mlp: shaded by the first latent's value" in page.locator(".cbw-status").inner_text()
    cell = cells.nth(int(np.argmax([v for v, _ in shades])))
    cell.hover()
    cell.hover(position={"x": 4, "y": 4})  # the first hover scrolls, which hides the tooltip
    page.wait_for_selector(".cbw-tooltip:not([hidden])")
    written = page.evaluate("(v) => v.toPrecision(3)", strongest)
    assert f"value {written}" in page.locator(".cbw-tooltip").inner_text()
    print("screenshot:", shot(page, "heatmap-sae-values"))
    view.show(["a", "b"], np.zeros((2, 2), dtype=np.int64), model.names)  # other codes: their values are gone
    assert view.values.size == 0
    assert page.js_errors == []


def test_an_sae_can_read_a_layernorm_of_its_site_as_a_codebook_does(model: CodebookModel) -> None:
    """For a model trained with codebooks' LayerNorms in place: the SAE reconstructs LayerNorm(x),
    its gain and bias set from the data (or kept), and normalize_only passes that LayerNorm on."""
    x = model.record([SITE], tiny_data(16, 16))[SITE]
    sae = TopKSAE(SAESpec(num_codes=48, dim=32, k=4, layer_norm=True))
    sae.init_from(x)
    spread = float(torch.var_mean(x, dim=-1, unbiased=False)[0].add(1e-5).sqrt().mean())
    assert float(sae.ln_weight.detach()[0, 0]) == pytest.approx(spread, rel=1e-5)
    normed = F.layer_norm(x, (32,), sae.ln_weight[0], sae.ln_bias[0], 1e-5)
    assert torch.allclose(sae.b_dec, normed.mean(0), atol=1e-5)
    with torch.no_grad():
        sae.ln_weight.fill_(2.0)
    sae.init_from(x, match_scale=False)
    assert float(sae.ln_weight.detach()[0, 0]) == 2.0  # kept
    model.detach(SITE)
    model.attach(SITE, sae.spec)
    model.attached[SITE].load_state_dict(sae.state_dict())
    fit_cached(model, tiny_data(16, 16), steps=20, sites=SITE, init=False)
    assert float(model.attached[SITE].ln_weight.detach()[0, 0]) == 2.0  # fitting moves the SAE, not its LayerNorm
    fitted = model.attached[SITE]
    expected = F.layer_norm(x, (32,), fitted.ln_weight[0], fitted.ln_bias[0], 1e-5)
    assert torch.allclose(fitted.normalize(x).reshape(x.shape), expected, atol=1e-6)
    with torch.no_grad(), model.normalize_only():  # the recipe's first phase: the LayerNorm alone
        assert model(tiny_data(1, 8)).codes.ids[:, :, model.names.index_of("1.mlp")].eq(-1).all()


def test_an_sae_reads_a_grouped_codebooks_space_with_norm_groups() -> None:
    """A codebook at attn_preproj normalises each head apart; an SAE with ``norm_groups`` set to its
    heads and its gain and bias copied reads exactly the space that codebook passes on."""
    from cbwidgets.codebook import Codebook

    book = Codebook(CodebookSpec(num_codes=16, dim=32, k=2, groups=4))
    with torch.no_grad():
        book.ln_weight.uniform_(0.5, 2.0)
        book.ln_bias.normal_()
    sae = TopKSAE(SAESpec(num_codes=48, dim=32, k=4, layer_norm=True, norm_groups=4))
    with torch.no_grad():
        sae.ln_weight.copy_(book.ln_weight.reshape(1, -1))
        sae.ln_bias.copy_(book.ln_bias.reshape(1, -1))
    x = torch.randn(64, 32) * 3 + 1
    assert torch.allclose(sae.normalize(x).reshape(64, 32), book.normalize(x).reshape(64, 32), atol=1e-5)
    whole = TopKSAE(SAESpec(num_codes=48, dim=32, k=4, layer_norm=True))
    whole.load_state_dict(sae.state_dict())  # the same gain and bias, over all 32 features at once
    assert not torch.allclose(whole.normalize(x), sae.normalize(x), atol=1e-2)  # slices differ from the whole
    with pytest.raises(CodebookError, match="set layer_norm=True with it"):
        SAESpec(norm_groups=4)
    with pytest.raises(CodebookError, match="does not split into norm_groups=5"):
        SAESpec(dim=32, layer_norm=True, norm_groups=5)


def test_the_dashboard_lists_an_sae_latents_examples_strongest_first(model: CodebookModel, page: Any) -> None:
    import cbwidgets
    from cbwidgets.index import CodeIndex
    from tests.browser import shot
    from tests.harness import mount

    index = CodeIndex.build(model, [row.tolist() for row in tiny_data(12, 16, seed=7)], progress=False)
    busiest = int(np.argmax(index.firings()[model.names.index_of("1.mlp")]))
    dash = cbwidgets.CodeDashboard(index, f"1.mlp.{busiest}", model, examples=np.int64(5))
    values = [e["value"] for e in dash.examples]
    assert len(values) == 5 and values == sorted(values, reverse=True) and all(type(v) is float for v in values)
    assert values[0] == pytest.approx(float(index.code_values(f"1.mlp.{busiest}").max()), rel=1e-6)
    mount(page, dash)
    shown = page.locator(".cbw-db-value").all_inner_texts()
    assert [float(t) for t in shown] == pytest.approx(values, rel=2e-3)  # toPrecision(3)
    assert "strongest first" in page.locator(".cbw-db-examples").inner_text()
    print("screenshot:", shot(page, "dashboard-sae-values"))
    codebook = cbwidgets.CodeDashboard(index, "0.mlp.1", model)  # a codebook's code: no values shown
    assert all("value" not in e for e in codebook.examples)
    assert page.js_errors == []


def test_search_shows_the_activation_share_that_ranks_an_sae_index(model: CodebookModel, page: Any) -> None:
    """Over an index with values the widget's table adds "activation" (the search's
    activation_precision, which orders the rows, here not in the order of precision), in Python and
    on the page; typing a pattern that matches nothing leaves the five plain columns."""
    import cbwidgets
    from cbwidgets.index import CodeIndex
    from tests.browser import shot
    from tests.harness import mount

    index = CodeIndex.build(model, [row.tolist() for row in tiny_data(12, 16, seed=7)], progress=False)
    pattern = "[0-4]"  # the tiny vocabulary's tokens are numbers
    expected = index.search(pattern).head(50)
    search = cbwidgets.CodeSearch(index, pattern, rows=np.int64(50))
    table = search.table
    assert list(table.columns[:3]) == ["code", "activation_precision", "precision"]
    assert table["code"].tolist() == expected["code"].tolist()
    assert table["activation_precision"].to_numpy() == pytest.approx(expected["activation_precision"], abs=1e-6)
    assert table["activation_precision"].is_monotonic_decreasing and not table["precision"].is_monotonic_decreasing
    mount(page, search)
    head = page.locator(".cbw-se-head").locator("div").all_inner_texts()
    assert head == ["code", "activation", "precision", "recall", "matches", "firings"]
    differ = int(np.argmax(np.abs(table["activation_precision"] - table["precision"]).to_numpy() > 1e-3))
    cells = page.locator(".cbw-se-row[data-code]").nth(differ).locator("div").all_inner_texts()
    assert cells[0] == table["code"][differ]
    assert [float(c) for c in cells[1:3]] == pytest.approx(
        [table["activation_precision"][differ], table["precision"][differ]], abs=6e-4
    )
    print("screenshot:", shot(page, "search-sae-activation"))
    page.locator(".cbw-se-input").fill("")
    page.locator(".cbw-se-input").type("zz", delay=20)  # no token has a letter
    page.wait_for_function("document.querySelectorAll('.cbw-se-row[data-code]').length === 0")
    assert page.locator(".cbw-se-head").locator("div").count() == 5
    assert search.pattern == "zz" and "activation_precision" not in search.table.columns
    assert page.js_errors == []


def test_matched_sae_takes_a_codebooks_place_at_its_size_l0_and_layernorm() -> None:
    """At a site of heads (attn_preproj, 4 groups of 16 codes, k = 2 each): 64 latents, k = 8, the
    codebook's per-head LayerNorm read as it was, the other codebooks untouched; fitting lowers the
    reconstruction error from the data init's."""
    from cbwidgets.codebook import Codebook
    from cbwidgets.matched_sae import matched_sae

    model = tiny_model(num_codes=16, k=2)
    site = "layers.1.attn_preproj"
    book = model.attached[site]
    assert isinstance(book, Codebook) and book.groups == 4
    with torch.no_grad():
        book.ln_weight.uniform_(0.5, 2.0)
    others = {s: {k: v.clone() for k, v in model.attached[s].state_dict().items()} for s in model.attached if s != site}
    data = tiny_data(32, 16)
    with model.only([s for s in model.attached if s != site]):
        x = model.record([site], data)[site]
    sae = matched_sae(model, site, data, steps=np.int64(60), k=8)  # settings pass through to the spec
    assert model.attached[site] is sae and (sae.num_codes, sae.k, sae.spec.norm_groups) == (64, 8, 4)
    assert torch.allclose(sae.normalize(x), book.normalize(x).reshape(-1, 1, 32), atol=1e-5)
    for s, state in others.items():
        assert all(torch.equal(state[k], v) for k, v in model.attached[s].state_dict().items())
    fresh = TopKSAE(sae.spec)
    fresh.load_state_dict(sae.state_dict())
    fresh.init_from(x, torch.Generator().manual_seed(0), match_scale=False)
    assert not sae.training  # as the model it went into
    fresh.eval()
    assert float(sae(x).loss.detach()) < 0.8 * float(fresh(x).loss.detach())
    with pytest.raises(CodebookError, match="already holds a TopKSAE"):
        matched_sae(model, site, data, steps=1)
    with pytest.raises(CodebookError, match="names 2 sites"):
        matched_sae(model, "mlp", data, steps=1)
    with pytest.raises(CodebookError, match=r"activations of shape \(10, 31\) do not fit .* give \(tokens, 32\)"):
        fit_activations(sae, torch.randn(10, 31))


def test_matched_sae_without_layernorm_reads_the_raw_activations() -> None:
    """``layer_norm=False``: an SAE as on a frozen pretrained model, of the codebook's size and L0,
    reconstructing what enters the site itself (its FVU there is well below the data init's)."""
    from cbwidgets.matched_sae import matched_sae

    model = tiny_model(num_codes=16, k=2)
    site = "layers.1.attn_preproj"
    data = tiny_data(32, 16)
    sae = matched_sae(model, site, data, steps=80, layer_norm=False)
    assert (sae.num_codes, sae.k, sae.spec.layer_norm, sae.spec.norm_groups) == (64, 8, False, 1)
    assert not hasattr(sae, "ln_weight")
    with model.only([s for s in model.attached if s != site]):
        x = model.record([site], data)[site]
    assert torch.equal(sae.normalize(x).reshape(x.shape), x)
    with torch.no_grad():
        fvu = float((sae(x).output.reshape(x.shape) - x).pow(2).sum() / (x - x.mean(0)).pow(2).sum())
    assert fvu < 0.5
    with pytest.raises(CodebookError, match="norm_groups=4"):
        matched_sae(tiny_model(num_codes=16, k=2), site, data, steps=1, layer_norm=False, norm_groups=4)


def test_the_decoder_rows_gradient_has_no_part_along_the_rows() -> None:
    """Training reads the unit decoder rows through a normalisation: the same output, and a
    gradient (reconstruction and auxiliary loss both) orthogonal to every row."""
    sae = TopKSAE(SAESpec(num_codes=64, dim=16, k=4, dead_after=1))
    x = torch.randn(256, 16)
    sae.init_from(x, torch.Generator().manual_seed(0))
    sae.train()
    sae.steps_since_used.fill_(5)  # every latent dead: the auxiliary loss runs too
    out = sae(x)
    with torch.no_grad():
        plain = sae(x).output
    assert torch.allclose(out.output, plain, atol=1e-6)
    out.loss.backward()
    grad, rows = sae.vectors.grad[0], sae.vectors.detach()[0]
    assert float(grad.abs().max()) > 1e-3
    assert float((grad * rows).sum(-1).abs().max()) < 1e-5 * float(grad.norm(dim=-1).max())


def test_the_dense_and_the_bag_sums_of_rows_agree_with_their_gradients() -> None:
    """Few of many rows take a bag; many of few (the auxiliary loss's 256 of 1,024) a dense product.
    Both give the same sums and the same gradients, repeated ids included."""
    from cbwidgets.sae import _weighted_rows

    g = torch.Generator().manual_seed(0)
    for k, latents in ((2, 64), (16, 64)):  # the bag, then the dense product
        rows = torch.randn(latents, 8, generator=g, requires_grad=True)
        ids = torch.randint(0, latents, (32, k), generator=g)
        ids[:, 1] = ids[:, 0]  # a row taken twice for one token counts twice
        weights = torch.rand(32, k, generator=g, requires_grad=True)
        ours = _weighted_rows(ids, weights, rows)
        expected = (weights[..., None] * rows[ids]).sum(1)
        assert torch.allclose(ours, expected, atol=1e-5)
        probe = torch.randn(32, 8, generator=g)
        got = torch.autograd.grad((ours * probe).sum(), (rows, weights))
        want = torch.autograd.grad((expected * probe).sum(), (rows, weights))
        assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(got, want, strict=True))
