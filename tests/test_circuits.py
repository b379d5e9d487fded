"""Code circuits: exact ablation effects against one forward per code, the gradient estimate against
finite differences, edges against a hand-made ablation, and the TokFSM known answer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cbwidgets import AblateEach, CodebookError, Scale
from cbwidgets.circuits import CodeMargin, LogitDiff, NextToken, ablation_effects, attribution, code_graph
from cbwidgets.tokfsm import TokFSM, load_default
from cbwidgets.tokfsm.state_codes import state_codes
from tests.tiny import tiny_data, tiny_model


def _value(model, ids, target, out=None):  # type: ignore[no-untyped-def]
    """The target computed from scratch on one full forward (no cache, no batching)."""
    with torch.no_grad():
        out = out or model(ids, capture=isinstance(target, CodeMargin))
    if isinstance(target, CodeMargin):
        return _margin_by_hand(model, out, target)
    logits = out.logits[0, target.position].double()
    if isinstance(target, LogitDiff):
        return float(logits[target.token] - logits[target.other])
    if target.measure == "prob":
        return float(logits.softmax(-1)[target.token])
    if target.measure == "logprob":
        return float(logits.log_softmax(-1)[target.token])
    return float(logits[target.token])


def _margin_by_hand(model, out, target):  # type: ignore[no-untyped-def]
    index, code = model.names.parse_code(target.code)
    name = model.names.codebooks[index]
    book = model.attached[name.site]
    x = out.inputs[name.site][target.position]
    xn = book.normalize(x[None].float())[0, name.group].detach().double()
    vectors = book.vectors.detach()[name.group].double()
    if book.spec.similarity == "euclidean":
        scores = -0.5 * ((vectors - xn) ** 2).sum(-1)
    elif book.spec.similarity == "cosine":
        scores = vectors @ xn / vectors.norm(dim=-1)
    else:
        scores = vectors @ xn
    others = torch.cat([scores[:code], scores[code + 1 :]])
    return float(scores[code] - others.sort(descending=True).values[book.k - 1])


def _every_fired_code(model, ids, last):  # type: ignore[no-untyped-def]
    codes = model(ids).codes.ids[0]
    for position in range(last + 1):
        for index in range(codes.shape[1]):
            for code in codes[position, index].tolist():
                if code >= 0:
                    yield position, model.names.code_name(index, code)


@pytest.mark.parametrize("mode", ["substitute", "drop"])
def test_ablate_each_row_equals_its_own_ablation(mode: str) -> None:
    model = tiny_model("gpt_neox", num_codes=16, k=2)
    x = tiny_data(1, 12)
    natural = model(x).codes
    codes = natural.ids[0]
    chosen = [
        (book, int(natural[book][0, p, slot]), p)
        for book, p, slot in (("0.1", 3, 0), ("1.mlp", 7, 1), ("0.mlp", 11, 0))
    ]
    chosen[2] = (*chosen[2][:2], -1)  # the last token, counted from the end
    refs = [(book, code) for book, code, _ in chosen]
    with torch.no_grad(), model.intervene(AblateEach(refs, [p for *_, p in chosen], mode=mode)):
        batched = model(x.expand(3, -1))
    for row, (book, code, position) in enumerate(chosen):
        with torch.no_grad(), model.ablate((book, code), positions=[position], mode=mode):
            alone = model(x)
        assert torch.allclose(batched.logits[row], alone.logits[0], atol=1e-5)
        assert torch.equal(batched.codes.ids[row], alone.codes.ids[0])
        assert not torch.equal(alone.codes.ids[0], codes)  # the code was there and went away


def test_ablate_each_says_what_is_wrong() -> None:
    model = tiny_model("gpt_neox", num_codes=16)
    with pytest.raises(CodebookError, match="one position and one row per code"):
        AblateEach(["0.mlp.1", "0.mlp.2"], [3])
    with pytest.raises(CodebookError, match="not None"):
        AblateEach(["0.mlp.1"], None)
    with pytest.raises(CodebookError, match="rows are batch indices"):
        AblateEach(["0.mlp.1"], [2], rows=[-1])
    with (
        pytest.raises(CodebookError, match="batch has 2 rows"),
        model.intervene(AblateEach(["0.mlp.1"], [2], rows=[5])),
    ):
        model(tiny_data(2, 8))
    with pytest.raises(CodebookError, match="mode"):
        AblateEach(["0.mlp.1"], [2], mode="zero")
    rows = AblateEach(["0.mlp.1"], np.array([2]), rows=torch.tensor([0]))  # library integers are taken
    assert rows.positions == (2,) and rows.rows == (0,)


@pytest.mark.parametrize("family", ["gpt2", "gpt_neox", "llama"])
@pytest.mark.parametrize("mode", ["substitute", "drop"])
@pytest.mark.parametrize("batch_size", [7, 64])
def test_exact_effects_equal_one_forward_per_code(family: str, mode: str, batch_size: int) -> None:
    model = tiny_model(family, num_codes=16, k=2)
    ids = tiny_data(1, 10, seed=3)
    target = NextToken(5, position=8, measure="logprob")
    clean = _value(model, ids, target)
    # 7: a position's rows in chunks; 64: the rows of several positions in one forward
    found = ablation_effects(model, ids, target, mode=mode, batch_size=batch_size)
    assert found.attrs["clean"] == pytest.approx(clean, abs=1e-5)
    got = {(row.position, row.code): row.effect for row in found.itertuples()}
    assert len(got) == len(found)
    skipped = 0
    for position, code in _every_fired_code(model, ids, ids.shape[1] - 1):
        with torch.no_grad(), model.ablate(code, positions=[position], mode=mode):
            naive = clean - _value(model, ids, target)
        if (position, code) in got:
            assert got[position, code] == pytest.approx(naive, abs=1e-4), (position, code)
        else:  # not run: it cannot reach the target, and indeed changes nothing
            skipped += 1
            assert abs(naive) < 1e-5, (position, code, naive)
    assert skipped > 0 and (found.effect.abs() > 1e-3).any()
    assert list(found.effect.abs()) == sorted(found.effect.abs(), reverse=True)


@pytest.mark.parametrize(
    "target",
    [NextToken(3, measure="prob"), NextToken(3), LogitDiff(3, 7, position=6), CodeMargin("1.mlp.0", 7)],
    ids=["prob", "logit", "logit-diff", "code-margin"],
)
def test_every_target_kind_is_exact(target) -> None:  # type: ignore[no-untyped-def]
    model = tiny_model("gpt_neox", num_codes=16, k=1)
    ids = tiny_data(1, 9, seed=5)
    if isinstance(target, CodeMargin):  # the code that fires there, so its margin is positive
        fired = int(model(ids).codes["1.mlp"][0, 7, 0])
        target = CodeMargin(("1.mlp", fired), 7)
    clean = _value(model, ids, target)
    found = ablation_effects(model, ids, target, mode="drop")
    assert found.attrs["clean"] == pytest.approx(clean, abs=1e-4)
    if isinstance(target, CodeMargin):
        assert clean > 0
        assert found.position.max() == 7 and "1.mlp" not in set(found[found.position < 7].codebook)
    for row in found.head(5).itertuples():
        with torch.no_grad(), model.ablate(row.code, positions=[row.position], mode="drop"):
            assert row.effect == pytest.approx(clean - _value(model, ids, target), abs=1e-4)


def test_a_code_that_does_not_fire_has_a_negative_margin() -> None:
    model = tiny_model("gpt_neox", num_codes=16, k=1)
    ids = tiny_data(1, 9, seed=5)
    fired = int(model(ids).codes["1.mlp"][0, 4, 0])
    other = (fired + 1) % 16
    found = ablation_effects(model, ids, CodeMargin(("1.mlp", other), 4))
    assert found.attrs["clean"] < 0
    assert found.attrs["clean"] == pytest.approx(_value(model, ids, CodeMargin(("1.mlp", other), 4)), abs=1e-4)


def test_gradient_estimate_matches_a_finite_difference() -> None:
    model = tiny_model("gpt_neox", num_codes=16, k=2)
    ids = tiny_data(1, 9, seed=5)
    target = NextToken(4, measure="logit")
    estimates = attribution(model, ids, target, mode="drop")
    clean = _value(model, ids, target)
    step = 1e-3
    checked = 0
    for row in estimates.itertuples():
        if row.position != 8 or row.layer != 1:
            continue  # the last layer at the last token: nothing discrete lies between it and the logit
        with torch.no_grad(), model.intervene(Scale(row.code, 1 - step, positions=[row.position])):
            finite = (clean - _value(model, ids, target)) / step
        assert row.effect == pytest.approx(finite, rel=0.02, abs=1e-3), row.code
        checked += 1
    assert checked >= 4
    exact = ablation_effects(model, ids, target, mode="drop")
    assert set(zip(exact.position, exact.code, strict=True)) == set(
        zip(estimates.position, estimates.code, strict=True)
    )


def test_graph_edges_are_ablations_of_the_source_on_the_target_margin() -> None:
    model = tiny_model("gpt_neox", num_codes=16, k=1)
    ids = tiny_data(1, 10, seed=2)
    nodes, edges = code_graph(model, ids, NextToken(6), nodes=8, min_edge=0.01)
    assert len(nodes) == 8 and edges.attrs["min_edge"] == 0.01
    assert len(edges) > 0 and (edges.effect.abs() >= 0.01).all()
    assert set(edges.source) | set(edges.target) <= set(nodes.code)
    for edge in edges.head(3).itertuples():
        margin = CodeMargin(edge.target, edge.target_position)
        before = _value(model, ids, margin)
        with torch.no_grad(), model.ablate(edge.source, positions=[edge.source_position]):
            after = _value(model, ids, margin)
        assert edge.effect == pytest.approx(before - after, abs=1e-4)


def test_bad_targets_and_prompts_say_what_to_do() -> None:
    model = tiny_model("gpt_neox", num_codes=16)
    ids = tiny_data(1, 6)
    with pytest.raises(CodebookError, match="outside the prompt of 6 tokens"):
        ablation_effects(model, ids, NextToken(2, position=6))
    with pytest.raises(CodebookError, match="outside this model's vocabulary"):
        ablation_effects(model, ids, NextToken(99))
    with pytest.raises(CodebookError, match="not a target"):
        ablation_effects(model, ids, "the next token")  # type: ignore[arg-type]
    with pytest.raises(CodebookError, match="one prompt"):
        ablation_effects(model, tiny_data(2, 6), NextToken(2))
    with pytest.raises(CodebookError, match="mode"):
        ablation_effects(model, ids, NextToken(2), mode="zero")
    with pytest.raises(CodebookError, match="measure"):
        NextToken(2, measure="odds")  # type: ignore[arg-type]
    found = ablation_effects(model, ids, NextToken(np.int64(2), position=torch.tensor(-2)))  # library integers
    assert found.position.max() == 4


def test_tokfsm_the_strongest_state_code_is_the_current_state() -> None:
    """Known answer: after a walk, of the codes that stand for one state, the one that matters most
    to the model's prediction stands for the state the walk ended in, at its last digit, or at its
    first digit where that digit already decides the state (one out-neighbour of the state before
    starts with it)."""
    fsm = TokFSM()
    model = load_default()
    table, _ = state_codes(model, fsm)
    pure = table[(table.precision >= 0.9) & (table.firings >= 3)].set_index("code").state
    walks = fsm.sample(6, 1 + 2 * 10, seed=11)
    seen = set()
    for mode in ("substitute", "drop"):
        for walk in walks:
            prompt = walk[None]
            before, state = (int(s) for s in fsm.parse_states(prompt[:, 1:])[0, -2:])
            decided = [int(s) // fsm.base for s in fsm.edges[before]].count(state // fsm.base) == 1
            predicted = int(model(prompt).logits[0, -1].argmax())
            found = ablation_effects(model, prompt, NextToken(predicted, measure="logprob"), mode=mode)
            strongest = found[found.code.isin(pure.index)].iloc[0]
            places = {20, 19} if decided else {20}
            assert pure[strongest.code] == fsm.state_text(state) and strongest.position in places, (
                mode,
                fsm.state_text(state),
                strongest.code,
                strongest.position,
            )
            seen.add(int(strongest.position))
    assert 20 in seen  # mostly the last digit


def test_effects_inside_an_enclosing_intervention_are_measured_under_it() -> None:
    """An outer drop empties slots (-1) in the clean run; those are scored again, never reused."""
    model = tiny_model("gpt_neox", num_codes=16, k=2)
    ids = tiny_data(1, 9, seed=4)
    busiest = int(model(ids).codes["0.mlp"][0].flatten().mode().values)
    target = NextToken(3, measure="logprob")
    with torch.no_grad(), model.ablate(("0.mlp", busiest), mode="drop"):
        assert (model(ids).codes["0.mlp"] == -1).any()
        clean = _value(model, ids, target)
        found = ablation_effects(model, ids, target)
        for row in found.itertuples():
            with model.ablate(row.code, positions=[row.position]):
                assert row.effect == pytest.approx(clean - _value(model, ids, target), abs=1e-4)


def test_known_codes_belong_to_one_forward_shape() -> None:
    from cbwidgets.interventions import SiteShape, known_codes

    model = tiny_model("gpt_neox", num_codes=16, k=1)
    shapes = {name: SiteShape(cb.groups, cb.num_codes, cb.k) for name, cb in model.attached.items()}
    x = tiny_data(2, 5)
    natural = model(x).codes["1.mlp"]  # (2, 5, 1)
    mask = torch.ones(2, 5, 1, dtype=torch.bool)
    plan = known_codes(shapes, {"layers.1.mlp": (mask, (natural[..., None] + 1) % 16)})
    with torch.no_grad(), model.intervene(plan):
        assert torch.equal(model(x).codes["1.mlp"], (natural + 1) % 16)  # used as given, never scored
        with pytest.raises(CodebookError, match="belong to one forward"):
            model(tiny_data(1, 5))
    with pytest.raises(CodebookError, match="1 groups and k=1"):
        known_codes(shapes, {"layers.1.mlp": (mask, torch.zeros(2, 5, 1, 2, dtype=torch.long))})


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_logits_to_keep_gives_the_last_positions(family: str) -> None:
    model = tiny_model(family, num_codes=16)
    x = tiny_data(2, 7)
    with torch.no_grad():
        assert torch.allclose(model(x, logits_to_keep=2).logits, model(x).logits[:, -2:], atol=1e-6)


def test_experiments_on_a_training_model_count_no_usage_and_keep_its_mode() -> None:
    model = tiny_model("gpt_neox", num_codes=16, k=1).train()
    ids = tiny_data(1, 8, seed=1)
    ablation_effects(model, ids, NextToken(2))
    attribution(model, ids, NextToken(2))
    assert model.training
    assert all(p.grad is None for p in model.parameters())  # a training run's gradients stay its own
    assert all(cb.take_step_hits().sum() == 0 for cb in model.attached.values())
    model(ids)  # a training forward does count, so the check above can fail
    assert all(cb.take_step_hits().sum() > 0 for cb in model.attached.values())


def test_counts_take_the_librarys_integers_and_refuse_the_rest() -> None:
    model = tiny_model("gpt_neox", num_codes=16, k=1)
    ids = tiny_data(1, 8, seed=2)
    nodes, _ = code_graph(model, ids, NextToken(2), nodes=np.int64(3), min_edge=np.float32(0.0))
    assert len(nodes) == 3
    assert len(ablation_effects(model, ids, NextToken(2), batch_size=torch.tensor(2))) > 0
    for bad in (0, True, "3", 2.5):
        with pytest.raises(CodebookError, match="give a positive integer"):
            code_graph(model, ids, NextToken(2), nodes=bad)  # type: ignore[arg-type]
    with pytest.raises(CodebookError, match="min_edge"):
        code_graph(model, ids, NextToken(2), min_edge="big")  # type: ignore[arg-type]


def test_enclosing_interventions_keep_their_positions_when_the_target_is_earlier() -> None:
    """Positions of an enclosing intervention refer to the whole prompt, also past the target (where
    they change nothing the target sees) and counted from its end."""
    model = tiny_model("gpt_neox", num_codes=16, k=1)
    ids = tiny_data(1, 10, seed=6)
    late = model(ids).codes["1.mlp"][0, 9, 0]
    target = NextToken(3, position=5, measure="logprob")
    plain = ablation_effects(model, ids, target)
    with model.ablate(("1.mlp", late), positions=[9]):  # after the target: no effect on it
        assert np.allclose(ablation_effects(model, ids, target).effect, plain.effect)
        assert attribution(model, ids, target).attrs["clean"] == pytest.approx(plain.attrs["clean"], abs=1e-5)
    early = model(ids).codes["0.mlp"][0, 2, 0]
    with model.ablate(("0.mlp", early), positions=[-8]):  # token 2, counted from the whole prompt's end
        under = ablation_effects(model, ids, target)
        assert under.attrs["clean"] == pytest.approx(_value(model, ids, target), abs=1e-5)
    with model.ablate(("0.mlp", early), positions=[2]):
        assert under.attrs["clean"] == pytest.approx(ablation_effects(model, ids, target).attrs["clean"], abs=1e-6)
