"""Exercises: checks accept every correct answer in every form, give specific feedback on a wrong
one without printing the answer; solution notebooks pass every check, exercise notebooks as shipped
run and say "not yet"; exercise notebooks are what tools/make_exercises.py writes from the solutions."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbclient
import nbformat
import numpy as np
import pytest
import torch

import cbwidgets
from cbwidgets.codebook import _FAR
from cbwidgets.exercises.quickstart import MIN_SHIFT, QuickstartChecks
from cbwidgets.tokfsm import TokFSM, load_default

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "cbwidgets" / "notebooks"


@pytest.fixture(scope="module")
def checks() -> QuickstartChecks:
    return QuickstartChecks(load_default(), TokFSM().sample(1, 21, seed=3))


def _truth(checks: QuickstartChecks) -> tuple[int, str, list[str]]:
    """The right answers, computed here independently of the checks' own code paths."""
    model, ids = checks.model, checks.ids
    book = model.names.index_of("1.mlp")
    code = int(checks.codes[-1, book, 0])
    with torch.no_grad():
        before = model(ids).logits[0, -1].softmax(-1)
        with model.ablate(f"1.mlp.{code}", mode="drop"):
            digit = model.tokenizer.decode([int(model(ids).logits[0, -1].argmax())])
    strong = []
    for other in sorted(set(checks.codes[:, book, 0].tolist())):
        with torch.no_grad(), model.ablate(f"1.mlp.{other}", mode="drop"):
            after = model(ids).logits[0, -1].softmax(-1)
        if float((before - after).abs().sum() / 2) >= MIN_SHIFT:
            strong.append(f"1.mlp.{other}")
    return code, digit, strong


def test_every_correct_answer_in_every_form_is_accepted(checks: QuickstartChecks) -> None:
    code, digit, strong = _truth(checks)
    assert len(strong) >= 2  # exercise 3 has more than one right answer
    for form in (f"1.mlp.{code}", ("1.mlp", code), ("layers.1.mlp", np.int64(code)), ("1.mlp", torch.tensor(code))):
        assert checks.exercise_1(form), form
    for form in (digit, int(digit), f" {digit} ", np.int64(int(digit)), torch.tensor(int(digit))):
        assert checks.exercise_2(form), form
    for name in strong:
        assert checks.exercise_3(name) and checks.exercise_3(("1.mlp", np.int32(int(name.rsplit(".", 1)[1]))))


def test_wrong_answers_get_specific_feedback_and_never_the_answer(checks: QuickstartChecks) -> None:
    code, digit, strong = _truth(checks)
    book = checks.model.names.index_of("1.mlp")
    elsewhere = next(int(c) for c in checks.codes[:, book, 0].tolist() if int(c) != code)
    absent = next(c for c in range(1000) if c not in set(checks.codes[:, book, 0].tolist()))
    weak = next(f"1.mlp.{c}" for c in sorted(set(checks.codes[:, book, 0].tolist())) if f"1.mlp.{c}" not in strong)
    top_before = checks.model.tokenizer.decode([int(checks.probs.argmax())])
    other_digit = next(str(d) for d in range(10) if str(d) not in (digit, top_before))
    cases: list[tuple[Any, Any, str]] = [
        (checks.exercise_1, ..., "Replace the ... with your answer"),
        (checks.exercise_1, "2.mlp.5", "is a code of codebook 2.mlp; this exercise is about codebook 1.mlp"),
        (checks.exercise_1, f"1.mlp.{elsewhere}", "not at the last token (20); look at the heatmap's last row"),
        (checks.exercise_1, f"1.mlp.{absent}", "does not fire anywhere in this prompt"),
        (checks.exercise_1, ("1.mlp", 5.5), "That is not a code: code id 5.5"),
        (checks.exercise_2, top_before, "that is the most likely digit before the ablation"),
        (checks.exercise_2, other_digit, "another digit is more likely"),
        (checks.exercise_2, "12", "is not one token; give one digit"),
        (checks.exercise_3, weak, f"it needs {MIN_SHIFT} or more"),
        (checks.exercise_3, f"1.mlp.{absent}", "does not fire anywhere in this prompt"),
    ]
    for check, answer, expected in cases:
        feedback = check(answer)
        text = repr(feedback)
        assert not feedback and "not yet" in text and expected in text, (answer, text)
    # a wrong answer's feedback never names the right one
    assert f"1.mlp.{code}" not in repr(checks.exercise_1(f"1.mlp.{elsewhere}"))
    assert f"'{digit}'" not in repr(checks.exercise_2(other_digit)) and f" {digit} " not in repr(
        checks.exercise_2(other_digit)
    )
    assert not any(name in repr(checks.exercise_3(weak)) for name in strong)


