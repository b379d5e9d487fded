"""The story corpus, its tokenizer, and the storyteller: shipped, loaded, measured, retrained (small)."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import cbwidgets
from cbwidgets import CodebookError
from cbwidgets.cli import main
from cbwidgets.lm_metrics import lm_metrics
from cbwidgets.stories import (
    STORYTELLER_DIR,
    StoryRecipe,
    load_stories,
    save_storyteller,
    split_stories,
    storyteller,
    train_storyteller,
    train_tokenizer,
)


def test_corpus_has_every_topic_equally_and_no_request_preambles() -> None:
    stories = load_stories()
    topics = {s.topic for s in stories}
    assert len(topics) == 24 and len(stories) >= 24 * 48
    assert len({sum(1 for s in stories if s.topic == t) for t in topics}) == 1  # equal counts
    assert not any(s.text.lower().startswith(("here's", "here is", "title")) for s in stories)
    train, held = split_stories(stories)
    assert len(held) == len(stories) // 20 and {s.topic for s in held} == topics
    assert len({sum(1 for s in held if s.topic == t) for t in topics}) == 1
    assert not {s.text for s in held} & {s.text for s in train}


def test_bad_corpus_files_are_explained(tmp_path: Path) -> None:
    with pytest.raises(CodebookError, match="is missing; reinstall cbwidgets, or make one"):
        load_stories(tmp_path / "none.jsonl.gz")
    bad = tmp_path / "bad.jsonl.gz"
    with gzip.open(bad, "wt") as f:
        f.write(json.dumps({"topic": "a cat", "seed": 0, "story": "A cat sat."}) + "\n{not json\n")
    with pytest.raises(CodebookError, match=r"line 2 of .* is not a story record"):
        load_stories(bad)


def test_tokenizer_starts_every_text_and_round_trips() -> None:
    texts = [s.text for s in load_stories()[:200]]
    tok = train_tokenizer(texts, vocab_size=512)
    assert len(tok) == 512
    assert tok("")["input_ids"] == [tok.bos_token_id]
    text = 'Once upon a time, a dragon said "hi!"\n\nThe end. ünïcödé'
    ids = tok(text)["input_ids"]
    assert ids[0] == tok.bos_token_id
    assert tok.decode(ids, skip_special_tokens=True) == text


def test_shipped_storyteller_loads_fast_and_matches_its_metrics() -> None:
    start = time.perf_counter()
    model = cbwidgets.storyteller()
    assert time.perf_counter() - start < 10
    assert type(model.model).__name__ == "LlamaForCausalLM" and model.config.num_hidden_layers == 2
    assert {cb.k for cb in model.attached.values()} == {8}
    assert list(model.attached) == ["layers.0.attn_preproj", "layers.1.attn_preproj"]
    assert sum(f.stat().st_size for f in STORYTELLER_DIR.rglob("*") if f.is_file()) < 20e6
    shipped = json.loads((STORYTELLER_DIR / "metrics.json").read_text())
    final = {r["mode"]: r for r in shipped["metrics"] if r["phase"] == "finetune"}
    _, held = split_stories(load_stories())
    now = lm_metrics(model, [s.text for s in held[:24]], modes=("codebooks",))
    # the shipped weights are float16; 24 of the held-out stories land close to the full figure
    assert now.loc[0, "loss"] == pytest.approx(final["codebooks"]["loss"], abs=0.15)
    assert final["codebooks"]["loss"] < 3.5 and final["codebooks"]["accuracy"] > 0.3
    assert sum(shipped["seconds"].values()) < 25 * 60


def test_storyteller_writes_a_story() -> None:
    model = storyteller()
    out = model.generate("Once upon a time,", max_new_tokens=30, num_samples=2, seed=0)
    assert out.texts is not None and all(len(t.split()) >= 5 for t in out.texts)


def test_recipe_trains_saves_and_reloads(tmp_path: Path) -> None:
    stories = load_stories()[:120]
    recipe = StoryRecipe(
        vocab_size=300, width=32, heads=4, mlp=64, length=64, num_codes=16, k=2, batch_size=4,
        base_steps=4, finetune_steps=3, kmeans_sequences=8, kmeans_iters=2,
    )  # fmt: skip
    trained = train_storyteller(recipe, stories, progress=False)
    assert list(trained.metrics["model"]) == ["base (no codes)", "k-means codes in", "storyteller", "storyteller"]
    assert list(trained.metrics["phase"]) == ["base", "kmeans", "finetune", "finetune"]
    assert set(trained.seconds) == {"tokenizer", "base", "kmeans", "finetune"}
    assert (trained.history["step"].iloc[-1]) == 3
    folder = save_storyteller(trained, tmp_path / "st", half=False)
    again = storyteller(folder)
    ids = again.tokenize("A cat")
    with torch.no_grad():
        assert torch.allclose(again(ids).logits, trained.model(ids).logits, atol=1e-5)
    saved = json.loads((folder / "recipe.json").read_text())
    assert saved["num_codes"] == 16 and saved["recipe"] == "StoryRecipe"
    assert StoryRecipe(**{k: v for k, v in saved.items() if k != "recipe"}) == recipe  # the recipe travels whole
    assert json.loads((folder / "metrics.json").read_text())["metrics"] == trained.metrics.to_dict("records")
    with pytest.raises(CodebookError, match="holds no saved storyteller"):
        storyteller(tmp_path)


def test_storyteller_command_trains_saves_and_reports(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "cbwidgets", "storyteller", "--out", str(tmp_path / "st"), "--base-steps", "2",
         "--joint-steps", "2", "--no-progress"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Trained in" in done.stdout and "Held-out stories" in done.stdout
    assert "base (no codes)" in done.stdout and "storyteller" in done.stdout
    assert storyteller(tmp_path / "st").attached


def test_storyteller_command_rejects_bad_steps(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["storyteller", "--base-steps", "-1"])
    assert "--base-steps -1 is not valid" in capsys.readouterr().err
