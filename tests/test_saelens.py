"""SAEs saved by SAELens, attached here. The format is checked on a hand-written folder (every
option SAELens can save a TopK SAE with); the real path trains and saves one with SAELens itself."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from cbwidgets import CodebookError
from cbwidgets.sae import TopKSAE
from cbwidgets.saelens import load_saelens, site_of_hook
from tests.tiny import tiny_data, tiny_model

D, LATENTS, K = 32, 48, 4


def _write(folder: Path, **cfg: object) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    weights = {
        "W_enc": torch.randn(D, LATENTS, generator=g) / D**0.5,
        "b_enc": torch.randn(LATENTS, generator=g) * 0.1,
        "W_dec": torch.randn(LATENTS, D, generator=g) * 0.3,  # rows not of unit norm
        "b_dec": torch.randn(D, generator=g) * 0.1,
    }
    folder.mkdir(parents=True, exist_ok=True)
    save_file(weights, str(folder / "sae_weights.safetensors"))
    config = {"architecture": "topk", "d_in": D, "d_sae": LATENTS, "k": K, "apply_b_dec_to_input": True}
    config |= {"normalize_activations": "none", "metadata": {"hook_name": "blocks.1.hook_mlp_out"}, **cfg}
    (folder / "cfg.json").write_text(json.dumps(config))
    return weights


def _saelens_forward(w: dict[str, torch.Tensor], x: torch.Tensor, b_dec_in: bool, rescale: bool) -> torch.Tensor:
    """SAELens's TopK SAE, as its documentation states it, for comparison."""
    pre = (x - w["b_dec"] if b_dec_in else x) @ w["W_enc"] + w["b_enc"]
    norms = w["W_dec"].norm(dim=-1)
    if rescale:
        pre = pre * norms
    top = pre.topk(K, dim=-1)
    acts = torch.zeros_like(pre).scatter(-1, top.indices, top.values.relu())
    if rescale:
        acts = acts / norms
    return acts @ w["W_dec"] + w["b_dec"]


@pytest.mark.parametrize("b_dec_in", [True, False])
@pytest.mark.parametrize("rescale", [False, True])
def test_a_saelens_topk_sae_does_here_what_it_does_there(tmp_path: Path, b_dec_in: bool, rescale: bool) -> None:
    weights = _write(tmp_path / "sae", apply_b_dec_to_input=b_dec_in, rescale_acts_by_decoder_norm=rescale)
    model = tiny_model(attach=False).eval()
    assert load_saelens(model, tmp_path / "sae") == "layers.1.mlp"  # from its hook name
    sae = model.attached["layers.1.mlp"]
    assert isinstance(sae, TopKSAE) and (sae.num_codes, sae.dim, sae.k) == (LATENTS, D, K)
    x = torch.randn(64, D)
    with torch.no_grad():
        ours = sae(x).output
    assert torch.allclose(ours, _saelens_forward(weights, x, b_dec_in, rescale), atol=1e-5)
    with torch.no_grad():
        codes = model(tiny_data(1, 8)).codes
    assert codes.values is not None and model.names.labels == ("1.mlp",)


def test_hooks_map_to_sites_and_what_cannot_be_loaded_says_why(tmp_path: Path) -> None:
    assert site_of_hook("blocks.3.attn.hook_z") == "layers.3.attn_preproj"
    assert site_of_hook("blocks.0.hook_resid_post") == "layers.0.block"
    assert (
        site_of_hook("blocks.2.hook_resid_pre") == "layers.1.block" and site_of_hook("blocks.0.hook_resid_pre") is None
    )
    model = tiny_model(attach=False)
    with pytest.raises(CodebookError, match=r"cfg\.json and sae_weights\.safetensors"):
        load_saelens(model, tmp_path)
    _write(tmp_path / "jr", architecture="jumprelu")
    with pytest.raises(CodebookError, match="architecture is 'jumprelu'; cbwidgets runs TopK SAEs"):
        load_saelens(model, tmp_path / "jr")
    _write(tmp_path / "norm", normalize_activations="expected_average_only_in")
    with pytest.raises(CodebookError, match="normalises its input"):
        load_saelens(model, tmp_path / "norm")
    _write(tmp_path / "hookless", metadata={"hook_name": "hook_embed"})
    with pytest.raises(CodebookError, match="no site of this kit matches the SAE's hook 'hook_embed'; pass site="):
        load_saelens(model, tmp_path / "hookless")
    assert load_saelens(model, tmp_path / "hookless", site="layers.0.mlp") == "layers.0.mlp"
    with pytest.raises(CodebookError, match="names several sites"):
        load_saelens(model, tmp_path / "hookless", site="mlp")
    with pytest.raises(CodebookError, match=r"has dim=32, but site 'layers\.1\.mlp_hidden' is 64 wide"):
        load_saelens(model, tmp_path / "hookless", site="layers.1.mlp_hidden")


