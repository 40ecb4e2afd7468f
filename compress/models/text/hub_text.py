"""Hugging Face sequence classifiers, real Hub checkpoints or local copies, on GLUE SST-2.

The paper's language classifiers are public checkpoints of the Hugging Face Hub
(``distilbert-base-uncased-finetuned-sst-2-english``, already fine-tuned on
SST-2; ``prajjwal1/bert-small`` and ``xlm-roberta-base``, pretrained encoders
fine-tuned here). :class:`HubTextClassifier` loads one through transformers'
Auto classes (``AutoConfig``, ``AutoTokenizer``,
``AutoModelForSequenceClassification``: the architecture is the checkpoint's own,
e.g. ``DistilBertForSequenceClassification``, see
:meth:`HubTextClassifier.native_class_name`) and evaluates it on GLUE SST-2
(:mod:`compress.data.sst2`), with the model input of every text model here: one
int64 array ``(N, 2, max_length)`` of token ids and attention mask, unpacked by
:func:`compress.models.text.text_classifier.packed_module`.

``checkpoint`` is a Hub id or a local directory written by ``save_pretrained``
(model and tokenizer), which loads the same way; that is how the tests run
this path offline.

Where the checkpoint comes from (offline by default: nothing is downloaded
unless asked for):

1. a local directory: read as is;
2. a Hub id: its snapshot in the local Hugging Face cache (``$HF_HUB_CACHE``, by
   default ``~/.cache/huggingface/hub``), loaded as a directory with
   ``local_files_only=True`` (no network code runs);
3. with ``COMPRESS_BENCH_HUB=1`` (a machine with network access), transformers
   downloads what the cache lacks, into that cache, the ordinary way.
   ``COMPRESS_BENCH_OFFLINE=1`` overrides it: nothing is downloaded.

:meth:`HubTextClassifier.unavailable` says, in one line, what is missing (the
checkpoint and what to set, or the SST-2 data), so the benchmark skips the
model's pairs instead of downloading.

Legacy checkpoints whose ``config.json`` names no ``model_type`` (such as
``prajjwal1/bert-small``, converted from Google's TensorFlow BERT release, which
transformers 5 no longer recognizes by name) load with the recipe's
``model_type`` (``"bert"``).

The weights' cache key holds :meth:`HubTextClassifier.source_digest`: the
SHA-256 of a local directory's files, or the Hub id and the commit of its
snapshot, and of the SST-2 data fine-tuned on, so another checkpoint or another
copy of SST-2 never reuses weights made from the old one.

Example:
    >>> recipe = HubTextClassifier(checkpoint="distilbert-base-uncased-finetuned-sst-2-english", epochs=0)
    >>> recipe.unavailable()                                      # doctest: +SKIP
    "Hugging Face checkpoint 'distilbert-base-uncased-finetuned-sst-2-english' is not in ..."
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from compress.assets import ENV_OFFLINE
from compress.models import torch_common
from compress.models.text.text_classifier import UNSUPPORTED, TextClassifier, packed_module

log = logging.getLogger(__name__)

ENV_HUB = "COMPRESS_BENCH_HUB"
CONFIG = "config.json"
#: Files one of which holds the weights (what ``from_pretrained`` looks for, in its order).
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
TRANSFORMERS_HINT = "pip install transformers==5.24.0 (it brings tokenizers, safetensors and huggingface_hub)"

# LoRA's targets and the modules trained whole beside it, by model_type (default: BERT's, the parent's).
# DistilBERT names its Linears otherwise; RoBERTa-family heads hold a ``classifier.dense`` that must
# train whole as part of the head, not get an adapter, so their encoder's dense layers are named by path.
_LORA = {
    "distilbert": (("q_lin", "k_lin", "v_lin", "out_lin", "lin1", "lin2"), ("pre_classifier", "classifier")),
    **dict.fromkeys(("roberta", "xlm-roberta", "camembert"),
                    (("query", "key", "value", "intermediate.dense", "output.dense"), ("classifier",))),
}  # fmt: skip


def hub_allowed() -> bool:
    """True when ``COMPRESS_BENCH_HUB=1`` and ``COMPRESS_BENCH_OFFLINE`` does not forbid downloads."""
    return os.environ.get(ENV_HUB, "") == "1" and os.environ.get(ENV_OFFLINE, "") in ("", "0")


def is_local(checkpoint: str) -> bool:
    """True when ``checkpoint`` is an existing directory (else it is taken for a Hub id)."""
    return Path(checkpoint).expanduser().is_dir()


def _looks_like_path(checkpoint: str) -> bool:
    """A path rather than a Hub id (``name`` or ``owner/name``)."""
    return checkpoint.startswith(("/", ".", "~")) or "\\" in checkpoint or checkpoint.count("/") > 1


def _source(checkpoint: str, revision: str | None, local_only: bool) -> tuple[str, dict]:
    """``(what to pass to from_pretrained, its keyword arguments)``.

    A directory as it is. A Hub id, offline: its snapshot directory in the local Hugging Face
    cache, loaded as a directory (``hf_hub_download`` even with ``local_files_only=True`` builds
    request headers, and huggingface_hub then tries to fetch a registry from the Hub once per
    process: reading the snapshot directly touches no network code). A Hub id with downloads
    allowed: the id and revision, resolved (and downloaded) by transformers.

    Raises:
        FileNotFoundError: a Hub id, offline, that is not in the local cache (the message says what to set).
    """
    if is_local(checkpoint):
        return str(Path(checkpoint).expanduser()), {"local_files_only": True}
    if not local_only:
        return checkpoint, {"revision": revision, "local_files_only": False}
    snapshot = cached_snapshot(checkpoint, revision)
    if snapshot is None:
        raise FileNotFoundError(f"Hugging Face checkpoint {checkpoint!r} is not in the local Hugging Face cache "
                                f"({_hub_cache()}): set {ENV_HUB}=1 to let transformers download it")  # fmt: skip
    return str(snapshot), {"local_files_only": True}


def _where(checkpoint: str) -> str:
    return str(Path(checkpoint).expanduser()) if is_local(checkpoint) else checkpoint


def cached_snapshot(repo_id: str, revision: str | None = None) -> Path | None:
    """The snapshot directory of ``repo_id`` at ``revision`` (default ``main``) in the local Hugging Face
    cache when its ``config.json`` is there, else None. Reads the cache only (never the network).

    Raises:
        ValueError: ``repo_id`` is not a valid Hub id (huggingface_hub's ``HFValidationError``).
    """
    from huggingface_hub import try_to_load_from_cache

    got = try_to_load_from_cache(repo_id, CONFIG, revision=revision)
    return Path(got).parent if isinstance(got, str) else None


def _hub_cache() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


@lru_cache(maxsize=512)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    """:func:`compress.storage.cache.sha256_file`, once per file while its size and mtime are unchanged."""
    from compress.storage.cache import sha256_file

    return sha256_file(Path(path))


def directory_digest(directory: Path) -> str:
    """SHA-256 over the relative paths and contents of every file under ``directory`` (symlinks followed;
    hidden files and folders, such as ``.git/`` or the ``.cache/`` of ``hf download --local-dir``, left out).
    Each file is hashed once per process while its size and mtime are unchanged."""
    directory = Path(directory)
    h = hashlib.sha256()
    for root, dirs, files in os.walk(directory, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(f for f in files if not f.startswith(".")):
            path = Path(root) / name
            st = path.stat()
            rel = path.relative_to(directory).as_posix()
            h.update(f"{rel}\0{_file_sha256(str(path), st.st_size, st.st_mtime_ns)}\n".encode())
    return h.hexdigest()


def _config_file(checkpoint: str, revision: str | None, local_only: bool) -> Path:
    source, kwargs = _source(checkpoint, revision, local_only)
    if kwargs["local_files_only"]:
        return Path(source) / CONFIG
    from huggingface_hub import hf_hub_download

    return Path(hf_hub_download(checkpoint, CONFIG, revision=revision))


def _missing_model_type(raw: dict, model_type: str | None, where: str) -> str | None:
    if "model_type" in raw or model_type:
        return None
    return (f"{where}/{CONFIG} names no model_type (a legacy checkpoint, which transformers 5 no longer "
            f"recognizes by name): set the recipe's model_type (e.g. model_type='bert')")  # fmt: skip


@lru_cache(maxsize=8)
def _load_config(checkpoint: str, revision: str | None, model_type: str | None, local_only: bool):
    """The checkpoint's config (shared: callers copy it). ``model_type`` stands in for a missing one."""
    import transformers

    path = _config_file(checkpoint, revision, local_only)
    raw = json.loads(path.read_text(encoding="utf-8"))
    why = _missing_model_type(raw, model_type, _where(checkpoint))
    if why:
        raise ValueError(why)
    if "model_type" not in raw:
        return transformers.AutoConfig.for_model(model_type, **raw)
    if model_type and raw["model_type"] != model_type:
        raise ValueError(f"{path} says model_type {raw['model_type']!r}, the recipe {model_type!r}")
    source, kwargs = _source(checkpoint, revision, local_only)
    return transformers.AutoConfig.from_pretrained(source, **kwargs)


@lru_cache(maxsize=4)
def _load_tokenizer(checkpoint: str, revision: str | None, model_type: str | None, local_only: bool):
    """The checkpoint's tokenizer (its config passed: a config without model_type still names its class)."""
    import transformers

    cfg = _load_config(checkpoint, revision, model_type, local_only)
    source, kwargs = _source(checkpoint, revision, local_only)
    tok = transformers.AutoTokenizer.from_pretrained(source, config=cfg, **kwargs)
    tok.padding_side = "right"  # the packed model trims training batches from the right (text_classifier)
    return tok


# Tokenized splits, by (checkpoint, revision, model_type, data digest, split, max_length, limit): few entries.
_TOKENIZED: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
_TOKENIZED_MAX = 8


@dataclass(frozen=True)
class HubTextClassifier(TextClassifier):
    """Recipe of a Hugging Face sequence classifier (Hub id or local directory) on GLUE SST-2.

    Every field is part of the cache key, and so is :meth:`source_digest` (the checkpoint's
    files, and the SST-2 data fine-tuned on): change either and the model is fine-tuned again.
    The other fields are :class:`~compress.models.text.text_classifier.TextClassifier`'s.

    Attributes:
        checkpoint: a Hub id (``"distilbert-base-uncased-finetuned-sst-2-english"``,
            ``"prajjwal1/bert-small"``, ``"xlm-roberta-base"``) or a directory
            written by ``save_pretrained`` (model and tokenizer). Keyword only.
        revision: the Hub revision (branch, tag or commit; None: ``main``); None for a directory.
        model_type: the architecture when the checkpoint's ``config.json`` names none
            (legacy checkpoints: ``"bert"`` for ``prajjwal1/bert-small``); None otherwise.
        epochs: epochs of the fine-tune on ``train`` from the checkpoint with a new head; ``0``:
            the checkpoint is already fine-tuned on SST-2 and the fp32 model is the checkpoint
            as it is (its classifier must be in it, with label 0 negative and 1 positive).
        train_size: SST-2 ``train`` sentences (the first) that the fine-tune, and adaptation,
            use (None: all 66,349).
        fine_tune_size: sentences (the first of ``train``) that fine-tunes after a transform use.
        warmup_steps: optimizer steps of linear warm-up before the cosine decay, in every fit
            (:func:`compress.models.torch_common.fit`; 0: none, as TextClassifier).
    """

    checkpoint: str = field(kw_only=True)
    revision: str | None = None
    model_type: str | None = None
    train_size: int | None = 8000
    base: str = field(default="hub", init=False)  # TextClassifier's MiniLM switch: unused here
    epochs: float = 1.0
    fine_tune_size: int | None = 8000
    warmup_steps: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.checkpoint, str) or not self.checkpoint:
            raise ValueError(f"checkpoint must be a Hub id or a directory, got {self.checkpoint!r}")
        if self.epochs < 0:
            raise ValueError(f"epochs must be >= 0 (0: the checkpoint is already fine-tuned), got {self.epochs}")
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {self.warmup_steps}")
        if self.train_size is not None and self.train_size < 1:
            raise ValueError(f"train_size must be positive or None, got {self.train_size}")
        if self.revision is not None and is_local(self.checkpoint):
            raise ValueError(f"revision {self.revision!r} is for Hub ids; {self.checkpoint!r} is a directory")

    # -- where the checkpoint is ------------------------------------------------------
    def _local_only(self) -> bool:
        return not hub_allowed()

    def _checkpoint_unavailable(self) -> str | None:
        ckpt = self.checkpoint
        if is_local(ckpt):
            d = Path(ckpt).expanduser()
            if not (d / CONFIG).is_file():
                return f"checkpoint directory {d} has no {CONFIG}: expected a directory written by save_pretrained"
            if not any((d / f).is_file() for f in WEIGHT_FILES):
                return f"checkpoint directory {d} holds no weights (expected one of {', '.join(WEIGHT_FILES)})"
            return _missing_model_type(json.loads((d / CONFIG).read_text(encoding="utf-8")), self.model_type, str(d))
        if _looks_like_path(ckpt):
            return f"checkpoint directory {Path(ckpt).expanduser()} does not exist (nor is {ckpt!r} a Hub id)"
        try:
            snapshot = cached_snapshot(ckpt, self.revision)
        except ValueError as exc:
            return f"checkpoint {ckpt!r} is neither a directory nor a valid Hugging Face Hub id ({exc})"
        at = f" at revision {self.revision!r}" if self.revision else ""
        if snapshot is None or not any((snapshot / f).is_file() for f in WEIGHT_FILES):
            if hub_allowed():
                return None  # transformers downloads it (the user allowed it)
            forbid = f" ({ENV_OFFLINE} forbids downloading it)" if os.environ.get(ENV_HUB, "") == "1" else ""
            what = "is not" if snapshot is None else "has no weights file"
            return (f"Hugging Face checkpoint {ckpt!r}{at} {what} in the local Hugging Face cache "
                    f"({_hub_cache()}){forbid}: set {ENV_HUB}=1 to let transformers download it "
                    f"(needs network access), or set the recipe's checkpoint to a directory written "
                    f"by save_pretrained")  # fmt: skip
        return _missing_model_type(json.loads((snapshot / CONFIG).read_text(encoding="utf-8")), self.model_type,
                                   f"{ckpt}{at} ({snapshot})")  # fmt: skip

    def unavailable(self) -> str | None:
        """Why this model cannot run here, in one line, or None. Never downloads.

        transformers missing; the checkpoint neither a directory nor in the local
        Hugging Face cache (unless ``COMPRESS_BENCH_HUB=1`` allows downloading it);
        a legacy config without ``model_type`` and none in the recipe; or GLUE SST-2
        not found (:func:`compress.data.sst2.find_sst2`'s message).
        """
        from compress.data.fashion_mnist import DataCorruptError, DataNotFoundError

        try:
            import transformers  # noqa: F401
        except ImportError:
            return f"checkpoint {self.checkpoint!r} needs transformers: {TRANSFORMERS_HINT}"
        reason = self._checkpoint_unavailable()
        if reason:
            return reason
        try:
            from compress.data.sst2 import load_sst2

            load_sst2()
        except (DataNotFoundError, DataCorruptError) as exc:
            return str(exc)
        return None

    def checkpoint_digest(self) -> str:
        """SHA-256 of the checkpoint.

        A directory: its files (:func:`directory_digest`). A Hub id: the id, the
        revision asked for and the commit of the cached snapshot (a Hub commit names
        its files' content); when not cached and ``COMPRESS_BENCH_HUB=1``, its
        ``config.json`` is fetched first to learn the commit, so the key is the same
        before and after transformers downloads the rest. Not cached and not
        downloadable: the id and revision alone (such a model is unavailable anyway).

        Raises:
            FileNotFoundError: ``checkpoint`` looks like a directory that does not exist.
        """
        ckpt = self.checkpoint
        if is_local(ckpt):
            return directory_digest(Path(ckpt).expanduser())
        if _looks_like_path(ckpt):
            raise FileNotFoundError(f"checkpoint directory {Path(ckpt).expanduser()} does not exist")
        from huggingface_hub.errors import EntryNotFoundError

        commit = None
        try:
            snapshot = cached_snapshot(ckpt, self.revision)
            if snapshot is None and hub_allowed():
                _config_file(ckpt, self.revision, local_only=False)  # config.json only: the commit
                snapshot = cached_snapshot(ckpt, self.revision)
            commit = snapshot.name if snapshot is not None else None
        except (OSError, ValueError, EntryNotFoundError) as exc:  # no network, an invalid id: keyed by the id
            log.warning("%s: cannot resolve the Hub commit (%s: %s); keying its weights by id and revision",
                        ckpt, type(exc).__name__, exc)  # fmt: skip
        doc = {"hub": ckpt, "revision": self.revision, "commit": commit}
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()

    def source_digest(self) -> str:
        """SHA-256 of what the weights are made from, for their cache key (the runner adds it):
        :meth:`checkpoint_digest` and, when ``epochs`` > 0, the SST-2 data fine-tuned on
        (:attr:`compress.data.sst2.SST2Data.digest`; None when not found: nothing can be trained),
        so that another checkpoint or another copy of SST-2 never reuses weights made from the old one.

        Raises:
            FileNotFoundError: ``checkpoint`` looks like a directory that does not exist.
        """
        from compress.data.fashion_mnist import DataCorruptError, DataNotFoundError
        from compress.data.sst2 import load_sst2

        data = None
        if self.epochs:
            try:
                data = load_sst2().digest
            except (DataNotFoundError, DataCorruptError):
                pass
        doc = {"checkpoint": self.checkpoint_digest(), "sst2": data}
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()

    # -- data: GLUE SST-2, tokenized by the checkpoint's tokenizer ---------------------
    def tokenizer(self):
        """The checkpoint's tokenizer (``AutoTokenizer``; right padding)."""
        return _load_tokenizer(self.checkpoint, self.revision, self.model_type, self._local_only())

    def _images(self, split: str, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
        """``(x (N, 2, max_length) int64 ids and mask, y int64)`` of the first ``limit`` rows of ``split``."""
        from compress.data.sst2 import load_sst2

        data = load_sst2()
        key = (self.checkpoint, self.revision, self.model_type, data.digest, split, self.max_length, limit)
        if key not in _TOKENIZED:
            texts, labels = data.split(split)
            enc = self.tokenizer()(texts[:limit], padding="max_length", truncation=True,
                                   max_length=self.max_length, return_tensors="np")  # fmt: skip
            x = np.ascontiguousarray(np.stack([enc["input_ids"], enc["attention_mask"]], axis=1).astype(np.int64))
            if (np.diff(x[:, 1], axis=1) > 0).any():
                raise ValueError(
                    f"{self.checkpoint}: the tokenizer padded on the left; the packed model needs right padding"
                )
            if len(_TOKENIZED) >= _TOKENIZED_MAX:
                _TOKENIZED.pop(next(iter(_TOKENIZED)))
            _TOKENIZED[key] = (x, np.ascontiguousarray(labels[:limit], dtype=np.int64))
        return _TOKENIZED[key]

    def _limit(self, split: str) -> int | None:
        return self.train_size if split == "train" else None

    # -- model -----------------------------------------------------------------------
    def _config(self):
        """A copy of the checkpoint's config with 2 labels and eager attention (exports trace it)."""
        cfg = copy.deepcopy(_load_config(self.checkpoint, self.revision, self.model_type, self._local_only()))
        cfg.num_labels = 2
        cfg._attn_implementation = "eager"
        return cfg

    def _native_class(self, cfg=None):
        from transformers.models.auto.modeling_auto import MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING

        cfg = self._config() if cfg is None else cfg
        try:
            return MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING[type(cfg)]
        except KeyError:
            raise ValueError(f"{self.checkpoint}: transformers has no sequence classifier for model type "
                             f"{cfg.model_type!r}") from None  # fmt: skip

    def native_class_name(self) -> str:
        """The transformers class that ``AutoModelForSequenceClassification`` resolves the checkpoint to
        (``DistilBertForSequenceClassification``, ``XLMRobertaForSequenceClassification``...)."""
        return self._native_class().__name__

    def build(self):
        """The architecture (random weights, deterministic given ``seed``), wrapped, in eval mode."""
        import torch

        cfg = self._config()
        torch.manual_seed(self.seed)
        return packed_module()(self._native_class(cfg)(cfg)).eval()

    def pretrained(self):
        """The checkpoint's weights, wrapped: where fine-tuning starts (a missing classifier head is new,
        seeded by ``seed``).

        Raises:
            ValueError: ``epochs`` is 0 but the checkpoint lacks some weights (no SST-2 classifier),
                or its labels are not 0 negative, 1 positive.
        """
        import torch

        cfg = self._config()
        cls = self._native_class(cfg)
        torch.manual_seed(self.seed)
        source, kwargs = _source(self.checkpoint, self.revision, self._local_only())
        log.info("loading %s as %s from %s", self.checkpoint, cls.__name__, source)
        native, info = cls.from_pretrained(source, config=cfg, dtype=torch.float32, output_loading_info=True, **kwargs)
        missing = sorted(info.get("missing_keys") or ())
        if self.epochs == 0:
            if missing:
                raise ValueError(
                    f"{self.checkpoint}: epochs=0 means the checkpoint is already fine-tuned on SST-2, but "
                    f"{len(missing)} weights are not in it and were newly initialised ({', '.join(missing[:4])}...): "
                    f"set epochs > 0 to fine-tune it"
                )
            self._check_labels(cfg)
        elif missing:
            log.info("%s: new (seeded) weights for %s", self.checkpoint, ", ".join(missing))
        return packed_module()(native)

    def _check_labels(self, cfg) -> None:
        """Label 0 must be negative and 1 positive, as in SST-2, where the checkpoint names them."""
        names = {int(k): str(v).lower() for k, v in (getattr(cfg, "id2label", None) or {}).items()}
        if "pos" in names.get(0, "") or "neg" in names.get(1, ""):
            raise ValueError(f"{self.checkpoint}: its labels are {names}; SST-2's are 0 negative, 1 positive")

    def train(self, label: str):
        """Fine-tuned on ``train`` from :meth:`pretrained` when ``epochs`` > 0; else the checkpoint as it is.
        In eval mode. With ``COMPRESS_BENCH_HUB=1``, transformers downloads what the cache lacks."""
        if self.epochs == 0:
            log.info("%s: %s as it is (already fine-tuned on SST-2)", label, self.checkpoint)
            return self.pretrained().eval()
        return torch_common.train_on_split(self, label, start=self.pretrained, verb="fine-tune")

    # -- techniques ----------------------------------------------------------------------
    @property
    def unsupported(self) -> dict[str, str]:
        """TextClassifier's, and LoRA for a checkpoint used as it is (there is no fine-tune for it to replace)."""
        if self.epochs:
            return dict(UNSUPPORTED)
        return {**UNSUPPORTED, "AdaptationConfig": "the checkpoint is already fine-tuned on SST-2 (epochs=0): "
                "there is no fine-tune from the pretrained encoder for adaptation to stand in for"}  # fmt: skip

    def _lora(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        model_type = self._config().model_type
        return _LORA.get(model_type, (TextClassifier.lora_targets, TextClassifier.lora_trained))

    @property
    def lora_targets(self) -> tuple[str, ...]:
        """The Linear layers LoRA wraps, by the checkpoint's architecture."""
        return self._lora()[0]

    @property
    def lora_trained(self) -> tuple[str, ...]:
        """The classifier head's modules, trained whole beside LoRA."""
        return self._lora()[1]
