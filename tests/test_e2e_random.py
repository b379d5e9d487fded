"""Randomized end to end: JupyterLab, a kernel, Chromium, and hundreds of mixed user actions on the
ablation panel (clicks, slider drags, mode switches, edits set from Python, resets, re-clicks).

After each action settles, the painted numbers must equal a fresh run of the model in this test's
own process under the interventions the user asked for, and the kernel must hold what the user did.
At the end the kernel is restarted: the panel must say it has lost its kernel, never hang busy.
"""

from __future__ import annotations

import json
import math
import random
from typing import Any

import pytest
import torch

from cbwidgets.interventions import Ablate, Intervention, Scale
from cbwidgets.tokfsm import TokFSM, load_default
from cbwidgets.widgets.text import token_strings
from tests.browser import shot
from tests.jupyter import JupyterLab, execute, open_notebook

ACTIONS = 220
SEED = 13
PROMPT_SEED = 2

CELLS = [
    "import json, ipywidgets, numpy as np, torch\nimport cbwidgets\nfrom cbwidgets.tokfsm import TokFSM, load_default\n"
    f"model = load_default()\nprompt = TokFSM().sample(1, 41, seed={PROMPT_SEED})",
    # the kernel's state, printed into a Label after every answer (to the view or to Python)
    "panel = cbwidgets.ablation_panel(model, prompt)\nkernel = ipywidgets.Label()\nkernel.add_class('kernel-view')\n"
    "def report(_):\n"
    "    kernel.value = json.dumps({k: getattr(panel, k) for k in ('edits', 'mode', 'where', 'position', 'status')})\n"
    "panel.observe(report, 'revision')\nreport(None)\n"
    "ipywidgets.VBox([panel, kernel])",
]


_PAINTED = """() => {
  const root = document.querySelector('.cbw-ablation');
  return {
    busy: root.classList.contains('cbw-busy'),
    notice: root.querySelector('.cbw-notice').hidden ? '' : root.querySelector('.cbw-notice').textContent,
    error: root.querySelector('.cbw-error') ? root.querySelector('.cbw-error').textContent : '',
    status: root.querySelector('.cbw-status').textContent,
    position: Number(root.querySelector('.cbw-ab-tok.cbw-selected').dataset.t),
    mode: root.querySelector('.cbw-ab-bar input[value=substitute]').checked ? 'substitute' : 'drop',
    where: root.querySelector('.cbw-ab-bar input[value=token]').checked ? 'token' : 'everywhere',
    codes: [...root.querySelectorAll('.cbw-ab-code')].map((r) => ({
      code: r.dataset.code, on: r.querySelector('.cbw-ab-toggle').checked,
      value: r.querySelector('.cbw-ab-value').textContent })),
    after: Object.fromEntries([...root.querySelectorAll('.cbw-ab-pred[data-token]')].map(
      (r) => [r.dataset.token, r.querySelector('.cbw-after span').textContent])),
    next: [...root.querySelectorAll('.cbw-ab-tok')].map((s) => Number(s.dataset.after)),
  };
}"""

_SETTLED = """() => {
  const root = document.querySelector('.cbw-ablation');
  const kernel = document.querySelector('.kernel-view');
  if (!root || !kernel || root.classList.contains('cbw-busy')) return false;
  try { return JSON.parse(kernel.textContent).status === root.querySelector('.cbw-status').textContent; }
  catch { return false; }
}"""


class Oracle:
    """What the user asked for, and the model run fresh in this process under it."""

    def __init__(self) -> None:
        self.model = load_default()
        self.ids = TokFSM().sample(1, 41, seed=PROMPT_SEED)
        self.tokens = token_strings(self.model.tokenizer, self.ids[0].tolist())
        with torch.no_grad():
            self.before = self.model(self.ids).logits[0].float().softmax(-1)
        self.names = {c.label: c.name for c in self.model.names.codebooks}  # "2.1" -> its full name
        self.edits: dict[str, float] = {}
        self.mode, self.where, self.position = "substitute", "everywhere", self.ids.shape[1] - 1

    def interventions(self) -> list[Intervention]:
        positions = [self.position] if self.where == "token" else None
        out: list[Intervention] = []
        for code, scale in self.edits.items():
            if scale == 0:
                out.append(Ablate(code, positions, self.mode))
            elif scale != 1:
                out.append(Scale(code, scale, positions))
        return out

    def run(self) -> torch.Tensor:
        with torch.no_grad(), self.model.intervene(*self.interventions()):
            return self.model(self.ids).logits[0].float().softmax(-1)


