"""The hub path of the language classifiers (compress.models.text.hub_text) and GLUE SST-2 (compress.data.sst2).

Offline: the checkpoints are tiny models saved here with ``save_pretrained`` in the format of the
Hub's (a DistilBERT with a WordPiece tokenizer, an XLM-RoBERTa with a Unigram one, a legacy BERT
whose config names no model_type), one of them laid out as a Hugging Face cache entry; the SST-2
directory is written in GLUE's TSV format from real movie-review sentences. Sockets are refused
(pytest-socket, pyproject's addopts), so any download attempted would fail the test.
"""

from __future__ import annotations

import io
import json
import shutil
import zipfile

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
huggingface_hub = pytest.importorskip("huggingface_hub")
pytest.importorskip("tokenizers")

from compress.data import sst2  # noqa: E402
from compress.data.fashion_mnist import DataCorruptError, DataNotFoundError  # noqa: E402
from compress.models.text import hub_text  # noqa: E402
from compress.models.text.hub_text import HubTextClassifier  # noqa: E402
from compress.models.torch_common import predict  # noqa: E402

CALIB = 40  # the calib split of the small train.tsv (sst2.CALIB_SIZE, 1,000 on the release)
N_TRAIN, N_DEV = 240, 60
LENGTH = 32
COMMIT = "0123456789abcdef0123456789abcdef01234567"


# -- data ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sentences() -> list[tuple[str, int]]:
    """Real English sentences with labels: the movie-review snippets (compress.data.sentiment), unique."""
    from compress.data.sentiment import load_sentiment

    try:
        texts, labels = load_sentiment().split("train")
    except DataNotFoundError as exc:
        pytest.skip(f"the movie-review snippets are not cached ({str(exc).splitlines()[0]})")
    seen, out = set(), []
    for t, y in zip(texts, labels):
        t = " ".join(t.split())  # no tabs or newlines inside a TSV row
        if t and t not in seen:
            seen.add(t)
            out.append((t, int(y)))
        if len(out) == N_TRAIN + N_DEV:
            return out
    pytest.skip("too few snippets")