def _check_outputs(path: Path) -> list[str]:
    nb = nbformat.read(path, as_version=4)
    nbclient.NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}
    ).execute()
    texts = []
    for cell in nb.cells:
        if cell.cell_type == "code" and "check.exercise_" in cell.source:
            texts += [o["data"]["text/plain"] for o in cell.outputs if o.get("output_type") == "execute_result"]
    return texts


@pytest.mark.parametrize("name", sorted(p.name for p in (NOTEBOOKS / "solutions").glob("*.ipynb")))
def test_solutions_pass_every_check(name: str) -> None:
    """Each solution notebook runs here once (nbval skips the solutions folder, see pyproject); the
    exercise notebooks as shipped run under nbval, and their checks' "not yet" is tested below."""
    solved = _check_outputs(NOTEBOOKS / "solutions" / name)
    exercise = nbformat.read(NOTEBOOKS / name, as_version=4)
    asked = sum(c.source.count("check.exercise_") for c in exercise.cells if c.cell_type == "code")
    assert len(solved) == asked >= 2 and all(": correct." in t for t in solved), (name, solved)


def test_every_check_says_not_yet_to_an_answer_left_blank() -> None:
    from cbwidgets.circuits import NextToken
    from cbwidgets.exercises.circuits import CircuitChecks
    from cbwidgets.exercises.intervention import InterventionChecks
    from cbwidgets.exercises.search import SearchChecks
    from cbwidgets.exercises.tokfsm import TokFSMChecks
    from cbwidgets.exercises.training import TrainingChecks
    from cbwidgets.index import CodeIndex

    model, fsm = load_default(), TokFSM()
    index = CodeIndex.build(model, fsm.sample(8, 64, seed=11), progress=False)
    for checks in (
        QuickstartChecks(model, fsm.sample(1, 21, seed=3)),
        TokFSMChecks(model, fsm),
        InterventionChecks(model, fsm.sample(1, 41, seed=2)),
        SearchChecks(index, model),
        TrainingChecks(model, fsm),
        CircuitChecks(model, fsm.sample(1, 21, seed=11), NextToken(1, measure="logprob")),
        _steering_checks(),
        _dictionary_checks()[0],
    ):
        methods = [getattr(checks, n) for n in dir(checks) if n.startswith("exercise_")]
        assert len(methods) >= 2
        for method in methods:
            for blank in (..., None):
                text = repr(method(blank))
                assert "not yet. Replace the ... with your answer" in text, text


def _steering_checks() -> Any:
    """04's checks on the storyteller, over the held-out stories only (a few seconds to index)."""
    from cbwidgets.exercises.steering import SteeringChecks
    from cbwidgets.index import CodeIndex
    from cbwidgets.stories import load_stories, split_stories

    model = cbwidgets.storyteller()
    _, held = split_stories(load_stories())
    return SteeringChecks(CodeIndex.build(model, [s.text for s in held], progress=False), model)


def test_steering_checks_take_any_topic_code_and_explain_wrong_answers() -> None:
    from cbwidgets.exercises.steering import TOPIC
    from cbwidgets.steering import topic_codes

    checks = _steering_checks()
    found = topic_codes(checks.index, TOPIC, codebooks="0.", limit=8)
    assert len(found) >= 4
    for code in (found["code"].iloc[0], (found["codebook"].iloc[1], int(found["code"].iloc[1].rsplit(".", 1)[1]))):
        assert checks.exercise_1(code), code
    dragon = topic_codes(checks.index, "dragon", codebooks="0.", limit=1)["code"].iloc[0]
    assert "inside slide stories; topic_codes sorts" in repr(checks.exercise_1(dragon))
    assert "take a code of layer 0" in repr(checks.exercise_1("1.0.5"))
    assert "That is not a code" in repr(checks.exercise_1("0.mlp.3"))

    model = checks.model
    named = model.generate("The slide was", max_new_tokens=10, num_samples=4, seed=0)
    assert "the prompt names the topic" in repr(checks.exercise_2(named))
    few = model.generate("Once upon a time,", max_new_tokens=10, num_samples=2, seed=0)
    assert "too few to judge" in repr(checks.exercise_2(few))
    plain = model.generate("Once upon a time,", max_new_tokens=40, num_samples=4, seed=0)
    said = repr(checks.exercise_2(plain))
    assert "not yet" in said and "samples mention 'slide'" in said
    assert "not a str" in repr(checks.exercise_2("a story about a slide"))
    # a steered Generation that passes: the solution notebook's, with the index of all training stories


