"""CodeIndex: known answers on hand-made corpora, the real default model, save/reopen, bad inputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import cbwidgets
from cbwidgets import CodebookError
from cbwidgets.index import CodeIndex
from cbwidgets.names import CodebookNames
from cbwidgets.tokfsm import TokFSM, load_default
from tests.tiny import tiny_model


def _hand_made() -> CodeIndex:
    # two documents: "he llo wor ld" and "llo ld"; one codebook "0.mlp" with 4 codes
    vocab = ["he", "llo", " wor", "ld"]
    tokens = np.array([0, 1, 2, 3, 1, 3], dtype=np.int32)
    codes = np.array([0, 1, 2, 3, 1, 2], dtype=np.uint16).reshape(6, 1, 1)
    return CodeIndex(codes, tokens, np.array([0, 4, 6]), vocab, CodebookNames.from_labels(["0.mlp"], num_codes=[4]))


def test_search_precision_and_recall_by_hand() -> None:
    index = _hand_made()
    table = index.search("llo").set_index("code")
    # "llo" matches tokens 1 and 4, both code 1; code 1 fires only there
    assert list(table.index) == ["0.mlp.1"]
    assert table.loc["0.mlp.1", "precision"] == 1.0 and table.loc["0.mlp.1", "recall"] == 1.0
    table = index.search("ld").set_index("code")
    # "ld" matches tokens 3 (code 3) and 5 (code 2); code 2 also fires at token 2
    assert table.loc["0.mlp.3", ["precision", "recall"]].tolist() == [1.0, 0.5]
    assert table.loc["0.mlp.2", ["precision", "recall"]].tolist() == [0.5, 0.5]
    assert list(index.search("ld", min_precision=0.9)["code"]) == ["0.mlp.3"]
    assert index.search("ld").attrs["matched_tokens"] == 2 and index.search("zzz").attrs["matched_tokens"] == 0


def test_search_ranks_latents_by_the_share_of_their_activation_on_the_matches() -> None:
    """By hand: two latents (k = 2) over "he llo wor ld" / "llo ld". Latent 0 fires on every token,
    at 4.0 on the two "llo" and 0.5 elsewhere; latent 1 fires on "llo" and "he" at 1.0 each. Both fire
    on both matches; latent 0 has the lower precision (2 of 6 firings vs 2 of 3) but the higher share
    of its activation on them (8 of 10 vs 2 of 3), so it ranks first. A codebook's codes (no
    values) keep the table as it was."""
    vocab = ["he", "llo", " wor", "ld"]
    tokens = np.array([0, 1, 2, 3, 1, 3], dtype=np.int32)
    empty = np.iinfo(np.uint16).max
    codes = np.array([[0, 1], [0, 1], [0, empty], [0, empty], [0, 1], [0, empty]], dtype=np.uint16)[:, None, :]
    values = np.array([[0.5, 1], [4, 1], [0.5, 0], [0.5, 0], [4, 1], [0.5, 0]], dtype=np.float16)[:, None, :]
    names = CodebookNames.from_labels(["0.mlp"], num_codes=[2])
    index = CodeIndex(codes, tokens, np.array([0, 4, 6]), vocab, names, values=values)
    table = index.search("llo")
    assert table.code.tolist() == ["0.mlp.0", "0.mlp.1"]
    assert table.activation_precision.tolist() == pytest.approx([8 / 10, 2 / 3])
    assert table.precision.tolist() == pytest.approx([2 / 6, 2 / 3])
    assert index.value_sums()[0].tolist() == pytest.approx([10.0, 3.0])
    assert "activation_precision" not in _hand_made().search("llo").columns
    assert list(index.search("zzz").columns)[-1] == "activation_precision"
    view = cbwidgets.CodeSearch(index, pattern="llo")  # the search widget lists them in that order
    assert list(view.code_names) == ["0.mlp.0", "0.mlp.1"] and "ranked by the share" in view.summary


def test_matches_map_to_the_token_holding_the_first_character() -> None:
    index = _hand_made()
    assert index.matches("lo wo").tolist() == [1]  # starts inside "llo"
    assert index.matches("llo( wor)").tolist() == [2]  # group 1 starts in " wor"
    assert index.matches("ldllo").tolist() == []  # never across documents
    assert index.matches("zzz").tolist() == []
    assert index.search("zzz").empty


def test_lookups_examples_topics_and_stats() -> None:
    index = _hand_made()
    assert index.positions("0.mlp.2").tolist() == [2, 5]
    examples = index.top_examples("0.mlp.1", n=5, context=1)
    assert examples[["document", "position", "left", "token", "right"]].values.tolist() == [
        [0, 1, "he", "llo", " wor"],
        [1, 4, "", "llo", "ld"],
    ]
    assert examples["marked"].tolist() == [[1], [4]]
    topics = index.document_codes(1, min_share=0.5)
    assert set(topics["code"]) == {"0.mlp.1", "0.mlp.2"} and topics["share"].tolist() == [0.5, 0.5]
    with pytest.warns(DeprecationWarning, match="document_codes"):  # the old name, for one release
        assert index.topic_codes(1, min_share=0.5).equals(topics)
    stats = index.code_stats("0.mlp.2")
    assert stats["firings"] == 2 and stats["documents"] == 2 and stats["top_tokens"] == [(" wor", 1), ("ld", 1)]


def test_default_model_has_precise_codes_for_a_state(tmp_path: Path) -> None:
    model, fsm = load_default(), TokFSM()
    index = CodeIndex.build(model, fsm.sample(200, 128, seed=11), batch_size=32, progress=False)
    assert index.dtype == np.uint16 and index.ids().shape == (200 * 128, 20, 1)
    table = index.search("4(2)", min_matches=10)  # the last digit of state 42 (and of some misaligned pairs)
    best = table.iloc[0]
    assert best["precision"] >= 0.95 and best["matches"] >= 20
    # the index holds exactly what a forward gives
    ids = fsm.sample(200, 128, seed=11)[:3]
    assert np.array_equal(index.ids(0, 384)[:, :, 0], model(ids).codes.ids[:, :, :, 0].reshape(384, 20).numpy())

    index.save(tmp_path / "idx")
    reopened = CodeIndex.open(tmp_path / "idx")
    assert isinstance(reopened._stored, np.memmap) and isinstance(reopened.inv_positions, np.memmap)
    assert reopened.codebooks == index.codebooks  # the model's names travel with the index
    assert reopened.search("4(2)", min_matches=10).equals(table)
    code = best["code"]
    assert np.array_equal(reopened.positions(code), index.positions(code))
    assert "folder=" in repr(reopened)


def test_documents_longer_than_the_context_are_read_in_windows() -> None:
    model, fsm = load_default(), TokFSM()
    long = fsm.sample(1, 300, seed=5)
    index = CodeIndex.build(model, long, progress=False)
    assert index.num_tokens == 300 and index.num_documents == 1
    with torch.no_grad():
        second = model(long[:, 128:256]).codes.ids[0, :, :, 0].numpy()
    assert np.array_equal(index.ids(128, 256)[:, :, 0], second)


def test_wide_codebooks_use_uint32() -> None:
    model = tiny_model("gpt_neox", attach=False)
    model.attach("layers.0.mlp", num_codes=70_000)
    index = CodeIndex.build(model, [[1, 2, 3, 4], [5, 6]], progress=False)
    assert index.dtype == np.uint32 and index.num_documents == 2 and index.labels == ["0.mlp"]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda i: i.search("4(2"), "not a valid regular expression"),
        (lambda i: i.positions("9.mlp.1"), "not a code of this index"),
        (lambda i: i.positions("0.mlp.7"), "has codes 0..3"),
        (lambda i: i.document_codes(5), "out of range"),
    ],
)
def test_bad_queries_are_explained(call, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(CodebookError, match=message):
        call(_hand_made())


def test_bad_corpora_are_explained(tmp_path: Path) -> None:
    model = load_default()
    with pytest.raises(CodebookError, match="corpus is empty"):
        CodeIndex.build(model, [], progress=False)
    with pytest.raises(CodebookError, match="one string"):
        CodeIndex.build(model, "<bos>4242", progress=False)
    with pytest.raises(CodebookError, match="no code index"):
        CodeIndex.open(tmp_path)


def test_empty_slots_read_back_as_minus_one_as_everywhere() -> None:
    model = tiny_model("gpt_neox", attach=False)
    model.attach("layers.0.mlp", num_codes=16, k=1)
    model.attach("layers.1.mlp", num_codes=16, k=3)  # the layer-0 codebook leaves slots 1 and 2 empty
    corpus = torch.tensor([[1, 2, 3, 4, 5, 6]])
    index = CodeIndex.build(model, corpus, progress=False)
    with torch.no_grad():
        assert np.array_equal(index.ids(), model(corpus).codes.ids[0].numpy())
    assert (index.ids()[:, 0, 1:] == -1).all() and (index.ids()[:, 1] >= 0).all()
    assert index.document_span(0) == (0, 6) and index.token_strings(0, 2) == ["1", "2"]


def test_a_cached_index_is_opened_the_second_time_and_keyed_by_weights_and_corpus(tmp_path: Path) -> None:
    model = load_default()
    corpus = TokFSM().sample(20, 64, seed=3)
    first = CodeIndex.build(model, corpus, progress=False, cache=tmp_path)
    assert first.folder is not None and Path(first.folder).parent == tmp_path / "index"
    second = CodeIndex.build(model, corpus, progress=False, cache=tmp_path)
    assert second.folder == first.folder and isinstance(second.tokens, np.memmap)  # opened, not rebuilt
    assert np.array_equal(second.ids(0, second.num_tokens), CodeIndex.build(model, corpus, progress=False).ids(0, 1280))
    other = CodeIndex.build(model, TokFSM().sample(20, 64, seed=4), progress=False, cache=tmp_path)
    assert other.folder != first.folder
    with torch.no_grad():
        model.attached["layers.2.mlp"].vectors[0, 5] += 0.5  # a retrained codebook never reads a stale entry
    retrained = CodeIndex.build(model, corpus, progress=False, cache=tmp_path)
    assert retrained.folder not in (first.folder, other.folder)
    assert len(list((tmp_path / "index").iterdir())) == 3


def test_a_cache_that_cannot_be_written_costs_a_warning_not_the_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    import cbwidgets.atomic

    def refuse(*args: Any, **kwargs: Any) -> str:
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(cbwidgets.atomic.tempfile, "mkdtemp", refuse)
    with pytest.warns(UserWarning, match="built but not cached: could not write .*read-only"):
        index = CodeIndex.build(load_default(), TokFSM().sample(4, 32, seed=3), progress=False, cache=tmp_path)
    assert index.num_tokens == 128 and index.folder is None
