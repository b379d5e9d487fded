"""The codebook layer on its own: snap, gradients, groups, losses, k-means, revival."""

from __future__ import annotations

import pytest
import torch

import cbwidgets.scores as scores_module
from cbwidgets.codebook import Codebook, CodeEdit, KnockEdit, ReplaceEdit, ScoreEdit, WeightEdit


def _brute_force_ids(cb: Codebook, x: torch.Tensor) -> torch.Tensor:
    """Top-k by the textbook definition of each similarity, one group at a time."""
    xn = cb.normalize(x).detach()
    out = []
    for g in range(cb.groups):
        codes = cb.vectors.detach()[g]
        v = xn[:, g]
        if cb.spec.similarity == "inner":
            scores = v @ codes.T
        elif cb.spec.similarity == "cosine":
            scores = torch.nn.functional.cosine_similarity(v[:, None], codes[None], dim=-1)
        else:
            scores = -torch.cdist(v, codes)
        out.append(scores.topk(cb.k, dim=-1).indices)
    return torch.stack(out, dim=1)


@pytest.mark.parametrize("similarity", ["cosine", "inner", "euclidean"])
@pytest.mark.parametrize("groups,k", [(1, 1), (1, 3), (4, 1), (4, 2)])
def test_snap_matches_brute_force(similarity: str, groups: int, k: int) -> None:
    torch.manual_seed(0)
    cb = Codebook(50, 32, k=k, groups=groups, similarity=similarity)
    cb.vectors.data *= torch.rand(groups, 50, 1) * 3  # unequal norms, so the similarities disagree
    x = torch.randn(2, 7, 32)
    snap = cb(x)
    assert snap.ids.shape == (2, 7, groups, k)
    expected = _brute_force_ids(cb, x.reshape(-1, 32)).reshape(2, 7, groups, k)
    assert torch.equal(snap.ids.sort(-1).values, expected.sort(-1).values)


def test_output_is_mean_of_chosen_codes_per_group() -> None:
    torch.manual_seed(1)
    cb = Codebook(20, 12, k=3, groups=3)
    x = torch.randn(5, 12)
    snap = cb(x)
    for t in range(5):
        for g in range(3):
            want = cb.vectors[g, snap.ids[t, g]].mean(0)
            assert torch.allclose(snap.output[t, g * 4 : (g + 1) * 4], want, atol=1e-6)


def test_grouped_equals_independent_codebooks() -> None:
    torch.manual_seed(2)
    grouped = Codebook(16, 8, k=2, groups=2)
    x = torch.randn(9, 8)
    out = grouped(x)
    for g in range(2):
        single = Codebook(16, 4, k=2)
        single.vectors.data.copy_(grouped.vectors.data[g : g + 1])
        single.ln_weight.data.copy_(grouped.ln_weight.data[g : g + 1])
        single.ln_bias.data.copy_(grouped.ln_bias.data[g : g + 1])
        alone = single(x[:, g * 4 : (g + 1) * 4])
        assert torch.equal(alone.ids[:, 0], out.ids[:, g])
        assert torch.allclose(alone.output, out.output[:, g * 4 : (g + 1) * 4], atol=1e-6)


@pytest.mark.parametrize("loss", ["aeloss", "vqvae", "fullaeloss"])
def test_straight_through_gradient_to_input(loss: str) -> None:
    """The output's gradient reaches the input as if the snap were the identity on LN(x)."""
    torch.manual_seed(3)
    cb = Codebook(10, 8, k=1, groups=2, loss=loss)
    x = torch.randn(6, 8, requires_grad=True)
    upstream = torch.randn(6, 8)
    cb(x).output.backward(upstream)
    x2 = x.detach().clone().requires_grad_(True)
    cb.normalize(x2).reshape(6, 8).backward(upstream)
    assert x.grad is not None and x2.grad is not None
    assert torch.allclose(x.grad, x2.grad, atol=1e-6)


