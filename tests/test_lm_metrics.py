"""lm_metrics against a hand computation; cached-activation fitting on a tiny model."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cbwidgets import CodebookError
from cbwidgets.cached_fit import fit_cached
from cbwidgets.lm_metrics import lm_metrics
from tests.tiny import tiny_data, tiny_model


def test_loss_and_accuracy_are_the_token_average_over_documents_of_any_length() -> None:
    model = tiny_model("llama", num_codes=16, k=2)
    docs = [tiny_data(1, 9, seed=1)[0].tolist(), tiny_data(1, 5, seed=2)[0].tolist()]
    table = lm_metrics(model, docs, modes=("codebooks", "disabled")).set_index("mode")
    for mode in ("codebooks", "disabled"):
        total, correct, count = 0.0, 0, 0
        for doc in docs:
            ids = torch.tensor([doc])
            with torch.no_grad(), model.codebooks_disabled() if mode == "disabled" else torch.no_grad():
                logits = model(ids).logits[0, :-1]
            total += float(F.cross_entropy(logits, ids[0, 1:], reduction="sum"))
            correct += int((logits.argmax(-1) == ids[0, 1:]).sum())
            count += len(doc) - 1
        assert table.loc[mode, "loss"] == pytest.approx(total / count, rel=1e-5)
        assert table.loc[mode, "accuracy"] == correct / count and table.loc[mode, "tokens"] == count
    assert table.loc["codebooks", "loss"] != table.loc["disabled", "loss"]
    with pytest.raises(CodebookError, match="no document has two or more tokens"):
        lm_metrics(model, [[1]])
    with pytest.raises(CodebookError, match="mode='snap' is not valid"):
        lm_metrics(model, docs, modes=("snap",))


def test_fit_cached_lowers_reconstruction_and_leaves_the_model_alone() -> None:
    model = tiny_model("llama", attach=False)
    before = [p.detach().clone() for p in model.model.parameters()]
    model.attach("layers.1.attn_preproj", num_codes=16, k=2)
    history = fit_cached(model, tiny_data(16, 16), steps=60, batch_tokens=128)
    curve = history["reconstruction"].tolist()
    assert curve[-1] < curve[0] and list(history["step"]) == [1, 50, 60]
    assert all(torch.equal(a, b) for a, b in zip(before, model.model.parameters(), strict=True))
    with pytest.raises(CodebookError, match="no codebooks attached"):
        fit_cached(tiny_model("llama", attach=False), tiny_data(2, 8))
