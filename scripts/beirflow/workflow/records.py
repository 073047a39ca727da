"""Fetch records: what rule fetch_model found of a model, read by GPU jobs, provenance and the plan.

Standard library only, so every environment reads them: the merge and search jobs cite them in
their provenance without loading a model. Fetching is :mod:`beirflow.workflow.fetch`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from beirflow.workflow.atomic import atomic_write
from beirflow.workflow.errors import BeirflowError
from beirflow.workflow.paths import model_record

PACKAGE_PREFIX = "package:"

# What loading a model reads: transformers and sentence-transformers take their weights from safetensors,
# else from PyTorch's .bin; nothing reads the other frameworks' exports, the training state or the docs.
WEIGHT_SUFFIXES = (".safetensors", ".bin")
NOT_LOADED_FOLDERS = ("onnx", "openvino", "coreml", "tflite", "tf", "flax", "runs", "checkpoints")
NOT_LOADED_SUFFIXES = (".h5", ".msgpack", ".ot", ".onnx", ".onnx_data", ".tflite", ".mlmodel", ".pb", ".gguf", ".pt",
                       ".pth", ".ckpt", ".md", ".png", ".jpg", ".jpeg", ".gif", ".svg", ".pdf")  # fmt: skip
NOT_LOADED_NAMES = (".gitattributes", ".gitignore", "training_args.bin")


def _weight_format(path: str) -> str | None:
    """'.safetensors' or '.bin' for a weight file or its shards' index, else None."""
    name = path.rsplit("/", 1)[-1].removesuffix(".index.json")
    return next((suffix for suffix in WEIGHT_SUFFIXES if name.endswith(suffix)), None)


def files_to_fetch(paths: Iterable[str]) -> list[str]:
    """Of a model repository's files, those loading reads: config, tokenizer and module files, and one
    weight format per folder (safetensors where the folder has it, else .bin; a sentence-transformers
    Dense module has its own folder). Never ONNX, OpenVINO, TensorFlow or Flax exports, training state or
    docs: on the paper's grid those are several times what loading needs, on disk and on the quota."""
    kept = [
        path
        for path in paths
        if path.split("/", 1)[0] not in NOT_LOADED_FOLDERS
        and not path.endswith(NOT_LOADED_SUFFIXES)
        and path.rsplit("/", 1)[-1] not in NOT_LOADED_NAMES
    ]
    formats: dict[str, set[str]] = {}
    for path in kept:
        weight_format = _weight_format(path)
        if weight_format:
            formats.setdefault(path.rpartition("/")[0], set()).add(weight_format)
    chosen = {folder: ".safetensors" if ".safetensors" in found else ".bin" for folder, found in formats.items()}
    return sorted(path for path in kept if _weight_format(path) in (None, chosen.get(path.rpartition("/")[0])))


class RecordError(BeirflowError):
    """A fetch record that cannot be read."""


@dataclass(frozen=True)
class FileRecord:
    path: str
    size: int
    sha256: str
    hub_sha256: str | None = None  # the hub's LFS sha256, where the hub stores the file in LFS
    xxh3_128: str | None = None  # the content digest jobs check it by (beirflow.workflow.digest: 6x sha256's speed)


@dataclass
class ModelRecord:
    name: str
    revision: str | None  # as the config asks
    commit: str | None  # the hub commit it resolved to; 'package <module> <version>' for a package
    source: str  # 'hub', 'package' or 'folder'
    folder: str
    files: list[FileRecord] = field(default_factory=list)

    @property
    def total_bytes(self) -> int:
        return sum(entry.size for entry in self.files)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "bytes": self.total_bytes}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelRecord:
        files = [FileRecord(**entry) for entry in data.get("files", [])]
        return cls(data["name"], data.get("revision"), data.get("commit"), data["source"], data["folder"], files)


def model_cache(configured: str) -> str:
    """The model cache's absolute path: config ``model_cache``, else the Hugging Face default as
    huggingface_hub finds it (HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub)."""
    if configured:
        return str(Path(configured).expanduser().resolve())
    if os.environ.get("HF_HUB_CACHE"):
        return str(Path(os.environ["HF_HUB_CACHE"]).expanduser().resolve())
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME") or "~/.cache", "huggingface")
    return str((Path(home).expanduser() / "hub").resolve())


def record_name(model: str, revision: str | None) -> str:
    """The record's file name: a readable tail of the model's name and a hash of (name, revision)."""
    digest = hashlib.sha256(json.dumps([model, revision]).encode("utf-8")).hexdigest()[:12]
    tail = model.rstrip("/").replace(PACKAGE_PREFIX, "").rsplit("/", 1)[-1]
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "-", tail).strip("-.") or "model"
    return f"{readable[:60]}-{digest}"


def record_path(model: str, revision: str | None) -> str:
    return model_record(record_name(model, revision))


def read_record(path: Path) -> ModelRecord:
    try:
        return ModelRecord.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise RecordError(
            f"{path}: not a model record ({type(error).__name__}: {error}); rebuild it with: snakemake --forcerun {path}"
        ) from None


def cited_models(paths: Iterable[Path]) -> dict[str, Any]:
    """What a provenance file cites of its models: each fetch record, whole."""
    return {"models": [read_record(path).to_dict() for path in paths]}


def write_record(record: ModelRecord, path: Path) -> None:
    with atomic_write(path) as handle:
        json.dump(record.to_dict(), handle, indent=1)
        handle.write("\n")


@dataclass(frozen=True)
class ModelFetch:
    """One distinct (model, revision) to fetch; ``key`` is the first config key, by system name, naming it."""

    name: str
    revision: str | None
    marker: str
    key: str


# (model key, revision key, the file its folder must hold) of a rerank or dense entry
MODEL_KEYS = (("model", "revision", "config.json"), ("adapter", "adapter_revision", "adapter_config.json"))


def distinct_models(families: dict[str, dict[str, Any]]) -> dict[str, ModelFetch]:
    """Record name -> the model to fetch, over the given families' systems: one fetch per (model, revision)."""
    models: dict[str, ModelFetch] = {}
    for family, systems in families.items():
        for system, entry in sorted((systems or {}).items()):
            for model_key, revision_key, marker in MODEL_KEYS:
                if entry.get(model_key):
                    name, revision = entry[model_key], entry.get(revision_key)
                    models.setdefault(
                        record_name(name, revision), ModelFetch(name, revision, marker, f"{family}.{system}.{model_key}")
                    )
    return models