def _check(page: Any, oracle: Oracle, step: int, action: str) -> dict[str, Any]:
    where = f"after action {step} ({action})"
    page.wait_for_function(_SETTLED, timeout=30_000)
    painted = page.evaluate(_PAINTED)
    kernel = json.loads(page.locator(".kernel-view").inner_text())
    assert not painted["notice"] and not painted["error"], (where, painted["notice"], painted["error"])
    # the kernel holds what the user did ...
    assert {e["code"]: e["scale"] for e in kernel["edits"]} == oracle.edits, where
    assert (kernel["mode"], kernel["where"], kernel["position"]) == (oracle.mode, oracle.where, oracle.position), where
    # ... and the view paints it: settings, toggles and the status line
    assert (painted["mode"], painted["where"], painted["position"]) == (oracle.mode, oracle.where, oracle.position)
    assert f"mode {oracle.mode}, {oracle.where}" in painted["status"], where
    for row in painted["codes"]:
        scale = oracle.edits.get(row["code"])
        assert row["on"] == (scale is not None), (where, row)
        if scale is not None:
            assert row["value"] == ("off" if scale == 0 else f"x{scale:g}"), (where, row)
    # ... and the painted numbers are a fresh run's
    probs = oracle.run()
    p = oracle.position
    union = torch.cat([oracle.before[p].topk(10).indices, probs[p].topk(10).indices]).unique().tolist()
    expected = dict(zip(token_strings(oracle.model.tokenizer, union), probs[p, union].tolist(), strict=True))
    assert set(painted["after"]) == set(expected), where
    for token, text in painted["after"].items():
        assert abs(float(text.rstrip("%")) - 100 * expected[token]) <= 0.051, (where, token, text, expected[token])
    actual = oracle.ids[0, 1:]
    next_fresh = probs[torch.arange(actual.shape[0]), actual].tolist()
    for t, value in enumerate(painted["next"][1:]):
        assert math.isclose(value, next_fresh[t], rel_tol=1e-4, abs_tol=1e-6), (where, t, value, next_fresh[t])
    return painted


