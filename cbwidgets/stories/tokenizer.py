"""A byte-level BPE tokenizer trained on the story corpus in seconds.

Every encoded text starts with the story token, so an empty prompt is that one token and the model
always sees the same first position it was trained with; stories end with the end token.
"""

from __future__ import annotations

from collections.abc import Iterable

from transformers import PreTrainedTokenizerFast

from ..errors import check_positive_int

__all__ = ["END", "START", "train_tokenizer"]

START = "<|story|>"
END = "<|end|>"


def train_tokenizer(texts: Iterable[str], vocab_size: int = 4096) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE (no unknown tokens: any text encodes) and wrap it for transformers."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    vocab_size = check_positive_int("vocab_size", vocab_size)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[START, END],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    start = tok.token_to_id(START)
    tok.post_processor = processors.TemplateProcessing(single=f"{START} $A", special_tokens=[(START, start)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=START, eos_token=END, pad_token=END)
