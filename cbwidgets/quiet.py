"""Saving and loading a small model in a notebook without transformers' progress bars and warnings.

A bar is noise for a model that loads in a second, and a warning about a config field our own
models set on purpose (a rope scaling factor below 1, say) reads as a fault the user must fix.
Both are switched off around the call and put back as they were, errors included.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["transformers_quiet"]


@contextmanager
def transformers_quiet() -> Iterator[None]:
    from transformers.utils import logging as hf_logging

    had_bars = hf_logging.is_progress_bar_enabled()
    verbosity = hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if had_bars:
            hf_logging.enable_progress_bar()
