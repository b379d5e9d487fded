"""Interventions: ablate, force, scale, patch; composition, cleanup, generation."""

from __future__ import annotations

import pytest
import torch

from cbwidgets import Ablate, Add, Force, Patch, Scale
from cbwidgets.errors import CodebookError
from tests.tiny import tiny_data, tiny_model


@pytest.fixture()
def model():  # type: ignore[no-untyped-def]
    return tiny_model("gpt_neox", num_codes=16, k=2)


def _run(model, x):  # type: ignore[no-untyped-def]
    with torch.no_grad():
        return model(x)


def _most_common(codes, label):  # type: ignore[no-untyped-def]
    ids = codes[label]
    return int(ids[ids >= 0].flatten().mode().values)


@pytest.mark.parametrize("mode", ["substitute", "drop"])
def test_ablated_code_never_appears(model, mode: str) -> None:  # type: ignore[no-untyped-def]
    x = tiny_data(4, 12)
    natural = _run(model, x).codes
    code = _most_common(natural, "0.2")
    with model.ablate(f"0.2.{code}", mode=mode):
        ablated = _run(model, x).codes
    assert (natural["0.2"] == code).any()
    assert not (ablated["0.2"] == code).any()
    if mode == "substitute":
        assert (ablated["0.2"] >= 0).all()  # k codes stay active
    else:
        assert torch.equal(ablated["0.2"] == -1, natural["0.2"] == code)
    others = [i for i, lab in enumerate(natural.labels) if lab in ("0.0", "0.1", "0.3")]
    assert torch.equal(ablated.ids[:, :, others], natural.ids[:, :, others])  # same layer, other heads untouched


def test_ablation_at_positions_only(model) -> None:  # type: ignore[no-untyped-def]
    x = tiny_data(2, 12)
    natural = _run(model, x).codes
    code = _most_common(natural, "0.mlp")
    where = (natural["0.mlp"] == code).any(-1)
    positions = sorted({int(p) for p in where.nonzero()[:, 1]})[:2]
    with model.ablate(("0.mlp", code), positions=positions):
        ids = _run(model, x).codes["0.mlp"]
    assert not (ids[:, positions] == code).any()
    rest = [p for p in range(12) if p not in positions]
    assert torch.equal(ids[:, rest], natural["0.mlp"][:, rest])


def test_forced_code_appears_exactly_where_forced(model) -> None:  # type: ignore[no-untyped-def]
    x = tiny_data(3, 10)
    natural = _run(model, x).codes
    counts = torch.bincount(natural["1.mlp"].flatten(), minlength=16)
    code = int(counts.argmin())  # the rarest code, ideally never firing on its own
    with model.force(f"1.mlp.{code}", positions=[2, -1]):
        ids = _run(model, x).codes["1.mlp"]
    fires = (ids == code).any(-1)
    expected = (natural["1.mlp"] == code).any(-1)
    expected[:, [2, 9]] = True
    assert torch.equal(fires, expected)


def test_a_forced_codes_value_multiplies_its_vector_where_it_is_forced(model) -> None:  # type: ignore[no-untyped-def]
    """A codebook code has no activation: Force(value=v) is the code forced in and its vector times v,
    as Force with Scale(v) (1: as it is); a value that is not a positive number is refused."""
    x = tiny_data(2, 10)
    code = int(torch.bincount(_run(model, x).codes["1.mlp"].flatten(), minlength=16).argmin())
    name = f"1.mlp.{code}"
    with model.force(name, positions=[2, -1]):
        plain = _run(model, x)
    with model.force(name, positions=[2, -1], value=1.0):
        assert torch.equal(_run(model, x).logits, plain.logits)
    with model.intervene(Force(name, positions=[2, -1]), Scale(name, 3.0, positions=[2, -1])):
        scaled = _run(model, x)
    with model.force(name, positions=[2, -1], value=torch.tensor(3.0)):
        valued = _run(model, x)
    assert torch.equal(valued.codes.ids, plain.codes.ids)
    assert torch.allclose(valued.logits, scaled.logits, atol=1e-6)
    assert not torch.allclose(valued.logits[:, 2:], plain.logits[:, 2:], atol=1e-4)
    assert torch.equal(valued.logits[:, :2], plain.logits[:, :2])
    for bad in (0, -1.0, float("inf"), "2", True):
        with pytest.raises(CodebookError, match=r"value=.* is not valid; give a positive number"):
            Force(name, value=bad)  # type: ignore[arg-type]


