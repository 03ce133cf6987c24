"""FID on clean-fid's preprocessing and Inception networks, streamed batch by batch as images are generated.

``mode``:
- ``clean`` (default): clean-fid's resize (PIL bicubic to 299x299 on float pixels, no re-quantisation)
  and the TF-ported Inception as a TorchScript file, ``inception-2015-12-05.pt``;
- ``legacy_pytorch``: pytorch-fid's recipe (bilinear torch resize; its ported Inception weights
  ``pt_inception-2015-12-05-6726825d.pth``, read from torch hub's cache), what the paper's scripts used.

Per batch, ``per_sample`` returns each image's pool features (column ``fid_features``); the run saves them
per method and seed (``features/``), so FID over several runs or shards comes from merged features,
never from regenerating images. The reference is a folder of images, whose statistics are computed once
and cached under ``cache_dir`` (keyed by the folder's file list, mode, ``reference_size`` and
network), or an ``.npz`` holding ``mu`` and ``sigma``.

Generated and reference images go through the same code: 8-bit RGB -> clean-fid's resizer ->
network. Our FID therefore equals ``cleanfid.fid.compute_fid`` on the saved PNGs (tests check it,
with a stand-in network since the real weights are not downloaded in tests).
"""

from __future__ import annotations

import hashlib
import logging
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from itd.io import atomic_write, save_npz
from itd.metrics.images import to_uint8
from itd.models.hub import MissingModelError

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = {".bmp", ".jpg", ".jpeg", ".png", ".pgm", ".ppm", ".tif", ".tiff", ".webp", ".npy"}
INCEPTION = {  # mode -> (file name, where clean-fid / pytorch-fid fetch it)
    "clean": ("inception-2015-12-05.pt", "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt"),
    "legacy_pytorch": (
        "pt_inception-2015-12-05-6726825d.pth",
        "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth",
    ),
}


def default_weights(mode: str) -> Path:
    """Where the Inception of ``mode`` is looked for when ``weights`` is null (the libraries' own caches)."""
    if mode == "legacy_pytorch":
        return Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION[mode][0]
    return Path(os.environ.get("ITD_CACHE", Path.home() / ".cache" / "itd")) / "fid" / INCEPTION[mode][0]


class TorchScriptInception(torch.nn.Module):
    """clean-fid's ``InceptionV3W`` (resize outside the network): pixels in [0, 255] at 299x299 -> pool features."""

    def __init__(self, path: str | Path):
        super().__init__()
        with warnings.catch_warnings():  # TorchScript is deprecated, but it is the format this network ships in
            warnings.simplefilter("ignore", FutureWarning)
            self.base = torch.jit.load(str(path), map_location="cpu").eval()

    def forward(self, x: Tensor) -> Tensor:
        return self.base.layers((x - 128) / 128).reshape(len(x), -1)


class PytorchFidInception(torch.nn.Module):
    """pytorch-fid's Inception as clean-fid's ``legacy_pytorch`` mode runs it: pixels in [0, 255] at 299x299 ->
    pool features. Its weights come from torch hub's cache (``default_weights("legacy_pytorch")``)."""

    def __init__(self):
        from cleanfid.inception_pytorch import InceptionV3

        super().__init__()
        self.net = InceptionV3(output_blocks=[3], resize_input=False).eval()

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x / 255)[0].flatten(1)


def inception_file(mode: str, weights: str | None, missing_ok: bool = False) -> Path:
    """The Inception file of ``mode``; a missing one is one MissingModelError line naming it and the fix."""
    name, url = INCEPTION[mode]
    if mode == "legacy_pytorch" and weights:
        raise ValueError(
            "metrics.fid.weights: legacy_pytorch reads pytorch-fid's weights from torch hub's cache "
            f"({default_weights(mode)}); put the file there (TORCH_HOME moves it) and leave weights null"
        )
    path = Path(weights) if weights else default_weights(mode)
    if not path.is_file() and not missing_ok:
        raise MissingModelError(
            f"FID ({mode}) needs the Inception weights {name}, not found at {path}; download {url} to that path"
            + (" (or set metrics.fid.weights=<file>)" if mode == "clean" else "")
            + ", or set allow_download=true"
        )
    return path


