"""The neighbourhood picture: the right states and edges, highlighted predictions, clear errors."""

from __future__ import annotations

import re

import pytest

from cbwidgets import CodebookError
from cbwidgets.tokfsm import TokFSM
from cbwidgets.tokfsm.draw import draw_neighbourhood


def _labels(svg: str) -> list[str]:
    return re.findall(r">(\d\d)</text>", svg)


def test_draws_the_state_and_each_out_neighbour_once() -> None:
    fsm = TokFSM()
    picture = draw_neighbourhood(fsm, 42)
    svg = picture._repr_svg_()
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    expected = {"42", *(fsm.state_text(int(s)) for s in fsm.edges[42])}
    assert sorted(_labels(svg)) == sorted(expected)
    # one dark arrow per out-edge, plus grey arrows exactly for edges among the neighbours
    assert svg.count('stroke="#555" stroke-width="1.5"') == 10
    among = sum(1 for a in fsm.edges[42] for b in fsm.edges[42] if a != b and b in fsm.edges[a])
    assert svg.count('stroke="#c8c8c8"') == among
    assert repr(picture) == "<NeighbourhoodSVG state 42, 10 neighbours>"


def test_highlighted_strangers_go_on_an_outer_ring() -> None:
    fsm = TokFSM()
    outsiders = [s for s in range(fsm.num_states) if s not in fsm.edges[42] and s != 42][:3]
    neighbour = int(fsm.edges[42][0])
    svg = draw_neighbourhood(fsm, 42, highlight=(*outsiders, neighbour)).svg
    assert svg.count('fill="#e69f00"') == 4
    assert svg.count("stroke-dasharray") == 3
    assert {fsm.state_text(s) for s in outsiders} <= set(_labels(svg))


def test_self_loops_are_drawn() -> None:
    fsm = TokFSM(num_states=5, num_edges=5, seed=0)  # every state is its own neighbour
    svg = draw_neighbourhood(fsm, 0).svg
    assert svg.count('fill="none" stroke="#555"') == 1
    assert len(_labels(svg)) == 5


def test_unknown_state_is_explained() -> None:
    with pytest.raises(CodebookError, match=r"state 100 is not in this FSM; states are 0\.\.99"):
        draw_neighbourhood(TokFSM(), 100)