def test_scale_one_is_identity_and_zero_equals_drop(model) -> None:  # type: ignore[no-untyped-def]
    x = tiny_data(2, 8)
    natural = _run(model, x)
    code = _most_common(natural.codes, "1.1")
    with model.scale(f"1.1.{code}", 1.0):
        same = _run(model, x)
    assert torch.equal(same.logits, natural.logits)
    with model.scale(f"1.1.{code}", 0.0):
        zero = _run(model, x)
    with model.ablate(f"1.1.{code}", mode="drop"):
        dropped = _run(model, x)
    assert torch.allclose(zero.logits, dropped.logits, atol=1e-6)
    assert not torch.allclose(zero.logits, natural.logits)
    with model.scale(f"1.1.{code}", 2.0):
        doubled = _run(model, x)
    assert not torch.allclose(doubled.logits, natural.logits)


def test_patch_puts_source_codes_in(model) -> None:  # type: ignore[no-untyped-def]
    a, b = tiny_data(1, 10, seed=1), tiny_data(1, 10, seed=2)
    source = _run(model, b).codes
    with model.patch(source, "attn_preproj", positions=[-1]):
        patched = _run(model, a)
    heads = [i for i, lab in enumerate(source.labels) if lab.split(".")[1].isdigit()]
    assert torch.equal(patched.codes.ids[0, -1, heads], source.ids[0, -1, heads])
    with model.patch(source):
        full = _run(model, a)
    assert torch.equal(full.codes.ids, source.ids)


def test_patching_the_last_block_output_fixes_the_prediction() -> None:
    """A codebook on the last block's output is all the unembedding sees: patching it there at the
    last position must give the source's next-token logits exactly."""
    model = tiny_model("llama", attach=False)
    model.attach("layers.1.block", num_codes=16, k=2)
    a, b = tiny_data(1, 10, seed=1), tiny_data(1, 10, seed=2)
    source = _run(model, b)
    natural = _run(model, a)
    with model.patch(source.codes, "layers.1.block", positions=[-1]):
        patched = _run(model, a)
    assert not torch.allclose(natural.logits[0, -1], source.logits[0, -1])
    assert torch.allclose(patched.logits[0, -1], source.logits[0, -1], atol=1e-6)
    assert torch.equal(patched.logits[0, :-1], natural.logits[0, :-1])


def test_patch_from_other_positions(model) -> None:  # type: ignore[no-untyped-def]
    a, b = tiny_data(1, 10, seed=1), tiny_data(1, 6, seed=2)
    source = _run(model, b).codes
    with model.patch(source, ["0.mlp"], positions=[9], source_positions=[5]):
        patched = _run(model, a).codes
    assert torch.equal(patched["0.mlp"][0, 9], source["0.mlp"][0, 5])


def test_nested_contexts_compose_and_unwind(model) -> None:  # type: ignore[no-untyped-def]
    x = tiny_data(2, 10)
    natural = _run(model, x)
    c0 = _most_common(natural.codes, "0.mlp")
    c1 = _most_common(natural.codes, "1.mlp")
    with model.ablate(f"0.mlp.{c0}"):
        with model.intervene(Ablate(f"1.mlp.{c1}")):
            both = _run(model, x).codes
            assert not (both["0.mlp"] == c0).any() and not (both["1.mlp"] == c1).any()
        outer_only = _run(model, x).codes
        assert not (outer_only["0.mlp"] == c0).any()
        assert (outer_only["1.mlp"] == c1).any() or not (natural.codes["1.mlp"] == c1).any()
    assert torch.equal(_run(model, x).logits, natural.logits)


