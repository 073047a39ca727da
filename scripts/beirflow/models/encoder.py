"""Text encoders (bi-encoders): one implementation for dense retrieval and for bi-encoder reranking.

A sentence-transformers folder describes its own pipeline: ``modules.json`` lists the modules
(Transformer, Pooling, Normalize), ``1_Pooling/config.json`` the pooling mode and
``sentence_bert_config.json`` the maximum length. They are read, so a config need not repeat
them; a config key given explicitly wins. Plain Hugging Face encoders take the pooling from the
config. T5 checkpoints (GTR) load their encoder only; decoder models (SGPT) pool the last token
or a position-weighted mean.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from beirflow.models.batching import Features, TokenBudget, pipelined
from beirflow.models.loading import LoadWeights, ModelError, ResolvedModel, input_device, load_pretrained, loader_for
from beirflow.workflow.progress import Progress

POOLINGS = ("mean", "cls", "last", "weighted-mean")
_ST_POOLING_KEYS = {
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_cls_token": "cls",
    "pooling_mode_lasttoken": "last",
    "pooling_mode_weightedmean_tokens": "weighted-mean",
}
# Module classes beirflow runs, by class name: sentence-transformers 2-5 write
# 'sentence_transformers.models.Dense', version 6 'sentence_transformers.sentence_transformer.modules.Dense'.
_ST6_POOLING = {"mean": "mean", "cls": "cls", "lasttoken": "last", "weightedmean": "weighted-mean"}
_ST_MODULES = ("Transformer", "Pooling", "Dense", "Normalize")
_DENSE_ACTIVATIONS = ("torch.nn.modules.linear.Identity", "torch.nn.modules.activation.Tanh")
DEFAULT_MAX_LENGTH = 512

Chunk = TypeVar("Chunk")


@dataclass(frozen=True)
class EncoderSettings:
    """What determines an embedding besides the weights; ``None`` means 'as the model folder says'."""

    pooling: str | None = None
    normalize: bool | None = None
    max_length: int | None = None
    # SGPT's "specb": one bracket token before and after every input, '[' ']' around queries and
    # '{' '}' around documents, added after truncation as its authors' code does.
    brackets: tuple[str, str] | None = None


SPECB_BRACKETS = {"queries": ("[", "]"), "documents": ("{", "}")}


@dataclass(frozen=True)
class DenseLayer:
    """A sentence-transformers Dense module after pooling (GTR projects its T5 mean with one)."""

    folder: Path
    activation: str  # a torch.nn class path; Identity or Tanh


@dataclass(frozen=True)
class FolderDefaults:
    pooling: str | None
    normalize: bool
    max_length: int | None
    dense: tuple[DenseLayer, ...] = ()


def _module_class(module: dict[str, Any]) -> str:
    module_type = str(module["type"])
    return module_type.rsplit(".", 1)[-1] if module_type.startswith("sentence_transformers.") else module_type


def _dense_layer(folder: Path, key: str) -> DenseLayer:
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    activation = config.get("activation_function", "torch.nn.modules.activation.Tanh")
    if activation not in _DENSE_ACTIVATIONS or config.get("use_residual"):
        raise ModelError(
            f"config key {key}: {folder / 'config.json'} asks for a Dense module beirflow does not run (activation {activation})"
        )
    return DenseLayer(folder, activation)


def folder_defaults(folder: Path, key: str) -> FolderDefaults:
    """Pooling, normalisation, maximum length and Dense layers from a sentence-transformers folder."""
    modules_file = folder / "modules.json"
    if not modules_file.is_file():
        return FolderDefaults(None, False, None)
    modules = json.loads(modules_file.read_text(encoding="utf-8"))
    unknown = [module["type"] for module in modules if _module_class(module) not in _ST_MODULES]
    if unknown:
        raise ModelError(
            f"config key {key}: {folder} uses sentence-transformers modules beirflow does not run: {', '.join(unknown)}"
        )
    pooling = None
    for module in modules:
        if _module_class(module) == "Pooling":
            pooling = _pooling_mode(folder / module["path"] / "config.json", key)
    normalize = any(_module_class(module) == "Normalize" for module in modules)
    dense = tuple(_dense_layer(folder / module["path"], key) for module in modules if _module_class(module) == "Dense")
    return FolderDefaults(pooling, normalize, _max_seq_length(folder), dense)


def _pooling_mode(config_file: Path, key: str) -> str:
    """sentence-transformers 6 writes ``"pooling_mode": "mean"``; earlier versions one boolean per mode."""
    config = json.loads(config_file.read_text(encoding="utf-8"))
    if "pooling_mode" in config:
        modes = [config["pooling_mode"]] if isinstance(config["pooling_mode"], str) else list(config["pooling_mode"])
        known = [_ST6_POOLING.get(mode) for mode in modes]
    else:
        modes = [flag for flag, value in config.items() if flag.startswith("pooling_mode_") and value]
        known = [_ST_POOLING_KEYS.get(flag) for flag in modes]
    if len(known) != 1 or known[0] is None:
        raise ModelError(
            f"config key {key}: {config_file} asks for a pooling beirflow does not run ({', '.join(modes) or 'none'}; it runs {', '.join(POOLINGS)})"
        )
    return known[0]


def _max_seq_length(folder: Path) -> int | None:
    """``max_seq_length`` of sentence_bert_config.json (sentence-transformers < 6), else the tokenizer's limit (6)."""
    for name, field in (("sentence_bert_config.json", "max_seq_length"), ("tokenizer_config.json", "model_max_length")):
        path = folder / name
        value = json.loads(path.read_text(encoding="utf-8")).get(field) if path.is_file() else None
        if isinstance(value, int) and 0 < value <= 1_000_000:  # tokenizers without a limit say 1e30
            return value
    return None


