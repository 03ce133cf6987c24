"""The tiny SDXL-family models load offline through the real diffusers loaders."""

import filecmp

import pytest
import torch
from diffusers import StableDiffusionXLPipeline, UNet2DConditionModel

from itd.models.tiny import build_tiny_models


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_models(tmp_path_factory.mktemp("tiny") / "models")


def load_base(paths):
    return StableDiffusionXLPipeline.from_pretrained(paths["base"], local_files_only=True)


def unet_out(unet, seed=0):
    """One UNet forward on a fixed random input carrying SDXL's text/time conditioning."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 4, 16, 16, generator=g)
    text = torch.randn(2, 77, unet.config.cross_attention_dim, generator=g)
    added = {"text_embeds": torch.randn(2, 32, generator=g), "time_ids": torch.tensor([[32.0, 32, 0, 0, 32, 32]] * 2)}
    with torch.no_grad():
        return unet(x, torch.tensor([500, 500]), text, added_cond_kwargs=added).sample


def test_layout(tiny):
    assert set(tiny) == {"base", "lcm_unet", "unet", "dmd2_unet", "lora"}
    for sub in ("unet", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2", "vae", "scheduler"):
        assert (tiny["base"] / sub).is_dir()
    assert (tiny["base"] / "model_index.json").is_file()
    assert tiny["dmd2_unet"].is_file() and tiny["dmd2_unet"].name == "dmd2_unet.bin"
    assert (tiny["lora"] / "pytorch_lora_weights.safetensors").is_file()


def test_base_pipeline_runs(tiny):
    pipe = load_base(tiny)
    assert pipe.config.force_zeros_for_empty_prompt
    sched = pipe.scheduler.config
    assert (sched.timestep_spacing, sched.steps_offset, sched.beta_schedule) == ("leading", 1, "scaled_linear")
    out = pipe(
        ["a cat on the mat", "Ünïcode & digits 123!"],
        num_inference_steps=2,
        height=32,
        width=32,
        output_type="latent",
        generator=torch.Generator().manual_seed(0),
    ).images
    assert out.shape == (2, 4, 16, 16)
    assert torch.isfinite(out).all()


def test_lora_loads_and_toggles(tiny):
    pipe = load_base(tiny)
    base = unet_out(pipe.unet)
    pipe.load_lora_weights(tiny["lora"])
    with_lora = unet_out(pipe.unet)
    assert not torch.allclose(with_lora, base, atol=1e-4)
    pipe.unet.disable_lora()
    assert torch.equal(unet_out(pipe.unet), base)
    pipe.unet.enable_lora()
    assert torch.equal(unet_out(pipe.unet), with_lora)


def test_student_unets_load(tiny):
    base_config = UNet2DConditionModel.load_config(tiny["base"] / "unet")
    dmd2 = UNet2DConditionModel.from_config(base_config)
    dmd2.load_state_dict(torch.load(tiny["dmd2_unet"], map_location="cpu", weights_only=True), strict=True)

    lcm = UNet2DConditionModel.from_pretrained(tiny["lcm_unet"], local_files_only=True)
    assert lcm.config.time_cond_proj_dim == 16
    unet = UNet2DConditionModel.from_pretrained(tiny["unet"], local_files_only=True)
    assert unet.config.time_cond_proj_dim is None
    assert unet.config.block_out_channels == base_config["block_out_channels"]

    outs = [unet_out(m) for m in (load_base(tiny).unet, unet, dmd2)]
    assert all(torch.isfinite(o).all() for o in outs)
    assert not torch.allclose(outs[0], outs[1]) and not torch.allclose(outs[1], outs[2])  # distinct weights


def test_idempotent_and_deterministic(tiny, tmp_path):
    root = tiny["base"].parent
    stamp = (root / "BUILT").stat().st_mtime_ns
    assert build_tiny_models(root) == tiny
    assert (root / "BUILT").stat().st_mtime_ns == stamp  # reused, not rebuilt
    assert [p.name for p in root.parent.iterdir()] == [root.name]  # no temporary folders left behind

    again = build_tiny_models(tmp_path / "again")["base"].parent
    files = sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    match, mismatch, errors = filecmp.cmpfiles(root, again, files, shallow=False)
    assert len(match) == len(files) and not mismatch and not errors  # byte-identical
