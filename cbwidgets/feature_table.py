"""The "interpreting features" table: each code, what it means, and where it fires, for any model.

One row per code: its name, its interpretation (the model's label where one was written, otherwise
the kit's best proposal with its held-out precision and recall) and a few example activations with
the firing token marked. Shown as HTML in a notebook, and written to one HTML file or to Markdown
for a slide or a report.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from .atomic import atomic_file
from .errors import check_positive_int
from .index import CodeIndex
from .label_proposals import propose_labels

if TYPE_CHECKING:
    from .labels import CodeLabels

__all__ = ["FeatureTable", "feature_table"]

_STYLE = (
    "table.cbw-features{border-collapse:collapse;font:13px system-ui,sans-serif}"
    ".cbw-features th,.cbw-features td{border-bottom:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}"
    ".cbw-features code{font-size:12px}.cbw-features mark{background:#1f77b4;color:#fff;padding:0 1px}"
    ".cbw-features .ex{font-family:ui-monospace,monospace;white-space:pre}"
)


@dataclass(frozen=True)
class FeatureTable:
    """The table (``frame``: code, interpretation, source, precision, recall, examples) and its
    renderings. ``examples`` holds (left, token, right) triples."""

    frame: pd.DataFrame

    def to_html(self, path: str | Path | None = None) -> str:
        """One self-contained HTML page (no script, no network); written to ``path`` when given."""
        page = (
            '<!doctype html><html><head><meta charset="utf-8"><title>codes and what they mean</title>'
            f"<style>{_STYLE}</style></head><body>{self._table()}</body></html>"
        )
        if path is not None:
            with atomic_file(Path(path)) as tmp:
                tmp.write_text(page, encoding="utf-8")
        return page

    def to_markdown(self, path: str | Path | None = None) -> str:
        """A Markdown table, the firing token in bold; written to ``path`` when given."""
        lines = ["| code | interpretation | example activations |", "| --- | --- | --- |"]
        for row in self._rows():
            examples = "<br>".join(
                f"`{_md(left)}`**`{_md(token)}`**`{_md(right)}`" for left, token, right in row["examples"]
            )
            lines.append(f"| `{row['code']}` | {_md(row['interpretation'])} | {examples} |")
        text = "\n".join(lines) + "\n"
        if path is not None:
            with atomic_file(Path(path)) as tmp:
                tmp.write_text(text, encoding="utf-8")
        return text

    def _table(self) -> str:
        rows = []
        for row in self._rows():
            examples = "<br>".join(
                f'<span class="ex">{html.escape(left)}<mark>{html.escape(token)}</mark>{html.escape(right)}</span>'
                for left, token, right in row["examples"]
            )
            rows.append(
                f"<tr><td><code>{html.escape(row['code'])}</code></td><td>{html.escape(row['interpretation'])}</td>"
                f"<td>{examples}</td></tr>"
            )
        return (
            '<table class="cbw-features"><thead><tr><th>code</th><th>interpretation</th>'
            f"<th>example activations</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
        )

    def _rows(self) -> list[dict[str, Any]]:
        return [{str(k): v for k, v in row.items()} for row in self.frame.to_dict("records")]

    def _repr_html_(self) -> str:
        return f"<style>{_STYLE}</style>{self._table()}"

    def __repr__(self) -> str:
        return f"FeatureTable({len(self.frame)} codes)"


def feature_table(
    index: CodeIndex, codes: Iterable[Any], labels: CodeLabels | None = None, examples: int = 3, context: int = 6
) -> FeatureTable:
    """The table for ``codes`` (any forms): the label from ``labels`` (a model's ``labels``) where one
    is written, else the best proposal (``propose_labels``) with its scores; ``examples`` firings
    each, with ``context`` tokens either side."""
    examples = check_positive_int("examples", examples)
    context = check_positive_int("context", context)
    rows: list[dict[str, Any]] = []
    for code in codes:
        name = index.codebooks.canonical(code)
        shown = index.top_examples(name, n=examples, context=context)
        row: dict[str, Any] = {
            "code": name,
            "precision": float("nan"),
            "recall": float("nan"),
            "examples": [(str(r["left"]), str(r["token"]), str(r["right"])) for r in shown.to_dict("records")],
        }
        written = labels.get(name) if labels is not None else None
        if labels is not None and written is not None:
            stale = labels.status(name) == "stale"
            row.update(interpretation=("(stale) " if stale else "") + written.text, source="written")
        else:
            best = propose_labels(index, name, top=1)
            if len(best):
                top = best.iloc[0]
                row.update(interpretation=str(top.label), source="proposed")
                row.update(precision=float(top.precision), recall=float(top.recall))
            else:
                row.update(interpretation="(fires too rarely to propose a rule)", source="none")
        rows.append(row)
    columns = ["code", "interpretation", "source", "precision", "recall", "examples"]
    return FeatureTable(pd.DataFrame(rows, columns=columns))


def _md(text: str) -> str:
    """Text inside a Markdown table cell: pipes escaped, line breaks shown as a symbol."""
    return text.replace("|", "\\|").replace("\n", "\u21b5").replace("`", "'")