def test_exercise_notebooks_are_written_from_their_solutions() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "make_exercises.py"), "--check"], capture_output=True)
    assert done.returncode == 0, done.stderr.decode()


def test_intervention_checks_take_every_correct_form_and_explain_wrong_ones() -> None:
    from collections import Counter

    from cbwidgets.exercises.intervention import InterventionChecks

    model = load_default()
    prompt = TokFSM().sample(1, 41, seed=2)
    checks = InterventionChecks(model, prompt)
    column = model.names.index_of("0.mlp")
    counts = Counter(int(c) for c in checks.codes[:, column, 0].tolist())
    (busiest, most), (runner_up, _) = counts.most_common(2)
    for form in (f"0.mlp.{busiest}", ("layers.0.mlp", np.int64(busiest)), ("0.mlp", torch.tensor(busiest))):
        assert checks.exercise_1(form), form
    wrong = repr(checks.exercise_1(f"0.mlp.{runner_up}"))
    assert "another code fires on more" in wrong  # and gives away neither the code nor its count:
    assert re.search(rf"\b0\.mlp\.{busiest}\b", wrong) is None and re.search(rf"\b{most}\b", wrong) is None
    assert "is not in codebook 0.mlp" in repr(checks.exercise_1("1.mlp.3"))
    # exercise 2, computed here by dropping each MLP code at the last token
    with torch.no_grad():
        before = model(prompt).logits[0, -1].softmax(-1)
    top = int(before.argmax())
    lowered = {}
    for n, book in enumerate(model.names.codebooks):
        if book.kind == "mlp":
            name = f"{book.label}.{int(checks.codes[-1, n, 0])}"
            with torch.no_grad(), model.ablate(name, mode="drop"):
                lowered[name] = float(before[top] - model(prompt).logits[0, -1].softmax(-1)[top])
    best = max(lowered, key=lowered.get)  # type: ignore[arg-type]
    label, number = best.rsplit(".", 1)
    assert checks.exercise_2(best) and checks.exercise_2((label, np.int32(int(number))))
    other = next(name for name in lowered if name != best)
    text = repr(checks.exercise_2(other))
    assert "another MLP code lowers it more" in text and best not in text
    assert "is an attention code" in repr(checks.exercise_2("0.0.5"))
    elsewhere = next(c for c in counts if c != int(checks.codes[-1, column, 0]))  # fires, not at the end
    assert "does not fire at the last token" in repr(checks.exercise_2(f"0.mlp.{elsewhere}"))


def test_training_checks_judge_the_participants_own_codes() -> None:
    from collections import Counter

    from cbwidgets.exercises.training import TrainingChecks
    from cbwidgets.tokfsm import code_purity

    model, fsm = load_default(), TokFSM()
    walks = fsm.sample(256, 64, seed=3)
    ends = fsm.state_ends(64)
    states = fsm.parse_states(walks[:, 1 : 1 + fsm.digits * len(ends)])
    column = model.names.index_of("2.mlp")
    # the shipped 2.mlp codes are all pure; a participant's few, briefly trained codes are not. Retire
    # all but every eighth code it uses here, so each kept code takes over its neighbours' states too
    book = model.attached["layers.2.mlp"]
    with torch.no_grad():
        used = sorted(set(model(walks).codes.ids[:, ends, column, 0].flatten().tolist()))
        book.vectors[0, [c for i, c in enumerate(used) if i % 8]] = _FAR  # where retired codes go
    checks = TrainingChecks(model, fsm)
    # exercise 1, judged here on walks of another seed: a pure code, an impure one, a rare one
    with torch.no_grad():
        codes = model(walks).codes.ids[:, ends, column, 0]
    spread = {}
    for code in set(codes.flatten().tolist()):
        counts = Counter(states[codes == code].tolist())
        spread[code] = (sum(counts.values()), counts.most_common(1)[0][1] / sum(counts.values()), len(counts))
    pure = max((c for c in spread if spread[c][0] >= 20), key=lambda c: spread[c][1])
    mixed = min((c for c in spread if spread[c][0] >= 20), key=lambda c: spread[c][1])
    assert spread[pure][1] >= 0.95 and spread[mixed][1] < 0.6
    for form in (f"2.mlp.{pure}", ("layers.2.mlp", np.int64(pure)), ("2.mlp", torch.tensor(pure))):
        assert checks.exercise_1(form), form
    text = repr(checks.exercise_1(f"2.mlp.{mixed}"))
    assert "different states" in text and "at least 90%" in text and f"2.mlp.{pure}" not in text
    never = next(c for c in range(model.names.codebooks[column].num_codes) if c not in spread)
    assert "too rare" in repr(checks.exercise_1(f"2.mlp.{never}"))
    assert "is not in codebook 2.mlp" in repr(checks.exercise_1(f"1.mlp.{pure}"))
    assert "That is not a code" in repr(checks.exercise_1("2.mlp.x"))
    # exercise 2: the purest MLP codebook by code_purity
    table = code_purity(model, fsm).set_index("codebook")["bigram_purity"]
    mlp = table[[label.endswith("mlp") for label in table.index]]
    best, worst = mlp.idxmax(), mlp.idxmin()
    assert checks.exercise_2(best) and checks.exercise_2(f" {best} ")
    text = repr(checks.exercise_2(worst))
    assert "another MLP codebook does better" in text and best not in text
    assert "is not an MLP codebook" in repr(checks.exercise_2("1.0"))
    assert "is not a codebook of this model" in repr(checks.exercise_2("9.mlp"))


