"""A state's neighbourhood in the FSM as a small SVG picture, with no plotting dependency.

The whole graph (100 states, 1,000 edges) is a hairball; one state, its out-neighbours and the
edges among them is what a reader can check by eye against a model's predictions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape

from ..errors import CodebookError
from .world import TokFSM

__all__ = ["NeighbourhoodSVG", "draw_neighbourhood"]

_SIZE = 440
_RING = 130
_OUTER = 195
_NODE = 17


@dataclass(frozen=True)
class NeighbourhoodSVG:
    """An SVG document; notebooks show it through ``_repr_svg_``."""

    svg: str
    label: str = ""

    def __repr__(self) -> str:
        return f"<NeighbourhoodSVG {self.label}>"

    def _repr_svg_(self) -> str:
        return self.svg

    def save(self, path: str) -> None:
        with open(path, "w", encoding="utf-8") as f:
            f.write(self.svg)


def draw_neighbourhood(fsm: TokFSM, state: int, highlight: tuple[int, ...] = ()) -> NeighbourhoodSVG:
    """``state`` in the centre, its out-neighbours on a ring (self-loops drawn as a ring on the centre).

    ``highlight``: states drawn filled orange (for example a model's predictions); those that are not
    out-neighbours go on an outer ring, joined to the centre by a dashed orange line.
    """
    if not 0 <= state < fsm.num_states:
        raise CodebookError(f"state {state} is not in this FSM; states are 0..{fsm.num_states - 1}.")
    neighbours = [int(s) for s in fsm.edges[state] if s != state]
    self_loop = len(neighbours) < fsm.num_edges
    centre = _SIZE / 2
    where = {state: (centre, centre)}
    for i, s in enumerate(neighbours):
        angle = 2 * math.pi * i / len(neighbours) - math.pi / 2
        where[s] = (centre + _RING * math.cos(angle), centre + _RING * math.sin(angle))
    strangers = [int(s) for s in dict.fromkeys(highlight) if s not in where]
    for i, s in enumerate(strangers):
        angle = 2 * math.pi * (i + 0.5) / max(len(strangers), len(neighbours)) - math.pi / 2
        where[s] = (centre + _OUTER * math.cos(angle), centre + _OUTER * math.sin(angle))

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_SIZE}" height="{_SIZE}" viewBox="0 0 {_SIZE} {_SIZE}" '
        'font-family="sans-serif" font-size="12">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker></defs>',
        f"<title>{escape(f'state {fsm.state_text(state)} and its out-neighbours')}</title>",
    ]
    # edges among the neighbours (faint) first, then the centre's own edges on top
    for a in neighbours:
        for b in neighbours:
            if a != b and b in fsm.edges[a]:
                parts.append(_edge(where[a], where[b], "#c8c8c8", 1))
    for b in neighbours:
        parts.append(_edge(where[state], where[b], "#555", 1.5))
        if state in fsm.edges[b]:
            parts.append(_edge(where[b], where[state], "#9ab", 1))
    for s in strangers:
        parts.append(_edge(where[state], where[s], "#e69f00", 1.5, dashed=True))
    if self_loop:
        parts.append(
            f'<circle cx="{centre}" cy="{centre - _NODE - 8}" r="9" fill="none" stroke="#555" stroke-width="1.5"/>'
        )
    for s, (x, y) in where.items():
        fill = "#e69f00" if s in highlight else ("#0072b2" if s == state else "#fff")
        text = "#fff" if s == state or s in highlight else "#222"
        parts.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{_NODE}" fill="{fill}" stroke="#333"/>'
            f'<text x="{x:.1f}" y="{y + 4:.1f}" text-anchor="middle" fill="{text}">{escape(fsm.state_text(s))}</text>'
        )
    parts.append("</svg>")
    return NeighbourhoodSVG("".join(parts), f"state {fsm.state_text(state)}, {len(neighbours)} neighbours")


def _edge(a: tuple[float, float], b: tuple[float, float], colour: str, width: float, dashed: bool = False) -> str:
    """A straight arrow from node a to node b, stopping at b's rim."""
    (x1, y1), (x2, y2) = a, b
    length = math.hypot(x2 - x1, y2 - y1) or 1.0
    ux, uy = (x2 - x1) / length, (y2 - y1) / length
    return (
        f'<line x1="{x1 + ux * _NODE:.1f}" y1="{y1 + uy * _NODE:.1f}" x2="{x2 - ux * _NODE:.1f}" '
        f'y2="{y2 - uy * _NODE:.1f}" stroke="{colour}" stroke-width="{width}" marker-end="url(#arrow)"'
        + (' stroke-dasharray="5 4"/>' if dashed else "/>")
    )
