"""Golden ImageReward-v1.0 scores from the original ``image-reward`` package, on a tiny checkpoint.

The original package cannot be installed beside transformers 5, so this script runs once, by hand, in a
throwaway virtual environment; its outputs are committed and the re-implementation is tested against
them. It builds the package's own ``ImageReward`` model with two hard-coded sizes shrunk (the ViT-L
builder and the 768-wide MLP head), re-randomises every weight with a fixed seed, saves the state dict
laid out like the released ``ImageReward.pt``, reloads that file into a fresh original model and scores
every (prompt, image) pair with ``ImageReward.score(prompt, pil_image)`` on CPU in float32.

Usage (from the repository root; about two minutes of installs from local wheels, seconds to run)::

    python3 -m venv /tmp/irvenv
    /tmp/irvenv/bin/pip install torch==2.14.1 torchvision==0.29.1 transformers==4.46.3
    /tmp/irvenv/bin/pip install --no-deps image-reward==1.5 timm==0.6.13 fairscale==0.4.13
    /tmp/irvenv/bin/python scripts/imagereward_golden.py tests/golden/imagereward

Outputs (in the given directory): ``ImageReward.pt``, ``med_config.json``, ``bert-base-uncased/vocab.txt``,
``images/*.png`` and ``scores.json`` (scores, the token ids and preprocessed-pixel checksums behind them,
the tiny sizes, the normalisation constants and the library versions). Reruns are byte-identical.
"""

import argparse
import contextlib
import importlib.util
import json
import os
import sys
import types
from importlib import metadata
from pathlib import Path

# The package's tokenizer is loaded with from_pretrained("bert-base-uncased"): resolve it locally only.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
import torch
from PIL import Image
from torch import nn

SEED = 0
TEXT_MAX_LENGTH = 35  # hard-coded in ImageReward.score

VISION = {"hidden_size": 32, "num_layers": 2, "num_heads": 2, "patch_size": 16, "image_size": 224, "mlp_ratio": 4}

# BERT-style vocabulary: special tokens first ([PAD] = 0), whole words, punctuation, then word pieces.
VOCAB = (
    ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    + "a an the of on in at and with near under over along their two three is".split()
    + "photo painting oil portrait style cat dog bird man woman car house tree river mountain".split()
    + "sky cloud sun moon star street garden city forest snow light night day evening cafe".split()
    + "red blue green white old small big beautiful sunny high detail walk fly".split()
    + [",", ".", "!", "-", "'"]
    + ["##s", "##ing", "##ed", "##y", "##ly"]
)

# The layout of the released med_config.json, shrunk; [DEC] and [ENC] are added to the vocabulary.
MED_CONFIG = {
    "architectures": ["BertModel"],
    "attention_probs_dropout_prob": 0.1,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "hidden_size": 32,
    "initializer_range": 0.02,
    "intermediate_size": 64,
    "layer_norm_eps": 1e-12,
    "max_position_embeddings": 64,
    "model_type": "bert",
    "num_attention_heads": 2,
    "num_hidden_layers": 2,
    "pad_token_id": 0,
    "type_vocab_size": 2,
    "vocab_size": len(VOCAB) + 2,
    "encoder_width": VISION["hidden_size"],
    "add_cross_attention": True,
}

PROMPTS = [
    "a photo of a cat",
    "a red car on the street at night",
    "A Beautiful Oil-Painting of an OLD Dog, in the Garden!!",
    "a zebra eating spaghetti near the café",
    "a small house under a big tree near a blue river with green mountains and white clouds in the sky "
    "on a sunny day, with a man and a woman walking their dogs along the old street in the evening light, "
    "highly detailed oil painting",
    "two cats and three birds flying over snowy mountains",
]

# (file name, PIL mode, width, height): upscaled, downscaled and untouched sizes; crop offsets that are
# even, odd (torchvision rounds half to even) and zero; palette images (PIL resizes "P" with NEAREST) and
# RGBA images (PIL resizes in premultiplied alpha, before the package converts to RGB).
IMAGES = [
    ("rgb_300x200.png", "RGB", 300, 200),
    ("rgba_97x131.png", "RGBA", 97, 131),
    ("l_512x512.png", "L", 512, 512),
    ("p_224x224.png", "P", 224, 224),
    ("rgb_451x200.png", "RGB", 451, 200),
    ("p_150x403.png", "P", 150, 403),
]


