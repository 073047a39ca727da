"""Run a model over many tokenized inputs quickly: sorted by length, dynamically padded, pipelined.

* Inputs come in chunks. While the model runs on one chunk, a worker thread fetches texts and
  tokenizes the next (the Rust tokenizers release the GIL), so tokenization costs no model time.
* Within a chunk, inputs are sorted by length, longest first, and cut into batches that fill a
  token budget (batch size x padded length): short inputs go many to a batch, long ones few, and
  padding stays small. Longest first makes an out-of-memory error happen on the first batch.
* On a CUDA out-of-memory error the budget is halved and the batch retried; the smaller budget
  is kept for the rest of the job.
* ``torch.inference_mode`` throughout. Results come back in input order, whatever the batching.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

T = TypeVar("T")

# Tokens per batch when the batch size is 'auto'. On a CPU small batches ran fastest (a MiniLM
# cross-encoder on SciFact pairs: about 24 pairs/s at 2,048 tokens a batch, 22 at 16,384); on a
# GPU the budget starts high and halves on out-of-memory.
AUTO_TOKENS = {"cpu": 2048, "cuda": 262_144}
AUTO_MAX_BATCH = {"cpu": 64, "cuda": 2048}


@dataclass(frozen=True)
class Features:
    """One model input: token ids and, for BERT-style pairs, the segment ids."""

    input_ids: list[int]
    token_type_ids: list[int] | None = None


class TokenBudget:
    """How many inputs go into one batch: at most ``tokens`` padded tokens and ``max_batch`` inputs."""

    def __init__(self, tokens: int, max_batch: int) -> None:
        if tokens < 1 or max_batch < 1:
            raise ValueError("a batch needs room for at least one input")
        self.tokens = tokens
        self.max_batch = max_batch

    @classmethod
    def for_batch_size(cls, batch_size: int | str, device: str, max_length: int) -> TokenBudget:
        """'auto' or a fixed batch size (then every batch holds that many inputs, whatever their length)."""
        kind = "cuda" if device.startswith("cuda") else "cpu"
        if batch_size == "auto":
            return cls(AUTO_TOKENS[kind], AUTO_MAX_BATCH[kind])
        size = int(batch_size)
        return cls(size * max_length, size)

    def halve(self) -> None:
        self.tokens //= 2
        self.max_batch = max(1, self.max_batch // 2)

    def batches(self, lengths: Sequence[int]) -> list[list[int]]:
        """Indices grouped into batches, longest inputs first, each batch within the budget."""
        order = sorted(range(len(lengths)), key=lambda index: -lengths[index])
        batches: list[list[int]] = []
        current: list[int] = []
        for index in order:
            width = lengths[current[0]] if current else lengths[index]  # the longest sets the padding
            if current and ((len(current) + 1) * width > self.tokens or len(current) == self.max_batch):
                batches.append(current)
                current = []
            current.append(index)
        if current:
            batches.append(current)
        return batches


def pad(features: Sequence[Features], pad_id: int, device: Any) -> dict[str, torch.Tensor]:
    """Right-pad a batch to its longest input; the attention mask marks the real tokens.

    The rows are filled in numpy in one pass (a tensor per row cost more than a small model's
    forward pass on a GPU) and copied to the GPU from pinned memory without waiting.
    """
    import torch

    lengths = np.fromiter((len(feature.input_ids) for feature in features), dtype=np.int64, count=len(features))
    mask = np.arange(int(lengths.max())) < lengths[:, None]
    ids = np.full(mask.shape, pad_id, dtype=np.int64)
    ids[mask] = np.fromiter(
        (token for feature in features for token in feature.input_ids), dtype=np.int64, count=int(lengths.sum())
    )
    arrays = {"input_ids": ids, "attention_mask": mask.astype(np.int64)}
    if features[0].token_type_ids is not None:
        types = np.zeros(mask.shape, dtype=np.int64)
        types[mask] = np.fromiter(
            (segment for feature in features for segment in feature.token_type_ids or [0] * len(feature.input_ids)),
            dtype=np.int64,
            count=int(lengths.sum()),
        )
        arrays["token_type_ids"] = types
    on_gpu = str(device).startswith("cuda")
    tensors = {name: torch.from_numpy(array) for name, array in arrays.items()}
    return {
        name: (tensor.pin_memory().to(device, non_blocking=True) if on_gpu else tensor.to(device))
        for name, tensor in tensors.items()
    }


def _is_out_of_memory(error: BaseException) -> bool:
    import torch

    return isinstance(error, torch.OutOfMemoryError) or "out of memory" in str(error).lower()


def run_chunk(
    features: Sequence[Features], forward: Callable[[dict[str, Any]], torch.Tensor], pad_id: int, device: Any, budget: TokenBudget
) -> np.ndarray:
    """``forward`` over every input in length-sorted batches; rows come back in input order.

    Outputs stay on the device until the chunk is done: copying each batch back would make the
    CPU wait for the GPU before it pads the next batch, and a small model's GPU would then idle.
    """
    import torch

    if not features:
        return np.zeros((0,), dtype=np.float32)
    lengths = [len(feature.input_ids) for feature in features]
    pending = budget.batches(lengths)
    done: list[tuple[list[int], torch.Tensor]] = []
    while pending:
        batch = pending.pop(0)
        try:
            with torch.inference_mode():
                output = forward(pad([features[index] for index in batch], pad_id, device)).float()
        except Exception as error:
            if not _is_out_of_memory(error) or len(batch) == 1:
                raise
            torch.cuda.empty_cache()
            budget.halve()
            log.warning(
                "out of memory on a batch of %d inputs of up to %d tokens; retrying with %d tokens per batch",
                len(batch),
                lengths[batch[0]],
                budget.tokens,
            )
            remaining = batch + [index for later in pending for index in later]
            smaller = budget.batches([lengths[index] for index in remaining])
            pending = [[remaining[position] for position in part] for part in smaller]
            continue
        done.append((batch, output))
    values = torch.cat([output for _, output in done]).cpu().numpy()
    order = np.fromiter((index for batch, _ in done for index in batch), dtype=np.int64, count=len(features))
    results = np.empty_like(values)
    results[order] = values
    return results


def pipelined(
    chunks: Iterable[T],
    prepare: Callable[[T], Sequence[Features]],
    forward: Callable[[dict[str, Any]], torch.Tensor],
    pad_id: int,
    device: Any,
    budget: TokenBudget,
) -> Iterator[np.ndarray]:
    """For each chunk, the model's output per input; ``prepare`` (fetch and tokenize) runs one chunk ahead in a thread."""
    iterator = iter(chunks)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="tokenize") as pool:
        first = next(iterator, None)
        if first is None:
            return
        upcoming: Future[Sequence[Features]] | None = pool.submit(prepare, first)
        while upcoming is not None:
            features = upcoming.result()
            following = next(iterator, None)
            upcoming = pool.submit(prepare, following) if following is not None else None
            yield run_chunk(features, forward, pad_id, device, budget)
