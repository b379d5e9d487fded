"""The command-line demo: build a small model with codebooks, train it on TokFSM, show what codes do.

It runs offline on a laptop CPU in about a minute and prints three things a newcomer should see:
which codes fire on which tokens, that a code stands for something in the world (the FSM states
it fires on), and that switching a code off changes the prediction.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import replace
from typing import TextIO

import pandas as pd
import torch
from transformers import GPTNeoXConfig

from .model import CodebookModel
from .tokfsm.world import TokFSM
from .train import TrainConfig, train

__all__ = ["build_demo_model", "run_demo"]


def build_demo_model(fsm: TokFSM, seed: int = 0, num_codes: int = 200) -> CodebookModel:
    """A 2-layer GPT-NeoX with per-head codebooks and MLP codebooks, k = 1."""
    config = GPTNeoXConfig(
        num_hidden_layers=2,
        hidden_size=64,
        num_attention_heads=4,
        intermediate_size=256,
        vocab_size=fsm.vocab_size,
        max_position_embeddings=128,
        # full rotary finds state boundaries (position parity) far sooner than the default 0.25
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 1.0},
        bos_token_id=fsm.bos_id,
        eos_token_id=fsm.bos_id,
        pad_token_id=fsm.bos_id,
    )
    model = CodebookModel.from_config(config, tokenizer=fsm.tokenizer(), seed=seed)
    model.attach(["attn_preproj", "mlp"], num_codes=num_codes, k=1, revive_after=25)
    return model


def _states_per_code(fsm: TokFSM, model: CodebookModel, codebook: str, seed: int) -> pd.DataFrame:
    """For each code of one codebook: the FSM states (read at the token it fires on) it fires on."""
    ids = fsm.sample(64, 64, seed=seed)
    ends = fsm.state_ends(ids.shape[1])
    state_ids = fsm.parse_states(ids[:, 1 : 1 + fsm.digits * len(ends)])
    book = model.names.index_of(codebook)
    with torch.no_grad():
        codes = model(ids).codes.ids[:, ends, book, 0]
    seen: dict[int, Counter[str]] = {}
    for code, state in zip(codes.flatten().tolist(), state_ids.flatten().tolist(), strict=True):
        seen.setdefault(code, Counter())[fsm.state_text(state)] += 1
    rows = []
    for code, states in seen.items():
        total = sum(states.values())
        top, count = states.most_common(1)[0]
        rows.append(
            {
                "code": model.names.code_name(book, code),
                "fires": total,
                "states": len(states),
                "top_state": top,
                "top_share": count / total,
            }
        )
    return pd.DataFrame(rows).sort_values("fires", ascending=False).reset_index(drop=True)


def run_demo(
    steps: int = 300, base_steps: int = 1000, seed: int = 0, out: TextIO | None = None, progress: bool = True
) -> dict[str, float]:
    """Train the demo model and print what its codes do; returns the figures it printed.

    The recipe: train the base model alone, initialise the codebooks by k-means on its
    activations, then finetune model and codebooks together.
    """

    def say(text: str = "") -> None:
        print(text, file=out, flush=True)

    fsm = TokFSM(seed=42)
    say(
        f"TokFSM world: {fsm.num_states} states, {fsm.num_edges} out-edges each, states written as "
        f"{fsm.digits} digits; sequences are <bos> + a random walk."
    )
    model = build_demo_model(fsm, seed=seed)
    say(f"Model: {model}")
    common = TrainConfig(batch_size=32, weight_decay=0.0, progress=progress)
    started = time.perf_counter()
    with model.codebooks_disabled():
        base = train(
            model,
            fsm.batches(length=64, seed=seed),
            replace(common, steps=base_steps, lr=3e-3, warmup_steps=30, log_every=50, seed=seed),
        )
    say(
        f"1. Base model alone, {base_steps} steps: LM loss {base.history['lm_loss'].iloc[-1]:.3f} "
        f"(uniform guessing: {math.log(fsm.base):.3f})."
    )
    model.kmeans_init(fsm.sample(64, 64, seed=seed + 1), iters=10, seed=seed)
    say("2. Codebooks initialised by k-means on the base model's activations.")
    log_every = 25
    result = train(
        model,
        fsm.batches(length=64, seed=seed + 2),
        replace(common, steps=steps, lr=1e-3, warmup_steps=10, log_every=log_every, seed=seed + 2),
    )
    seconds = time.perf_counter() - started
    last = result.history.iloc[-1]
    say(
        f"3. Model and codebooks together, {steps} steps: LM loss {last['lm_loss']:.3f} with the codebooks on; "
        f"reconstruction {last['reconstruction']:.3f} (how far each site's normalised activation lies from the "
        f"codes that replace it, squared distance summed over the {len(model.names)} codebooks; 0 = exact); "
        f"{last['used_share']:.0%} of the codes used in the last {log_every} steps. "
        f"Total {seconds:.0f} s."
    )

    prompt = fsm.sample(1, 13, seed=seed + 7)
    tokens = fsm.tokenizer().convert_ids_to_tokens(prompt[0].tolist())
    with torch.no_grad():
        output = model(prompt)
    table = output.codes.to_frame(tokens=[tokens]).pivot(index=["position", "token"], columns="codebook", values="id")
    table = table[list(output.codes.labels)]
    say("\nWhich codes fire on which tokens (rows: tokens; columns: codebooks layer.head or layer.mlp):")
    say(table.to_string())

    states = _states_per_code(fsm, model, "1.mlp", seed + 11)
    say("\nLayer-1 MLP codes and the FSM state (last two digits) they fire on, most frequent first:")
    say(states.head(10).to_string(index=False))
    purity = float((states["states"] == 1).mean())
    say(f"{purity:.0%} of the layer-1 MLP codes that fired on a state's last digit fire on exactly one state.")

    code = model.names.canonical(("1.mlp", output.codes["1.mlp"][0, -1, 0]))
    probs = output.logits[0, -1].softmax(-1)
    with model.ablate(code, positions=[-1]), torch.no_grad():
        ablated = model(prompt)
    probs_off = ablated.logits[0, -1].softmax(-1)
    say(f"\nAblating code {code} at the last token ({tokens[-1]!r}) changes the next-digit prediction:")
    compare = pd.DataFrame({"digit": tokens_for(fsm), "p before": probs.numpy(), "p after": probs_off.numpy()})
    say(compare.sort_values("p before", ascending=False).head(5).to_string(index=False, float_format="%.3f"))
    shift = float((probs - probs_off).abs().sum() / 2)
    say(f"Total variation between the two distributions: {shift:.3f}")
    return {"seconds": seconds, "lm_loss": float(last["lm_loss"]), "purity": purity, "shift": shift}


def tokens_for(fsm: TokFSM) -> list[str]:
    return fsm.tokenizer().convert_ids_to_tokens(list(range(fsm.vocab_size)))