def test_tokfsm_and_search_checks_explain_wrong_answers() -> None:
    from cbwidgets.exercises.search import SearchChecks
    from cbwidgets.exercises.tokfsm import TokFSMChecks
    from cbwidgets.index import CodeIndex

    model, fsm = load_default(), TokFSM()
    checks = TokFSMChecks(model, fsm)
    fired = checks.codes["2.mlp"][0, :, 0].tolist()
    assert checks.exercise_1(("2.mlp", torch.tensor(fired[-1]))) and checks.exercise_1(f"layers.2.mlp.{fired[-1]}")
    if fired[0] != fired[-1]:
        assert "fires at position 0, not the last digit" in repr(checks.exercise_1(f"2.mlp.{fired[0]}"))
    assert "is not in codebook 2.mlp" in repr(checks.exercise_1(f"1.mlp.{fired[-1]}"))
    truth = checks.true_neighbours_with_codes_dropped()
    assert checks.exercise_2(np.int64(truth)) and checks.exercise_2(torch.tensor(truth))
    assert truth < 10
    wrong = repr(checks.exercise_2(10))
    assert "not yet" in wrong and f" {truth} " not in wrong and "fewer" in wrong
    assert "is not a count" in repr(checks.exercise_2(2.5)) and "is not a count" in repr(checks.exercise_2(11))

    index = CodeIndex.build(model, fsm.sample(100, 128, seed=11), progress=False)
    search = SearchChecks(index, model)
    table = index.search("1(7)", min_matches=10)
    precise, loose = table["code"].iloc[0], table["code"].iloc[-1]
    assert search.exercise_1(precise) and table["precision"].iloc[-1] < 0.9
    text = repr(search.exercise_1(loose))
    assert "it also fires elsewhere" in text and precise not in text
    rare = index.search("1(7)")
    rare = rare[rare["matches"] < 10]["code"].iloc[0]
    assert "take one with at least 10" in repr(search.exercise_1(rare))
    assert "not in 3.mlp" in repr(search.exercise_2(precise)) or precise.startswith("3.mlp")
    from cbwidgets.code_effects import code_logit_effect

    tops = {}
    for code in index.search("(.)")["code"]:
        if code.startswith("3.mlp.") and len(tops) < 40:
            effect = code_logit_effect(model, code, top=1)
            tops[code] = effect[effect["direction"] == "promotes"]["token"].tolist()[:1]
    sevens = [c for c, t in tops.items() if t == ["7"]]
    others = [c for c, t in tops.items() if t != ["7"]]
    assert sevens and others
    assert search.exercise_2(sevens[0])
    assert "up most" in repr(search.exercise_2(others[0])) and sevens[0] not in repr(search.exercise_2(others[0]))


