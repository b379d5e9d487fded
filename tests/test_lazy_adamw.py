"""LazyRowsAdamW: AdamW on the rows that have a gradient, nothing on the rest; and train(lazy_codes=True)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from cbwidgets import CodebookModel
from cbwidgets.lazy_adamw import LazyRowsAdamW
from cbwidgets.train import TrainConfig, train
from tests.tiny import tiny_data, tiny_model


def _pair(lazy_group: dict) -> tuple[list[torch.nn.Parameter], torch.optim.Optimizer, torch.optim.Optimizer]:
    torch.manual_seed(0)
    codes = torch.nn.Parameter(torch.randn(2, 50, 8))
    bias = torch.nn.Parameter(torch.randn(5))
    twins = [torch.nn.Parameter(p.detach().clone()) for p in (codes, bias)]
    dense = torch.optim.AdamW(
        [{"params": [codes], "weight_decay": 0.1}, {"params": [bias]}], lr=1e-2, betas=(0.9, 0.95)
    )
    lazy = LazyRowsAdamW(
        [{"params": [twins[0]], "weight_decay": 0.1, **lazy_group}, {"params": [twins[1]]}], lr=1e-2, betas=(0.9, 0.95)
    )
    return [codes, bias, *twins], dense, lazy


def test_rows_with_a_gradient_get_exactly_adamw() -> None:
    (codes, bias, codes2, bias2), dense, lazy = _pair({"lazy_rows": True})
    for _ in range(5):  # every row has a gradient every step: the two must agree bit for bit
        g, gb = torch.randn(2, 50, 8), torch.randn(5)
        codes.grad, codes2.grad, bias.grad, bias2.grad = g.clone(), g.clone(), gb.clone(), gb.clone()
        dense.step()
        lazy.step()
    assert torch.equal(codes, codes2) and torch.equal(bias, bias2)
    assert torch.equal(dense.state[codes]["exp_avg_sq"], lazy.state[codes2]["exp_avg_sq"])


def test_rows_without_a_gradient_keep_value_and_moments() -> None:
    (codes, _, codes2, _), dense, lazy = _pair({"lazy_rows": True})
    codes.grad, codes2.grad = torch.ones(2, 50, 8), torch.ones(2, 50, 8)
    dense.step()
    lazy.step()
    g = torch.zeros(2, 50, 8)
    g[0, 3], g[1, 7] = 1.0, -1.0
    before, moments = codes2.detach().clone(), lazy.state[codes2]["exp_avg"].clone()
    codes.grad, codes2.grad = g.clone(), g.clone()
    dense.step()
    lazy.step()
    moved = (codes2 != before).any(-1)
    assert moved.nonzero().tolist() == [[0, 3], [1, 7]]
    kept = ~moved
    assert torch.equal(lazy.state[codes2]["exp_avg"][kept], moments[kept])
    assert (codes != before).any(-1).all()  # dense AdamW moves every row on its momentum
    assert torch.equal(codes[~kept], codes2[~kept])  # the chosen rows: the same update as AdamW


def test_state_loads_into_plain_adamw_and_bad_options_are_refused() -> None:
    (_, _, codes2, bias2), _, lazy = _pair({"lazy_rows": True})
    codes2.grad, bias2.grad = torch.ones(2, 50, 8), torch.ones(5)
    lazy.step()
    plain = torch.optim.AdamW([{"params": [codes2], "weight_decay": 0.1}, {"params": [bias2]}])
    plain.load_state_dict(lazy.state_dict())
    assert torch.equal(plain.state[codes2]["exp_avg"], lazy.state[codes2]["exp_avg"])
    with pytest.raises(ValueError, match="amsgrad"):
        LazyRowsAdamW([codes2], amsgrad=True)


def _watch(model: CodebookModel) -> tuple[list[dict[str, tuple[torch.Tensor, torch.Tensor]]], Callable[[dict], None]]:
    """Snapshots of every codebook's vectors and hit counters: now, and after each logged step."""

    def snapshot() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        return {name: (book.vectors.detach().clone(), book.hits.clone()) for name, book in model.attached.items()}

    seen = [snapshot()]
    return seen, lambda _: seen.append(snapshot())


def _momentum_moves(seen: list[dict[str, tuple[torch.Tensor, torch.Tensor]]]) -> int:
    """Codes that moved in a step no token chose them in; fails if a chosen code did not move."""
    moves = 0
    for before, after in itertools.pairwise(seen):
        for name, (vectors, hits) in after.items():
            moved = (vectors != before[name][0]).any(-1)
            chosen = hits > before[name][1]
            assert chosen.any() and not chosen.all()
            assert not (chosen & ~moved).any(), name
            moves += int((moved & ~chosen).sum())
    return moves


@pytest.mark.parametrize("lazy", [True, False])
def test_train_with_lazy_codes_moves_only_the_codes_each_step_chose(lazy: bool) -> None:
    """The real path: a transformers model trained 3 steps, watched after each. Lazy: a code moves
    in a step exactly when a token chose it in that step. Dense AdamW (the check can fail): a code
    chosen earlier keeps moving on its momentum."""
    model = tiny_model("gpt_neox", num_codes=256, revive_after=None)
    seen, watch = _watch(model)
    config = TrainConfig(steps=3, batch_size=8, log_every=1, lazy_codes=lazy, progress=False)
    train(model, tiny_data(), config, callbacks=[watch])
    assert len(seen) == 4
    assert (_momentum_moves(seen) == 0) if lazy else (_momentum_moves(seen) > 0)


def test_resuming_a_dense_run_with_lazy_codes_is_lazy(tmp_path: Path) -> None:
    model = tiny_model("gpt_neox", num_codes=256, revive_after=None)
    dense = TrainConfig(steps=2, batch_size=8, progress=False, checkpoint_every=2, checkpoint_dir=str(tmp_path))
    train(model, tiny_data(), dense)
    seen, watch = _watch(model)
    lazy = replace(dense, steps=4, log_every=1, lazy_codes=True)
    train(model, tiny_data(), lazy, callbacks=[watch], resume=True)
    assert len(seen) == 3 and _momentum_moves(seen) == 0
