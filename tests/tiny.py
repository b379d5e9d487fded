"""Tiny models of every supported family, built from configs (no downloads), for fast tests."""

from __future__ import annotations

import torch
from transformers import GPT2Config, GPTNeoConfig, GPTNeoXConfig, LlamaConfig, MistralConfig, Qwen2Config

from cbwidgets.model import CodebookModel

__all__ = ["FAMILIES", "VOCAB", "tiny_config", "tiny_data", "tiny_model"]

VOCAB = 24
_COMMON = {"vocab_size": VOCAB, "bos_token_id": 0, "eos_token_id": 0, "pad_token_id": 0}


def tiny_config(family: str):  # type: ignore[no-untyped-def]
    if family == "gpt2":
        return GPT2Config(n_layer=2, n_embd=32, n_head=4, n_positions=64, **_COMMON)
    if family == "gpt_neo":
        return GPTNeoConfig(
            num_layers=2,
            hidden_size=32,
            num_heads=4,
            max_position_embeddings=64,
            attention_types=[[["global", "local"], 1]],
            intermediate_size=64,
            **_COMMON,
        )
    if family == "gpt_neox":
        return GPTNeoXConfig(
            num_hidden_layers=2,
            hidden_size=32,
            num_attention_heads=4,
            intermediate_size=64,
            max_position_embeddings=64,
            **_COMMON,
        )
    cls = {"llama": LlamaConfig, "mistral": MistralConfig, "qwen2": Qwen2Config}[family]
    return cls(
        num_hidden_layers=2,
        hidden_size=32,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        **_COMMON,
    )


FAMILIES = ("gpt2", "gpt_neo", "gpt_neox", "llama", "mistral", "qwen2")


def tiny_model(family: str = "gpt_neox", attach: bool = True, num_codes: int = 32, k: int = 1, **kw) -> CodebookModel:  # type: ignore[no-untyped-def]
    model = CodebookModel.from_config(tiny_config(family), seed=0).eval()
    if attach:
        model.attach(["attn_preproj", "mlp"], num_codes=num_codes, k=k, **kw)
    return model


def tiny_data(n: int = 64, length: int = 16, seed: int = 0) -> torch.Tensor:
    """Sequences with learnable structure: each token is the previous plus a small random step."""
    g = torch.Generator().manual_seed(seed)
    start = torch.randint(0, VOCAB, (n, 1), generator=g)
    steps = torch.randint(1, 3, (n, length - 1), generator=g)
    return torch.cat([start, start + steps.cumsum(1)], dim=1) % VOCAB
