"""TokFSM metrics: checked against known answers (an oracle, hand-built codes) and run on real models."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from transformers import GPTNeoXConfig

from cbwidgets import CodebookModel, CodebookNames, Codes
from cbwidgets.errors import CodebookError
from cbwidgets.tokfsm import (
    TokFSM,
    code_purity,
    codes_vs_neurons,
    compare_to_reference,
    first_transition_accuracy,
    next_state_probs,
    patching_divergence,
    transition_accuracy,
)

FSM = TokFSM(num_states=12, num_edges=3, base=4, digits=2, seed=7)


def _model(attach: bool = True) -> CodebookModel:
    config = GPTNeoXConfig(
        num_hidden_layers=2,
        hidden_size=32,
        num_attention_heads=4,
        intermediate_size=64,
        vocab_size=FSM.vocab_size,
        max_position_embeddings=64,
        bos_token_id=FSM.bos_id,
        eos_token_id=FSM.bos_id,
    )
    model = CodebookModel.from_config(config, seed=0).eval()
    if attach:
        model.attach(["attn_preproj", "mlp"], num_codes=16, k=1)
    return model


class Oracle:
    """Predicts the true next-digit distribution of BOS + state; stands in for a perfect model."""

    def __call__(self, rows: torch.Tensor) -> SimpleNamespace:
        t = torch.tensor(FSM.transition_matrix(), dtype=torch.float32)
        t = torch.nn.functional.pad(t, (0, FSM.base**2 - FSM.num_states)).view(-1, FSM.base, FSM.base)
        logits = torch.full((*rows.shape, FSM.vocab_size), -30.0)
        for i, row in enumerate(rows.tolist()):
            state = row[1] * FSM.base + row[2]
            logits[i, 2, : FSM.base] = t[state].sum(1).clamp_min(1e-12).log()
            if len(row) > 3:
                cond = t[state, row[3]]
                logits[i, 3, : FSM.base] = (cond / cond.sum().clamp_min(1e-12)).clamp_min(1e-12).log()
        return SimpleNamespace(logits=logits)


def test_next_state_probs_match_the_oracle_truth() -> None:
    probs = next_state_probs(Oracle(), FSM)  # type: ignore[arg-type]
    assert torch.allclose(probs, torch.tensor(FSM.transition_matrix(), dtype=torch.float32), atol=1e-5)
    frame = first_transition_accuracy(Oracle(), FSM)  # type: ignore[arg-type]
    assert frame.accuracy.mean() == 1.0 and len(frame) == FSM.num_states
    assert np.allclose(frame.mass_on_neighbours, 1.0, atol=1e-4)


def test_next_state_probs_on_a_real_model_equal_direct_products() -> None:
    model = _model()
    probs = next_state_probs(model, FSM)
    state, target = 5, 9
    seq = torch.tensor([[FSM.bos_id, *FSM.state_tokens(state), *FSM.state_tokens(target)]])
    with torch.no_grad():
        logp = model(seq).logits.log_softmax(-1)[0]
    d1, d2 = FSM.state_tokens(target)
    direct = float((logp[2, d1] + logp[3, d2]).exp())
    assert probs[state, target].item() == pytest.approx(direct, rel=1e-5)
    assert float(probs.sum(1).max()) <= 1.0 + 1e-5


def test_states_are_parsed_from_digits() -> None:
    assert FSM.state_ends(9).tolist() == [2, 4, 6, 8]  # BOS, then states of 2 digits
    tokens = torch.tensor([[0, 1, 2, 3, 3, 3, FSM.bos_id, 0]])
    assert FSM.parse_states(tokens).tolist() == [[1, 11, -1, -1]]  # 15 is not a state of 12, BOS is not a digit


def test_transition_accuracy_counts_edges_on_a_real_model() -> None:
    frame = transition_accuracy(_model(), FSM, num_samples=6, new_states=4, seed=1)
    assert len(frame) == 6 and (frame.transitions == 4).all()
    assert ((frame.valid >= 0) & (frame.valid <= 4)).all()
    assert np.allclose(frame.accuracy, frame.valid / frame.transitions)


class FixedCodes:
    """A stand-in model whose codes are a function of the tokens, to check purity by hand."""

    def __init__(self, rule: str) -> None:
        self.rule = rule

    def __call__(self, ids: torch.Tensor) -> SimpleNamespace:
        v = FSM.vocab_size
        bigram = torch.zeros_like(ids)
        bigram[:, 1:] = ids[:, :-1] * v + ids[:, 1:]
        codes = bigram if self.rule == "bigram" else torch.zeros_like(ids)
        return SimpleNamespace(
            codes=Codes(codes[..., None, None], CodebookNames.from_labels(["0.mlp"], ["layers.0.mlp"]))
        )


def test_code_purity_in_walks_by_hand() -> None:
    pure = code_purity(FixedCodes("bigram"), FSM, on="walks", num_sequences=32, length=20)  # type: ignore[arg-type]
    assert pure.loc[0, "bigram_purity"] == 1.0
    assert pure.loc[0, "trigram_purity"] < 1.0  # a bigram code sees several trigrams
    mixed = code_purity(FixedCodes("constant"), FSM, on="walks", num_sequences=32, length=20)  # type: ignore[arg-type]
    assert mixed.loc[0, "bigram_purity"] == 0.0 and mixed.loc[0, "active_codes"] == 1


def test_code_purity_on_inputs_by_hand() -> None:
    """The paper's measure: one code per state at BOS + state is pure; a code for the last two
    tokens cannot tell the trigrams ``s1 s2 d`` of different first digits s1 apart."""
    pure = code_purity(FixedCodes("bigram"), FSM)  # type: ignore[arg-type]
    row = pure.iloc[0]
    assert row.bigram_purity == 1.0 and row.bigram_codes == FSM.num_states
    trigrams = sum(len({FSM.state_tokens(int(n))[0] for n in FSM.edges[s]}) for s in range(FSM.num_states))
    pairs = {(FSM.state_tokens(s)[1], FSM.state_tokens(int(n))[0]) for s in range(FSM.num_states) for n in FSM.edges[s]}
    assert row.trigram_codes == len(pairs) < trigrams  # one code per (second digit, next digit)
    assert 0.0 < row.trigram_purity < 1.0
    mixed = code_purity(FixedCodes("constant"), FSM)  # type: ignore[arg-type]
    assert mixed.loc[0, "bigram_purity"] == 0.0 and mixed.loc[0, "bigram_codes"] == 1
    with pytest.raises(CodebookError, match="'inputs'"):
        code_purity(FixedCodes("constant"), FSM, on="states")  # type: ignore[arg-type]


def test_code_purity_on_a_real_model() -> None:
    for on in ("inputs", "walks"):
        frame = code_purity(_model(), FSM, on=on, num_sequences=16, length=20, min_firings=1)
        assert list(frame.codebook) == ["0.0", "0.1", "0.2", "0.3", "0.mlp", "1.0", "1.1", "1.2", "1.3", "1.mlp"]
        assert frame.bigram_purity.between(0, 1).all() and frame.trigram_purity.between(0, 1).all()


def test_patching_divergence_on_a_real_model() -> None:
    model = _model()
    frame = patching_divergence(model, FSM, pairs=40, max_prefix=6).set_index("group")
    assert frame.at["none", "normalized"] == pytest.approx(1.0)
    assert set(frame.index) == {"none", "layer 0 attention", "layer 1 MLP", "all attention", "all MLP", "all"}
    assert (frame.jsd >= 0).all() and (frame.jsd <= 1).all()  # bits
    # every code of the last token patched: what is left of the target is its last token's embedding
    assert frame.at["all", "normalized"] < frame.at["all MLP", "normalized"]


def test_codes_vs_neurons_on_a_real_model() -> None:
    frame = codes_vs_neurons(_model(), FSM, num_sequences=32, length=21)
    assert set(frame.columns) >= {"state", "code", "code_precision", "code_recall", "neuron", "neuron_precision"}
    assert frame.code_precision.between(0, 1).all() and frame.neuron_precision.between(0, 1).all()
    assert frame.code.str.startswith("1.mlp.").all()


def test_compare_to_reference_table() -> None:
    table = compare_to_reference(_model(), FSM)
    assert {"metric", "model", "reference"} <= set(table.columns)
    assert table.loc[0, "metric"] == "first-transition accuracy" and table.loc[0, "reference"] == 0.975
    assert "patching JSD, all MLP" in set(table.metric)
    rows = table.set_index("metric")
    assert rows.at["patching JSD, all MLP", "better"] == "lower"
    assert rows.at["purity 1.mlp bigram", "better"] == "higher" and "purity 1.mlp bigram, in walks" in rows.index
    first = rows.loc["first-transition accuracy"]
    assert first.meets == (round(first.model, 3) >= 0.975)
    assert rows.at["transition accuracy (samples)", "meets"] is None  # no reference figure


def test_meeting_the_reference_is_judged_at_its_printed_precision() -> None:
    from cbwidgets.tokfsm.metrics import _meets

    assert _meets(0.04, 0.0, "lower") and not _meets(0.06, 0.0, "lower")  # "~0.0": one decimal
    assert _meets(0.7149, 0.71, "lower") and not _meets(0.716, 0.71, "lower")
    assert _meets(0.9751, 0.975, "higher") and not _meets(0.9744, 0.975, "higher")
    assert _meets(0.5, float("nan"), "higher") is None and _meets(0.5, 0.7, None) is None


def test_codes_vs_neurons_needs_an_mlp_codebook() -> None:
    model = _model(attach=False)
    model.attach("attn_preproj", num_codes=16)
    with pytest.raises(CodebookError, match=r"layers\.1\.mlp"):
        codes_vs_neurons(model, FSM)


def test_patching_divergence_equals_a_patch_done_by_hand() -> None:
    """Two states: the source is the other one. The function's figure (the walk run once, the last
    token patched over its cached keys and values) equals a whole patched forward done here."""
    two = TokFSM(num_states=2, num_edges=1, base=4, digits=2, seed=1)
    model = _model()
    frame = patching_divergence(model, two, pairs=1, max_prefix=0, groups={"MLPs": "mlp"}).set_index("group")
    rows = torch.tensor([[two.bos_id, *two.state_tokens(s)] for s in range(2)])
    with torch.no_grad():
        clean = model(rows)
        probs = clean.logits[:, -1].softmax(-1)
        by_hand = []
        for a in range(2):
            source = Codes(clean.codes.ids[[1 - a]], clean.codes.codebooks)
            with model.patch(source, "mlp", positions=[2]):
                patched = model(rows[[a]]).logits[0, -1].softmax(-1)
            m = 0.5 * (patched + probs[1 - a])
            kl = lambda p, q: float((p * (p / q).log2()).sum())  # noqa: E731
            by_hand.append(0.5 * kl(patched, m) + 0.5 * kl(probs[1 - a], m))
    assert min(abs(frame.at["MLPs", "jsd"] - v) for v in by_hand) < 1e-5
    assert frame.at["none", "jsd"] > 0
