"""Model files from a local path or the Hugging Face hub cache, never the network unless allowed.

Every loader takes a hub id *or* a local path. Offline, a model that is not here fails at once with
one ``MissingModelError`` line naming the id and the config entry that points at a local copy.
"""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path

import torch


class MissingModelError(FileNotFoundError):
    """A model id that is neither a local folder/file nor in the local hub cache (offline)."""


def dtype_of(name: str | torch.dtype) -> torch.dtype:
    return name if isinstance(name, torch.dtype) else getattr(torch, name)


def fetch(load, model_id: str, allow_download: bool, **kwargs):
    """``load(model_id)`` (a from_pretrained or load_config) without network unless allowed; a model that is
    not here is one clear error."""
    try:
        with warnings.catch_warnings():  # the hub's deprecation chatter on a failed lookup
            warnings.simplefilter("ignore", UserWarning)
            return load(model_id, local_files_only=not allow_download, **kwargs)
    except (OSError, ValueError):
        if Path(model_id).exists():
            raise
        sub = f" (subfolder {kwargs['subfolder']!r})" if kwargs.get("subfolder") else ""
        raise MissingModelError(
            f"model {model_id!r}{sub} is not available offline; download it (`huggingface-cli download "
            f"{model_id}`) and point its entry under `models:` at the copy (e.g. models.sdxl_base=/path/to/copy), "
            "or set allow_download=true"
        ) from None


@contextlib.contextmanager
def naming(what: str):
    """Prefix a MissingModelError with the config key that named the model."""
    try:
        yield
    except MissingModelError as err:
        raise MissingModelError(f"{what}: {err}") from None


def hub_file(repo_or_folder: str, filename: str, allow_download: bool, what: str) -> Path:
    """A file inside a local folder, or from a hub repo (its cache; downloaded only if allowed)."""
    local = Path(repo_or_folder) / filename
    if local.is_file():
        return local
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(repo_or_folder, filename, local_files_only=not allow_download))
    except Exception:  # noqa: BLE001  (hub errors vary: offline, missing repo, missing file)
        raise MissingModelError(
            f"{what}: {filename!r} of {repo_or_folder!r} is not available offline; download it "
            f"(`huggingface-cli download {repo_or_folder} {filename}`) and point its entry under `models:` at the "
            "folder holding it, or set allow_download=true"
        ) from None



def require(model_id: str, allow_download: bool, what: str) -> None:
    """Fail now, with one line, if ``model_id`` is neither a local path nor in the hub cache (offline);
    lets lazy loaders report a missing model before any model is loaded."""
    if allow_download or Path(model_id).exists():
        return
    from huggingface_hub import snapshot_download

    try:
        snapshot_download(model_id, local_files_only=True)
    except Exception:  # noqa: BLE001  (not cached, or not a valid repo id)
        raise MissingModelError(
            f"{what}: model {model_id!r} is not available offline; download it (`huggingface-cli download "
            f"{model_id}`) and point its entry under `models:` at the copy, or set allow_download=true"
        ) from None
