"""compress.data.text_table: a team's texts and labels as a Dataset, and the text classifier reading one."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from compress.data.dataset import SPLITS, DataNotFoundError, bucket_split, format_stats
from compress.data.sentiment import SPLIT_SALT, split_of
from compress.data.text_table import TextTable, TextTableError
from compress.models.text.text_classifier import TextClassifier
from compress.runner import _describe_recipe

ROOT = Path(__file__).resolve().parent.parent
# real sentences (the opening lines of Pride and Prejudice, Emma and Persuasion), 3 labels
ROWS = [
    ("It is a truth universally acknowledged, that a single man in possession", "pride"),
    ("of a good fortune, must be in want of a wife.", "pride"),
    ("However little known the feelings or views of such a man may be", "pride"),
    ("Emma Woodhouse, handsome, clever, and rich, with a comfortable home", "emma"),
    ("and happy disposition, seemed to unite some of the best blessings", "emma"),
    ("of existence; and had lived nearly twenty-one years in the world", "emma"),
    ("Sir Walter Elliot, of Kellynch Hall, in Somersetshire, was a man who,", "persuasion"),
    ("for his own amusement, never took up any book but the Baronetage;", "persuasion"),
    ("there he found occupation for an idle hour, and consolation in a", "persuasion"),
]


def _csv(path: Path, rows=ROWS, header=("text", "label"), split=None) -> Path:
    import csv

    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow([*header, *(["split"] if split else [])])
        for i, (t, y) in enumerate(rows):
            w.writerow([t, y, *([split[i % len(split)]] if split else [])])
    return path


def test_the_bucket_split_is_the_sentiment_split():
    for text in ("a gripping film", "dull", "It is a truth universally acknowledged"):
        assert bucket_split(text.encode(), SPLIT_SALT) == split_of(text)


def test_a_split_column_gives_every_row_its_split_and_labels_become_sorted_classes(tmp_path):
    t = TextTable(str(_csv(tmp_path / "t.csv", split=SPLITS)), split_column="split")
    assert t.classes == ("emma", "persuasion", "pride")
    texts, y = t.split("train")
    assert texts == [ROWS[0][0], ROWS[3][0], ROWS[6][0]] and y.tolist() == [2, 0, 1]
    assert sum(len(t.split(s)[0]) for s in SPLITS) == len(ROWS)
    assert format_stats(t).splitlines()[-1].split()[:2] == ["all", "9"]


def test_json_lines_read_the_same_as_csv_and_the_digest_ignores_the_path(tmp_path):
    a = TextTable(str(_csv(tmp_path / "t.csv", split=SPLITS)), split_column="split")
    jl = tmp_path / "t.jsonl"
    jl.write_text("".join(json.dumps({"text": t, "label": y, "split": SPLITS[i % 3]}) + "\n"
                          for i, (t, y) in enumerate(ROWS)))  # fmt: skip
    b = TextTable(str(jl), split_column="split")
    assert a.digest() == b.digest() and a.split("test")[0] == b.split("test")[0]
    moved = tmp_path / "elsewhere" / "t.csv"
    moved.parent.mkdir()
    shutil.copy(tmp_path / "t.csv", moved)
    assert TextTable(str(moved), split_column="split").digest() == a.digest()


def test_a_changed_row_changes_the_digest_and_the_recipe_key(tmp_path):
    path = _csv(tmp_path / "t.csv", split=SPLITS)
    before = TextTable(str(path), split_column="split")
    key = _describe_recipe(TextClassifier(dataset=before))
    assert key["fields"]["dataset"] == {"type": "TextTable", "digest": before.digest()}
    assert "dataset" not in _describe_recipe(TextClassifier())["fields"]  # the built-in data: key unchanged
    rows = [*ROWS[:-1], (ROWS[-1][0] + " Changed.", ROWS[-1][1])]
    _csv(path, rows, split=SPLITS)
    assert before.digest() != key["fields"]["dataset"]["digest"]  # the file is read again once it changed
    assert _describe_recipe(TextClassifier(dataset=before)) != key


def test_the_text_classifier_takes_its_label_count_from_the_data(tmp_path):
    t = TextTable(str(_csv(tmp_path / "t.csv", split=SPLITS)), split_column="split")
    assert TextClassifier(dataset=t).num_labels() == 3
    assert TextClassifier(dataset=t).data_source() is t


def test_errors_name_the_file_the_line_and_the_fix(tmp_path):
    missing = TextTable(str(tmp_path / "nope.csv"))
    assert "nope.csv does not exist" in missing.unavailable()
    with pytest.raises(DataNotFoundError, match="nope.csv"):
        missing.split("train")
    with pytest.raises(TextTableError, match=r"line 2: no column 'label' .*TextTable\(text=..., label=...\)"):
        TextTable(str(_csv(tmp_path / "h.csv", header=("text", "novel")))).classes
    with pytest.raises(TextTableError, match="one label"):
        TextTable(str(_csv(tmp_path / "one.csv", rows=[(t, "x") for t, _ in ROWS]))).classes
    with pytest.raises(TextTableError, match="split 'valid' is not one of train, calib, test"):
        TextTable(str(_csv(tmp_path / "s.csv", split=("valid",))), split_column="split").classes
    with pytest.raises(TextTableError, match="the calib split is empty"):  # 9 rows: the text hash leaves one empty
        TextTable(str(_csv(tmp_path / "few.csv"))).classes
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        TextTable(str(_csv(tmp_path / "ok.csv", split=SPLITS)), split_column="split").split("dev")


def test_the_data_command_prints_a_models_dataset_or_says_what_is_missing(tmp_path):
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
           "COMPRESS_BENCH_CACHE": str(tmp_path / "cache"), "COMPRESS_BENCH_OFFLINE": "1"}  # fmt: skip
    res = subprocess.run([sys.executable, "-m", "compress", "-q", "data", "stats", "minilm"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert res.returncode == 2 and "error: minilm: " in res.stderr and "sentiment" in res.stderr, res.stderr