def test_an_sae_trained_and_saved_by_saelens_loads_here(tmp_path: Path) -> None:
    """The real path: SAELens trains a TopK SAE on this model's activations and saves it; loaded
    here, it computes what SAELens's own loaded copy computes, and its latents are codes. Runs where
    sae-lens is installed (the extra ``cbwidgets[saelens]``; ``.ci/run`` runs it in its own env)."""
    pytest.importorskip("sae_lens", reason="sae-lens is not installed here (pip install 'cbwidgets[saelens]')")
    from sae_lens import SAE, TopKTrainingSAE, TopKTrainingSAEConfig
    from sae_lens.saes.sae import SAEMetadata, TrainStepInput

    model = tiny_model(attach=False).eval()
    with torch.no_grad():
        x = model.record(["layers.1.mlp"], tiny_data(64, 16))["layers.1.mlp"]
    config = TopKTrainingSAEConfig(d_in=D, d_sae=LATENTS, k=K, metadata=SAEMetadata(hook_name="blocks.1.hook_mlp_out"))
    trained = TopKTrainingSAE(config)
    optimizer = torch.optim.Adam(trained.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    losses = []
    for step in range(200):
        batch = x[torch.randint(0, len(x), (256,), generator=g)]
        out = trained.training_forward_pass(TrainStepInput(batch, {}, None, step, False))
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        losses.append(float(out.losses["mse_loss"].detach()))
    assert losses[-1] < 0.5 * losses[0], losses[::50]
    trained.save_inference_model(tmp_path / "sae")
    theirs = SAE.load_from_disk(str(tmp_path / "sae"), device="cpu")
    assert load_saelens(model, tmp_path / "sae") == "layers.1.mlp"
    with torch.no_grad():
        ours = model.attached["layers.1.mlp"](x[:200]).output
        expected = theirs(x[:200])
    assert torch.allclose(ours, expected, atol=1e-4), float((ours - expected).abs().max())
    with torch.no_grad():
        codes = model(tiny_data(1, 8)).codes
    assert codes.values is not None and bool((codes.ids >= 0).any())


def test_our_topk_sae_fits_as_well_as_one_saelens_trains_on_the_same_activations() -> None:
    """The anchor of the dictionary comparison, small: on planted sparse features (each row 3 of 64
    directions), our TopK SAE fitted by ``fit_activations`` and SAELens's ``TopKTrainingSAE`` trained
    by its own ``SAETrainer`` get the same size, k, steps, batches and learning rate; our held-out FVU
    is within 5 % of SAELens's or below it (measured: 0.087 and 0.095). The features are centred:
    SAELens starts ``b_dec`` at 0 and ours at the data's mean, and with the planted offset of 0.5
    SAELens's SAE is still at FVU 0.59 after these steps, which would make the comparison empty.
    (``benchmarks/saelens_anchor.py`` does this on TokFSM and storyteller activations.)"""
    pytest.importorskip("sae_lens", reason="sae-lens is not installed here (pip install 'cbwidgets[saelens]')")
    from sae_lens import TopKTrainingSAE, TopKTrainingSAEConfig
    from sae_lens.config import SAETrainerConfig
    from sae_lens.training.sae_trainer import SAETrainer

    from cbwidgets.cached_fit import fit_activations
    from cbwidgets.sae import SAESpec
    from tests.test_sae import _planted

    x, _ = _planted(n=12288)
    train, held = x[:8192] - 0.5, x[8192:] - 0.5
    steps, batch, lr = 1000, 512, 3e-3
    g = torch.Generator().manual_seed(0)
    ours = TopKSAE(SAESpec(num_codes=64, dim=32, k=3))
    ours.init_from(train, g)
    fit_activations(ours, train, steps=steps, batch_tokens=batch, lr=lr, generator=torch.Generator().manual_seed(1))
    rows = torch.Generator().manual_seed(1)
    order = [torch.randint(0, len(train), (batch,), generator=rows) for _ in range(steps)]  # the same batches
    torch.manual_seed(0)
    theirs = TopKTrainingSAE(TopKTrainingSAEConfig(d_in=32, d_sae=64, k=3))
    config = SAETrainerConfig(total_training_samples=steps * batch, train_batch_size_samples=batch, lr=lr, lr_end=lr)
    SAETrainer(config, theirs, iter(train[i] for i in order)).fit()

    def fvu(out: torch.Tensor) -> float:
        return float((out - held).pow(2).sum() / (held - held.mean(0)).pow(2).sum())

    ours.eval()
    theirs.eval()
    with torch.no_grad():
        a, b = fvu(ours(held).output), fvu(theirs(held))
    assert a <= 1.05 * b, (a, b)
    assert b < 0.5  # SAELens's own fit is a real one, not a broken baseline that anything beats


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--lrs", "1e-3,fast"], "argument --lrs: '1e-3,fast': give positive learning rates"),
        (["--lrs=-1e-3"], "argument --lrs: '-1e-3': give positive learning rates"),
        (["--sizes", "1024:8,4096"], "argument --sizes: '1024:8,4096': give latents:k pairs with 0 < k <= latents"),
        (["--sizes", "8:16"], "argument --sizes: '8:16': give latents:k pairs"),
    ],
)
def test_the_anchor_benchmark_says_which_argument_is_wrong(args: list[str], message: str) -> None:
    """Before anything is loaded or trained (sae-lens need not be installed to be told)."""
    script = Path(__file__).parents[1] / "benchmarks" / "saelens_anchor.py"
    run = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and message in run.stderr, run.stderr
