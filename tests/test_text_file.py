"""TextFile (compress/data/text_file.py): a plain text file as paragraphs in train, calib and test splits.

The text is real: paragraphs of *Persuasion* (the Austen novels' ``heldout_first``
split), written to temporary files; the tests skip, saying so, without the novels.
The last tests train the causal LM's tokenizer on such a file (no model is trained).
"""

import os
import shutil

import pytest

from compress.data.dataset import DataNotFoundError, bucket_split
from compress.data.text_file import SALT, TextFile, TextFileError, paragraphs


def _novels_missing() -> str | None:
    from compress.data.austen import AUSTEN

    return AUSTEN.unavailable()


pytestmark = pytest.mark.skipif(bool(_novels_missing()), reason=f"{_novels_missing()}")


@pytest.fixture(scope="module")
def paras() -> list[str]:
    """The 510 paragraphs of the first half of *Persuasion*, each with its own line breaks."""
    from compress.data.austen import load_austen

    (segment,) = load_austen().heldout_first
    return paragraphs(segment.text)


def _write(path, paras, sep="\n\n") -> str:
    path.write_text(sep.join(paras) + "\n", encoding="utf-8")
    return str(path)


def test_paragraphs_are_the_pieces_between_blank_lines_with_their_own_line_breaks(paras, tmp_path):
    assert len(paras) == 510 and paras[:3] == ["Persuasion", "by", "Jane Austen"]
    assert sum("\n" in p for p in paras) > 300 and all(p == p.strip() and "\n\n" not in p for p in paras)
    three = paras[24:27]  # a train, a test and a calib paragraph: every split has one
    plain = TextFile(_write(tmp_path / "plain.txt", three))
    # more blank lines, blanks of spaces and tabs, CRLF line ends and a byte-order mark read the same
    crlf = "\r\n \t\r\n\r\n".join(p.replace("\n", "\r\n") for p in three)
    (tmp_path / "odd.txt").write_bytes(b"\xef\xbb\xbf\r\n  " + crlf.encode())
    odd = TextFile(str(tmp_path / "odd.txt"))
    assert paragraphs((tmp_path / "odd.txt").read_text(encoding="utf-8-sig")) == three
    assert odd.digest() == plain.digest()


def test_splits_partition_the_paragraphs_in_file_order_by_their_own_bytes(paras, tmp_path):
    ds = TextFile(_write(tmp_path / "p.txt", paras))
    got = {s: ds.split(s) for s in ds.splits}
    assert all(targets is None for _, targets in got.values()) and ds.classes is None
    sizes = {s: len(x) for s, (x, _) in got.items()}
    assert sizes == {"train": 388, "calib": 19, "test": 103} and sum(sizes.values()) == len(paras)
    for s, (x, _) in got.items():
        assert x == [p for p in paras if bucket_split(p.encode(), SALT) == s]  # file order
    assert [r["count"] for r in ds.stats()] == [388, 19, 103, 510]
    # appending text or reordering the file moves no paragraph between splits
    grown = TextFile(_write(tmp_path / "grown.txt", paras[200:] + paras[:200] + ["A paragraph added at the end."]))
    for s in ds.splits:
        assert set(got[s][0]) <= set(grown.split(s)[0])
    with pytest.raises(ValueError, match="unknown split 'adapt' of text file .*; valid: train, calib, test"):
        ds.split("adapt")


def test_the_digest_is_of_the_content_and_rule_not_the_path(paras, tmp_path):
    path = _write(tmp_path / "a.txt", paras)
    ds = TextFile(path)
    (tmp_path / "elsewhere").mkdir()
    moved = shutil.copy(path, tmp_path / "elsewhere" / "renamed.txt")
    assert TextFile(str(moved)).digest() == ds.digest() and len(ds.digest()) == 64
    assert TextFile(path, test=0.25).digest() != ds.digest()  # the split rule is part of it
    assert TextFile(path).key() == {"type": "TextFile", "digest": ds.digest()}
    # one word changed: a new digest, read again in the same process (the memo is keyed by size and mtime)
    before = ds.digest()
    edited = [p.replace("Kellynch", "Kellinch") for p in paras]
    assert edited != paras
    _write(tmp_path / "a.txt", edited)
    os.utime(path, ns=(1, 1))
    assert ds.digest() != before and TextFile(str(moved)).digest() == before


