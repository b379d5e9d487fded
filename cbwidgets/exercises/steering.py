"""The checks of ``04_steering.ipynb``: a topic code found in the index, and steering with such
codes until the samples are about the topic."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import Feedback, read_code, unanswered

if TYPE_CHECKING:
    from ..index import CodeIndex
    from ..model import CodebookModel

__all__ = ["TOPIC", "SteeringChecks"]

TOPIC = "slide"  # a topic of the story corpus that the notebook does not steer to itself
LAYER = "0."  # the codebooks the notebook steers with: layer 0's heads
MIN_PRECISION = 0.5
MIN_FIRINGS = 50
MAX_WORD_SHARE = 0.5
MIN_SAMPLES = 4


class SteeringChecks:
    """Checked against the participant's own index and storyteller."""

    def __init__(self, index: CodeIndex, model: CodebookModel) -> None:
        self.index, self.model = index, model

    def exercise_1(self, answer: Any) -> Feedback:
        """A code of layer 0 with at least half its firings inside slide stories, and not mostly on
        the word itself."""
        from ..steering import topic_codes

        exercise = "Exercise 1"
        read = read_code(self.model, exercise, answer)
        if isinstance(read, Feedback):
            return read
        book, _, name = read
        label = self.model.names.codebooks[book].label
        if not label.startswith(LAYER):
            return Feedback(exercise, False, f"{name} is in {label}; take a code of layer 0 (codebooks='0.').")
        every = topic_codes(
            self.index, TOPIC, codebooks=label, per_codebook=10**9, limit=10**9, min_firings=1, max_word_share=1.0
        ).set_index("code")
        if name not in every.index:
            return Feedback(exercise, False, f"{name} never fires in the index; pick one from topic_codes' table.")
        row = every.loc[name].to_dict()
        firings, precision, word = int(row["firings"]), float(row["precision"]), float(row["word_share"])
        if firings < MIN_FIRINGS:
            return Feedback(
                exercise,
                False,
                f"{name} fires only {firings} times in the index: too rare to trust; take a commoner one.",
            )
        if word > MAX_WORD_SHARE:
            return Feedback(
                exercise,
                False,
                f"{word:.0%} of {name}'s firings are on the word {TOPIC!r} itself: it means the word, not the "
                "topic, and held on it makes the model repeat the word.",
            )
        if precision >= MIN_PRECISION:
            return Feedback(exercise, True, f"{precision:.0%} of {name}'s firings are inside {TOPIC} stories.")
        return Feedback(
            exercise,
            False,
            f"only {precision:.0%} of {name}'s firings are inside {TOPIC} stories; topic_codes sorts by that share "
            f"(precision): look at its top.",
        )

    def exercise_2(self, answer: Any) -> Feedback:
        """A ``Generation`` of at least 4 samples, from a prompt that does not name the topic, of
        which at least half mention it."""
        from ..steering import mentions

        exercise = "Exercise 2"
        if (missing := unanswered(exercise, answer)) is not None:
            return missing
        texts = getattr(answer, "texts", None)
        if texts is None or not hasattr(answer, "prompt_length"):
            return Feedback(
                exercise,
                False,
                f"give what model.generate(...) returned (a Generation), not a {type(answer).__name__}.",
            )
        if len(texts) < MIN_SAMPLES:
            return Feedback(
                exercise, False, f"{len(texts)} sample(s) are too few to judge; ask for num_samples=4 or more."
            )
        prompt = self.model.tokenizer.decode(answer.ids[0, : answer.prompt_length].tolist(), skip_special_tokens=True)
        if mentions(TOPIC, prompt):
            return Feedback(
                exercise,
                False,
                f"the prompt names the topic ({prompt!r}); start from one that does not, such as "
                "'Once upon a time,'. The codes must do the work.",
            )
        hits = sum(mentions(TOPIC, text) for text in texts)
        if 2 * hits >= len(texts):
            return Feedback(exercise, True, f"{hits} of {len(texts)} samples mention {TOPIC!r}.")
        return Feedback(
            exercise,
            False,
            f"only {hits} of {len(texts)} samples mention {TOPIC!r}. Steer with several {TOPIC} codes of layer 0 "
            "(steering(codes, 'replace', strength)), or a little more strength.",
        )
