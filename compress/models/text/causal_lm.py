"""A small GPT-2 trained by the suite on five of Jane Austen's novels; perplexity on the sixth (or on a dataset's text).

Data, by default (``dataset=None``: :data:`compress.data.austen.AUSTEN`): ``train`` is
five novels less their last 5%, ``calib`` those 5% (``valid``: calibration and nothing
else), and the held-out novel (*Persuasion*) in halves: ``adapt`` its first half (what the adaptation techniques
train on, :mod:`compress.techniques.adaptation`: a model meeting a new book) and
``test`` its second half, never trained, adapted or calibrated on. Every pair is
scored on ``test``, so an adapted model's perplexity sits beside the fp32 one's.

With ``dataset=`` (any :class:`~compress.data.dataset.Dataset` of text segments, such
as :class:`compress.data.text_file.TextFile`): the tokenizer is trained on its
``train`` split and the blocks come from its splits; ``adapt`` is its ``adapt`` split
where it has one, else its ``train`` split (adaptation then goes on training on the
training text: no new text to meet). The dataset's digest enters the weights' cache
key; at the default the key is the one the recipe always had.

Tokens: a byte-level BPE of ``vocab_size`` tokens (transformers' ``tokenizers``)
trained on ``train`` alone, deterministic, retrained in each process in about a
second (its library version is in the weights' cache key). A split is its
segments' tokens joined by ``<|endoftext|>``, cut into blocks of ``block`` tokens
(the remainder dropped). The model-ready example is a block, ``x = y =`` the
``(N, block)`` int64 tokens: position ``t`` predicts token ``t + 1``; the score is
perplexity (:mod:`compress.metrics.perplexity`).

Model: transformers' ``GPT2LMHeadModel`` at a small configuration (2 layers, 128
wide, 2 heads: about a minute per epoch on one thread), with two changes, both
exact in fp32:

- GPT-2's ``Conv1D`` projections (a transposed linear layer) become ``nn.Linear``,
  so torch's Linear-based techniques (dynamic int8, magnitude pruning, PT2E) see
  every projection: ``quantize_dynamic`` left all of them in fp32 before (size 1.003);
- the output head is not tied to the token embedding: tied, pruning or quantizing
  the head would change the embedding with it, unseen by the technique.

Trained with :func:`compress.models.torch_common.fit` (AdamW, linear warm-up, cosine
decay) and the next-token loss (:meth:`CausalLM.loss`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import ClassVar

import numpy as np

from compress.data.dataset import Dataset
from compress.models import torch_common
from compress.models.base import FirstImagesSplits


END_OF_TEXT = "<|endoftext|>"
# the recipe's splits (AUSTEN's: compress.data.austen.AustenDataset.SPLIT_OF maps them to the novels')
SPLITS = ("train", "calib", "adapt", "test")


def text_source(dataset: Dataset | None) -> Dataset:
    """The dataset a recipe reads: ``dataset``, or the Austen novels for None."""
    if dataset is None:
        from compress.data.austen import AUSTEN

        return AUSTEN
    return dataset


UNSUPPORTED = {
    "ChannelPruningConfig": "channel pruning (torch-pruning) removes conv/linear channels of CNNs; a "
    "transformer's structured pruning removes attention heads and FFN neurons instead",
}


@lru_cache(maxsize=4)
def tokenizer(vocab_size: int, dataset: Dataset | None = None, digest: str | None = None):
    """The byte-level BPE trained on the ``train`` split of ``dataset`` (None: the Austen novels),
    deterministic. ``digest`` (the dataset's) only keys the memo: a file changed on disk in the same
    process gets a tokenizer of its own."""
    from tokenizers import ByteLevelBPETokenizer

    tok = ByteLevelBPETokenizer()
    tok.train_from_iterator(text_source(dataset).split("train")[0], vocab_size=vocab_size, min_frequency=2,
                            special_tokens=[END_OF_TEXT], show_progress=False)  # fmt: skip
    return tok


@lru_cache(maxsize=8)
def token_blocks(vocab_size: int, split: str, block: int, dataset: Dataset | None = None,
                 digest: str | None = None) -> np.ndarray:  # fmt: skip
    """``(N, block)`` int64 token blocks of a split of ``dataset`` (None: the Austen novels; its
    segments joined by end-of-text, the remainder dropped); ``digest`` keys the memo, as for
    :func:`tokenizer`.

    Raises:
        ValueError: the split holds fewer tokens than one block.
    """
    source = text_source(dataset)
    tok = tokenizer(vocab_size, dataset, digest)
    eot = tok.token_to_id(END_OF_TEXT)
    ids: list[int] = []
    for text in source.split(split)[0]:
        ids += tok.encode(text).ids
        ids.append(eot)
    n = len(ids) // block
    if n == 0:
        raise ValueError(f"the {split} split of {source.name} is {len(ids):,} tokens, less than one block of "
                         f"{block}: give the model more text, or a shorter block")  # fmt: skip
    return np.ascontiguousarray(np.asarray(ids[: n * block], dtype=np.int64).reshape(n, block))


def linear_projections(model) -> int:
    """Replace every transformers ``Conv1D`` in ``model`` by the equal ``nn.Linear``; how many."""
    import torch
    from torch import nn
    from transformers.pytorch_utils import Conv1D

    swapped = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, Conv1D):
                fan_in, fan_out = child.weight.shape
                lin = nn.Linear(fan_in, fan_out)
                with torch.no_grad():
                    lin.weight.copy_(child.weight.t())
                    lin.bias.copy_(child.bias)
                setattr(parent, name, lin)
                swapped += 1
    return swapped


def lm_module():
    """The :class:`torch.nn.Module` subclass wrapping a transformers causal LM (torch imported lazily)."""
    import torch
    from torch import nn

    class TokensToLogits(nn.Module):
        """``model`` taking token blocks ``(N, T)`` and returning next-token logits ``(N, T, vocab)``."""

        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, ids):
            # An explicit all-ones mask (the same causal attention): without one, transformers looks
            # for packed sequences in the position ids with torch.diff, which the ONNX exporter lacks.
            return self.model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=False).logits

    return TokensToLogits


@dataclass(frozen=True)
class CausalLM(FirstImagesSplits, torch_common.TorchArrays, torch_common.TorchFit):
    """Recipe of a small GPT-2 trained from scratch on the ``train`` split of the Austen novels or of ``dataset``.

    Every field is part of the cache key: change one and the model is trained again
    (``dataset`` as its type and digest, and only when given).

    Attributes:
        vocab_size: BPE tokens (4,096: a unigram model of them scores about 630 on *Persuasion*).
        block: tokens per example and the model's context (128).
        layers, width, heads: the GPT-2 configuration.
        epochs, batch_size, learning_rate, weight_decay, warmup_steps: AdamW (linear
            warm-up, cosine decay) over the ``train`` blocks.
        fine_tune_size: blocks (the first of ``train``) that fine-tunes after a transform use.
        train_size: blocks (the first of ``train``) training uses (None: all).
        seed: seeds the initial weights and the shuffling.
        dataset: the text (a :class:`~compress.data.dataset.Dataset` of text segments with
            ``train``, ``calib`` and ``test`` splits, and maybe ``adapt``); None: the Austen novels.
    """

    vocab_size: int = 4096
    block: int = 128
    layers: int = 2
    width: int = 128
    heads: int = 2
    epochs: float = 4
    batch_size: int = 32
    learning_rate: float = 3e-3
    weight_decay: float = 0.1
    warmup_steps: int = 50
    fine_tune_size: int | None = None
    train_size: int | None = None
    seed: int = 0
    dataset: Dataset | None = field(default=None, metadata={"key_default": False})
    framework: str = field(default="torch", init=False)
    metric: ClassVar[str] = "perplexity"
    unsupported: ClassVar[dict] = UNSUPPORTED
    libraries: ClassVar[tuple[str, ...]] = ("transformers", "tokenizers")  # in the weights' cache key
    # LoRA on every projection (attention's qkv and output, the MLP's two): on qkv alone rank 8
    # reached 71.9 on test against 60.5 for these (79.1 before adaptation)
    lora_targets: ClassVar[tuple[str, ...]] = ("c_attn", "c_proj", "c_fc")
    throughput_batch: ClassVar[int] = 32  # served in batches: each export's examples/s at 32 is recorded

    # -- availability ------------------------------------------------------------
    def unavailable(self) -> str | None:
        """Why this model cannot run here (transformers or tokenizers missing, or the dataset's
        reason: the novels not fetched, a team's file missing), or None."""
        libraries = ("rdata", "tokenizers", "transformers") if self.dataset is None else ("tokenizers", "transformers")
        for name in libraries:
            try:
                __import__(name)
            except ImportError as exc:
                return f"the GPT-2 model needs {exc.name} (in compress-bench's torch extra): pip install -e '.[torch]'"
        return text_source(self.dataset).unavailable()

    # -- data (FirstImagesSplits: data, fine_tune_data, steps_per_epoch) ----------
    def data_source(self) -> Dataset:
        """The text: ``dataset``, or Jane Austen's novels."""
        return text_source(self.dataset)

    def _split_of(self, split: str) -> str:
        """The dataset's split behind the recipe's ``split``: ``adapt`` is ``train`` where it has none."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
        source = text_source(self.dataset)
        return "train" if split == "adapt" and "adapt" not in source.splits else split

    def _images(self, split: str, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
        source = text_source(self.dataset)
        x = token_blocks(self.vocab_size, self._split_of(split), self.block, self.dataset, source.digest())[:limit]
        return x, x

    def _limit(self, split: str) -> int | None:
        return self.train_size if split == "train" else None

    def adaptation_data(self) -> tuple[np.ndarray, np.ndarray]:
        """The ``adapt`` blocks: what adaptation trains on. The held-out novel's first half by default;
        a dataset's ``adapt`` split, or its ``train`` split where it has none."""
        return self._images("adapt", None)

    def loss(self, logits, tokens):
        """Mean next-token cross-entropy of a batch: ``logits[:, t]`` scored on ``tokens[:, t + 1]``."""
        import torch.nn.functional as F

        return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1))

    # -- model -----------------------------------------------------------------
    def _config(self):
        import transformers

        cfg = transformers.GPT2Config(
            vocab_size=self.vocab_size, n_positions=self.block, n_embd=self.width, n_layer=self.layers,
            n_head=self.heads, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, tie_word_embeddings=False,
            bos_token_id=0, eos_token_id=0, use_cache=False,
        )  # fmt: skip
        cfg._attn_implementation = "eager"  # torch.export traces it
        return cfg

    def build(self):
        """The architecture (random weights, deterministic given ``seed``), wrapped, in eval mode."""
        import torch
        import transformers

        torch.manual_seed(self.seed)
        native = transformers.GPT2LMHeadModel(self._config())
        linear_projections(native)
        return lm_module()(native).eval()

    def load(self, weights):
        """The architecture holding ``weights``, narrower where heads or FFN neurons were pruned:
        each attention splits ``c_attn``'s output by the width it was loaded with."""
        model = torch_common.load_arrays(self.build(), weights)
        for block in model.model.transformer.h:
            attn = block.attn
            attn.split_size = attn.c_attn.out_features // 3
            attn.num_heads = attn.split_size // attn.head_dim
        return model.eval()

    def train(self, label: str):
        """A GPT-2 trained from scratch on the ``train`` blocks; in eval mode."""
        return torch_common.train_on_split(self, label)
