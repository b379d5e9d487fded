"""A language model as a label proposer: it reads a code's examples and says what they share, and
its words become rules that ``propose_labels`` scores like the kit's own.

A small instruction model (SmolLM2-135M-Instruct through ``load_smollm2``) often answers with a
sentence that is half wrong, so its answer is never shown as the label. Each word of it that could
name the code becomes a rule (the token, if a marked token is that word; a text about it,
otherwise), and the held-out scores decide. ``proposer.answers`` keeps what the model said last.

    from cbwidgets.smollm import load_smollm2
    propose_labels(index, code, proposer=LMProposer(load_smollm2(codebooks=False)))
"""

from __future__ import annotations

import re
from typing import Any

import torch

from .errors import CodebookError, check_positive_int
from .label_proposals import Rule, about, the_token
from .model import CodebookModel

__all__ = ["QUESTIONS", "LMProposer", "rules_from_answers"]

# what the model is asked, each answer read as words of that kind
QUESTIONS = (
    ("topic", "What are these stories about? Answer with one word."),
    ("token", "Which word is marked in brackets most often? Answer with the word only."),
)
_INTRO = "Here are snippets of text. In each, one word is marked with [brackets]."
# words of the prompt itself, which a small model repeats without meaning them as a label
_PROMPT = frozenset(
    w.lower() for w in re.findall(r"[A-Za-z]+", _INTRO + " ".join(q for _, q in QUESTIONS) + " story sentence")
)
_MARKED = re.compile(r"\[([^\[\]]+)\]")


class LMProposer:
    """A callable for ``propose_labels(proposer=...)`` that asks ``model`` (an instruction-tuned
    CodebookModel with a chat template) the ``QUESTIONS`` about up to ``examples`` firings, greedily,
    with its codebooks off (the stock model reads best), and returns at most ``per_answer`` rules
    from each answer."""

    def __init__(self, model: CodebookModel, examples: int = 8, max_new_tokens: int = 16, per_answer: int = 3):
        tokenizer = getattr(model, "tokenizer", None)
        if not isinstance(model, CodebookModel) or tokenizer is None or not getattr(tokenizer, "chat_template", None):
            raise CodebookError(
                "LMProposer needs an instruction-tuned CodebookModel whose tokenizer has a chat template, "
                "like cbwidgets.smollm.load_smollm2(codebooks=False)."
            )
        self.model = model
        self.examples = check_positive_int("examples", examples)
        self.max_new_tokens = check_positive_int("max_new_tokens", max_new_tokens)
        self.per_answer = check_positive_int("per_answer", per_answer)
        self.answers: dict[str, str] = {}

    def __call__(self, examples: list[str]) -> list[Rule]:
        shown = list(examples)[: self.examples]
        self.answers = {kind: self.ask(shown, question) for kind, question in QUESTIONS}
        return rules_from_answers(self.answers, shown, self.per_answer)

    def ask(self, examples: list[str], question: str) -> str:
        """The model's greedy answer to ``question`` about ``examples``."""
        text = "\n".join([_INTRO, *(f"- {e}" for e in examples), question])
        tokenizer = self.model.tokenizer
        assert tokenizer is not None  # checked in __init__
        ids: Any = tokenizer.apply_chat_template(
            [{"role": "user", "content": text}], add_generation_prompt=True, return_tensors="pt"
        )
        ids = (ids if isinstance(ids, torch.Tensor) else ids["input_ids"]).to(self.model.device)
        base: Any = self.model.model  # a transformers model: it generates
        with self.model.evaluating(), self.model.codebooks_disabled(), torch.no_grad():
            out = base.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=self.max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
            )
        return str(tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)).strip()

    def __repr__(self) -> str:
        return f"LMProposer({type(self.model.model).__name__}, examples={self.examples})"


def rules_from_answers(answers: dict[str, str], examples: list[str], per_answer: int = 3) -> list[Rule]:
    """The rules an answer's words stand for: a word that is one of the marked tokens is that token
    (its leading space as the examples write it); any other word (4+ letters, not the prompt's own)
    is a topic. Quoted words come first: a model that quotes a word means it."""
    marked: dict[str, str] = {}
    for example in examples:
        for token in _MARKED.findall(example):
            marked.setdefault(token.strip().lower(), token)
    rules: list[Rule] = []
    for kind, answer in answers.items():
        quoted = re.findall(r"[\"'“‘]([A-Za-z]+)[\"'”’]", answer)
        words = [w for w in dict.fromkeys([*quoted, *re.findall(r"[A-Za-z]+", answer)]) if w.lower() not in _PROMPT]
        found: list[Rule] = []
        for word in words:
            token = marked.get(word.lower())
            if token is not None and kind == "token":
                found.append(the_token(token))
            elif len(word) >= 4:
                found.append(about(word.lower()))
            if len(found) == per_answer:
                break
        rules += [rule for rule in found if rule not in rules]
    return rules