def test_two_hundred_random_actions_always_paint_what_a_fresh_run_computes(jupyterlab: JupyterLab, page: Any) -> None:
    oracle = Oracle()
    rng = random.Random(SEED)
    open_notebook(jupyterlab, page, "random.ipynb", CELLS)
    page.wait_for_selector(".cbw-ab-code")
    painted = _check(page, oracle, 0, "opened")
    counts: dict[str, int] = {}
    kinds = ["toggle", "click-slider", "drag-slider", "mode", "where", "token", "reclick", "reset", "python"]
    for step in range(1, ACTIONS + 1):
        kind = rng.choice(kinds)
        counts[kind] = counts.get(kind, 0) + 1
        codes = [row["code"] for row in painted["codes"]]
        if kind == "toggle":
            code = rng.choice(codes)
            page.locator(f".cbw-ab-code[data-code='{code}'] .cbw-ab-toggle").click()
            if code in oracle.edits:
                del oracle.edits[code]
            else:
                oracle.edits[code] = 0.0
        elif kind in ("click-slider", "drag-slider"):
            code = rng.choice(codes)
            slider = page.locator(f".cbw-ab-code[data-code='{code}'] .cbw-ab-scale")
            slider.scroll_into_view_if_needed()
            box = slider.bounding_box()
            y = box["y"] + box["height"] / 2
            stops = [rng.uniform(0.02, 0.98) for _ in range(1 if kind == "click-slider" else rng.randint(3, 8))]
            page.mouse.move(box["x"] + box["width"] * stops[0], y)
            page.mouse.down()
            for stop in stops[1:]:
                page.mouse.move(box["x"] + box["width"] * stop, y, steps=3)
            page.mouse.up()
            value = float(slider.input_value())  # where the user left it
            if value == 1:
                oracle.edits.pop(code, None)
            else:
                oracle.edits[code] = value
        elif kind == "mode":
            oracle.mode = rng.choice(["substitute", "drop"])
            page.locator(f".cbw-ablation input[value='{oracle.mode}']").click()
        elif kind == "where":
            oracle.where = rng.choice(["everywhere", "token"])
            page.locator(f".cbw-ablation input[value='{oracle.where}']").click()
        elif kind in ("token", "reclick"):
            oracle.position = oracle.position if kind == "reclick" else rng.randrange(len(oracle.tokens))
            page.locator(f".cbw-ab-tok[data-t='{oracle.position}']").click()
        elif kind == "reset":
            oracle.edits = {}
            page.locator(".cbw-ab-reset").click()
        else:
            code = _python_action(page, oracle, rng, codes)
            kind = f"python: {code}"
        painted = _check(page, oracle, step, kind)
    print("actions:", ACTIONS, counts)
    print("screenshot:", shot(page, "jupyterlab-random-actions"))

    # the kernel restarts: the panel says it has lost its kernel, and a slider moved after it does
    # not leave it busy
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:restart-kernel'); }")  # Kernel menu
    page.locator(".jp-Dialog .jp-mod-accept").click()  # "Restart"
    page.wait_for_function("document.querySelector('.cbw-ablation').classList.contains('cbw-disconnected')")
    page.locator(".cbw-ab-scale").first.fill("0.5")
    notice = page.locator(".cbw-ablation .cbw-notice")
    assert notice.is_visible() and notice.inner_text().startswith("This view has lost its kernel")
    assert page.locator(".cbw-ablation.cbw-busy").count() == 0
    print("screenshot:", shot(page, "jupyterlab-kernel-restarted"))
    assert page.blocked == [], page.blocked


def _python_action(page: Any, oracle: Oracle, rng: random.Random, codes: list[str]) -> str:
    """Set the panel from Python in the kernel, with code ids in the forms the library hands out."""
    choice = rng.choice(["edits", "edits", "mode", "position", "reset"])
    if choice == "edits":
        picked = rng.sample(codes, rng.randint(1, 3))
        forms = []
        oracle.edits = {}
        for code in picked:
            label, number = code.rsplit(".", 1)
            name = oracle.names[label]
            scale = rng.choice([0.0, 0.5, 1.25, 2.0, 0.35])
            oracle.edits[code] = scale
            form = rng.choice([repr(code), f"('{name}', np.int64({number}))", f"('{label}', torch.tensor({number}))"])
            forms.append(f"{{'code': {form}, 'scale': {scale}}}")
        code = f"panel.edits = [{', '.join(forms)}]"
    elif choice == "mode":
        oracle.mode = rng.choice(["substitute", "drop"])
        code = f"panel.mode = {oracle.mode!r}"
    elif choice == "position":
        oracle.position = rng.randrange(len(oracle.tokens))
        code = f"panel.position = np.int64({oracle.position}).item()"
    else:
        oracle.edits = {}
        code = "panel.reset()"
    error = execute(page, code)
    assert error is None, (code, error)
    return code


@pytest.fixture(autouse=True)
def _long_timeout(page: Any) -> None:
    page.set_default_timeout(60_000)


# ------------------------------------------------------------------ the code explorer

EXPLORER_ACTIONS = 60
EXPLORER = [
    "import json, ipywidgets, numpy as np, torch\nimport cbwidgets\nfrom cbwidgets.index import CodeIndex\n"
    "from cbwidgets.tokfsm import TokFSM, load_default\nmodel = load_default()\n"
    "index = CodeIndex.build(model, TokFSM().sample(100, 128, seed=11), progress=False)\n"
    "explorer = cbwidgets.code_explorer(index, model)\nsearch, dashboard = explorer.search, explorer.dashboard\n"
    "kernel = ipywidgets.Label()\nkernel.add_class('kernel-view')\n"
    "def report(_):\n"
    "    kernel.value = json.dumps({'pattern': search.pattern, 'summary': search.summary, 'error': search.error,\n"
    "        'code': dashboard.code, 'example': dashboard.opened_example, 'selected': dashboard.heatmap.selected})\n"
    "for w in (search, dashboard):\n    w.observe(report, ['revision', 'error'])\n"
    "dashboard.heatmap.observe(report, 'selected')\nreport(None)\nipywidgets.VBox([explorer, kernel])",
]
PATTERNS = ["4(2)", "(7)", "1(0)", "(9)9", "3(3)", "2(", "(5)", "0(1)", "(8)6", "[1-3](4)", ""]

