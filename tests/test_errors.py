"""Every bad input gets a CodebookError naming the bad value and saying what is valid."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from transformers import GPTJConfig

from cbwidgets import Ablate, Codebook, CodebookError, CodebookModel, Scale
from tests.tiny import tiny_data, tiny_model


def _model() -> CodebookModel:
    return tiny_model("gpt_neox", num_codes=16, k=2)


def _run_with(context: Callable[[CodebookModel], object], x: torch.Tensor | None = None) -> None:
    model = _model()
    with context(model), torch.no_grad():  # type: ignore[attr-defined]
        model(tiny_data(1, 10) if x is None else x)


def _saved(tmp_path: Path) -> Path:
    folder = tmp_path / "saved"
    _model().save_pretrained(folder)
    return folder


def _corrupt_weights(tmp_path: Path) -> None:
    folder = _saved(tmp_path)
    path = folder / "codebooks.safetensors"
    path.write_bytes(path.read_bytes()[:100])
    CodebookModel.from_pretrained(folder)


def _corrupt_json(tmp_path: Path) -> None:
    folder = _saved(tmp_path)
    (folder / "codebooks.json").write_text("{not json")
    CodebookModel.from_pretrained(folder)


def _wrong_shapes(tmp_path: Path) -> None:
    folder = _saved(tmp_path)
    meta = (folder / "codebooks.json").read_text().replace('"num_codes": 16', '"num_codes": 17')
    (folder / "codebooks.json").write_text(meta)
    CodebookModel.from_pretrained(folder)


CASES: list[tuple[str, Callable[[Path], object], list[str]]] = [
    (
        "unknown site",
        lambda p: _model().attach("layers.1.mpl"),
        ["'layers.1.mpl'", "'mlp'", "'attn_preproj'"],
    ),
    ("layer out of range", lambda p: _model().attach("layers.9.mlp"), ["'layers.9.mlp'", "layers 0..1"]),
    (
        "unknown architecture",
        lambda p: CodebookModel.from_config(GPTJConfig(n_layer=1, n_embd=16, n_head=2)),
        ["'gptj'", "'gpt_neox'", "SITE_TABLE"],
    ),
    ("site attached twice", lambda p: _model().attach("layers.0.mlp"), ["'layers.0.mlp'", "detach"]),
    ("code id out of range", lambda p: _model().ablate("0.mlp.99").__enter__(), ["99", "0..15"]),
    ("negative code id", lambda p: _model().force(("1.mlp", -1)).__enter__(), ["-1", "0..15"]),
    ("unknown codebook", lambda p: _model().ablate("5.mlp.1").__enter__(), ["'5.mlp'", "'0.0'", "'1.mlp'"]),
    ("ambiguous layer", lambda p: _model().ablate("0.7").__enter__(), ["'0'", "ambiguous", "'0.mlp'"]),
    ("code without number", lambda p: _model().ablate("mlp").__enter__(), ["'mlp'", "'0.0.0'"]),
    ("k > num_codes", lambda p: _model().attach("layers.0.attn", num_codes=8, k=9), ["k=9", "num_codes=8"]),
    ("groups not dividing dim", lambda p: Codebook(16, 30, groups=4), ["groups=4", "dim=30", "[1, 2, 3, 5"]),
    (
        "unknown similarity",
        lambda p: _model().attach("attn", similarity="dot"),
        ["'dot'", "'cosine'", "'euclidean'"],
    ),
    ("unknown loss", lambda p: Codebook(16, 8, loss="mse"), ["'mse'", "'aeloss'", "'vqvae'"]),
    (
        "position out of range",
        lambda p: _run_with(lambda m: m.ablate("0.mlp.1", positions=[50])),
        ["position 50", "0..9"],
    ),
    (
        "negative position out of range",
        lambda p: _run_with(lambda m: m.force("0.mlp.1", positions=[-11])),
        ["position -11", "-10..-1"],
    ),
    (
        "empty input",
        lambda p: _model()(torch.zeros(1, 0, dtype=torch.long)),
        ["empty", "(1, 0)", "at least one"],
    ),
    ("float token ids", lambda p: _model()(torch.rand(1, 4)), ["torch.float32", "torch.long"]),
    ("token id out of vocabulary", lambda p: _model()(torch.tensor([[1, 99]])), ["99", "0..23"]),
    (
        "input longer than the context",
        lambda p: _model()(torch.zeros(1, 65, dtype=torch.long)),
        ["65 tokens", "context of 64", "windows"],
    ),
    ("wrong input type", lambda p: _model()(3.5), ["float", "LongTensor"]),
    ("activations of the wrong size", lambda p: Codebook(16, 8)(torch.randn(2, 6)), ["6", "dim=8"]),
    (
        "integer activations",
        lambda p: Codebook(16, 8)(torch.ones(2, 8, dtype=torch.long)),
        ["torch.int64", "floating-point"],
    ),
    (
        "folder that does not exist",
        lambda p: CodebookModel.from_pretrained(p / "nope"),
        ["nope", "not a folder"],
    ),
    (
        "folder that is not a saved model",
        lambda p: CodebookModel.from_pretrained(p),
        ["not a saved model", "codebooks.json", "config.json"],
    ),
    ("corrupt safetensors", _corrupt_weights, ["codebooks.safetensors", "corrupt"]),
    ("corrupt codebook json", _corrupt_json, ["codebooks.json", "not valid JSON"]),
    ("weights not matching the json", _wrong_shapes, ["codebooks.safetensors", "layers.0.attn_preproj"]),
    ("not an intervention", lambda p: _model().intervene("0.mlp.1").__enter__(), ["'0.mlp.1'", "Ablate"]),
    ("non-finite scale", lambda p: Scale("0.mlp.1", float("nan")), ["nan", "finite"]),
    ("unknown ablation mode", lambda p: Ablate("0.mlp.1", mode="zero"), ["'zero'", "'substitute'", "'drop'"]),
    (
        "ablating too many codes",
        lambda p: _model().ablate([f"0.mlp.{i}" for i in range(15)]).__enter__(),
        ["15 codes", "k=2", "mode='drop'"],
    ),
    (
        "generation past the context",
        lambda p: _model().generate(tiny_data(1, 10), max_new_tokens=60),
        ["max_new_tokens (60)", "at most 54"],
    ),
    (
        "bad temperature",
        lambda p: _model().generate(tiny_data(1, 4), temperature=-1),
        ["temperature=-1", ">= 0"],
    ),
    (
        "k-means with too few tokens",
        lambda p: _model().kmeans_init(tiny_data(1, 4)),
        ["num_codes=16", "got 4"],
    ),
    (
        "detach a site without codebook",
        lambda p: _model().detach("layers.0.block"),
        ["'layers.0.block'", "'layers.0.mlp'"],
    ),
    (
        "wrapping something that is not a model",
        lambda p: CodebookModel(torch.nn.Linear(2, 2)),  # type: ignore[arg-type]
        ["Linear", "from_config"],
    ),
]


@pytest.mark.parametrize("name,action,fragments", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_explained(
    tmp_path: Path, name: str, action: Callable[[Path], object], fragments: list[str]
) -> None:
    with pytest.raises(CodebookError) as info:
        action(tmp_path)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{name}: {fragment!r} missing from {message!r}"


def test_failed_load_leaves_files_alone(tmp_path: Path) -> None:
    folder = _saved(tmp_path)
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    (folder / "codebooks.json").write_text("{not json")
    before[folder / "codebooks.json"] = b"{not json"
    with pytest.raises(CodebookError):
        CodebookModel.from_pretrained(folder)
    assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before