def test_circuit_checks_take_every_correct_form_and_explain_wrong_ones() -> None:
    """06's checks, against effects computed here by plain ablations (one forward per code)."""
    from cbwidgets.circuits import NextToken
    from cbwidgets.exercises.circuits import CircuitChecks

    model = load_default()
    walk = TokFSM().sample(1, 21, seed=11)
    token = int(model(walk).logits[0, -1].argmax())
    checks = CircuitChecks(model, walk, NextToken(token, measure="logprob"))

    def value() -> float:
        with torch.no_grad():
            return float(model(walk).logits[0, -1].log_softmax(-1)[token])

    clean = value()
    drops = {}
    for book in range(len(model.names)):
        code = int(checks.codes[19, book, 0])
        name = model.names.code_name(book, code)
        with model.ablate(name, [19], mode="drop"):
            drops[name] = clean - value()
    ranked = sorted(drops, key=drops.get, reverse=True)
    best, other = ranked[0], ranked[1]
    book, code = model.names.parse_code(best)
    names = model.names.codebooks[book]
    for form in (best, (names.label, np.int64(code)), (names.name, torch.tensor(code))):
        assert checks.exercise_1(form), form
    wrong = repr(checks.exercise_1(other))
    assert "another code there lowers it more" in wrong and best not in wrong
    nowhere = next(f"0.mlp.{c}" for c in range(1000) if c not in set(checks.codes[:, 0, 0].tolist()) | {5})
    assert "not at token 19" in repr(checks.exercise_1(nowhere))
    # exercise 2: the strongest code removed at its token, then each remaining code dropped by hand
    strongest = checks.effects.iloc[0]
    with model.ablate(strongest.code, [int(strongest.position)], mode="drop"):
        base = value()
        after = {}
        with torch.no_grad():
            codes = model(walk).codes.ids[0]
        for position in range(walk.shape[1]):  # every code at every token: the top need not be at the last
            for book in range(len(model.names)):
                name = model.names.code_name(book, int(codes[position, book, 0]))
                if codes[position, book, 0] >= 0 and name != strongest.code:
                    with model.ablate(name, [position], mode="drop"):
                        after[name] = max(after.get(name, -math.inf), base - value())
    top = max(after, key=after.get)
    assert checks.exercise_2(top), (top, after[top])
    assert "is the code that was removed" in repr(checks.exercise_2(strongest.code))
    weaker = sorted(after, key=after.get)[0]
    said = repr(checks.exercise_2(weaker))
    assert "another code holds the prediction up more" in said and top not in said


def _dictionary_checks() -> Any:
    """07's checks on a TokFSM model with a quickly fitted SAE of k = 4 at layers.1.mlp."""
    from cbwidgets.exercises.dictionaries import DictionaryChecks
    from cbwidgets.matched_sae import matched_sae

    fsm = TokFSM()
    model = load_default()
    matched_sae(model, "layers.1.mlp", fsm.sample(16, 128, seed=5), steps=20, k=4)
    walks = fsm.sample(8, 64, seed=3)
    return DictionaryChecks(model, fsm.sample(1, 21, seed=11), walks, "layers.1.mlp"), model, walks


def test_dictionary_checks_take_every_correct_form_and_explain_wrong_ones() -> None:
    """07's checks, against the values and the FVU computed here from the SAE itself."""
    checks, model, walks = _dictionary_checks()
    sae = model.attached["layers.1.mlp"]
    with torch.no_grad():
        codes = model(checks.ids).codes
    book = model.names.index_of("1.mlp")
    ids, values = codes.ids[0, -1, book].tolist(), codes.values[0, -1, book].tolist()
    assert len(set(values)) == 4  # four latents, four different values: the exercise has one answer
    order = sorted(range(4), key=lambda i: values[i], reverse=True)
    best, second = ids[order[0]], ids[order[1]]
    for form in (f"1.mlp.{best}", ("1.mlp", np.int64(best)), ("layers.1.mlp", torch.tensor(best))):
        assert checks.exercise_1(form), form
    said = repr(checks.exercise_1(f"1.mlp.{second}"))
    assert "another latent's is larger" in said and f"1.mlp.{best}" not in said
    idle = next(c for c in range(sae.num_codes) if c not in ids)
    assert "is not active at the last token" in repr(checks.exercise_1(f"1.mlp.{idle}"))
    assert "is not in codebook 1.mlp" in repr(checks.exercise_1("2.mlp.0"))
    # exercise 2: the FVU by hand, in the space the SAE reads (the codebook's LayerNorm of the site)
    with torch.no_grad():
        x = model.codebook_inputs(walks)["layers.1.mlp"]  # what enters it, every dictionary normalize-only
        target = sae.normalize(x).reshape(x.shape)
        out = sae(x).output
    fvu = float((out - target).pow(2).sum() / (target - target.mean(0)).pow(2).sum())
    for form in (fvu, np.float32(fvu), torch.tensor(fvu), f"{fvu:.4f}"):
        assert checks.exercise_2(form), form
    assert "the variance explained" in repr(checks.exercise_2(1 - fvu))
    assert "is not a number" in repr(checks.exercise_2("most of it"))
    assert "read that row's fvu column" in repr(checks.exercise_2(fvu + 0.05))