_EXPLORER_PAINTED = """() => {
  const search = document.querySelector('.cbw-search'), board = document.querySelector('.cbw-dashboard');
  return {
    busy: [...document.querySelectorAll('.cbw-root')].some((r) => r.classList.contains('cbw-busy')),
    notice: [...document.querySelectorAll('.cbw-notice')].some((n) => !n.hidden),
    pattern: search.querySelector('.cbw-se-input').value,
    summary: search.querySelector('.cbw-status').textContent,
    error: search.querySelector('.cbw-error').hidden ? '' : search.querySelector('.cbw-error').textContent,
    rows: [...search.querySelectorAll('.cbw-se-row[data-code]')].map((r) => [...r.children].map((c) => c.textContent)),
    title: board.querySelector('.cbw-db-title').textContent,
    examples: [...board.querySelectorAll('.cbw-db-example')].map((r) => r.title),
    similar: [...board.querySelectorAll('.cbw-db-similar')].map((r) => r.dataset.code),
    heatmap: document.querySelector('.cbw-heatmap .cbw-status').textContent,
  };
}"""

_EXPLORER_SETTLED = """(code) => {
  const kernel = document.querySelector('.kernel-view');
  const roots = [...document.querySelectorAll('.cbw-root')];
  if (!kernel || roots.length < 3 || roots.some((r) => r.classList.contains('cbw-busy'))) return false;
  try {
    const k = JSON.parse(kernel.textContent);
    return k.pattern === document.querySelector('.cbw-se-input').value &&  // a typed pattern was sent
      k.summary === document.querySelector('.cbw-search .cbw-status').textContent &&
      k.code === code && 'code ' + code === document.querySelector('.cbw-db-title').textContent;
  } catch { return false; }
}"""


def _check_explorer(page: Any, index: Any, model: Any, shown: dict[str, str], step: int, action: str) -> Any:
    from cbwidgets.code_effects import similar_codes

    where = f"after explorer action {step} ({action})"
    try:
        page.wait_for_function(_EXPLORER_SETTLED, arg=shown["code"], timeout=30_000)
    except Exception as err:  # say what the kernel and the view held when they did not agree
        state = (where, page.locator(".kernel-view").inner_text(), page.evaluate(_EXPLORER_PAINTED))
        raise AssertionError(state) from err
    painted = page.evaluate(_EXPLORER_PAINTED)
    kernel = json.loads(page.locator(".kernel-view").inner_text())
    assert not painted["notice"], where
    assert (kernel["pattern"], kernel["code"]) == (shown["pattern"], shown["code"]), (where, kernel, shown)
    assert painted["error"] == kernel["error"], (where, painted["error"], kernel)
    assert bool(painted["error"]) == (shown["good"] != shown["pattern"]), (where, painted["error"], shown)
    # the table is a fresh search for the last pattern that compiled
    table = index.search(shown["good"]).head(50) if shown["good"] else None
    fresh = (
        []
        if table is None
        else [
            [c, f"{p:.3f}", f"{r:.3f}", str(m), str(f)]
            for c, p, r, m, f in zip(
                table.code, table.precision, table.recall, table.matches, table.firings, strict=True
            )
        ]
    )
    assert painted["rows"] == fresh, where
    # the dashboard is a fresh look at the code shown
    examples = index.top_examples(shown["code"], n=12, context=8)
    assert painted["title"] == f"code {shown['code']}", where
    assert painted["examples"] == [
        f"document {d}, token {p}: click to open in the heatmap"
        for d, p in zip(examples.document, examples.position, strict=True)
    ], where
    assert painted["similar"] == similar_codes(model, shown["code"], n=5)["code"].tolist(), where
    if kernel["example"] >= 0:
        assert painted["heatmap"].startswith(f"code {shown['code']} fires on"), where
    return painted


