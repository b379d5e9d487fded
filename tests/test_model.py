"""CodebookModel on real transformers models of every supported family."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from cbwidgets.errors import CodebookError
from cbwidgets.model import CodebookModel
from cbwidgets.sites import SITE_KINDS
from tests.tiny import FAMILIES, VOCAB, tiny_data, tiny_model


@pytest.mark.parametrize("family", FAMILIES)
def test_attach_forward_codes_detach(family: str) -> None:
    model = tiny_model(family, attach=False)
    x = tiny_data(3, 10)
    with torch.no_grad():
        before = model(x).logits
    attached = model.attach(list(SITE_KINDS), num_codes=16, k=2)
    assert len(attached) == 2 * len(SITE_KINDS)
    with torch.no_grad():
        out = model(x)
    # 2 layers x (4 heads at attn_preproj + attn + mlp_hidden + mlp + block)
    assert out.codes.shape == (3, 10, 2 * (4 + 4), 2)
    assert out.codes.ids.min() >= 0 and out.codes.ids.max() < 16
    assert out.codes.labels[:7] == ("0.0", "0.1", "0.2", "0.3", "0.attn", "0.mlp_hidden", "0.mlp")
    assert not torch.equal(out.logits, before)  # the bottleneck changes the computation
    model.detach()
    assert model.attached == {}
    with torch.no_grad():
        after = model(x).logits
    assert torch.equal(after, before)


@pytest.mark.parametrize("family", FAMILIES)
def test_save_load_round_trip(family: str, tmp_path: Path) -> None:
    model = tiny_model(family, num_codes=20, k=2, revive_after=7)
    model.attached["layers.1.mlp"].hits[0, 3] = 5  # counters travel too
    x = tiny_data(2, 12)
    with torch.no_grad():
        out = model(x)
    model.save_pretrained(tmp_path / "saved")
    assert not list((tmp_path / "saved").rglob("*.bin")) and not list((tmp_path / "saved").rglob("*.pt"))
    loaded = CodebookModel.from_pretrained(tmp_path / "saved").eval()
    with torch.no_grad():
        again = loaded(x)
    assert torch.equal(again.codes.ids, out.codes.ids)
    assert torch.equal(again.logits, out.logits)
    assert again.codes.names == out.codes.names
    assert int(loaded.attached["layers.1.mlp"].hits[0, 3]) == 5
    assert loaded.attached["layers.1.mlp"].spec == model.attached["layers.1.mlp"].spec


def test_plain_transformers_folder_loads_without_codebooks(tmp_path: Path) -> None:
    model = tiny_model("llama", attach=False)
    model.model.save_pretrained(tmp_path / "hf")
    loaded = CodebookModel.from_pretrained(tmp_path / "hf")
    assert loaded.attached == {}
    x = tiny_data(1, 5)
    with torch.no_grad():
        assert torch.equal(loaded(x).logits, model(x).logits)


def test_codes_table_and_numpy() -> None:
    model = tiny_model("gpt2", num_codes=16, k=1)
    with torch.no_grad():
        codes = model(tiny_data(2, 4)).codes
    array = codes.numpy()
    assert isinstance(array, np.ndarray) and array.shape == codes.shape
    frame = codes.to_frame(tokens=[[f"t{i}" for i in range(4)]] * 2)
    assert len(frame) == 2 * 4 * len(codes) * 1
    row = frame.iloc[0]
    assert row["code"] == f"{row['codebook']}.{row['id']}"
    assert row["token"] == "t0"
    assert torch.equal(codes["0.mlp"], codes.ids[:, :, codes.index("layers.0.mlp")])
    # a code name read from the table can be pasted into an intervention
    with model.ablate(row["code"]), torch.no_grad():
        assert (model(tiny_data(2, 4)).codes[row["codebook"]] != row["id"]).all()


def test_mixed_k_pads_with_minus_one() -> None:
    model = tiny_model("gpt_neox", attach=False)
    model.attach("layers.0.mlp", num_codes=16, k=1)
    model.attach("layers.1.mlp", num_codes=16, k=3)
    with torch.no_grad():
        codes = model(tiny_data(1, 5)).codes
    assert codes.shape[-1] == 3
    assert (codes["0.mlp"][..., 1:] == -1).all() and (codes["1.mlp"] >= 0).all()


def test_codebooks_disabled_gives_base_model() -> None:
    model = tiny_model("qwen2", attach=False)
    x = tiny_data(2, 6)
    with torch.no_grad():
        base = model(x).logits
        model.attach(["mlp", "attn_preproj"])
        with model.codebooks_disabled():
            off = model(x)
        on = model(x).logits
    assert torch.equal(off.logits, base)
    assert (off.codes.ids == -1).all()
    assert not torch.equal(on, base)


def test_kmeans_init_from_model_activations() -> None:
    model = tiny_model("gpt_neox", num_codes=16)
    data = tiny_data(32, 16)
    with torch.enable_grad():
        before = float(model(data, labels=data).reconstruction_loss.detach())
        model.kmeans_init(data, iters=10)
        after = float(model(data, labels=data).reconstruction_loss.detach())
    assert after < 0.7 * before


def test_normalize_only_applies_each_codebooks_layernorm_and_no_snap() -> None:
    model = tiny_model("gpt_neox", num_codes=16)
    model.detach("attn_preproj")
    codebook = model.attached["layers.1.mlp"]
    codebook.ln_weight.data.fill_(0.5)
    codebook.ln_bias.data.fill_(0.25)
    x = tiny_data(2, 8)
    with model.codebooks_disabled():
        stock = model(x).logits

    def by_hand(site: str, out: torch.Tensor) -> torch.Tensor:
        cb = model.attached[site]
        return torch.nn.functional.layer_norm(out, out.shape[-1:], cb.ln_weight[0], cb.ln_bias[0], cb.eps)

    handles = []
    for site in ("layers.0.mlp", "layers.1.mlp"):
        module = model.model.get_submodule(model.available_sites[site].module)
        handles.append(module.register_forward_hook(lambda _m, _a, out, site=site: by_hand(site, out)))

    with model.codebooks_disabled():
        expected = model(x).logits
    for handle in handles:
        handle.remove()
    with model.normalize_only():
        out = model(x)
    assert torch.allclose(out.logits, expected, atol=1e-5)
    assert not torch.allclose(out.logits, stock, atol=1e-3)
    assert bool((out.codes.ids == -1).all())
    assert not torch.equal(model(x).logits, out.logits)  # the snap is back after the block


def test_kmeans_init_without_match_scale_keeps_layernorm_and_reads_normalize_only_inputs() -> None:
    model = tiny_model("gpt_neox", num_codes=16)
    for cb in model.attached.values():
        cb.ln_weight.data.fill_(2.0)
    data = tiny_data(8, 16)
    model.kmeans_init(data, iters=5, match_scale=False)
    assert all(bool((cb.ln_weight == 2.0).all()) for cb in model.attached.values())
    inputs = model.codebook_inputs(data)
    assert set(inputs) == set(model.attached)
    assert inputs["layers.1.mlp"].shape == (8 * 16, 32)
    # the codes are centroids of those inputs: every normalised input is near some code
    cb = model.attached["layers.1.mlp"]
    with torch.no_grad():
        points = cb.normalize(inputs["layers.1.mlp"])[:, 0]
    nearest = torch.cdist(points, cb.vectors.detach()[0]).min(-1).values
    spread = torch.cdist(points, points).mean()
    assert float(nearest.mean()) < 0.5 * float(spread)


def test_text_in_text_out_with_a_tokenizer() -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {str(i): i for i in range(10)} | {"<s>": 10}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<s>"))
    tok.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", unk_token="<s>")
    model = tiny_model("gpt_neox")
    model.tokenizer = fast
    ids = model.as_input_ids("0123")
    assert ids.tolist() == [[0, 1, 2, 3]]
    gen = model.generate("0123", max_new_tokens=4, seed=0)
    assert gen.texts is not None and len(gen.texts) == 1
    assert gen.ids.shape == (1, 8) and int(gen.ids.max()) < VOCAB


@pytest.mark.parametrize("family", FAMILIES)
def test_packed_tokens_at_their_own_positions_match_the_whole_run(family: str) -> None:
    """Tokens of several positions in one row (position_ids + a 4D mask, on the run's cache) get the
    logits and codes they get in a plain forward: how the quiet-removal screen runs removals."""
    model = tiny_model(family, num_codes=16)
    x = tiny_data(1, 12, seed=2)
    at = torch.tensor([0, 4, 4, 9])
    if family == "gpt_neo":  # its attention masks by token order: packing is refused, not run wrong
        with pytest.raises(CodebookError, match="gpt_neo attention applies its own causal mask"):
            model(x[:, at], position_ids=at[None])
        return
    before = int(at.max())
    mask = torch.cat([torch.arange(before)[None] < at[:, None], torch.eye(len(at), dtype=torch.bool)], 1)
    with torch.no_grad():
        whole = model(x, use_cache=True)
        whole.cache.crop(before - x.shape[1])
        packed = model(
            x[:, at], cache=whole.cache, use_cache=True, attention_mask=mask[None, None], position_ids=at[None]
        )
        plain = model(x)
    assert torch.allclose(packed.logits[0], plain.logits[0, at], atol=1e-5)
    assert torch.equal(packed.codes.ids[0], plain.codes.ids[0, at])
    beyond = torch.tensor([[5, 64]])  # the model has 64 positions
    with pytest.raises(CodebookError, match="65 tokens exceed this model's context of 64"):
        model(x[:, :2], position_ids=beyond)


def test_evaluating_restores_the_mode_it_found_even_after_an_error() -> None:
    model = tiny_model("gpt_neox", num_codes=16).train()
    with pytest.raises(RuntimeError), model.evaluating():
        assert not model.training and not any(m.training for m in model.modules())
        raise RuntimeError("inside")
    assert model.training and all(m.training for m in model.modules())
    with model.eval().evaluating():
        pass
    assert not model.training


def test_a_dictionary_attached_to_a_model_in_eval_mode_reads_without_counting_usage() -> None:
    """``model.eval()`` then ``attach``: the new codebook and SAE are in eval mode too, so reading
    the model leaves their usage counters as they were; attached in training mode, they train."""
    from cbwidgets.sae import SAESpec

    model = tiny_model(attach=False).eval()
    model.attach("layers.0.mlp", num_codes=16, k=2)
    model.attach("layers.1.mlp", SAESpec(num_codes=32, k=4))
    assert not any(book.training for book in model.attached.values())
    before = {site: book.hits.clone() for site, book in model.attached.items()}
    with torch.no_grad():
        model(tiny_data(2, 8))
    model.end_training_step()
    assert all(torch.equal(before[site], book.hits) for site, book in model.attached.items())
    model.train()
    model.attach("layers.1.attn_preproj", num_codes=16, k=1)
    assert model.attached["layers.1.attn_preproj"].training