def write_tsv(path, rows) -> None:
    path.write_text("sentence\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in rows), encoding="utf-8")


@pytest.fixture(scope="module")
def sst2_dir(tmp_path_factory, sentences):
    d = tmp_path_factory.mktemp("glue") / "SST-2"
    d.mkdir()
    write_tsv(d / "train.tsv", sentences[:N_TRAIN])
    write_tsv(d / "dev.tsv", sentences[N_TRAIN:])
    return d


@pytest.fixture(autouse=True)
def no_network_attempt(recwarn):
    """pytest-socket refuses sockets with a warning; libraries that swallow the error (huggingface_hub's
    best-effort requests) would hide an attempt: the warning shows it."""
    yield
    tried = [str(w.message) for w in recwarn if "tried to use socket" in str(w.message)]
    assert not tried, f"network attempted: {tried}"


@pytest.fixture(autouse=True)
def offline_env(monkeypatch, tmp_path, sst2_dir):
    """SST-2 from the small directory, an empty cache and Hugging Face cache, no Hub downloads."""
    monkeypatch.setenv(sst2.ENV_SST2, str(sst2_dir))
    monkeypatch.setenv("COMPRESS_BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(hub_text.ENV_HUB, raising=False)
    monkeypatch.delenv("COMPRESS_BENCH_OFFLINE", raising=False)
    monkeypatch.setattr(sst2, "CALIB_SIZE", CALIB)
    hf_cache = tmp_path / "hf-cache"
    hf_cache.mkdir()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(hf_cache))
    return hf_cache


# -- checkpoints ----------------------------------------------------------------------------
def _small(cls, **kw):
    torch.manual_seed(0)
    cfg = cls.config_class(**kw)
    return cls(cfg)


@pytest.fixture(scope="module")
def minilm_tokenizer():
    from compress.models.text import minilm_assets

    try:
        return minilm_assets.load_tokenizer()
    except minilm_assets.AssetsNotFoundError:
        pytest.skip("the MiniLM tokenizer is not cached (python -m compress.models.text.minilm_assets fetch)")


@pytest.fixture(scope="module")
def distilbert_dir(tmp_path_factory, minilm_tokenizer):
    """A tiny DistilBertForSequenceClassification and a BERT WordPiece tokenizer, as save_pretrained writes them."""
    d = tmp_path_factory.mktemp("tiny-distilbert")
    model = _small(transformers.DistilBertForSequenceClassification, vocab_size=minilm_tokenizer.vocab_size, dim=32,
                   n_layers=1, n_heads=2, hidden_dim=64, max_position_embeddings=LENGTH, num_labels=2)  # fmt: skip
    model.save_pretrained(d)
    minilm_tokenizer.save_pretrained(d)
    return d


@pytest.fixture(scope="module")
def xlmr_dir(tmp_path_factory, sentences):
    """A tiny XLMRobertaForSequenceClassification and a Unigram tokenizer (``<pad>`` is id 1, as XLM-R's)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tok.train_from_iterator([t for t, _ in sentences],
                            trainers.UnigramTrainer(vocab_size=400, special_tokens=specials, unk_token="<unk>",
                                                    show_progress=False))  # fmt: skip
    tok.post_processor = processors.TemplateProcessing(single="<s> $A </s>",
                                                       special_tokens=[("<s>", 0), ("</s>", 2)])  # fmt: skip
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                                unk_token="<unk>", pad_token="<pad>", mask_token="<mask>",
                                                cls_token="<s>", sep_token="</s>")  # fmt: skip
    assert fast.pad_token_id == 1
    d = tmp_path_factory.mktemp("tiny-xlmr")
    model = _small(transformers.XLMRobertaForSequenceClassification, vocab_size=tok.get_vocab_size(),
                   hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                   max_position_embeddings=LENGTH + 2, pad_token_id=1, bos_token_id=0, eos_token_id=2,
                   num_labels=2)  # fmt: skip
    model.save_pretrained(d)
    fast.save_pretrained(d)
    return d


def recipe(checkpoint, **kw) -> HubTextClassifier:
    kw = {"max_length": LENGTH, "batch_size": 16, "train_size": None, "fine_tune_size": None, "epochs": 1.0} | kw
    return HubTextClassifier(checkpoint=str(checkpoint), **kw)


# -- SST-2 ----------------------------------------------------------------------------------
def test_sst2_splits_are_train_less_its_last_rows_calib_those_rows_and_test_dev(sst2_dir, sentences):
    ds = sst2.load_sst2()
    train, calib, test = (ds.split(s) for s in sst2.SPLITS)
    assert len(train[0]) == N_TRAIN - CALIB and len(calib[0]) == CALIB and len(test[0]) == N_DEV
    assert train[0] == [t for t, _ in sentences[: N_TRAIN - CALIB]]
    assert calib[0] == [t for t, _ in sentences[N_TRAIN - CALIB : N_TRAIN]], "calib: the last rows of train.tsv"
    assert test[0] == [t for t, _ in sentences[N_TRAIN:]], "test: dev.tsv"
    assert not set(train[0]) & set(calib[0]) and not set(train[0] + calib[0]) & set(test[0])
    assert calib[1].dtype == np.int64 and list(calib[1]) == [y for _, y in sentences[N_TRAIN - CALIB : N_TRAIN]]
    assert not ds.official and ds.source == str(sst2_dir.resolve())
    assert sst2.load_sst2(sst2_dir.parent).digest == ds.digest, "the unzipped folder's parent finds SST-2/"
    with pytest.raises(ValueError, match="unknown split"):
        ds.split("validation")


def test_sst2_digest_follows_the_content_and_the_split_rule(monkeypatch, tmp_path, sst2_dir):
    before = sst2.load_sst2().digest
    monkeypatch.setattr(sst2, "CALIB_SIZE", CALIB + 1)
    assert sst2.load_sst2().digest != before
    monkeypatch.setattr(sst2, "CALIB_SIZE", CALIB)
    copy = tmp_path / "SST-2"
    shutil.copytree(sst2_dir, copy)
    assert sst2.load_sst2(copy).digest == before
    rows = (copy / "dev.tsv").read_text().splitlines()
    rows[1] = rows[1][:-1] + ("0" if rows[1].endswith("1") else "1")  # one label flipped
    (copy / "dev.tsv").write_text("\n".join(rows) + "\n")
    assert sst2.load_sst2(copy).digest != before


def test_a_missing_sst2_path_is_an_error_naming_it(monkeypatch, tmp_path, distilbert_dir):
    missing = tmp_path / "nowhere" / "SST-2"
    monkeypatch.setenv(sst2.ENV_SST2, str(missing))
    with pytest.raises(DataNotFoundError, match="does not exist") as exc:
        sst2.load_sst2()
    assert str(missing) in str(exc.value) and "train.tsv" in str(exc.value) and sst2.ENV_SST2 in str(exc.value)
    reason = recipe(distilbert_dir).unavailable()
    assert reason and str(missing) in reason, "the recipe is unavailable, saying why"

    half = tmp_path / "half"
    half.mkdir()
    (half / "train.tsv").write_text("sentence\tlabel\n")
    monkeypatch.setenv(sst2.ENV_SST2, str(half))
    with pytest.raises(DataNotFoundError, match="lacks dev.tsv") as exc:
        sst2.load_sst2()
    assert str(half) in str(exc.value)


def test_without_the_variable_the_cache_is_looked_in_and_nothing_is_downloaded(monkeypatch, tmp_path):
    monkeypatch.delenv(sst2.ENV_SST2)
    with pytest.raises(DataNotFoundError, match="python -m compress.data.sst2 fetch") as exc:
        sst2.load_sst2()
    assert str(tmp_path / "cache" / "data" / "sst2" / "SST-2") in str(exc.value)
    monkeypatch.setenv("COMPRESS_BENCH_OFFLINE", "1")
    with pytest.raises(DataNotFoundError, match="COMPRESS_BENCH_OFFLINE forbids"):
        sst2.fetch_sst2()


@pytest.mark.parametrize("row, what", [
    ("a fine film\t2", "line 4: expected SENTENCE<TAB>LABEL"),
    ("no label at all", "line 4: expected SENTENCE<TAB>LABEL"),
    ("one\ttab\ttoo many\t1", "line 4: expected SENTENCE<TAB>LABEL"),
    ("\t1", "line 4: expected SENTENCE<TAB>LABEL"),
])  # fmt: skip
def test_a_malformed_row_is_an_error_naming_the_file_and_line(monkeypatch, tmp_path, sst2_dir, row, what):
    d = tmp_path / "SST-2"
    shutil.copytree(sst2_dir, d)
    lines = (d / "train.tsv").read_text().splitlines()
    lines.insert(3, row)
    (d / "train.tsv").write_text("\n".join(lines) + "\n")
    monkeypatch.setenv(sst2.ENV_SST2, str(d))
    with pytest.raises(DataCorruptError, match=what) as exc:
        sst2.load_sst2()
    assert str(d / "train.tsv") in str(exc.value)


def test_a_wrong_header_or_too_few_rows_is_an_error(tmp_path, sst2_dir):
    d = tmp_path / "SST-2"
    shutil.copytree(sst2_dir, d)
    (d / "dev.tsv").write_text("text\tlabel\nfine\t1\n")
    with pytest.raises(DataCorruptError, match=r"dev.tsv line 1: expected the header 'sentence\\tlabel'"):
        sst2.load_sst2(d)
    write_tsv(d / "dev.tsv", [("fine", 1)])
    write_tsv(d / "train.tsv", [("fine", 1)] * CALIB)
    with pytest.raises(DataCorruptError, match=f"has {CALIB} rows: more than {CALIB} are needed"):
        sst2.load_sst2(d)


def _glue_zip(train_rows: int, dev_rows: int) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(
            "SST-2/train.tsv", "sentence\tlabel\n" + "".join(f"phrase {i} \t{i % 2}\n" for i in range(train_rows))
        )
        z.writestr(
            "SST-2/dev.tsv", "sentence\tlabel\n" + "".join(f"sentence {i} .\t{i % 2}\n" for i in range(dev_rows))
        )
        z.writestr("SST-2/test.tsv", "index\tsentence\n0\tunlabelled .\n")
    return buf.getvalue()


def test_fetch_checks_the_official_row_counts_and_installs_both_files(monkeypatch, tmp_path):
    """fetch_sst2 through urllib, from a file:// URL (no network): the release's shape is kept, another is not."""
    monkeypatch.delenv(sst2.ENV_SST2)
    monkeypatch.setattr(sst2, "CALIB_SIZE", 1000)
    bad = tmp_path / "bad.zip"
    bad.write_bytes(_glue_zip(sst2.TRAIN_ROWS - 1, sst2.DEV_ROWS))
    with pytest.raises(DataCorruptError, match="has 67348 rows; the official release has 67349"):
        sst2.fetch_sst2(offline=False, url=bad.as_uri())
    assert not sst2.cache_dir().exists(), "nothing kept"
    good = tmp_path / "SST-2.zip"
    good.write_bytes(_glue_zip(sst2.TRAIN_ROWS, sst2.DEV_ROWS))
    assert sst2.fetch_sst2(offline=False, url=good.as_uri()) == sst2.cache_dir()
    assert sorted(p.name for p in sst2.cache_dir().iterdir()) == ["dev.tsv", "train.tsv"]
    assert not list(sst2.cache_dir().parent.glob(".*.tmpdir")), "no temporaries left"
    ds = sst2.load_sst2()
    assert ds.official and [len(getattr(ds, s)) for s in sst2.SPLITS] == [66_349, 1_000, 872]
    assert ds.calib.texts[-1] == f"phrase {sst2.TRAIN_ROWS - 1} ", "kept byte for byte"
    good.unlink()
    assert sst2.fetch_sst2(offline=True) == sst2.cache_dir(), "cached: no download"


# -- the recipe ------------------------------------------------------------------------------
def test_checkpoints_load_through_their_own_transformers_class(distilbert_dir, xlmr_dir):
    for d, cls in ((distilbert_dir, "DistilBertForSequenceClassification"),
                   (xlmr_dir, "XLMRobertaForSequenceClassification")):  # fmt: skip
        r = recipe(d)
        assert r.unavailable() is None
        assert r.native_class_name() == cls
        assert type(r.pretrained().model).__name__ == cls and type(r.build().model).__name__ == cls
        assert not r.build().training, "build() is in eval mode"


def test_inputs_are_ids_and_masks_of_the_checkpoint_tokenizer_padded_right(distilbert_dir, xlmr_dir):
    for d, pad in ((distilbert_dir, 0), (xlmr_dir, 1)):
        r = recipe(d)
        x, y = r.data("test")
        assert x.dtype == np.int64 and x.shape == (N_DEV, 2, LENGTH) and y.dtype == np.int64
        ids, mask = x[:, 0], x[:, 1]
        assert set(np.unique(mask)) == {0, 1} and (np.diff(mask, axis=1) <= 0).all(), "right padding"
        assert (ids[mask == 0] == pad).all(), f"pad id {pad}: the mask, not the id, tells padding"
        assert np.array_equal(ids[:, 0], np.full(N_DEV, r.tokenizer().cls_token_id))
        assert len(r.data("calib")[0]) == CALIB and len(r.data("train")[0]) == N_TRAIN - CALIB
    limited = recipe(distilbert_dir, train_size=100, fine_tune_size=50)
    assert len(limited.data("train")[0]) == 100 and len(limited.fine_tune_data()[0]) == 50
    assert np.array_equal(limited.data("train")[0], recipe(distilbert_dir).data("train")[0][:100])


@pytest.mark.parametrize("which", ["distilbert", "xlmr"])
def test_fine_tuned_weights_round_trip_to_identical_logits(request, which):
    d = request.getfixturevalue(f"{which}_dir")
    r = recipe(d, epochs=1.0)
    x = r.data("test")[0]
    start = predict(r.pretrained(), x)
    model = r.train("tiny")
    assert not model.training
    logits = predict(model, x)
    assert not np.allclose(logits, start), "the fine-tune changed the model"
    again = r.load(r.weights(model))
    assert type(again.model).__name__ == r.native_class_name()
    np.testing.assert_array_equal(predict(again, x), logits)


def test_epochs_0_uses_a_fine_tuned_checkpoint_as_it_is(tmp_path, distilbert_dir):
    r = recipe(distilbert_dir, epochs=0)
    x = r.data("test")[0]
    native = transformers.AutoModelForSequenceClassification.from_pretrained(distilbert_dir)
    expected = native.eval()(input_ids=torch.from_numpy(x[:, 0]), attention_mask=torch.from_numpy(x[:, 1])).logits
    np.testing.assert_allclose(predict(r.train("as-is"), x), expected.detach().numpy(), rtol=1e-5, atol=1e-6)
    assert "AdaptationConfig" in r.unsupported and "AdaptationConfig" not in recipe(distilbert_dir).unsupported

    encoder_only = tmp_path / "encoder-only"  # a pretrained encoder (no classifier): not usable as it is
    native.distilbert.save_pretrained(encoder_only)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(distilbert_dir / f, encoder_only / f)
    with pytest.raises(ValueError, match=r"epochs=0 means .* already fine-tuned .* newly initialised"):
        recipe(encoder_only, epochs=0).train("as-is")
    assert recipe(encoder_only, epochs=0.1).train("head").training is False, "with epochs > 0 it is fine-tuned"

    flipped = tmp_path / "flipped"
    shutil.copytree(distilbert_dir, flipped)
    cfg = json.loads((flipped / "config.json").read_text())
    cfg["id2label"], cfg["label2id"] = {"0": "POSITIVE", "1": "NEGATIVE"}, {"POSITIVE": 0, "NEGATIVE": 1}
    (flipped / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="SST-2's are 0 negative, 1 positive"):
        recipe(flipped, epochs=0).train("as-is")


def test_an_uncached_hub_id_is_unavailable_without_downloading(monkeypatch, offline_env):
    r = HubTextClassifier(checkpoint="distilbert-base-uncased-finetuned-sst-2-english", epochs=0)
    reason = r.unavailable()
    assert reason and "'distilbert-base-uncased-finetuned-sst-2-english'" in reason
    assert "COMPRESS_BENCH_HUB=1" in reason and str(offline_env) in reason and "save_pretrained" in reason
    assert list(offline_env.iterdir()) == [], "nothing fetched into the Hugging Face cache"
    monkeypatch.setenv(hub_text.ENV_HUB, "1")
    assert r.unavailable() is None, "COMPRESS_BENCH_HUB=1: transformers may download it"
    monkeypatch.setenv("COMPRESS_BENCH_OFFLINE", "1")
    assert "COMPRESS_BENCH_OFFLINE forbids" in HubTextClassifier(checkpoint="xlm-roberta-base").unavailable()
    assert "does not exist" in HubTextClassifier(checkpoint="/no/such/checkpoint").unavailable()


def test_a_hub_id_in_the_local_cache_loads_offline(offline_env, distilbert_dir):
    """The Hugging Face cache's layout (refs/main -> snapshots/<commit>/), read with local_files_only."""
    repo = offline_env / "models--tiny-org--tiny-distilbert"
    shutil.copytree(distilbert_dir, repo / "snapshots" / COMMIT)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    r = recipe("tiny-org/tiny-distilbert", epochs=0)
    assert r.unavailable() is None
    assert r.native_class_name() == "DistilBertForSequenceClassification"
    x = r.data("test")[0]
    np.testing.assert_allclose(predict(r.train("cached"), x), predict(recipe(distilbert_dir, epochs=0).train("d"), x))
    key = r.source_digest()
    assert r.checkpoint_digest() == recipe("tiny-org/tiny-distilbert", epochs=1).checkpoint_digest()
    (repo / "refs" / "main").write_text("f" * 40)
    shutil.move(repo / "snapshots" / COMMIT, repo / "snapshots" / ("f" * 40))
    assert r.source_digest() != key, "another commit, another key"


def test_a_legacy_config_without_model_type_needs_the_recipes(tmp_path, minilm_tokenizer):
    """Like prajjwal1/bert-small: Google's TF BERT converted (config.json without model_type, vocab.txt,
    pytorch_model.bin of a pretraining model), which transformers 5 does not recognize by name."""
    d = tmp_path / "bert-small-like"
    d.mkdir()
    raw = {"hidden_size": 32, "hidden_act": "gelu", "initializer_range": 0.02, "hidden_dropout_prob": 0.1,
           "vocab_size": minilm_tokenizer.vocab_size, "num_attention_heads": 2, "type_vocab_size": 2,
           "max_position_embeddings": LENGTH, "num_hidden_layers": 1, "intermediate_size": 64,
           "attention_probs_dropout_prob": 0.1}  # fmt: skip
    (d / "config.json").write_text(json.dumps(raw))
    vocab = sorted(minilm_tokenizer.get_vocab().items(), key=lambda kv: kv[1])
    (d / "vocab.txt").write_text("".join(f"{t}\n" for t, _ in vocab), encoding="utf-8")
    torch.save(_small(transformers.BertForPreTraining, **raw).state_dict(), d / "pytorch_model.bin")
    reason = recipe(d).unavailable()
    assert reason and "names no model_type" in reason and "model_type='bert'" in reason
    r = recipe(d, model_type="bert")
    assert r.unavailable() is None and r.native_class_name() == "BertForSequenceClassification"
    x = r.data("calib")[0]
    assert x.shape == (CALIB, 2, LENGTH)
    texts = sst2.load_sst2().split("calib")[0]
    expected = minilm_tokenizer(texts, padding="max_length", truncation=True, max_length=LENGTH, return_tensors="np")
    np.testing.assert_array_equal(x[:, 0], expected["input_ids"])
    pretrained = r.pretrained().eval()
    assert type(pretrained.model).__name__ == "BertForSequenceClassification"
    encoder = transformers.BertModel.from_pretrained(d, config=transformers.BertConfig(**raw))
    torch.testing.assert_close(pretrained.model.bert.encoder.layer[0].output.dense.weight,
                               encoder.encoder.layer[0].output.dense.weight)  # fmt: skip


def test_the_source_digest_follows_the_checkpoint_files(tmp_path, distilbert_dir):
    d = tmp_path / "ckpt"
    shutil.copytree(distilbert_dir, d)
    r = recipe(d)
    before = r.source_digest()
    assert before == recipe(d, epochs=3).source_digest(), "the files, not the recipe"
    assert before == recipe(distilbert_dir).source_digest(), "the content, not the path"
    (d / ".cache").mkdir()
    (d / ".cache" / "download.lock").write_text("x")
    assert r.source_digest() == before, "hidden files are left out"
    tok = d / "tokenizer_config.json"
    original = tok.read_bytes()
    tok.write_bytes(original + b" ")
    assert r.source_digest() != before, "a changed file changes the key"
    tok.write_bytes(original)
    assert r.source_digest() == before
    weights = d / "model.safetensors"
    blob = bytearray(weights.read_bytes())
    blob[-1] ^= 1
    weights.write_bytes(bytes(blob))
    assert r.source_digest() != before
    (d / "model.safetensors").rename(d / "renamed.safetensors")
    assert r.source_digest() != before


def test_the_source_digest_follows_the_data_fine_tuned_on(monkeypatch, tmp_path, sst2_dir, distilbert_dir):
    tuned, as_is = recipe(distilbert_dir, epochs=1), recipe(distilbert_dir, epochs=0)
    before = tuned.source_digest(), as_is.source_digest()
    assert as_is.source_digest() != tuned.source_digest() and as_is.checkpoint_digest() == tuned.checkpoint_digest()
    other = tmp_path / "SST-2"
    shutil.copytree(sst2_dir, other)
    write_tsv(other / "train.tsv", [("a different sentence", 1)] * (CALIB + 5))
    monkeypatch.setenv(sst2.ENV_SST2, str(other))
    assert tuned.source_digest() != before[0], "fine-tuned on other data: another key"
    assert as_is.source_digest() == before[1], "used as it is: the data does not make its weights"


def test_lora_targets_name_the_encoders_linears_and_not_the_head(distilbert_dir, xlmr_dir):
    for d in (distilbert_dir, xlmr_dir):
        r = recipe(d)
        names = [n for n, m in r.build().model.named_modules() if isinstance(m, torch.nn.Linear)]
        targeted = [n for n in names if any(n == t or n.endswith(f".{t}") for t in r.lora_targets)]
        assert targeted and not [n for n in targeted if n.startswith(("classifier", "pre_classifier"))]
        assert all(n.startswith(r.lora_trained) for n in set(names) - set(targeted)), "the rest is the head"


def test_recipe_fields_are_checked():
    with pytest.raises(TypeError):
        HubTextClassifier()  # checkpoint is required (keyword only)
    with pytest.raises(ValueError, match="epochs must be >= 0"):
        HubTextClassifier(checkpoint="xlm-roberta-base", epochs=-1)
    r = HubTextClassifier(checkpoint="prajjwal1/bert-small", model_type="bert")
    assert r.base == "hub" and r.fine_tune_size == 8000 and r.train_size == 8000
