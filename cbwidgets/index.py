"""CodeIndex: every code of every codebook over a corpus, compact on disk, searchable by regex.

Layout (a folder): ``codes.npy`` (tokens, codebooks, k) as uint16 while ids fit (else uint32), with
the dtype's largest value marking an empty slot on disk (every array handed out marks it -1, as
everywhere else); ``tokens.npy`` (int32 token ids); ``doc_starts.npy`` (int64 offsets, one more
than documents); an inverted index in CSR form, ``inv_offsets.npy`` (codebooks, num_codes + 1) and
``inv_positions.npy`` (uint32 token positions, sorted per code); ``vocab.json`` (each token id's
text) and ``manifest.json`` (the codebooks' names, as the model has them); where the model's codes
have values (an SAE's latents), ``values.npy`` (tokens, codebooks, k) as float16 beside the ids, so
examples rank by activation. Opening memory-maps the arrays, so a corpus larger than memory works
and per-code look-ups touch only that code's positions.

Search follows the codebook-features paper: a regex runs over the decoded text; each match maps to
the token holding its first character (or group 1's). For each code, recall = matched tokens where
it fires / matched tokens, precision = matched tokens where it fires / all its firings.
"""

from __future__ import annotations

import itertools
import json
import re
import warnings
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from .atomic import atomic_folder
from .cache import cache_folder, fingerprint
from .errors import CodebookError
from .model import CodebookModel
from .names import EMPTY, CodebookNames

__all__ = ["CodeIndex"]

FORMAT = "cbwidgets-code-index"
VERSION = 2  # 2: the manifest holds the codebooks' names (1: labels and sizes only)
_MATCH_CACHE = 4_000_000  # token positions of recent searches kept (32 MB)
_VALUE_CHUNK = 1 << 20  # tokens read at a time when summing values over an index
_SEPARATOR = "\x00"  # between documents in the search text; belongs to no token
_ARRAYS = ("codes", "tokens", "doc_starts", "inv_offsets", "inv_positions")


@dataclass(frozen=True)
class _Text:
    """The corpus as one string, and for every character the token it belongs to (-1: separator)."""

    text: str
    owner: np.ndarray  # int64 (characters,)

    @classmethod
    def of(cls, tokens: np.ndarray, doc_starts: np.ndarray, vocab: Sequence[str]) -> _Text:
        lengths = np.array([len(s) for s in vocab], dtype=np.int64)
        token_len = lengths[tokens]
        parts, owners = [], []
        for a, b in itertools.pairwise(doc_starts.tolist()):
            parts.append("".join(vocab[t] for t in tokens[a:b].tolist()))
            owners.append(np.repeat(np.arange(a, b, dtype=np.int64), token_len[a:b]))
            owners.append(np.array([-1], dtype=np.int64))
        return cls(_SEPARATOR.join(parts) + _SEPARATOR, np.concatenate(owners))

    def matches(self, pattern: str, ignore_case: bool) -> np.ndarray:
        """Sorted unique token positions that a regex match starts in (group 1's start if it has groups)."""
        try:
            regex = re.compile(pattern, re.IGNORECASE if ignore_case else 0)
        except re.error as err:
            raise CodebookError(f"{pattern!r} is not a valid regular expression: {err}.") from None
        group = 1 if regex.groups else 0
        starts = [m.start(group) for m in regex.finditer(self.text) if m.start(group) >= 0]
        if not starts:
            return np.zeros(0, dtype=np.int64)
        owners = self.owner[np.asarray(starts, dtype=np.int64)]
        return np.unique(owners[owners >= 0])