@pytest.mark.parametrize(
    "intervention",
    [
        lambda: Ablate("0.1.3"),
        lambda: Ablate("0.1.3", mode="drop"),
        lambda: Force("0.mlp.5", positions=[1]),
        lambda: Force("0.mlp.5", value=4.0),
        lambda: Scale("1.2.4", 0.0),
        lambda: Add("1.2.4", 2.0),
    ],
)
def test_exception_inside_context_leaves_model_untouched(model, intervention) -> None:  # type: ignore[no-untyped-def]
    x = tiny_data(2, 10)
    before = _run(model, x)
    with pytest.raises(RuntimeError, match="boom"), model.intervene(intervention()):
        _run(model, x)
        raise RuntimeError("boom")
    after = _run(model, x)
    assert torch.equal(after.logits, before.logits)
    assert torch.equal(after.codes.ids, before.codes.ids)


def test_exception_inside_patch_context_leaves_model_untouched(model) -> None:  # type: ignore[no-untyped-def]
    x = tiny_data(1, 10)
    before = _run(model, x)
    source = _run(model, tiny_data(1, 10, seed=5)).codes
    with pytest.raises(KeyError), model.intervene(Patch(source)):
        raise KeyError("inside")
    assert torch.equal(_run(model, x).logits, before.logits)


def test_generation_holds_forced_codes_on_new_tokens(model) -> None:  # type: ignore[no-untyped-def]
    prompt = tiny_data(1, 5)
    free = model.generate(prompt, max_new_tokens=8, num_samples=3, seed=0)
    counts = torch.bincount(free.codes["1.mlp"].flatten(), minlength=16)
    code = int(counts.argmin())
    with model.force(f"1.mlp.{code}"):
        steered = model.generate(prompt, max_new_tokens=8, num_samples=3, seed=0)
    assert steered.codes.shape[:2] == (3, 13)
    assert (steered.codes["1.mlp"] == code).any(-1).all()  # every position, generated ones included
    # a position given for a token not generated yet is held until it is
    with model.force(f"1.mlp.{code}", positions=[10]):
        later = model.generate(prompt, max_new_tokens=8, num_samples=3, seed=0)
    assert (later.codes["1.mlp"][:, 10] == code).any(-1).all()


def test_generation_is_repeatable_with_a_seed(model) -> None:  # type: ignore[no-untyped-def]
    prompt = tiny_data(1, 5)
    a = model.generate(prompt, max_new_tokens=6, num_samples=4, seed=3, top_k=5, top_p=0.9)
    b = model.generate(prompt, max_new_tokens=6, num_samples=4, seed=3, top_k=5, top_p=0.9)
    assert torch.equal(a.ids, b.ids)
    greedy = model.generate(prompt, max_new_tokens=6, num_samples=2, temperature=0)
    assert torch.equal(greedy.ids[0], greedy.ids[1])
    # cached decoding gives what a full forward over the sequence gives
    full = _run(model, greedy.ids[:1]).logits[0, 4:-1].argmax(-1)
    assert torch.equal(full, greedy.ids[0, 5:])


def test_interventions_via_generate_argument(model) -> None:  # type: ignore[no-untyped-def]
    prompt = tiny_data(1, 5)
    gen = model.generate(prompt, max_new_tokens=4, seed=0, interventions=[Ablate("1.mlp.0"), Ablate("1.mlp.1")])
    assert not ((gen.codes["1.mlp"] == 0) | (gen.codes["1.mlp"] == 1)).any()
    assert not model._state.plan


def test_forcing_more_codes_than_slots_is_refused(model) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(CodebookError, match="k=2"), model.force(["0.mlp.1", "0.mlp.2", "0.mlp.3"]):
        pass


