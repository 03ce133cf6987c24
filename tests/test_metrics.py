"""The paper's metrics on tiny random-weight networks loaded through the real loaders, and the prompt sets."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from itd.data.prompts import CocoCaptions, PartiPrompts, PromptList
from itd.metrics import image_reward as ir
from itd.metrics.clip import ClipScore, PickScore, load_clip
from itd.metrics.fid import FID, TorchScriptInception, frechet
from itd.metrics.images import to_uint8
from itd.models.hub import MissingModelError
from itd.models.sdxl import PngWriter
from itd.models.tiny_metrics import build_tiny_metric_models

GOLDEN = Path(__file__).parent / "golden" / "imagereward"
DATA = Path(__file__).parent / "data"
PROMPTS = ["a photo of a cat", "a red bus in the rain", "the moon", "an unknownword dog", "a horse on the street"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_metric_models(tmp_path_factory.mktemp("metrics") / "tiny")


@pytest.fixture(scope="module")
def images():
    torch.manual_seed(0)
    smooth = torch.nn.functional.interpolate(torch.randn(5, 3, 4, 4), size=32, mode="bilinear")
    return (smooth + 0.3 * torch.randn(5, 3, 32, 32)).clamp(-1, 1)


# --- FID -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["clean", "legacy_pytorch"])
def test_fid_equals_clean_fid_on_the_saved_pngs(mode, tiny, images, tmp_path):
    """Streamed FID (features per batch, in memory) == cleanfid.compute_fid over the written PNG folders."""
    from cleanfid.fid import compute_fid

    net = TorchScriptInception(tiny["inception"])
    fid = FID(str(tiny["fid_reference"]), mode=mode, extractor=net, batch_size=3, cache_dir=str(tmp_path / "stats"))
    writer = PngWriter(tmp_path / "generated")
    columns = []
    for lo in range(0, 5, 2):  # as the run streams them: batches of 2
        batch = images[lo : lo + 2]
        writer.add(0, range(lo, lo + len(batch)), batch)
        columns.append(fid.per_sample(batch, None)["fid_features"])
    ours = fid.aggregate({"fid_features": np.concatenate(columns)})["fid"]
    theirs = compute_fid(str(tmp_path / "generated"), str(tiny["fid_reference"]), mode=mode, custom_feat_extractor=net,
                         device=torch.device("cpu"), num_workers=0, batch_size=4, verbose=False)
    assert ours == pytest.approx(theirs, rel=1e-5)
    assert ours > 0


def test_fid_loads_its_network_from_the_weights_file_and_caches_reference_statistics(tiny, images, tmp_path):
    cache = tmp_path / "stats"
    first = FID(str(tiny["fid_reference"]), weights=str(tiny["inception"]), cache_dir=str(cache))
    value = first.aggregate(first.per_sample(images, None))["fid"]
    (cached,) = cache.glob("*.npz")
    again = FID(str(tiny["fid_reference"]), weights=str(tiny["inception"]), cache_dir=str(cache))
    assert np.array_equal(again.reference_stats()[0], first.reference_stats()[0])
    assert again.aggregate(again.per_sample(images, None))["fid"] == value
    # the cached statistics, given as an .npz reference, give the same FID
    from_stats = FID(str(cached), weights=str(tiny["inception"]))
    assert from_stats.aggregate(from_stats.per_sample(images, None))["fid"] == pytest.approx(value, rel=1e-12)
    # other reference contents or another resolution: another cache entry
    FID(str(tiny["fid_reference"]), weights=str(tiny["inception"]), cache_dir=str(cache), reference_size=16).reference_stats()
    assert len(list(cache.glob("*.npz"))) == 2


@pytest.mark.parametrize("mode, name", [("clean", "inception-2015-12-05.pt"), ("legacy_pytorch", "pt_inception-2015-12-05-6726825d.pth")])
def test_fid_without_inception_weights_is_one_line_naming_the_file(mode, name, tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("ITD_CACHE", str(tmp_path))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(MissingModelError) as err:
        FID(str(tiny["fid_reference"]), mode=mode)
    message = str(err.value)
    assert "\n" not in message and name in message and str(tmp_path) in message and "https://" in message
    with pytest.raises(ValueError, match="torch hub's cache"):
        FID(str(tiny["fid_reference"]), mode="legacy_pytorch", weights=str(tiny["inception"]))


@pytest.mark.parametrize("reference, message", [(None, "metrics.fid.reference is not set"), ("/nonexistent/coco", "does not exist")])
def test_fid_bad_reference_is_one_line(reference, message):
    with pytest.raises(ValueError, match=message):
        FID(reference, extractor=lambda x: x)


def test_frechet_of_merged_features_is_the_fid_of_the_whole(tiny, images):
    fid = FID(str(tiny["fid_reference"]), weights=str(tiny["inception"]))
    whole = fid.per_sample(images, None)["fid_features"]
    parts = [fid.per_sample(images[:2], None)["fid_features"], fid.per_sample(images[2:], None)["fid_features"]]
    assert np.allclose(np.concatenate(parts), whole, atol=1e-6)
    assert frechet(np.concatenate(parts).astype(np.float64), fid.reference_stats()) == pytest.approx(fid.aggregate({"fid_features": whole})["fid"], rel=1e-6)


# --- ImageReward -------------------------------------------------------------------------------------


def test_image_reward_matches_the_original_implementation():
    """Scores of the original image-reward 1.5 (scripts/imagereward_golden.py) on a tiny checkpoint in the
    released layout; ours within 1e-5 (the original scores one image at a time, we batch)."""
    golden = json.loads((GOLDEN / "scores.json").read_text())
    model, tokenizer, size = ir.load_image_reward(str(GOLDEN / "ImageReward.pt"), str(GOLDEN / "bert-base-uncased"), golden["vision"]["num_heads"])
    assert size == golden["vision"]["image_size"]
    assert (ir.MEAN, ir.STD) == (golden["mean"], golden["std"])
    for prompt, ids in zip(golden["prompts"], golden["input_ids"]):
        ours = tokenizer(prompt, padding="max_length", truncation=True, max_length=ir.MAX_TEXT_LENGTH).input_ids
        assert ours == ids
    pil = [Image.open(GOLDEN / "images" / name) for name in golden["images"]]
    for name, image in zip(golden["images"], pil):
        pixels = ir.preprocess(image, size)
        assert list(pixels.shape) == golden["pixels"][name]["shape"]
        assert pixels.flatten()[:5].tolist() == pytest.approx(golden["pixels"][name]["first5"], abs=1e-6)
        assert pixels.double().sum().item() == pytest.approx(golden["pixels"][name]["sum"], abs=1e-2)
    metric = ir.ImageReward(str(GOLDEN / "ImageReward.pt"), str(GOLDEN / "bert-base-uncased"), golden["vision"]["num_heads"], batch_size=4)
    for prompt, expected in zip(golden["prompts"], golden["scores"]):
        scores = metric.score(pil, [prompt] * len(pil))
        np.testing.assert_allclose(scores, expected, atol=1e-5, rtol=0)


def test_image_reward_checkpoint_loads_strictly():
    state = torch.load(GOLDEN / "ImageReward.pt", weights_only=True)
    vision, text, head = ir.split_checkpoint(state)
    assert set(head) == {f"{i}.{p}" for i in (0, 2, 4, 6, 7) for p in ("weight", "bias")}
    with pytest.raises(ValueError, match="unexpected keys.*blip.visual_encoder.extra"):
        ir.split_checkpoint({**state, "blip.visual_encoder.extra.weight": torch.zeros(1)})
    model = ir.ImageRewardModel(ir.vision_config(vision, 2), ir.text_config(json.loads((GOLDEN / "med_config.json").read_text()), 32))
    with pytest.raises(RuntimeError, match="Missing key"):
        model.text.load_state_dict({k: v for k, v in text.items() if "crossattention" not in k}, strict=True)
    # our writer of the released layout is the loader's exact inverse
    model.vision.load_state_dict(vision)
    model.text.load_state_dict(text)
    model.layers.load_state_dict(head)
    roundtrip = ir.to_original_layout(model)
    assert set(roundtrip) == {k for k in state if not k.startswith(ir.UNUSED) and not k.endswith("position_ids")}
    assert all(torch.equal(roundtrip[k], state[k]) for k in roundtrip)


def test_image_reward_metric_on_the_smoke_checkpoint(tiny, images):
    metric = ir.ImageReward(str(tiny["image_reward"]), str(tiny["image_reward_tokenizer"]))
    scores = metric.per_sample(images, PROMPTS)["image_reward"]
    assert scores.shape == (5,) and np.isfinite(scores).all() and np.ptp(scores) > 0
    one_by_one = np.concatenate([metric.per_sample(images[i : i + 1], PROMPTS[i : i + 1])["image_reward"] for i in range(5)])
    np.testing.assert_allclose(scores, one_by_one, rtol=1e-5, atol=1e-5)  # batching: float32 rounding only
    assert metric.aggregate({"image_reward": scores})["image_reward"] == pytest.approx(scores.mean())


# --- PickScore and CLIP score -------------------------------------------------------------------------


def test_pickscore_is_clips_own_logit_and_the_winrate_its_pairwise_softmax(tiny, images):
    metric = PickScore(str(tiny["pickscore"]), str(tiny["pickscore"]), batch_size=2)
    raw = metric.per_sample(images, PROMPTS)["pickscore"]
    net, processor, tokenizer = load_clip(*metric.args)
    pil = [Image.fromarray(a) for a in to_uint8(images)]
    with torch.no_grad():
        out = net(pixel_values=processor(images=pil, return_tensors="pt").pixel_values,
                  **tokenizer(PROMPTS, padding=True, return_tensors="pt"))
    np.testing.assert_allclose(raw, out.logits_per_image.diagonal().numpy(), rtol=1e-5, atol=1e-5)

    other = metric.per_sample(images.flip(0), PROMPTS)["pickscore"]
    win = metric.paired({"pickscore": other}, {"pickscore": raw})["pickscore_winrate"]
    lose = metric.paired({"pickscore": raw}, {"pickscore": other})["pickscore_winrate"]
    softmax = torch.softmax(torch.tensor(np.stack([raw, other], 1), dtype=torch.float64), dim=1)[:, 0].mean().item()
    assert win == pytest.approx(softmax, abs=1e-12) and win + lose == pytest.approx(1.0, abs=1e-12)
    assert metric.paired({"pickscore": raw}, {"pickscore": raw})["pickscore_winrate"] == 0.5


def test_clip_score_is_100_times_the_clipped_cosine(tiny, images):
    metric = ClipScore(str(tiny["clip"]))
    scores = metric.per_sample(images, PROMPTS)["clip_score"]
    net, processor, tokenizer = load_clip(*metric.args)
    pil = [Image.fromarray(a) for a in to_uint8(images)]
    with torch.no_grad():
        out = net(pixel_values=processor(images=pil, return_tensors="pt").pixel_values, **tokenizer(PROMPTS, padding=True, return_tensors="pt"))
    cosine = (out.logits_per_image.diagonal() / net.logit_scale.exp()).numpy()
    np.testing.assert_allclose(scores, 100 * np.maximum(cosine, 0), rtol=1e-5, atol=1e-4)


def test_missing_metric_model_is_one_line_before_anything_loads():
    with pytest.raises(MissingModelError) as err:
        PickScore("nobody/not-a-cached-model")
    assert "\n" not in str(err.value) and "nobody/not-a-cached-model" in str(err.value) and "models:" in str(err.value)


# --- prompt sets -------------------------------------------------------------------------------------


def test_coco_takes_one_caption_per_image_in_file_order(caplog):
    caplog.set_level("INFO")
    coco = CocoCaptions(str(DATA / "captions_tiny.json"), num_samples=3)
    assert coco.prompts_at([0, 1, 2]) == ["A man riding a horse on the beach.", "Two cats sleeping on a red sofa", "a bowl of fruit on a wooden table"]
    assert coco.describe([2])["file_name"] == ["COCO_val2014_000000000099.jpg"]
    assert "3 prompts" in caplog.text and "6 captions of 4 images" in caplog.text
    assert CocoCaptions(str(DATA / "captions_tiny.json"), num_samples=None).num_samples == 4


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: CocoCaptions(str(DATA / "captions_tiny.json"), num_samples=5), "holds only 4 prompts"),
        (lambda d: CocoCaptions(str(d / "missing.json")), "not found"),
        (lambda d: CocoCaptions(None), "data.annotations is not set"),
        (lambda d: CocoCaptions(str(_write(d / "bad.json", "{not json"))), "is not a COCO captions file"),
        (lambda d: CocoCaptions(str(_write(d / "keys.json", '{"images": []}'))), "is not a COCO captions file"),
        (lambda d: PartiPrompts(str(_write(d / "p.tsv", "text\tCategory\nhello\tx\n"))), "no 'Prompt' column"),
        (lambda d: PartiPrompts(str(DATA / "parti_tiny.tsv"), category="Food"), "matches no row"),
        (lambda d: PromptList(file=str(_write(d / "empty.txt", "\n \n"))), "is empty"),
    ],
)
def test_bad_prompt_files_fail_with_one_line(make, message, tmp_path):
    with pytest.raises(ValueError, match=message) as err:
        make(tmp_path)
    assert "\n" not in str(err.value)


def test_parti_prompts_and_text_files_keep_every_prompt(tmp_path, caplog):
    caplog.set_level("INFO")
    parti = PartiPrompts(str(DATA / "parti_tiny.tsv"))
    assert parti.num_samples == 4 and parti.prompts_at([0, 3]) == ["bond", "a blue bus next to a red car"]
    assert PartiPrompts(str(DATA / "parti_tiny.tsv"), category="People").describe([0])["challenge"] == ["Imagination"]
    text = PromptList(file=str(_write(tmp_path / "p.txt", "one\n\n  two  \nthree\n")))
    assert text.prompts == ["one", "two", "three"] and "3 prompts" in caplog.text and "1 blank lines skipped" in caplog.text


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