def test_loss_routes_gradients_as_documented() -> None:
    torch.manual_seed(4)
    x = torch.randn(6, 8)
    grads = {}
    for loss in ("aeloss", "vqvae", "fullaeloss"):
        cb = Codebook(10, 8, loss=loss)
        xin = x.clone().requires_grad_(True)
        snap = cb(xin)
        assert snap.loss is not None
        snap.loss.backward()
        input_grad = 0.0 if xin.grad is None else float(xin.grad.abs().sum())
        grads[loss] = (cb.vectors.grad is not None and bool(cb.vectors.grad.abs().sum() > 0), input_grad)
    assert grads["aeloss"] == (True, 0.0)  # codes only
    assert grads["vqvae"][0] and grads["vqvae"][1] > 0  # codes, plus the commitment term on the input
    assert grads["fullaeloss"][0] and grads["fullaeloss"][1] > 0


def test_task_gradient_reaches_only_chosen_codes() -> None:
    torch.manual_seed(5)
    cb = Codebook(30, 8, k=1)
    x = torch.randn(4, 8)
    snap = cb(x)
    snap.output.sum().backward()
    touched = (cb.vectors.grad[0].abs().sum(-1) > 0).nonzero().flatten()
    assert set(touched.tolist()) == set(snap.ids.flatten().tolist())


def test_vqvae_output_carries_no_task_gradient_to_codes() -> None:
    cb = Codebook(30, 8, k=1, loss="vqvae")
    cb(torch.randn(4, 8)).output.sum().backward()
    assert cb.vectors.grad is None or cb.vectors.grad.abs().sum() == 0


def test_inference_mode_has_no_loss_and_keeps_dtype() -> None:
    cb = Codebook(30, 8, k=2)
    with torch.inference_mode():
        snap = cb(torch.randn(3, 8, dtype=torch.bfloat16))
    assert snap.loss is None
    assert snap.output.dtype == torch.bfloat16