def load_inception(mode: str, weights: str | None, allow_download: bool) -> torch.nn.Module:
    """The Inception of ``mode`` as ``f(pixels [N, 3, 299, 299] in [0, 255]) -> [N, 2048]``; offline, a missing
    file is one MissingModelError line naming it and where to put it."""
    path = inception_file(mode, weights, missing_ok=allow_download)
    if not path.is_file():
        if mode == "clean":
            from cleanfid.downloads_helper import check_download_inception

            path.parent.mkdir(parents=True, exist_ok=True)
            check_download_inception(str(path.parent))
            path = path.parent / "inception-2015-12-05.pt"
    net = TorchScriptInception(path) if mode == "clean" else PytorchFidInception()
    net.cache_key = f"{mode}:{path.name}:{path.stat().st_size}"  # reference statistics are cached per network
    return net


def center_crop_resize(image, size: int):
    """Resize the short side to ``size`` (bicubic) and take the central ``size`` x ``size`` square."""
    from PIL import Image

    w, h = image.size
    scale = size / min(w, h)
    image = image.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.BICUBIC)
    w, h = image.size
    left, top = (w - size) // 2, (h - size) // 2
    return image.crop((left, top, left + size, top + size))


class FID:
    """FID of generated images against a reference folder or statistics file.

    reference: a folder of images (searched recursively) or an ``.npz`` with ``mu`` and ``sigma``.
    mode: ``clean`` | ``legacy_pytorch``.
    weights: the Inception file (clean mode); null looks in ``default_weights(mode)``.
    extractor: a custom network ``f(pixels [N, 3, 299, 299] in [0, 255]) -> [N, D]`` in place of Inception
        (same preprocessing and code path); give it a ``cache_key`` attribute to cache reference statistics.
    reference_size: centre-crop and resize reference images to this square size first (null: as they are).
    cache_dir: where reference statistics are cached (null: ``$ITD_CACHE/fid_stats``).
    """

    text_to_image = True  # scores RGB images (of text prompts): see experiment.build

    def __init__(
        self,
        reference: str | None = None,
        mode: str = "clean",
        weights: str | None = None,
        extractor: Callable | None = None,
        reference_size: int | None = None,
        cache_dir: str | None = None,
        batch_size: int = 32,
        device: str = "cpu",
        allow_download: bool = False,
    ):
        if mode not in INCEPTION:
            raise ValueError(f"metrics.fid.mode={mode!r} is not one of {sorted(INCEPTION)}")
        if reference is None:
            raise ValueError(
                "metrics.fid.reference is not set; point it at a folder of reference images (e.g. COCO val2014) "
                "or an .npz with mu and sigma"
            )
        self.reference = Path(reference)
        if not self.reference.exists():
            raise ValueError(f"metrics.fid.reference={reference} does not exist; give a folder of images or an .npz")
        if self.reference.is_file() and self.reference.suffix != ".npz":
            raise ValueError(f"metrics.fid.reference={reference} is a file but not an .npz with mu and sigma")
        if self.reference.is_dir() and not _image_files(self.reference):
            raise ValueError(f"metrics.fid.reference={reference} holds no images ({', '.join(sorted(IMAGE_EXTENSIONS))})")
        self.mode, self.reference_size, self.batch_size, self.device = mode, reference_size, batch_size, device
        self.cache_dir = Path(cache_dir) if cache_dir else Path(os.environ.get("ITD_CACHE", Path.home() / ".cache" / "itd")) / "fid_stats"
        if extractor is None and not allow_download:
            inception_file(mode, weights)  # a missing file fails now, before any model is loaded
        self._extractor, self._weights, self._allow_download = extractor, weights, allow_download
        self._resize = None
        self._stats = None

    @property
    def extractor(self):
        if self._extractor is None:
            self._extractor = load_inception(self.mode, self._weights, self._allow_download)
        if isinstance(self._extractor, torch.nn.Module):
            self._extractor = self._extractor.to(self.device).eval()
        return self._extractor

    @torch.no_grad()
    def features(self, pixels: Sequence[np.ndarray]) -> np.ndarray:
        """uint8 RGB images [H, W, 3] (any sizes) -> features [N, D] (float64), in batches."""
        if self._resize is None:
            from cleanfid.resize import build_resizer

            self._resize = build_resizer(self.mode)
        out = []
        for lo in range(0, len(pixels), self.batch_size):
            batch = np.stack([self._resize(p) for p in pixels[lo : lo + self.batch_size]])
            x = torch.from_numpy(batch.astype(np.float32)).permute(0, 3, 1, 2).to(self.device)
            out.append(self.extractor(x).double().cpu().numpy())
        return np.concatenate(out)

    def per_sample(self, images: Tensor, prompts) -> dict[str, np.ndarray]:
        return {"fid_features": self.features(list(to_uint8(images))).astype(np.float32)}

    def aggregate(self, columns: dict[str, np.ndarray]) -> dict[str, float]:
        feats = np.asarray(columns["fid_features"], dtype=np.float64)
        if len(feats) < 2:
            return {"fid": float("nan")}
        return {"fid": frechet(feats, self.reference_stats())}

    def reference_stats(self) -> tuple[np.ndarray, np.ndarray]:
        if self._stats is None:
            self._stats = self._load_reference()
        return self._stats

    def _load_reference(self) -> tuple[np.ndarray, np.ndarray]:
        if self.reference.is_file():
            with np.load(self.reference) as stats:
                if not {"mu", "sigma"} <= set(stats.files):
                    raise ValueError(f"metrics.fid.reference={self.reference} lacks mu and sigma (has {stats.files})")
                return stats["mu"], stats["sigma"]
        files = _image_files(self.reference)
        key = getattr(self.extractor, "cache_key", None)
        cached = None
        if key is not None:
            listing = "\n".join(f"{f.relative_to(self.reference)}|{f.stat().st_size}|{f.stat().st_mtime_ns}" for f in files)
            digest = hashlib.sha256(f"{self.reference.resolve()}\n{self.mode}\n{self.reference_size}\n{key}\n{listing}".encode()).hexdigest()
            cached = self.cache_dir / f"{self.reference.name}_{self.mode}_{self.reference_size or 'native'}_{digest[:16]}.npz"
            if cached.is_file():
                with np.load(cached) as stats:
                    return stats["mu"], stats["sigma"]
        feats = []
        for lo in tqdm(range(0, len(files), self.batch_size), desc=f"FID reference ({len(files)} images)", leave=False):
            feats.append(self.features([self._read(f) for f in files[lo : lo + self.batch_size]]))
        feats = np.concatenate(feats)
        mu, sigma = feats.mean(axis=0), np.cov(feats, rowvar=False)
        if cached is not None:
            cached.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(cached, lambda p: save_npz(p, mu=mu, sigma=sigma, count=len(files)))
            log.info("FID reference statistics of %d images cached in %s", len(files), cached)
        return mu, sigma

    def _read(self, path: Path) -> np.ndarray:
        from PIL import Image

        if path.suffix == ".npy":
            return np.load(path)
        image = Image.open(path).convert("RGB")
        if self.reference_size:
            image = center_crop_resize(image, self.reference_size)
        return np.array(image)


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())


def frechet(features: np.ndarray, reference: tuple[np.ndarray, np.ndarray]) -> float:
    """clean-fid's Frechet distance between the Gaussian of ``features`` and ``reference`` = (mu, sigma)."""
    from cleanfid.fid import frechet_distance

    mu, sigma = features.mean(axis=0), np.cov(features, rowvar=False)
    return float(frechet_distance(mu, sigma, *reference))