class CodeIndex:
    """Codes of a corpus; build with ``CodeIndex.build(model, corpus)``, reopen with ``CodeIndex.open``.

    It takes codes in every form ``model.ablate`` takes (``codebooks`` holds the model's names).
    Why the class runs past 300 lines: it is one data structure with many read-only queries
    (search, positions, examples, stats, document codes, spans), and about 20 of its lines are
    names kept for one release (``codes``, ``empty``, ``topic_codes``).
    """

    def __init__(
        self,
        stored: np.ndarray,
        tokens: np.ndarray,
        doc_starts: np.ndarray,
        vocab: Sequence[str],
        codebooks: CodebookNames,
        inv_offsets: np.ndarray | None = None,
        inv_positions: np.ndarray | None = None,
        folder: Path | None = None,
        values: np.ndarray | None = None,
    ) -> None:
        if values is not None and values.shape != stored.shape:
            raise CodebookError(f"values {values.shape} must have the codes' shape {stored.shape}.")
        if stored.ndim != 3 or stored.shape[0] != tokens.shape[0] or stored.shape[1] != len(codebooks):
            raise CodebookError(
                f"codes {stored.shape} must be (tokens, codebooks, k) with {tokens.shape[0]} tokens and "
                f"{len(codebooks)} codebooks."
            )
        if doc_starts[0] != 0 or doc_starts[-1] != tokens.shape[0] or np.any(np.diff(doc_starts) < 0):
            raise CodebookError("doc_starts must rise from 0 to the number of tokens.")
        if any(book.num_codes is None for book in codebooks.codebooks):
            raise CodebookError("an index needs each codebook's number of codes.")
        self._stored = stored  # (tokens, codebooks, k) compact ids; the dtype's max marks an empty slot
        self.values = values  # (tokens, codebooks, k) float16 activations, or None where codes have none
        self._empty = int(np.iinfo(stored.dtype).max)
        self.tokens = tokens
        self.doc_starts = doc_starts
        self.vocab = list(vocab)
        self.codebooks = codebooks
        self.folder = folder
        if inv_offsets is None or inv_positions is None:
            inv_offsets, inv_positions = self._invert()
        self.inv_offsets = inv_offsets
        self.inv_positions = inv_positions
        self._text: _Text | None = None
        self._matched: OrderedDict[tuple[str, bool], np.ndarray] = OrderedDict()  # recent searches (_MATCH_CACHE)
        self._value_sums: np.ndarray | None = None  # (codebooks, max num_codes), read once when a search needs it

    @property
    def labels(self) -> list[str]:
        return list(self.codebooks.labels)

    @property
    def num_codes(self) -> list[int]:
        return [int(book.num_codes or 0) for book in self.codebooks.codebooks]

    @property
    def k(self) -> int:
        return int(self._stored.shape[2])

    @property
    def dtype(self) -> np.dtype:
        """The dtype ids are stored in: uint16, or uint32 for codebooks of 65,535 codes or more."""
        return self._stored.dtype

    @property
    def codes(self) -> np.ndarray:
        """Deprecated: the compact stored ids (empty = the dtype's max); read ``ids(start, stop)``."""
        warnings.warn("CodeIndex.codes is deprecated; use CodeIndex.ids(start, stop)", DeprecationWarning, 2)
        return self._stored

    @property
    def empty(self) -> int:
        """Deprecated: the stored empty marker; ``ids`` marks empty slots -1 like everything else."""
        warnings.warn("CodeIndex.empty is deprecated; ids() marks empty slots -1", DeprecationWarning, 2)
        return self._empty

    # ------------------------------------------------------------ building
    @classmethod
    def build(
        cls,
        model: CodebookModel,
        corpus: Iterable[str] | Iterable[Sequence[int]] | torch.Tensor,
        batch_size: int = 8,
        progress: bool = True,
        cache: bool | str | Path = False,
    ) -> CodeIndex:
        """Run ``model`` over every document and keep its codes.

        Documents longer than the model's context are cut into consecutive windows of that length;
        each window is read with a fresh context (the codes at a window's start see no earlier tokens).
        ``cache=True`` (or a folder) keeps the index on disk, keyed by the model's weights and codebook
        settings and the corpus: the next build of the same index opens it instead (memory-mapped).
        Build it outside any intervention: the key does not see interventions.
        """
        if not model.attached:
            raise CodebookError("this model has no codebooks; attach(...) or load a model with codebooks first.")
        docs = _documents(model, corpus)
        if not docs or sum(len(d) for d in docs) == 0:
            raise CodebookError("the corpus is empty; give at least one non-empty text or token sequence.")
        doc_starts = np.concatenate([[0], np.cumsum([len(d) for d in docs])]).astype(np.int64)
        tokens = np.concatenate([np.asarray(d, dtype=np.int32) for d in docs])
        vocab = _vocab_text(model)
        folder = None
        if cache:
            key = fingerprint(model, FORMAT, VERSION, batch_size, vocab, arrays=(tokens, doc_starts))
            folder = cache_folder(cache, "index", key)
            if (folder / "manifest.json").exists():
                if progress:
                    print(f"code index: opened from the cache ({folder})")
                return cls.open(folder)
        if progress:
            where = f"; it is cached in {folder} for the next run" if folder else ""
            print(f"code index: reading {len(docs):,} documents ({len(tokens):,} tokens) through the model{where}")
        stored, values = _read_codes(model, docs, doc_starts, batch_size, progress)
        index = cls(stored, tokens, doc_starts, vocab, model.names, values=values)
        if folder is not None:
            try:
                index.save(folder)
            except CodebookError as err:  # a cache that cannot be written costs the next run time, no more
                warnings.warn(f"the code index was built but not cached: {err}", stacklevel=2)
        return index

    def _invert(self) -> tuple[np.ndarray, np.ndarray]:
        """CSR per codebook: positions where each code fires, sorted."""
        t, n, k = self._stored.shape
        width = max(self.num_codes) + 1
        offsets = np.zeros((n, width), dtype=np.int64)
        chunks = []
        base = 0
        for book in range(n):
            column = self._stored[:, book, :].reshape(-1)
            positions = np.repeat(np.arange(t, dtype=np.uint32), k) if k > 1 else np.arange(t, dtype=np.uint32)
            keep = column != self._empty
            column, positions = column[keep], positions[keep]
            order = np.argsort(column, kind="stable")
            counts = np.bincount(column, minlength=width - 1)[: width - 1]
            offsets[book, 1:] = base + np.cumsum(counts)
            offsets[book, 0] = base
            chunks.append(positions[order])
            base += len(order)
        return offsets, np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.uint32)

    # ------------------------------------------------------------ save / open
    def save(self, folder: str | Path) -> Path:
        """Write the index to ``folder`` (built beside it under a temporary name, then renamed into place)."""
        folder = Path(folder)
        if self.folder is not None and folder.resolve() == Path(self.folder).resolve():
            return folder  # its arrays are memory-mapped from there already
        with atomic_folder(folder) as building:
            arrays = (self._stored, self.tokens, self.doc_starts, self.inv_offsets, self.inv_positions)
            for name, array in zip(_ARRAYS, arrays, strict=True):
                np.save(building / f"{name}.npy", np.ascontiguousarray(array))
            if self.values is not None:
                np.save(building / "values.npy", np.ascontiguousarray(self.values))
            (building / "vocab.json").write_text(json.dumps(self.vocab))
            manifest = {
                "format": FORMAT,
                "version": VERSION,
                "codebooks": self.codebooks.to_list(),
                "tokens": self.num_tokens,
                "documents": self.num_documents,
                "k": self.k,
                "dtype": str(self._stored.dtype),
                "values": self.values is not None,
            }
            (building / "manifest.json").write_text(json.dumps(manifest, indent=2))
        self.folder = folder
        return folder

    @classmethod
    def open(cls, folder: str | Path) -> CodeIndex:
        """Reopen a saved index; arrays are memory-mapped, not read into memory."""
        folder = Path(folder)
        path = folder / "manifest.json"
        if not path.exists():
            raise CodebookError(
                f"{str(folder)!r} holds no code index (no manifest.json); pass the folder save() wrote."
            )
        manifest = json.loads(path.read_text())
        if manifest.get("format") != FORMAT or manifest.get("version") not in (1, VERSION):
            raise CodebookError(f"{str(path)!r} is not a version-1 or -{VERSION} cbwidgets code index.")
        if manifest["version"] == 1:  # labels and sizes only
            codebooks = CodebookNames.from_labels(manifest["labels"], num_codes=manifest["num_codes"])
        else:
            codebooks = CodebookNames.from_list(manifest["codebooks"])
        arrays = {name: np.load(folder / f"{name}.npy", mmap_mode="r") for name in _ARRAYS}
        values = np.load(folder / "values.npy", mmap_mode="r") if manifest.get("values") else None
        vocab = json.loads((folder / "vocab.json").read_text())
        return cls(
            arrays["codes"],
            arrays["tokens"],
            np.asarray(arrays["doc_starts"]),
            vocab,
            codebooks,
            arrays["inv_offsets"],
            arrays["inv_positions"],
            folder,
            values,
        )

    # ------------------------------------------------------------ reading
    @property
    def num_tokens(self) -> int:
        return int(self.tokens.shape[0])

    @property
    def num_documents(self) -> int:
        return int(len(self.doc_starts) - 1)

    def __repr__(self) -> str:
        where = f", folder={str(self.folder)!r}" if self.folder else ""
        return (
            f"CodeIndex(tokens={self.num_tokens}, documents={self.num_documents}, codebooks={len(self.codebooks)}, "
            f"k={self.k}, dtype={self._stored.dtype}{where})"
        )

    def ids(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Code ids (tokens, codebooks, k) of corpus tokens start..stop-1 as int32; -1 marks an empty slot."""
        block = np.asarray(self._stored[start:stop])
        ids = block.astype(np.int32)
        ids[block == self._empty] = EMPTY
        return ids

    def token_strings(self, start: int = 0, stop: int | None = None) -> list[str]:
        """The text of corpus tokens start..stop-1, one string per token."""
        return [self.vocab[t] for t in np.asarray(self.tokens[start:stop]).tolist()]

    def document_span(self, document: int) -> tuple[int, int]:
        """(first token, one past the last) of a document in the corpus."""
        if not 0 <= document < self.num_documents:
            raise CodebookError(f"document {document} is out of range; this index has {self.num_documents}.")
        return int(self.doc_starts[document]), int(self.doc_starts[document + 1])

    def positions(self, code: Any) -> np.ndarray:
        """Token positions (in corpus order) where ``code`` fires; a slice of the inverted index."""
        try:
            book, value = self.codebooks.parse_code(code)
        except CodebookError as err:
            raise CodebookError(f"{code!r} is not a code of this index: {err}") from None
        start, stop = self.inv_offsets[book, value], self.inv_offsets[book, value + 1]
        return np.asarray(self.inv_positions[start:stop], dtype=np.int64)

    def code_values(self, code: Any) -> np.ndarray:
        """The value of ``code`` at each of its ``positions`` (float32); all 1 where codes have no values."""
        where = self.positions(code)
        if self.values is None:
            return np.ones(len(where), dtype=np.float32)
        book, value = self.codebooks.parse_code(code)
        slots = np.asarray(self._stored[where, book, :]) == value  # (firings, k): the slot holding it
        return (np.asarray(self.values[where, book, :], dtype=np.float32) * slots).sum(1)

    def firings(self) -> np.ndarray:
        """(codebooks, max num_codes): how many tokens each code fires on."""
        return np.diff(np.asarray(self.inv_offsets), axis=1)

    def code_counts(self, codebook: int, where: np.ndarray | slice) -> np.ndarray:
        """How often each code of codebook ``codebook`` (an index) fires at the tokens ``where``
        (a boolean mask, positions, or a slice): (num_codes,)."""
        return self._count(np.asarray(self._stored[where, codebook, :]), codebook)

    def _count(self, stored: np.ndarray, codebook: int) -> np.ndarray:
        ids = stored.reshape(-1)
        return np.bincount(ids[ids != self._empty], minlength=self.num_codes[codebook])

    def text(self) -> _Text:
        """The decoded corpus (documents joined by a separator) and each character's token; cached."""
        if self._text is None:
            self._text = _Text.of(np.asarray(self.tokens), np.asarray(self.doc_starts), self.vocab)
        return self._text

    def matches(self, pattern: str, ignore_case: bool = False) -> np.ndarray:
        """Sorted unique token positions that a regex match starts in (group 1's start if it has groups).

        The latest results are kept (up to ``_MATCH_CACHE`` positions in all): proposing labels for
        many codes asks the same patterns again and again. The array returned is read-only."""
        key = (pattern, ignore_case)
        found = self._matched.get(key)
        if found is None:
            found = self.text().matches(pattern, ignore_case)
            found.flags.writeable = False
            self._matched[key] = found
            while sum(len(v) for v in self._matched.values()) > _MATCH_CACHE and len(self._matched) > 1:
                self._matched.popitem(last=False)
        else:
            self._matched.move_to_end(key)
        return found

    def search(self, pattern: str, min_precision: float = 0.0, min_matches: int = 1) -> pd.DataFrame:
        """Codes for a regex, most precise first: codebook, code, precision, recall, matches, firings.

        Where codes have values (an SAE's latents), ``activation_precision`` is the share of a code's
        summed value that falls on matched tokens, and ranks the table: a latent that fires weakly
        everywhere but strongly on the matches ranks above one that fires as often on them but as
        strongly elsewhere. (A codebook's codes have value 1, so theirs equals their precision.)
        ``table.attrs["matched_tokens"]`` holds how many tokens the pattern matched.
        """
        matched = self.matches(pattern)
        weighted = self.values is not None
        columns = ["codebook", "code", "precision", "recall", "matches", "firings"]
        columns += ["activation_precision"] if weighted else []
        if len(matched) == 0:
            empty = pd.DataFrame(columns=columns)
            empty.attrs["matched_tokens"] = 0
            return empty
        firings = self.firings()
        rows = []
        at = np.asarray(self._stored[matched])  # (matched, codebooks, k): one read for every codebook
        at_values = np.asarray(self.values[matched], dtype=np.float64) if self.values is not None else None
        totals = self.value_sums() if weighted else None
        for book, label in enumerate(self.labels):
            hits = self._count(at[:, book], book)
            mass = self._sum_values(at[:, book], at_values[:, book], book) if at_values is not None else None
            for value in np.nonzero(hits >= min_matches)[0]:
                fired = int(firings[book, value])
                precision = hits[value] / fired
                if precision >= min_precision:
                    name = self.codebooks.code_name(book, value)
                    row = [label, name, precision, hits[value] / len(matched), int(hits[value]), fired]
                    if mass is not None and totals is not None:
                        row.append(mass[value] / totals[book, value] if totals[book, value] > 0 else 0.0)
                    rows.append(tuple(row))
        table = pd.DataFrame(rows, columns=columns)
        order = (["activation_precision"] if weighted else []) + ["precision", "recall"]
        table = table.sort_values(order, ascending=False, ignore_index=True)
        table.attrs["matched_tokens"] = len(matched)
        return table

    def value_sums(self) -> np.ndarray:
        """(codebooks, max num_codes): each code's values summed over the index (its firings where
        codes have no values). Read once, in chunks, the first time it is asked for."""
        if self.values is None:
            return self.firings().astype(np.float64)
        if self._value_sums is None:
            sums = np.zeros((len(self.labels), max(self.num_codes)), dtype=np.float64)
            for start in range(0, self.num_tokens, _VALUE_CHUNK):
                ids = np.asarray(self._stored[start : start + _VALUE_CHUNK])
                vals = np.asarray(self.values[start : start + _VALUE_CHUNK], dtype=np.float64)
                for book in range(len(self.labels)):
                    sums[book, : self.num_codes[book]] += self._sum_values(ids[:, book], vals[:, book], book)
            self._value_sums = sums
        return self._value_sums

    def _sum_values(self, stored: np.ndarray, values: np.ndarray, codebook: int) -> np.ndarray:
        ids, weights = stored.reshape(-1), values.reshape(-1)
        kept = ids != self._empty
        return np.bincount(ids[kept], weights=weights[kept], minlength=self.num_codes[codebook])

    def document_of(self, positions: np.ndarray) -> np.ndarray:
        return np.searchsorted(np.asarray(self.doc_starts), positions, side="right") - 1

    def top_examples(self, code: Any, n: int = 10, context: int = 8) -> pd.DataFrame:
        """Up to ``n`` firings with ``context`` tokens either side: where the code's values vary (an
        SAE's latent), the strongest, strongest first, with a ``value`` column; else spread over
        the corpus, in its order (every firing of a codebook's code is alike).

        ``marked`` lists, for each window, the positions in it where the code fires (the firing token
        and any others), so a view can highlight them.
        """
        where = self.positions(code)
        if len(where) == 0:
            return pd.DataFrame(columns=["document", "position", "left", "token", "right", "marked"])
        strength = self.code_values(code)
        ranked = bool(strength.max() > strength.min())
        if ranked:
            chosen = where[np.argsort(-strength, kind="stable")[:n]]
        else:
            chosen = np.unique(where[np.linspace(0, len(where) - 1, min(n, len(where))).astype(np.int64)])
        docs = self.document_of(chosen)
        fires = set(where.tolist())
        rows = []
        for p, d in zip(chosen.tolist(), docs.tolist(), strict=True):
            first, last = self.document_span(d)
            a, b = max(first, p - context), min(last, p + context + 1)
            text = self.token_strings(a, b)
            rows.append(
                {
                    "document": d,
                    "position": p,
                    "left": "".join(text[: p - a]),
                    "token": text[p - a],
                    "right": "".join(text[p - a + 1 :]),
                    "marked": [q for q in range(a, b) if q in fires],
                }
            )
        table = pd.DataFrame(rows)
        if ranked:
            table["value"] = strength[np.searchsorted(where, chosen)]
        return table

    def document_codes(self, document: int, min_share: float = 0.3) -> pd.DataFrame:
        """Codes firing on at least ``min_share`` of one document's tokens, most widespread first."""
        a, b = self.document_span(document)
        rows = []
        for book in range(len(self.codebooks)):
            counts = self.code_counts(book, slice(a, b))
            for value in np.nonzero(counts >= max(1, min_share * (b - a)))[0]:
                rows.append((self.codebooks.code_name(book, value), counts[value] / (b - a), int(counts[value])))
        table = pd.DataFrame(rows, columns=["code", "share", "tokens"])
        return table.sort_values("share", ascending=False, ignore_index=True)

    def topic_codes(self, document: int, min_share: float = 0.3) -> pd.DataFrame:
        """Deprecated: ``document_codes`` (``cbwidgets.steering.topic_codes`` finds a topic's codes)."""
        warnings.warn("CodeIndex.topic_codes is now CodeIndex.document_codes", DeprecationWarning, stacklevel=2)
        return self.document_codes(document, min_share)

    def code_stats(self, code: Any, top: int = 10) -> dict[str, Any]:
        """Frequency (share of tokens), firings, and the tokens it most often fires on."""
        where = self.positions(code)
        counts = np.bincount(np.asarray(self.tokens)[where], minlength=len(self.vocab)) if len(where) else None
        tokens = []
        if counts is not None:
            for t in np.argsort(-counts, kind="stable")[:top]:  # most often first; ties by token id
                if counts[t] == 0:
                    break
                tokens.append((self.vocab[int(t)], int(counts[t])))
        return {
            "code": self.codebooks.canonical(code),
            "firings": len(where),
            "frequency": len(where) / max(1, self.num_tokens),
            "documents": len(np.unique(self.document_of(where))) if len(where) else 0,
            "top_tokens": tokens,
        }


def _documents(model: CodebookModel, corpus: Any) -> list[list[int]]:
    if isinstance(corpus, torch.Tensor):
        if corpus.ndim != 2:
            raise CodebookError(f"a token tensor corpus must be (documents, tokens); got shape {tuple(corpus.shape)}.")
        return [row.tolist() for row in corpus]
    if isinstance(corpus, str):
        raise CodebookError("the corpus is one string; pass a list of documents, e.g. [text].")
    docs = []
    for doc in corpus:
        if isinstance(doc, str):
            if model.tokenizer is None:
                raise CodebookError("texts need a model with a tokenizer; pass token ids instead.")
            docs.append(list(model.tokenizer(doc, add_special_tokens=True)["input_ids"]))
        else:
            docs.append([int(t) for t in doc])
    return docs


def _read_codes(
    model: CodebookModel, docs: list[list[int]], doc_starts: np.ndarray, batch_size: int, progress: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """Every document's codes (tokens, codebooks, k) in the compact dtype, windows of equal length
    batched; their values as float16 where the model's codes have them (else None)."""
    from tqdm.auto import tqdm

    window = model.max_length() or max(len(d) for d in docs)
    # (where the window starts in the corpus, its tokens)
    pieces = [(int(doc_starts[i]) + s, d[s : s + window]) for i, d in enumerate(docs) for s in range(0, len(d), window)]
    codebooks = model.names
    k = max(cb.k for cb in model.attached.values())
    largest = max(book.num_codes or 0 for book in codebooks.codebooks)
    dtype = np.uint16 if largest < np.iinfo(np.uint16).max else np.uint32
    total = int(doc_starts[-1])
    stored = np.empty((total, len(codebooks), k), dtype=dtype)
    values: np.ndarray | None = None
    order = sorted(range(len(pieces)), key=lambda j: len(pieces[j][1]))  # equal lengths together: no padding
    empty = np.iinfo(dtype).max
    bar = tqdm(total=total, unit="tok", desc="indexing", disable=not progress)
    try:
        with torch.no_grad(), model.evaluating():
            for batch in _equal_length_batches(order, pieces, batch_size):
                ids = torch.tensor([pieces[j][1] for j in batch], dtype=torch.long, device=model.device)
                codes = model(ids).codes
                found = codes.ids.cpu().numpy()  # (B, T, N, k)
                found = np.where(found == EMPTY, empty, found).astype(dtype)
                if codes.values is not None and values is None:
                    values = np.zeros(stored.shape, dtype=np.float16)
                for row, j in enumerate(batch):
                    at, piece = pieces[j]
                    stored[at : at + len(piece)] = found[row]
                    if values is not None and codes.values is not None:
                        values[at : at + len(piece)] = codes.values[row].cpu().numpy().astype(np.float16)
                bar.update(int(ids.numel()))
    finally:
        bar.close()
    return stored, values


def _equal_length_batches(order: list[int], pieces: list[tuple[int, list[int]]], size: int) -> Iterable[list[int]]:
    batch: list[int] = []
    for j in order:
        if batch and (len(batch) == size or len(pieces[j][1]) != len(pieces[batch[0]][1])):
            yield batch
            batch = []
        batch.append(j)
    if batch:
        yield batch


def _vocab_text(model: CodebookModel) -> list[str]:
    size = int(model.config.vocab_size)
    if model.tokenizer is None:
        return [str(i) for i in range(size)]
    return [model.tokenizer.decode([i]) for i in range(size)]