def test_large_inputs_are_chunked_with_identical_results(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of rows choose what the whole does, with edits that name tokens in several chunks
    (a banned code on some tokens, a code knocked out at tokens 3 and 250)."""
    torch.manual_seed(6)
    cb = Codebook(64, 16, k=2, groups=2)
    x = torch.randn(300, 16)
    natural = cb(x).ids
    banned = torch.zeros(2, 64, dtype=torch.bool)
    banned[1, natural[10, 1, 0]] = True
    some = torch.arange(300) % 3 == 1
    knock = KnockEdit(torch.tensor([3, 250]), torch.tensor([0, 1]), natural[[3, 250], [0, 1], 0])
    edit = CodeEdit(scores=(ScoreEdit(banned, float("-inf"), tokens=some),), knock=(knock,))
    edited = cb(x, edit).ids
    assert not torch.equal(edited, natural)
    for limit in ("_MAX_SCORE_ELEMENTS", "_CACHED_SCORE_ELEMENTS"):  # 7 rows a chunk
        monkeypatch.setattr(f"cbwidgets.scores.{limit}", 64 * 2 * 7)
    assert scores_module.score_rows(64 * 2, 8, x.device) == 7
    assert torch.equal(cb(x).ids, natural)
    assert torch.equal(cb(x, edit).ids, edited)


def test_short_vectors_are_scored_in_blocks_that_stay_in_cache_on_a_cpu() -> None:
    """Blocks of 4M scores for vectors of up to 256 dimensions on a CPU (where the arg-max's memory
    traffic sets the time), 64M otherwise (where the multiply-adds do)."""
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    assert scores_module.score_rows(10_000, 128, cpu) == (1 << 22) // 10_000
    assert scores_module.score_rows(10_000, 768, cpu) == (1 << 26) // 10_000
    assert scores_module.score_rows(10_000, 128, gpu) == (1 << 26) // 10_000
    assert scores_module.score_rows(1 << 23, 128, cpu) == 1


def test_edit_substitute_force_drop_scale_replace() -> None:
    torch.manual_seed(7)
    cb = Codebook(12, 8, k=2)
    x = torch.randn(5, 8)
    natural = cb(x).ids
    banned = torch.zeros(1, 12, dtype=torch.bool)
    banned[0, natural[0, 0, 0]] = True
    sub = cb(x, CodeEdit(scores=(ScoreEdit(banned, float("-inf")),))).ids
    assert not (sub == natural[0, 0, 0]).any()
    assert (sub >= 0).all()
    forced = torch.zeros(1, 12, dtype=torch.bool)
    forced[0, 11] = True
    mask = torch.tensor([False, True, False, False, True])
    ids = cb(x, CodeEdit(scores=(ScoreEdit(forced, float("inf"), tokens=mask),))).ids
    assert ((ids == 11).any(-1).flatten() == mask | (natural == 11).any(-1).flatten()).all()
    zero = torch.ones(1, 12)
    zero[0, natural[0, 0, 0]] = 0.0
    dropped = cb(x, CodeEdit(weights=(WeightEdit(zero, drop=True),)))
    assert dropped.ids[0, 0, 0] == -1
    assert torch.allclose(dropped.output[0], cb.vectors[0, natural[0, 0, 1]] / 2, atol=1e-6)
    new = torch.full((5, 1, 2), 3)
    rmask = torch.tensor([[True], [False], [False], [False], [False]])
    replaced = cb(x, CodeEdit(replace=(ReplaceEdit(rmask, new),))).ids
    assert replaced[0].tolist() == [[3, 3]] and torch.equal(replaced[1:], natural[1:])


def test_kmeans_init_beats_random_codes() -> None:
    torch.manual_seed(8)
    centers = torch.randn(16, 8) * 4
    x = centers[torch.randint(0, 16, (2000,))] + 0.1 * torch.randn(2000, 8)
    cb = Codebook(16, 8, similarity="euclidean")
    random_loss = cb(x).loss
    cb.kmeans_init(x, iters=15, generator=torch.Generator().manual_seed(0), match_scale=False)
    after = cb(x).loss
    assert after is not None and random_loss is not None
    assert float(after.detach()) < 0.2 * float(random_loss.detach())


def test_kmeans_match_scale_keeps_activations_in_place() -> None:
    """With match_scale the codebook's output lands near the raw activations, not at unit scale."""
    torch.manual_seed(10)
    centers = torch.randn(64, 16) * 5 + 2
    x = centers[torch.randint(0, 64, (3000,))] + 0.1 * torch.randn(3000, 16)
    cb = Codebook(256, 16, groups=2)
    cb.kmeans_init(x, iters=10, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = cb(x).output
        unscaled = Codebook(256, 16, groups=2)
        unscaled.kmeans_init(x, iters=10, generator=torch.Generator().manual_seed(0), match_scale=False)
        plain = unscaled(x).output
    error = float((out - x).norm() / x.norm())
    # one gain per group cannot undo the per-token spread LayerNorm removes, but it halves the error
    assert error < 0.5
    assert error < 0.6 * float((plain - x).norm() / x.norm())


def test_usage_counters_and_revival() -> None:
    torch.manual_seed(9)
    cb = Codebook(40, 8, k=1, revive_after=2).train()
    x = torch.randn(16, 8)
    for _ in range(3):
        cb(x)
        dead = cb.update_usage(cb.take_step_hits())
    used = set(cb(x).ids.flatten().tolist())
    cb.take_step_hits()
    assert int(dead.sum()) == 40 - len(used)
    assert int((cb.hits[0] > 0).sum()) == len(used)
    inputs = cb.take_last_inputs()
    assert inputs is not None
    revived = cb.revive(dead, inputs)
    assert revived == 40 - len(used)
    assert int(cb.revived.sum()) == revived
    assert int(cb.dead_codes().sum()) == 0
    # every revived code now sits within noise of some current input
    fresh = cb.vectors.detach()[0, dead[0]]
    nearest = torch.cdist(fresh, inputs[:, 0]).min(-1).values
    assert float(nearest.max()) < 1e-2


@pytest.mark.parametrize("codes", [7, 100, 1000, 1024, 10_000])
def test_blocked_argmax_equals_argmax_with_ties_and_nan(codes: int) -> None:
    from cbwidgets.codebook import argmax_last

    scores = torch.randn(3, 50, codes, generator=torch.Generator().manual_seed(codes))
    scores[0, :, codes // 3] = 100.0  # a tie: the first of the two is the answer
    scores[0, :, -1] = 100.0
    scores[1, 5, codes // 2] = float("nan")  # NaN counts as the largest, as in torch.argmax
    scores[2, 7] = 0.0  # a whole row tied
    assert torch.equal(argmax_last(scores), scores.argmax(-1))