def test_a_missing_file_names_its_path_and_unusable_files_say_why(paras, tmp_path, monkeypatch):
    missing = TextFile(str(tmp_path / "nowhere" / "text.txt"))
    assert str(tmp_path / "nowhere" / "text.txt") in missing.unavailable()
    with pytest.raises(DataNotFoundError, match="does not exist"):
        missing.split("train")
    with pytest.raises(DataNotFoundError, match="does not exist"):
        missing.fetch()
    assert "is not a file" in TextFile(str(tmp_path)).unavailable()
    monkeypatch.setenv("TEAM_TEXT_TEST_DIR", str(tmp_path))  # ~ and $VARS are expanded
    _write(tmp_path / "v.txt", paras[:50])
    assert TextFile("$TEAM_TEXT_TEST_DIR/v.txt").digest() == TextFile(str(tmp_path / "v.txt")).digest()
    (tmp_path / "blank.txt").write_text("\n \n\t\n")
    with pytest.raises(TextFileError, match="no text"):
        TextFile(str(tmp_path / "blank.txt")).split("train")
    with pytest.raises(TextFileError, match=r"the (calib|test) split is empty \(1 paragraphs"):
        TextFile(_write(tmp_path / "one.txt", paras[20:21])).split("train")
    # Mansfield Park's one pound sign, saved as Latin-1: not UTF-8
    from compress.data.austen import load_austen

    (line,) = [ln for ln in load_austen().texts["mansfieldpark"].split("\n") if "£" in ln]
    (tmp_path / "latin1.txt").write_bytes("\n\n".join(paras[:50] + [line]).encode("latin-1"))
    with pytest.raises(TextFileError, match="not UTF-8 .*save it as UTF-8"):
        TextFile(str(tmp_path / "latin1.txt")).digest()


def test_a_causal_lm_on_a_text_file_trains_its_tokenizer_on_the_train_split_and_adapts_on_it(paras, tmp_path):
    pytest.importorskip("tokenizers")
    pytest.importorskip("transformers")
    from compress.models.text.causal_lm import CausalLM, tokenizer
    from compress.runner import _describe_recipe

    assert "dataset" not in _describe_recipe(CausalLM())["fields"]  # the default keeps the Austen key
    ds = TextFile(_write(tmp_path / "p.txt", paras))
    recipe = CausalLM(vocab_size=512, block=64, dataset=ds)
    assert recipe.unavailable() is None
    assert _describe_recipe(recipe)["fields"]["dataset"] == {"type": "TextFile", "digest": ds.digest()}
    x, y = recipe.data("test")
    assert x is y and x.shape[1] == 64 and 150 < len(x) < 400 and x.max() < 512
    train = recipe.data("train")[0]
    assert (recipe.adaptation_data()[0] == train).all(), "no adapt split: adaptation trains on train"
    # the vocabulary is the BPE of the train paragraphs alone
    from tokenizers import ByteLevelBPETokenizer

    alone = ByteLevelBPETokenizer()
    alone.train_from_iterator(ds.split("train")[0], vocab_size=512, min_frequency=2, special_tokens=["<|endoftext|>"],
                              show_progress=False)  # fmt: skip
    assert tokenizer(512, ds, ds.digest()).get_vocab() == alone.get_vocab()
    with pytest.raises(ValueError, match="unknown split 'heldout'"):
        recipe.data("heldout")
    missing = CausalLM(dataset=TextFile(str(tmp_path / "none.txt")))
    assert "none.txt does not exist" in missing.unavailable()
    short = CausalLM(block=128, dataset=TextFile(_write(tmp_path / "short.txt", paras[40:70])))
    with pytest.raises(ValueError, match=r"the calib split of text file .* tokens, less than one block of 128"):
        short.data("calib")
