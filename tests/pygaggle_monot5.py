"""pygaggle's MonoT5.rescore, ported path for path, as the paper ran it (castorini/pygaggle,
pygaggle/rerank/transformer.py and pygaggle/model/tokenize.py), for the tests to compare with.

* T5BatchTokenizer: the pattern 'Query: {query} Document: {document} Relevant:', then
  AppendEosTokenizerMixin appends ' </s>' as text; batch_encode_plus with padding='longest',
  truncation=True, max_length=512, return_attention_mask=True, batches of 8 (its default);
* the slow T5Tokenizer (use_fast=False) splits the text on its special token '</s>', encodes the
  rest with SentencePiece, and, the sequence being cut to 511 tokens to leave room for eos,
  appends eos unless the sequence already ends with it (_add_eos_if_not_present);
* greedy_decode(length=1, return_last_logits=True): the encoder over the batch, one decoder step
  from decoder_start_token_id, the last logits;
* scores: log_softmax over the logits of ('▁false', '▁true'), the 'true' part.

transformers 5 has no slow T5 tokenizer, so the SentencePiece step runs on the sentencepiece
library itself with the model's spiece.model, as the slow tokenizer did.
"""

from __future__ import annotations

from pathlib import Path

PATTERN = "Query: {query} Document: {document} Relevant:"
EOS, PAD = "</s>", 0
BATCH_SIZE, MAX_LENGTH = 8, 512


class PygaggleMonoT5:
    def __init__(self, folder: Path) -> None:
        import sentencepiece
        from transformers import T5ForConditionalGeneration

        self.sp = sentencepiece.SentencePieceProcessor(model_file=str(folder / "spiece.model"))
        self.eos_id = self.sp.piece_to_id(EOS)
        self.token_false_id, self.token_true_id = self.sp.piece_to_id("▁false"), self.sp.piece_to_id("▁true")
        self.model = T5ForConditionalGeneration.from_pretrained(folder).eval()

    def input_ids(self, text: str) -> list[int]:
        """The slow T5Tokenizer's batch_encode_plus of one string, truncation=True, max_length=512."""
        ids: list[int] = []
        for index, chunk in enumerate(text.split(EOS)):
            if index:
                ids.append(self.eos_id)
            if chunk.strip():
                ids += self.sp.encode(chunk)
        ids = ids[: MAX_LENGTH - 1]  # room for the special token build_inputs_with_special_tokens adds
        return ids if ids and ids[-1] == self.eos_id else [*ids, self.eos_id]

    def encode(self, query: str, document: str) -> list[int]:
        return self.input_ids(f"{PATTERN.format(query=query, document=document)} {EOS}")

    def rescore(self, query: str, documents: list[str]) -> list[float]:
        import torch

        scores: list[float] = []
        for start in range(0, len(documents), BATCH_SIZE):
            encoded = [self.encode(query, document) for document in documents[start : start + BATCH_SIZE]]
            width = max(len(ids) for ids in encoded)
            input_ids = torch.tensor([ids + [PAD] * (width - len(ids)) for ids in encoded])
            attention_mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids in encoded])
            with torch.no_grad():
                encoder_outputs = self.model.get_encoder()(input_ids=input_ids, attention_mask=attention_mask)
                decode_ids = torch.full((input_ids.size(0), 1), self.model.config.decoder_start_token_id, dtype=torch.long)
                logits = self.model(
                    encoder_outputs=encoder_outputs, attention_mask=attention_mask, decoder_input_ids=decode_ids, use_cache=True
                ).logits[:, -1, :]
            batch_scores = torch.nn.functional.log_softmax(logits[:, [self.token_false_id, self.token_true_id]], dim=1)
            scores += batch_scores[:, 1].tolist()
        return scores