def make_image(mode, width, height, rng):
    """A deterministic test image: noisy sinusoidal stripes per channel, so resampling matters."""
    y, x = np.mgrid[0:height, 0:width] / max(width, height)
    channels = []
    for _ in range(4):
        fx, fy = rng.uniform(2.0, 12.0, size=2)
        phase = rng.uniform(0.0, 2.0 * np.pi)
        wave = 0.5 + 0.35 * np.sin(2.0 * np.pi * (fx * x + fy * y) + phase)
        channels.append(wave + 0.15 * rng.standard_normal((height, width)))
    pixels = np.round(np.clip(np.stack(channels, axis=-1), 0.0, 1.0) * 255.0).astype(np.uint8)
    if mode == "RGB":
        return Image.fromarray(pixels[..., :3])
    if mode == "RGBA":
        return Image.fromarray(pixels)
    if mode == "L":
        return Image.fromarray(pixels[..., 0])
    if mode == "P":
        image = Image.frombytes("P", (width, height), (pixels[..., 0] // 16).tobytes())
        image.putpalette(rng.integers(0, 256, size=(16, 3), dtype=np.uint8).tobytes())
        return image
    raise ValueError(f"unsupported mode {mode!r}")


def write_inputs(out_dir):
    """Write the tokenizer vocabulary, med_config.json and the test images; return the image paths."""
    (out_dir / "bert-base-uncased").mkdir(parents=True, exist_ok=True)
    (out_dir / "bert-base-uncased" / "vocab.txt").write_text("".join(f"{token}\n" for token in VOCAB))
    (out_dir / "med_config.json").write_text(json.dumps(MED_CONFIG, indent=2) + "\n")
    (out_dir / "images").mkdir(exist_ok=True)
    rng = np.random.default_rng(SEED)
    paths = []
    for name, mode, width, height in IMAGES:
        path = out_dir / "images" / name
        make_image(mode, width, height, rng).save(path, format="PNG")
        paths.append(path)
    return paths


def import_original():
    """Import the package's model modules without running its __init__ files.

    Those import diffusers, datasets and clip, none of which the model needs; empty package objects
    registered under the same names let the submodules import normally.
    """
    root = Path(importlib.util.find_spec("ImageReward").submodule_search_locations[0])
    for name, path in (("ImageReward", root), ("ImageReward.models", root / "models")):
        package = types.ModuleType(name)
        package.__path__ = [str(path)]
        sys.modules[name] = package
    from ImageReward import ImageReward as reward_module
    from ImageReward.models.BLIP import blip_pretrain, vit

    return reward_module, blip_pretrain, vit


def shrink(reward_module, blip_pretrain, vit):
    """Patch the two hard-coded sizes: the ViT-L/16 builder and the MLP head's 768-wide input."""

    def tiny_vit(name, image_size, *args, **kwargs):
        assert image_size == VISION["image_size"]
        encoder = vit.VisionTransformer(
            img_size=image_size,
            patch_size=VISION["patch_size"],
            embed_dim=VISION["hidden_size"],
            depth=VISION["num_layers"],
            num_heads=VISION["num_heads"],
            mlp_ratio=VISION["mlp_ratio"],
        )
        return encoder, VISION["hidden_size"]

    original_mlp = reward_module.MLP
    blip_pretrain.create_vit = tiny_vit
    reward_module.MLP = lambda input_size: original_mlp(MED_CONFIG["hidden_size"])


def build_model(reward_module, out_dir):
    """The original ImageReward model in eval mode, its config and tokenizer read from out_dir."""
    with contextlib.chdir(out_dir):  # init_tokenizer() loads the relative path "bert-base-uncased"
        model = reward_module.ImageReward(med_config="med_config.json", device="cpu")
    return model.eval()


@torch.no_grad()
def randomise(model, seed):
    """Redraw every parameter from a seeded generator.

    The constructor's init (zero biases, unit LayerNorms, tiny weights) scores every input alike, so
    weights get std 1/sqrt(fan_in), biases and LayerNorm offsets std 0.1, LayerNorm scales 1 +- 0.1,
    embeddings (word, position, class token) std 0.5.
    """
    generator = torch.Generator().manual_seed(seed)
    drawn = set()

    def draw(tensor, std, mean=0.0):
        tensor.copy_(mean + std * torch.randn(tensor.shape, generator=generator))
        drawn.add(id(tensor))

    for module in model.modules():
        if isinstance(module, nn.LayerNorm):
            draw(module.weight, 0.1, mean=1.0)
            draw(module.bias, 0.1)
        elif isinstance(module, (nn.Linear, nn.Conv2d)):
            draw(module.weight, module.weight[0].numel() ** -0.5)
            if module.bias is not None:
                draw(module.bias, 0.1)
        elif isinstance(module, nn.Embedding):
            draw(module.weight, 0.5)
    visual = model.blip.visual_encoder
    draw(visual.cls_token, 0.5)
    draw(visual.pos_embed, 0.5)
    missed = [name for name, parameter in model.named_parameters() if id(parameter) not in drawn]
    assert not missed, f"parameters left at their initial values: {missed}"


def load_image(path):
    with Image.open(path) as image:
        image.load()
    return image


def describe(model, prompts, image_paths):
    """Token ids, preprocessed-pixel checksums and scores, all through the original model's code."""
    tokenizer = model.blip.tokenizer
    input_ids = [
        tokenizer(prompt, padding="max_length", truncation=True, max_length=TEXT_MAX_LENGTH)["input_ids"]
        for prompt in prompts
    ]
    pixels = {}
    for path in image_paths:
        tensor = model.preprocess(load_image(path))
        pixels[path.name] = {
            "shape": list(tensor.shape),
            "sum": tensor.double().sum().item(),
            "first5": tensor.flatten()[:5].tolist(),
        }
    with torch.no_grad():
        scores = [[model.score(prompt, load_image(path)) for path in image_paths] for prompt in prompts]
    return input_ids, pixels, scores


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", nargs="?", default="tests/golden/imagereward", type=Path)
    out_dir = parser.parse_args().out_dir.resolve()
    torch.set_num_threads(1)

    image_paths = write_inputs(out_dir)
    reward_module, blip_pretrain, vit = import_original()
    shrink(reward_module, blip_pretrain, vit)

    torch.manual_seed(SEED)  # the constructors draw their own init before it is replaced
    model = build_model(reward_module, out_dir)
    randomise(model, SEED)
    checkpoint = out_dir / "ImageReward.pt"
    torch.save(model.state_dict(), checkpoint)

    # Score a fresh model loaded from the saved file, so the golden values belong to the file.
    model = build_model(reward_module, out_dir)
    model.load_state_dict(torch.load(checkpoint, map_location="cpu"), strict=True)
    tokenizer = model.blip.tokenizer
    assert tokenizer.convert_tokens_to_ids(["[DEC]", "[ENC]"]) == [len(VOCAB), len(VOCAB) + 1]
    input_ids, pixels, scores = describe(model, PROMPTS, image_paths)

    record = {
        "prompts": PROMPTS,
        "images": [path.name for path in image_paths],
        "scores": scores,
        "input_ids": input_ids,
        "pixels": pixels,
        "vision": {**VISION, "layer_norm_eps": model.blip.visual_encoder.norm.eps},
        "text_max_length": TEXT_MAX_LENGTH,
        "mean": model.mean,
        "std": model.std,
        "versions": {
            name: metadata.version(name)
            for name in ("torch", "torchvision", "transformers", "image-reward", "timm", "fairscale", "pillow")
        },
        "how": (
            "ImageReward.score(prompt, PIL.Image.open(image)) of the image-reward 1.5 package on CPU in "
            "float32, with ImageReward.pt (seeded random weights, ViT and MLP-head widths patched to the "
            "tiny sizes) loaded strictly into a fresh model; input_ids are the package tokenizer's output "
            "(max_length 35, padded, truncated) and pixels are its preprocess() output per image "
            "(sum in float64, first5 of the flattened CHW tensor)."
        ),
    }
    (out_dir / "scores.json").write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
