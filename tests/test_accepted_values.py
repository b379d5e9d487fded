"""Property test: every form of a code id and a position that the library hands out (Python, numpy
and torch integers, one-element arrays, arrays of positions) is taken back and acts identically;
every other form raises a CodebookError that names the value; the model is bit-identical after.

60 examples per property in the suite; ``CBW_EXAMPLES=1500`` explores further (checked: all pass).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cbwidgets import CodebookError
from cbwidgets.cached_fit import fit_cached
from cbwidgets.codebook import CodebookSpec
from cbwidgets.codes import Codes
from cbwidgets.errors import check_flag, check_positive_int
from cbwidgets.generate import generate
from cbwidgets.matched_sae import matched_sae
from cbwidgets.sae import SAESpec
from cbwidgets.stories import StoryRecipe
from cbwidgets.tokfsm import FSMRecipe, TokFSM, load_default
from cbwidgets.train import TrainConfig, train
from tests.tiny import tiny_data, tiny_model

MODEL = load_default()
NAMES = MODEL.names
PROMPT = TokFSM().sample(1, 16, seed=5)
T = PROMPT.shape[1]
with torch.no_grad():
    PLAIN = MODEL(PROMPT)
STATE = {k: v.clone() for k, v in MODEL.state_dict().items()}
SETTINGS = settings(
    max_examples=int(os.environ.get("CBW_EXAMPLES", "60")), deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

INT_TYPES = [int, np.int8, np.int16, np.int32, np.int64, np.uint16, np.uint32]
TORCH_INTS = [torch.int16, torch.int32, torch.int64]


def _integer_forms(value: int) -> st.SearchStrategy[Any]:
    """``value`` as every integer the library (or numpy and torch around it) may hand out."""
    fits = [t for t in INT_TYPES if t is int or np.iinfo(t).min <= value <= np.iinfo(t).max]
    forms = [st.just(t(value)) for t in fits]
    forms += [st.just(torch.tensor(value, dtype=d)) for d in TORCH_INTS]
    forms += [st.just(np.array([value])), st.just(torch.tensor([value]))]
    return st.one_of(forms)


@st.composite
def codes(draw: st.DrawFn) -> tuple[tuple[int, int], Any]:
    """(codebook index, id) and one accepted form of it."""
    book = draw(st.integers(0, len(NAMES) - 1))
    codebook = NAMES.codebooks[book]
    value = draw(st.integers(0, (codebook.num_codes or 1) - 1))
    key = draw(st.sampled_from([codebook.label, codebook.name]))
    form = draw(
        st.one_of(
            st.just(f"{key}.{value}"),
            _integer_forms(value).map(lambda v: (key, v)),
            # what the library itself returns: a code read off a model output
            st.just(("__codes__", value)),
        )
    )
    if form == ("__codes__", value):
        ids = np.full((1, 1, len(NAMES), 1), -1, dtype=np.int64)
        ids[0, 0, book, 0] = value
        returned = Codes(torch.from_numpy(ids), NAMES)
        form = (codebook.label, returned.ids[0, 0, book, 0])  # a torch integer, as out.codes hands it out
    return (book, value), form


@st.composite
def positions(draw: st.DrawFn) -> tuple[list[int] | None, Any]:
    """Positions (None = all) and one accepted form of them."""
    if draw(st.booleans()):
        return None, None
    chosen = draw(st.lists(st.integers(-T, T - 1), min_size=1, max_size=4, unique_by=lambda p: p % T))
    plain = [p % T for p in chosen]
    if len(chosen) == 1 and draw(st.booleans()):
        return plain, draw(_integer_forms(chosen[0]))
    form = draw(
        st.sampled_from(
            [list(chosen), tuple(chosen), np.array(chosen), torch.tensor(chosen), [np.int64(p) for p in chosen]]
        )
    )
    return plain, form


def _untouched() -> None:
    for key, value in MODEL.state_dict().items():
        assert torch.equal(value, STATE[key]), key
    with torch.no_grad():
        assert torch.equal(MODEL(PROMPT).logits, PLAIN.logits)


@SETTINGS
@given(code=codes(), where=positions(), mode=st.sampled_from(["substitute", "drop"]))
def test_accepted_forms_act_identically(code: tuple[tuple[int, int], Any], where: Any, mode: str) -> None:
    (book, value), form = code
    plain_positions, position_form = where
    assert NAMES.parse_code(form) == (book, value)
    name = NAMES.code_name(book, value)
    assert NAMES.canonical(form) == name
    with torch.no_grad():
        with MODEL.ablate(form, positions=position_form, mode=mode):
            given_form = MODEL(PROMPT).logits
        with MODEL.ablate(name, positions=plain_positions, mode=mode):
            written = MODEL(PROMPT).logits
    assert torch.equal(given_form, written)
    _untouched()


def _named(message: str, value: Any) -> bool:
    """Whether the message shows the value, or the one element of it that is wrong."""
    renderings = {repr(value), str(value)}
    if hasattr(value, "tolist"):
        listed = value.tolist()
        renderings |= {str(listed), repr(listed)}
        if isinstance(listed, list):
            renderings |= {repr(item) for item in listed}
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        renderings.add(str(value.item()))
    return any(r in message for r in renderings)


BAD_IDS = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: f != int(f) if abs(f) < 1e15 else True),
    st.integers(0, 500).map(float),
    st.integers(0, 500).map(np.float32),
    st.booleans(),
    st.just(np.bool_(True)),
    st.integers(10_000, 10**9),
    st.integers(-(10**6), -1),
    st.just(np.array([1, 2])),
    st.just(torch.tensor([[3, 4]])),
    st.text(min_size=1, max_size=4).filter(lambda s: not s.strip().lstrip("-").isdigit()),
)


@SETTINGS
@given(book=st.integers(0, len(NAMES) - 1), bad=BAD_IDS, written=st.booleans())
def test_rejected_ids_raise_a_codebook_error_naming_the_value(book: int, bad: Any, written: bool) -> None:
    label = NAMES.codebooks[book].label
    form = f"{label}.{bad}" if written and isinstance(bad, float | int) and not isinstance(bad, bool) else (label, bad)
    with pytest.raises(CodebookError) as err:
        with MODEL.ablate(form):
            MODEL(PROMPT)
    assert _named(str(err.value), bad) or _named(str(err.value), form), (form, str(err.value))
    _untouched()


BAD_POSITIONS = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(T, 10**6),
    st.integers(-(10**6), -T - 1),
    st.booleans(),
    st.just(np.float64(1.0)),
    st.just(np.array([[1, 2]])),
    st.just(torch.tensor([0.5])),
    st.text(min_size=1, max_size=3),
)


@SETTINGS
@given(bad=BAD_POSITIONS, listed=st.booleans())
def test_rejected_positions_raise_a_codebook_error_naming_the_value(bad: Any, listed: bool) -> None:
    form = [0, bad] if listed and not isinstance(bad, np.ndarray | torch.Tensor | str) else bad
    with pytest.raises(CodebookError) as err:
        with MODEL.ablate(NAMES.code_name(4, 0), positions=form):
            MODEL(PROMPT)
    assert _named(str(err.value), bad) or _named(str(err.value), form), (form, str(err.value))
    _untouched()


def test_a_tokenizer_larger_than_the_model_is_refused_with_both_sizes() -> None:
    from transformers import AutoModelForCausalLM

    from cbwidgets import CodebookModel

    config = MODEL.model.config.__class__.from_dict({**MODEL.model.config.to_dict(), "vocab_size": 8})
    small = AutoModelForCausalLM.from_config(config)
    size = len(MODEL.tokenizer)
    with pytest.raises(CodebookError, match=rf"tokenizer has {size} tokens but the model's vocabulary has 8"):
        CodebookModel(small, MODEL.tokenizer)


@SETTINGS
@given(count=st.integers(1, 12).flatmap(_integer_forms))
def test_counts_in_any_integer_form_are_taken_as_python_ints(count: Any) -> None:
    """A count read off a library result (a numpy or torch integer) is accepted wherever a count is
    asked for, and stored as a Python int (so it saves to JSON and compares equal)."""
    number = int(np.asarray(count).reshape(-1)[0])
    assert type(check_positive_int("n", count)) is int and check_positive_int("n", count) == number
    spec = CodebookSpec(num_codes=number + 1, k=count, revive_after=count)
    assert (type(spec.k), spec.k, type(spec.revive_after)) == (int, number, int)
    config = TrainConfig(steps=count, batch_size=count, checkpoint_every=count, checkpoint_dir="x")
    assert (type(config.steps), config.steps, type(config.checkpoint_every)) == (int, number, int)
    out = generate(MODEL, PROMPT[:, :4], max_new_tokens=count, num_samples=count, top_k=count, seed=0)
    assert out.new_ids.shape == (number, number)


@pytest.mark.parametrize("bad", [0, -2, 2.5, np.float32(3.0), True, "3", [1, 2], torch.tensor([1, 2]), None])
def test_counts_that_are_not_positive_integers_are_refused_with_the_value(bad: Any) -> None:
    with pytest.raises(CodebookError, match="give a positive integer"):
        check_positive_int("batch_size", bad)


FLAG_FORMS = [True, False, np.bool_(True), np.bool_(False), torch.tensor(True), torch.tensor([False]), np.array([True])]


def _flag_settings(value: Any) -> dict[str, Any]:
    """Every boolean setting a user writes, each built with ``value``: what it stored."""
    return {
        "TrainConfig.freeze_base": TrainConfig(freeze_base=value).freeze_base,
        "TrainConfig.lazy_codes": TrainConfig(lazy_codes=value).lazy_codes,
        "TrainConfig.progress": TrainConfig(progress=value).progress,
        "FSMRecipe.freeze_base": FSMRecipe(freeze_base=value).freeze_base,
        "StoryRecipe.freeze_base": StoryRecipe(freeze_base=value).freeze_base,
        "SAESpec.layer_norm": SAESpec(layer_norm=value).layer_norm,
    }


@pytest.mark.parametrize("value", FLAG_FORMS, ids=repr)
def test_flags_in_any_boolean_form_are_taken_as_python_bools(value: Any) -> None:
    """A comparison's result (numpy or torch) is a flag like True and False, stored as a Python bool."""
    expected = bool(np.asarray(value).reshape(-1)[0])
    assert check_flag("f", value) is expected
    assert _flag_settings(value) == dict.fromkeys(_flag_settings(True), expected)
    assert all(type(v) is bool for v in _flag_settings(value).values())