def test_random_actions_on_the_code_explorer_paint_fresh_results(jupyterlab: JupyterLab, page: Any) -> None:
    from cbwidgets.index import CodeIndex

    model = load_default()
    index = CodeIndex.build(model, TokFSM().sample(100, 128, seed=11), progress=False)
    full = {c.label: c.name for c in model.names.codebooks}
    rng = random.Random(SEED)
    open_notebook(jupyterlab, page, "explorer-random.ipynb", EXPLORER)
    page.wait_for_selector(".cbw-se-input")
    page.wait_for_selector(".kernel-view")
    page.wait_for_function("document.querySelector('.cbw-db-title').textContent.startsWith('code ')")
    kernel = json.loads(page.locator(".kernel-view").inner_text())
    shown = {"pattern": "", "good": "", "code": kernel["code"]}
    painted = _check_explorer(page, index, model, shown, 0, "opened")
    counts: dict[str, int] = {}
    for step in range(1, EXPLORER_ACTIONS + 1):
        kind = rng.choice(["type", "type", "row", "example", "similar", "python-show", "python-pattern", "python-open"])
        codes = [row[0] for row in painted["rows"]]
        if (kind == "row" and not codes) or (kind == "example" and not painted["examples"]):
            kind = "type"
        counts[kind] = counts.get(kind, 0) + 1
        if kind == "type":
            pattern = rng.choice(PATTERNS)
            page.locator(".cbw-se-input").fill(pattern)
            shown["pattern"] = pattern
            shown["good"] = pattern if pattern != "2(" else shown["good"]
        elif kind == "row":
            shown["code"] = rng.choice(codes)
            page.locator(f".cbw-se-row[data-code='{shown['code']}']").click()
        elif kind == "example":
            page.locator(".cbw-db-example").nth(rng.randrange(len(painted["examples"]))).click()
        elif kind == "similar":
            shown["code"] = rng.choice(painted["similar"])
            page.locator(f".cbw-db-similar[data-code='{shown['code']}']").click()
        else:
            if kind == "python-pattern":
                shown["pattern"] = shown["good"] = rng.choice([p for p in PATTERNS if p != "2("])
                code = f"search.pattern = {shown['pattern']!r}"
            else:
                label, number = rng.choice(painted["similar"] + codes).rsplit(".", 1)
                shown["code"] = f"{label}.{number}"
                form = rng.choice([f"('{full[label]}', np.int64({number}))", f"('{label}', torch.tensor({number}))"])
                code = f"dashboard.show({form})" if kind == "python-show" else f"search.open_code({form})"
            error = execute(page, code)
            assert error is None, (code, error)
        painted = _check_explorer(page, index, model, shown, step, kind)
    print("explorer actions:", EXPLORER_ACTIONS, counts)
    print("screenshot:", shot(page, "jupyterlab-explorer-random"))
    assert page.blocked == [], page.blocked


# ------------------------------------------------------------------ the steering panel

STEERING_ACTIONS = 40
TOPICS = ["dragon", "robot", "ocean", "castle", "garden", "pirate"]
STEERING = [
    "import json, ipywidgets, numpy as np, torch\nimport cbwidgets\nfrom cbwidgets.index import CodeIndex\n"
    "from cbwidgets.stories import load_stories, split_stories\n"
    "model = cbwidgets.storyteller()\n_, held = split_stories(load_stories())\n"
    "index = CodeIndex.build(model, [s.text for s in held], progress=False)\n"
    "panel = cbwidgets.steering_panel(model, index, samples=2, max_new_tokens=24, seed=0)\n"
    "kernel = ipywidgets.Label()\nkernel.add_class('kernel-view')\n"
    "KEYS = ('topic', 'candidates', 'chosen', 'rule', 'strength', 'seed', 'samples', 'max_new_tokens', 'running',\n"
    "        'status', 'default_texts', 'steered_texts', 'error')\n"
    "def report(_):\n    kernel.value = json.dumps({k: getattr(panel, k) for k in KEYS})\n"
    "panel.observe(report, list(KEYS))\nreport(None)\nipywidgets.VBox([panel, kernel])",
]
_SETTINGS = ("topic", "chosen", "rule", "strength", "seed", "samples", "max_new_tokens")

