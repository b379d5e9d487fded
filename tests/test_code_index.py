"""The clustered code search: the dense search's answer with less work, on the shipped model and on
codes built to be hard for it (duplicates, retired codes, codes that moved after clustering)."""

from __future__ import annotations

import pytest
import torch

import cbwidgets.codebook as codebook_module
from cbwidgets.code_index import CodeIndex, default_clusters
from cbwidgets.codebook import _FAR, Codebook, CodeEdit, ScoreEdit
from cbwidgets.tokfsm import TokFSM, load_default


def _dense(x: torch.Tensor, points: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    scores = x @ points.T if bias is None else x @ points.T + bias
    return scores.argmax(-1)


def _clustered(codes: int, dim: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Codes and tokens around 40 centres, as trained codes and the activations they serve lie."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(40, dim, generator=g) * 4
    points = centres[torch.randint(0, 40, (codes,), generator=g)] + torch.randn(codes, dim, generator=g)
    tokens = centres[torch.randint(0, 40, (1500,), generator=g)] + torch.randn(1500, dim, generator=g)
    return points, tokens


def test_the_shipped_model_reads_the_same_codes_and_logits_with_less_work(monkeypatch: pytest.MonkeyPatch) -> None:
    model, fsm = load_default(), TokFSM()
    ids = fsm.batches(128, seed=5)(0, 16)  # 2,048 tokens: enough for the index
    with torch.no_grad():
        indexed = model(ids, capture=True)
    mlps = {f"layers.{i}.mlp": model.codebooks[f"layers_{i}_mlp"] for i in range(4)}
    assert all(isinstance(cb, Codebook) and cb._index for cb in mlps.values())  # searched through clusters
    monkeypatch.setattr(codebook_module, "_INDEX_MIN_CODES", 10**9)
    with torch.no_grad():
        dense = model(ids, capture=True)
    assert torch.equal(indexed.codes.ids, dense.codes.ids)
    assert torch.equal(indexed.logits, dense.logits)
    for site, cb in mlps.items():  # and it skipped most of each codebook
        xn = cb.normalize(indexed.inputs[site].reshape(-1, cb.dim))[:, 0]
        points = cb.vectors.detach()[0]
        choice = cb._index[0].search(xn, points, -0.5 * points.pow(2).sum(-1))
        assert choice.scored < 0.3


@pytest.mark.parametrize("similarity", ["euclidean", "cosine"])
def test_clustered_codes_with_duplicates_and_retired_ones(similarity: str) -> None:
    points, tokens = _clustered(3000, 24, seed=1)
    points[100:400] = points[50]  # k-means on repeated activations leaves exact duplicates
    points[2000:2600] = _FAR  # and retire_twins parks codes far away
    tokens[:5] = points[50]  # tokens exactly on a duplicated code: the lowest id must win
    tokens[5] = 0.0
    if similarity == "cosine":
        points = points / points.norm(dim=-1, keepdim=True)
        queries, bias = tokens / tokens.norm(dim=-1, keepdim=True).clamp_min(1e-12), None
    else:
        queries, bias = tokens, -0.5 * points.pow(2).sum(-1)
    index = CodeIndex.build(points, default_clusters(len(points)))
    choice = index.search(queries, points, bias, scoring=tokens)
    assert torch.equal(choice.ids, _dense(tokens, points, bias))
    assert choice.ids[:5].eq(50).all()
    assert choice.scored < 0.5


def test_codes_that_moved_after_clustering_are_still_found() -> None:
    """Training moves codes between rebuilds: the radii are measured anew, so nothing is missed."""
    points, tokens = _clustered(2000, 16, seed=2)
    index = CodeIndex.build(points, default_clusters(len(points)))
    g = torch.Generator().manual_seed(3)
    moved = points + 0.3 * torch.randn(points.shape, generator=g)
    moved[:20] = tokens[:20] + 1e-3  # some codes jump onto tokens, far from their old cluster
    bias = -0.5 * moved.pow(2).sum(-1)
    choice = index.search(tokens, moved, bias)
    assert torch.equal(choice.ids, _dense(tokens, moved, bias))
    assert torch.equal(choice.ids[:20], torch.arange(20))


def test_random_codes_fall_back_to_the_dense_search_and_rest() -> None:
    """Codes that do not cluster (before training) leave nothing to skip: the codebook answers as
    always, scores densely for a while, and waits longer after each try that did not pay."""
    torch.manual_seed(4)
    cb = Codebook(4096, 32, k=1, similarity="euclidean").eval()
    x = torch.randn(600, 32)
    expected = _dense(cb.normalize(x)[:, 0], cb.vectors.detach()[0], -0.5 * cb.vectors.detach()[0].pow(2).sum(-1))
    assert torch.equal(cb(x).ids[:, 0, 0], expected)
    assert cb._index == [] and cb._index_rests == 16 and cb._index_backoff == 32
    for _ in range(16):
        assert torch.equal(cb(x).ids[:, 0, 0], expected)
    assert cb._index_rests == 0
    cb(x)  # tries again, fails again: rests twice as long
    assert cb._index_rests == 32
    wide = Codebook(4096, 512, k=1, similarity="euclidean").eval()
    wide(torch.randn(600, 512))  # long vectors: the dense matmul is efficient, no clusters are made
    assert wide._index == [] and wide._index_rests == 0


def test_training_and_steering_edits_use_the_dense_search() -> None:
    points, tokens = _clustered(4096, 16, seed=5)
    cb = Codebook(4096, 16, k=1, similarity="euclidean")
    cb.vectors.data[0] = points
    cb.ln_weight.data.fill_(3.0)
    cb.train()
    cb(tokens)
    assert cb._index == []  # training: every step's codes are new, no clusters made
    cb.eval()
    natural = cb(tokens).ids
    assert cb._index  # reading: the clusters are made
    banned = torch.zeros(1, 4096, dtype=torch.bool)
    banned[0, natural[:50, 0, 0]] = True
    edit = CodeEdit(scores=(ScoreEdit(banned, float("-inf")),))
    steered = cb(tokens, edit).ids
    assert not torch.isin(steered[:50], natural[:50, 0, 0]).any()
    with torch.no_grad():
        xn = cb.normalize(tokens)
        w, bias = cb.scorer()
        scores = torch.baddbmm(bias, xn.transpose(0, 1), w).masked_fill(banned[:, None], float("-inf"))
    assert torch.equal(steered[:, 0, 0], scores.argmax(-1)[0])
    assert torch.equal(natural[:, 0, 0], _dense(xn[:, 0], w[0].T, bias[0, 0]))
    cb.train()  # training moves the codes: the clusters of the old ones are dropped
    assert cb._index == []