@pytest.mark.parametrize("bad", ["False", "yes", 0, 1, 1.0, None, np.int64(1), torch.tensor([True, False])], ids=repr)
def test_flags_that_are_not_booleans_are_refused_with_the_name_and_value(bad: Any) -> None:
    """``if "False":`` is true: a string (or a count) taken as a flag would quietly do the opposite."""
    for build in (
        lambda: TrainConfig(freeze_base=bad),
        lambda: TrainConfig(lazy_codes=bad),
        lambda: TrainConfig(progress=bad),
        lambda: FSMRecipe(freeze_base=bad),
        lambda: StoryRecipe(freeze_base=bad),
        lambda: SAESpec(layer_norm=bad),
    ):
        with pytest.raises(CodebookError, match=r"=.* is not valid; give True or False"):
            build()


def test_flag_arguments_of_fitting_functions_are_checked_before_any_work() -> None:
    model = tiny_model("gpt2", num_codes=8)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    batch = tiny_data(2, 8)
    with pytest.raises(CodebookError, match=r"init='no' is not valid; give True or False"):
        fit_cached(model, batch, steps=1, init="no")  # type: ignore[arg-type]
    with pytest.raises(CodebookError, match=r"match_scale=1 is not valid; give True or False"):
        model.kmeans_init(batch, match_scale=1)  # type: ignore[arg-type]
    with pytest.raises(CodebookError, match=r"layer_norm='False' is not valid; give True or False"):
        matched_sae(model, "layers.0.mlp", batch, layer_norm="False")
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert set(model.attached) == set(tiny_model("gpt2", num_codes=8).attached)  # matched_sae replaced nothing


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda m, b: fit_cached(m, b, steps=1, lr="1e-3"),
            r"lr='1e-3' is not valid; give a positive number such as 1e-3",
        ),
        (lambda m, b: fit_cached(m, b, steps=1, lr=0), r"lr=0 is not valid"),
        (lambda m, b: matched_sae(m, "layers.0.mlp", b, lr=-0.01), r"lr=-0.01 is not valid"),
        (lambda m, b: matched_sae(m, "layers.0.mlp", b, lr=float("nan")), r"lr=nan is not valid"),
        (lambda m, b: matched_sae(m, "layers.0.mlp", b, steps=0), r"steps=0 is not valid; give a positive integer"),
        (lambda m, b: train(m, b, TrainConfig(steps=1, batch_size=2, lr="3e-3")), r"lr='3e-3' is not valid"),
    ],
    ids=[
        "fit_cached string",
        "fit_cached zero",
        "matched_sae negative",
        "matched_sae nan",
        "matched_sae steps",
        "train",
    ],
)
def test_fitting_rates_and_steps_are_checked_before_any_work(call: Any, message: str) -> None:
    """A learning rate of 0 or a string used to reach Adam after the activations were recorded (and,
    in matched_sae, after the codebook was detached): now nothing has changed when it is refused."""
    model = tiny_model("gpt2", num_codes=8)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CodebookError, match=message):
        call(model, tiny_data(2, 8))
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert set(model.attached) == set(tiny_model("gpt2", num_codes=8).attached)


@pytest.mark.parametrize("lr", [1e-2, np.float32(1e-2), torch.tensor(1e-2), np.array([1e-2])], ids=repr)
def test_a_learning_rate_in_any_real_form_fits(lr: Any) -> None:
    """The same fit, whatever form the rate came in (a numpy or torch number read off a result)."""
    model = tiny_model("gpt2", num_codes=8)
    sae = matched_sae(model, "layers.0.mlp", tiny_data(4, 8), steps=5, lr=lr)
    rate = float(np.asarray(lr).reshape(-1)[0])
    reference = matched_sae(tiny_model("gpt2", num_codes=8), "layers.0.mlp", tiny_data(4, 8), steps=5, lr=rate)
    assert all(torch.equal(v, reference.state_dict()[k]) for k, v in sae.state_dict().items())