_STEERING_PAINTED = """() => {
  const root = document.querySelector('.cbw-steering');
  const value = (c) => root.querySelector(c).value;
  return {
    busy: root.classList.contains('cbw-busy'),
    notice: !root.querySelector('.cbw-notice').hidden,
    topic: value('.cbw-st-topic'),
    candidates: [...root.querySelectorAll('.cbw-st-row[data-code]')].map((r) => r.dataset.code),
    ticked: [...root.querySelectorAll('.cbw-st-pick:checked')].map((b) => b.value),
    note: root.querySelector('.cbw-st-note').textContent,
    rule: root.querySelector('.cbw-st-rules input:checked').value,
    strength: root.querySelector('.cbw-st-value').textContent,
    seed: value('.cbw-st-seed'), samples: value('.cbw-st-samples'), tokens: value('.cbw-st-tokens'),
    status: root.querySelector('.cbw-status').textContent,
    default: [...root.querySelectorAll('.cbw-st-default .cbw-st-sample')].map((b) => b.textContent),
    steered: [...root.querySelectorAll('.cbw-st-steered .cbw-st-sample')].map((b) => b.textContent),
  };
}"""


def test_random_actions_on_the_steering_panel_paint_fresh_samples(jupyterlab: JupyterLab, page: Any) -> None:
    import cbwidgets
    from cbwidgets.index import CodeIndex
    from cbwidgets.steering import cut_at_end, steering, topic_codes
    from cbwidgets.stories import load_stories, split_stories

    model = cbwidgets.storyteller()
    _, held = split_stories(load_stories())
    index = CodeIndex.build(model, [s.text for s in held], progress=False)
    k = min(cb.k for cb in model.attached.values())
    full = {c.label: c.name for c in model.names.codebooks}
    state: dict[str, Any] = {
        "topic": "",
        "chosen": [],
        "rule": "replace",
        "strength": 1.0,
        "seed": 0,
        "samples": 2,
        "max_new_tokens": 24,
    }
    candidates: list[str] = []
    rng = random.Random(SEED)
    open_notebook(jupyterlab, page, "steering-random.ipynb", STEERING)
    page.wait_for_selector(".cbw-st-topic")
    page.wait_for_selector(".kernel-view")

    def settle(step: int, action: str) -> dict[str, Any]:
        where = f"after steering action {step} ({action})"
        expected = json.dumps({key: state[key] for key in _SETTINGS})
        try:
            page.wait_for_function(
                """(expected) => { const k = document.querySelector('.kernel-view');
                   if (!k || document.querySelector('.cbw-steering.cbw-busy')) return false;
                   try { const s = JSON.parse(k.textContent), e = JSON.parse(expected);
                         const same = (key) => JSON.stringify(s[key]) === JSON.stringify(e[key]);
                         return !s.running && Object.keys(e).every(same); }
                   catch { return false; } }""",
                arg=expected,
                timeout=60_000,
            )
        except Exception as err:
            raise AssertionError((where, expected, page.locator(".kernel-view").inner_text())) from err
        kernel = json.loads(page.locator(".kernel-view").inner_text())
        painted = page.evaluate(_STEERING_PAINTED)
        assert not painted["notice"] and not kernel["error"], (where, kernel["error"])
        assert kernel["candidates"] == candidates == painted["candidates"], where
        assert painted["ticked"] == [c for c in candidates if c in state["chosen"]], where
        extra = [c for c in state["chosen"] if c not in candidates]
        assert painted["note"] == (f"also ticked: {', '.join(extra)}" if extra else ""), where
        assert (painted["rule"], painted["topic"]) == (state["rule"], state["topic"]), where
        assert float(painted["strength"]) == state["strength"], (where, painted["strength"])
        assert (int(painted["seed"]), int(painted["samples"]), int(painted["tokens"])) == (
            state["seed"],
            state["samples"],
            state["max_new_tokens"],
        ), where
        return painted

    settle(0, "opened")
    counts: dict[str, int] = {}
    generated = 0
    for step in range(1, STEERING_ACTIONS + 1):
        kind = rng.choice(["topic", "tick", "tick", "rule", "strength", "number", "python", "generate", "generate"])
        if (kind == "tick" and not candidates) or (kind == "generate" and not state["chosen"]):
            kind = "topic"
        counts[kind] = counts.get(kind, 0) + 1
        if kind == "topic":
            topic = rng.choice([t for t in TOPICS if t != state["topic"]])
            page.locator(".cbw-st-topic").fill(topic)
            table = topic_codes(index, topic, None, per_codebook=k, limit=24)
            candidates = table["code"].tolist()
            state["topic"], state["chosen"] = topic, candidates[:8]
        elif kind == "tick":
            code = rng.choice(candidates)
            page.locator(f".cbw-st-row[data-code='{code}'] .cbw-st-pick").click()
            extra = [c for c in state["chosen"] if c not in candidates]
            ticked = [c for c in candidates if (c in state["chosen"]) != (c == code)]
            state["chosen"] = ticked + extra
        elif kind == "rule":
            state["rule"] = rng.choice(["replace", "add"])
            page.locator(f".cbw-st-rules input[value='{state['rule']}']").click()
        elif kind == "strength":
            page.locator(".cbw-st-strength").fill(str(rng.uniform(0.2, 4.0)))
            state["strength"] = float(page.locator(".cbw-st-strength").input_value())  # where the user left it
        elif kind == "number":
            key, selector, low, high = rng.choice(
                [
                    ("seed", ".cbw-st-seed", 0, 9),
                    ("samples", ".cbw-st-samples", 1, 3),
                    ("max_new_tokens", ".cbw-st-tokens", 8, 32),
                ]
            )
            state[key] = rng.randint(low, high)
            page.locator(selector).fill(str(state[key]))
            page.locator(selector).press("Tab")
        elif kind == "python":
            pool = list(dict.fromkeys([*candidates, f"0.{rng.randrange(8)}.{rng.randrange(1024)}"]))  # maybe not one
            picked = rng.sample(pool, rng.randint(1, min(4, len(pool))))
            forms = []
            for code in picked:
                label, number = code.rsplit(".", 1)
                forms.append(rng.choice([repr(code), f"('{full[label]}', np.int64({number}))"]))
            state["chosen"] = picked
            state["strength"] = rng.choice([0.5, 1.25, 2.0, 3.5])
            state["seed"] = rng.randrange(10)
            code = (
                f"panel.chosen = [{', '.join(forms)}]\npanel.strength = np.float64({state['strength']})\n"
                f"panel.seed = np.int64({state['seed']})"
            )
            error = execute(page, code)
            assert error is None, (code, error)
        else:
            page.locator(".cbw-st-go").click()
            page.wait_for_function(
                "document.querySelector('.cbw-steering .cbw-status').textContent.startsWith('generated')",
                timeout=120_000,
            )
        painted = settle(step, kind)
        if kind == "generate":
            generated += 1
            settings = {
                "max_new_tokens": state["max_new_tokens"],
                "num_samples": state["samples"],
                "seed": state["seed"],
            }
            interventions = steering(state["chosen"], state["rule"], state["strength"])
            prompt = "Once upon a time,"
            eos = model.tokenizer.eos_token_id
            for side, runs in (("default", ()), ("steered", interventions)):
                out = model.generate(prompt, interventions=runs, **settings)
                texts = [
                    prompt + model.tokenizer.decode(cut_at_end(row, eos), skip_special_tokens=True)
                    for row in out.new_ids.tolist()
                ]
                assert painted[side] == texts, (f"after steering action {step}", side)
    print("steering actions:", STEERING_ACTIONS, counts, "generations checked:", generated)
    print("screenshot:", shot(page, "jupyterlab-steering-random"))
    assert page.blocked == [], page.blocked