def test_add_puts_the_code_vector_on_top_where_asked(model) -> None:  # type: ignore[no-untyped-def]
    x = tiny_data(2, 9)
    site = "layers.1.mlp"
    natural = _run(model, x)
    before = model.record(site, x)[site].reshape(2, 9, -1)
    codebook = model.attached[site]
    with model.add(("1.mlp", 5), 3.0, positions=[4]):
        added = _run(model, x)
        after = model.record(site, x)[site].reshape(2, 9, -1)
    expected = 3.0 * codebook.vectors[0, 5].detach() / codebook.k
    assert torch.allclose(after[:, 4] - before[:, 4], expected.expand(2, -1), atol=1e-5)
    assert torch.equal(after[:, :4], before[:, :4])  # earlier positions untouched
    assert torch.equal(added.codes["1.mlp"], natural.codes["1.mlp"])  # the codes that fired are reported as before
    assert not torch.allclose(added.logits[:, 4], natural.logits[:, 4])
    with model.add(("1.mlp", 5), 0.0):
        assert torch.equal(_run(model, x).logits, natural.logits)


def test_add_needs_a_finite_strength() -> None:
    with pytest.raises(CodebookError, match="strength=nan is not valid; give a finite number"):
        Add("0.mlp.1", float("nan"))


def test_stream_samples_what_generate_samples_and_streams_can_take_turns(model) -> None:  # type: ignore[no-untyped-def]
    from cbwidgets.generate import stream

    prompt = tiny_data(1, 4)
    steer = [Add([("0.mlp", 3), ("1.mlp", 3)], 40.0)]
    plain = model.generate(prompt, max_new_tokens=6, num_samples=2, seed=3)
    steered = model.generate(prompt, max_new_tokens=6, num_samples=2, seed=3, interventions=steer)
    a = stream(model, prompt, max_new_tokens=6, num_samples=2, seed=3)
    b = stream(model, prompt, max_new_tokens=6, num_samples=2, seed=3, interventions=steer)
    got_a, got_b = [], []
    for token_a, token_b in zip(a, b, strict=True):  # alternate: each step's interventions stay with its stream
        got_a.append(token_a)
        got_b.append(token_b)
    assert torch.equal(torch.stack(got_a, 1), plain.new_ids)
    assert torch.equal(torch.stack(got_b, 1), steered.new_ids)
    assert not torch.equal(plain.new_ids, steered.new_ids)


def test_closing_a_stream_early_leaves_the_model_as_it_was(model) -> None:  # type: ignore[no-untyped-def]
    from cbwidgets.generate import stream

    x = tiny_data(1, 6)
    before = _run(model, x)
    model.train()
    tokens = stream(model, x[:, :3], max_new_tokens=10, interventions=[Force("1.mlp.3")])
    next(tokens)
    tokens.close()
    assert model.training
    model.eval()
    assert torch.equal(_run(model, x).logits, before.logits)


def test_interventions_are_compiled_once_per_block_and_per_generate_call(model, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Names are parsed and tables built when a block is entered (or generate starts), not per forward."""
    from cbwidgets.names import CodebookNames

    parsed: list[object] = []
    real = CodebookNames.parse_code
    monkeypatch.setattr(CodebookNames, "parse_code", lambda self, ref: parsed.append(ref) or real(self, ref))
    x = tiny_data(2, 8)
    with model.ablate(["0.mlp.1", "1.mlp.2"]), model.scale("1.1.3", 0.5, positions=[2]):
        for _ in range(5):
            _run(model, x)
    assert len(parsed) == 3
    parsed.clear()
    steer = [Force("1.mlp.3"), Scale(("1.mlp", 3), 2.0), Add("0.2.1", 1.5, positions=[6])]
    generated = model.generate(tiny_data(1, 4), max_new_tokens=12, seed=0, interventions=steer)
    assert generated.new_ids.shape == (1, 12)
    assert len(parsed) == 3  # once for the call, not once per generated token
    plan = model.prepare(*steer)
    parsed.clear()
    with model.intervene(plan), model.intervene(plan):  # a plan is entered again without checking again
        _run(model, x)
    assert parsed == []