def load_dense(layer: DenseLayer, device: str) -> Any:
    """The layer as a torch module (float32: it is one small matrix after pooling)."""
    import torch

    weights_file = layer.folder / "model.safetensors"
    if weights_file.is_file():
        from safetensors.torch import load_file

        state = load_file(str(weights_file))
    else:
        state = torch.load(layer.folder / "pytorch_model.bin", map_location="cpu", weights_only=True)
    weight = state["linear.weight"]
    linear = torch.nn.Linear(weight.shape[1], weight.shape[0], bias="linear.bias" in state)
    linear.load_state_dict(
        {name.removeprefix("linear."): value.float() for name, value in state.items() if name.startswith("linear.")}
    )
    activation = torch.nn.Tanh() if layer.activation.endswith("Tanh") else torch.nn.Identity()
    return torch.nn.Sequential(linear, activation).to(device).eval()


def pool(hidden: Any, mask: Any, pooling: str) -> Any:
    """One vector per input from the last hidden states (right-padded batch)."""
    import torch

    if pooling == "cls":
        return hidden[:, 0]
    if pooling == "last":
        last = mask.sum(dim=1) - 1
        return hidden[torch.arange(hidden.size(0), device=hidden.device), last]
    weights = mask.to(hidden.dtype)
    if pooling == "weighted-mean":
        weights = weights * torch.arange(1, mask.size(1) + 1, device=hidden.device, dtype=hidden.dtype)
    summed = (hidden * weights.unsqueeze(-1)).sum(dim=1)
    return summed / weights.sum(dim=1, keepdim=True).clamp(min=1e-9)


