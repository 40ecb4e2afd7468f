"""The unigram tokenizer a text student trains for itself (XLM-RoBERTa's kind), trained once and kept.

Shared by :mod:`compress.models.text.text_classifier` (which tokenizes every text model's data) and
:mod:`compress.models.text.distilled_text` (whose XLM-RoBERTa student has a vocabulary of its own).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

__all__ = ["XLMR_SPECIALS", "unigram_path", "unigram_tokenizer"]

# XLM-RoBERTa's special tokens, in its SentencePiece vocabulary's order.
XLMR_SPECIALS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")


def unigram_path(vocab_size: int) -> Path:
    """Where the unigram tokenizer of ``vocab_size`` pieces is kept: under the cache, named by the
    sentiment data's digest and the ``tokenizers`` version that trained it."""
    import tokenizers

    from compress.storage.cache import cache_root
    from compress.data.sentiment import load_sentiment

    digest = load_sentiment().digest[:12]
    return cache_root() / "tokenizers" / f"unigram-{vocab_size}-{digest}-tokenizers{tokenizers.__version__}.json"


@lru_cache(maxsize=2)
def unigram_tokenizer(vocab_size: int):
    """A SentencePiece-style unigram tokenizer (XLM-RoBERTa's kind: NFKC, cased, metaspace pieces,
    ``<s> text </s>``) trained on the sentiment ``train`` split's text, as a transformers fast
    tokenizer.

    Training it is not reproducible: ``tokenizers``' unigram trainer breaks ties in the order of
    a hash map that Rust seeds per process, so two processes get different pieces from the same
    texts. It is trained once and kept (:func:`unigram_path`, written atomically under its lock:
    a second process waits and reads it), and the weights trained on its ids are keyed by its
    digest (:meth:`DistilledTextClassifier.source_digest`), so they are never used with another one.
    """
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    from compress.storage.cache import atomic_write_bytes, locked

    path = unigram_path(vocab_size)
    with locked(path, what=f"the {vocab_size}-piece unigram tokenizer"):
        if not path.exists():
            atomic_write_bytes(path, _train_unigram(vocab_size).to_str().encode())
        tok = Tokenizer.from_str(path.read_text(encoding="utf-8"))
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   pad_token="<pad>", mask_token="<mask>", cls_token="<s>", sep_token="</s>")  # fmt: skip


def _train_unigram(vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    from compress.data.sentiment import load_sentiment

    texts, _ = load_sentiment().split("train")
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=list(XLMR_SPECIALS),
                                      unk_token="<unk>", show_progress=False)  # fmt: skip
    tok.train_from_iterator(list(texts), trainer=trainer)
    bos, eos = tok.token_to_id("<s>"), tok.token_to_id("</s>")
    tok.post_processor = processors.TemplateProcessing(single="<s> $A </s>", special_tokens=[("<s>", bos), ("</s>", eos)])
    return tok