class TextEncoder:
    """Encode texts into vectors, sorted by length, in pipelined batches."""

    def __init__(
        self,
        resolved: ResolvedModel,
        settings: EncoderSettings,
        key: str,
        precision: str,
        device: str,
        load_weights: LoadWeights = load_pretrained,
    ) -> None:
        """``load_weights``: how the model gets its weights (a benchmark passes random weights of the same shape)."""
        from transformers import AutoConfig, AutoTokenizer

        defaults = folder_defaults(resolved.folder, f"{key}.model")
        pooling = settings.pooling or defaults.pooling
        if pooling is None:
            raise ModelError(
                f"config key {key}.pooling: model '{resolved.name}' has no sentence-transformers pooling config; set 'pooling' ({', '.join(POOLINGS)})"
            )
        if pooling not in POOLINGS:
            raise ModelError(f"config key {key}.pooling: unknown pooling '{pooling}' ({', '.join(POOLINGS)})")
        self.pooling = pooling
        self.normalize = defaults.normalize if settings.normalize is None else settings.normalize
        self.max_length = settings.max_length or defaults.max_length or DEFAULT_MAX_LENGTH
        config = AutoConfig.from_pretrained(str(resolved.folder))
        loader = loader_for("dense", config.model_type)
        # Pooling reads the last hidden states: a BERT pooler the checkpoint lacks is never run.
        self.model = load_weights(loader, resolved, f"{key}.model", precision, device, unused=("pooler.",))
        self.tokenizer = AutoTokenizer.from_pretrained(str(resolved.folder))
        if self.tokenizer.pad_token_id is None:  # decoder models (SGPT) often have none; padding is masked anyway
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.device = input_device(self.model)
        self.brackets = None if settings.brackets is None else tuple(self._single_token(text, key) for text in settings.brackets)
        self.dense = [load_dense(layer, str(self.device)) for layer in defaults.dense]
        hidden_size = int(config.hidden_size if hasattr(config, "hidden_size") else config.d_model)
        self.dimension = int(self.dense[-1][0].out_features) if self.dense else hidden_size

    def _single_token(self, text: str, key: str) -> int:
        ids = self.tokenizer.encode(text, add_special_tokens=False)
        if not ids:
            raise ModelError(f"config key {key}.specb: the tokenizer has no token for '{text}'")
        return int(ids[0])  # SGPT's code takes the first id, as here

    def tokenize(self, texts: Sequence[str]) -> list[Features]:
        encoded = self.tokenizer(
            list(texts), truncation=True, max_length=self.max_length, return_attention_mask=False, return_token_type_ids=False
        )
        if self.brackets is None:
            return [Features(ids) for ids in encoded["input_ids"]]
        opening, closing = self.brackets
        return [Features([opening, *ids, closing]) for ids in encoded["input_ids"]]

    def forward(self, batch: dict[str, Any]) -> Any:
        import torch

        hidden = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        vectors = pool(hidden.float(), batch["attention_mask"], self.pooling)
        for layer in self.dense:
            vectors = layer(vectors)
        return torch.nn.functional.normalize(vectors, dim=-1) if self.normalize else vectors

    def encode_chunks(
        self, chunks: Iterable[Chunk], budget: TokenBudget, texts_of: Callable[[Chunk], Sequence[str]]
    ) -> Iterator[np.ndarray]:
        """Vectors (float32) for each chunk, in order; ``texts_of`` (e.g. a fetch by id) runs in the tokenizing thread."""
        return pipelined(
            chunks,
            lambda chunk: self.tokenize(texts_of(chunk)),
            self.forward,
            int(self.tokenizer.pad_token_id),
            self.device,
            budget,
        )

    def encode(self, texts: Sequence[str], budget: TokenBudget, chunk_size: int = 4096, what: str = "texts") -> np.ndarray:
        chunks = (texts[start : start + chunk_size] for start in range(0, len(texts), chunk_size))
        progress = Progress(f"encoding {what}", len(texts), "texts")
        parts = []
        for part in self.encode_chunks(chunks, budget, lambda chunk: chunk):
            parts.append(part)
            progress.advance(len(part))
        return np.concatenate(parts) if parts else np.zeros((0, self.dimension), dtype=np.float32)
