"""examples/team-text end to end: a team's CSV of texts and labels, the suite's MiniLM, the team's bounds.

The CSV is real text: passages of Jane Austen's six novels (two consecutive lines of
over 30 characters each, 100 a novel, spread evenly through the book), labelled by the
novel they come from: six classes, chance 1 in 6. The gate runs from a cold model cache (the data and the
pretrained weights are linked in from this machine's cache), fine-tunes the
classifier and measures the example's four pairs against its thresholds file.
"""

import csv
import re
import subprocess
import sys
from pathlib import Path

import pytest

from compress.storage.cache import cache_root
from compress.data.dataset import format_stats
from compress.data.text_table import TextTable
from tests.test_plugins import _env

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "team-text"
PAIRS = ("fp32", "onnx_fp32", "onnx_dynamic")
PER_NOVEL = 100


def _available() -> str | None:
    from compress.data.austen import AUSTEN
    from compress.models.text.text_classifier import TextClassifier

    return AUSTEN.unavailable() or TextClassifier().unavailable()


def novel_passages(path: Path, per_novel: int = PER_NOVEL) -> Path:
    """A CSV of ``per_novel`` two-line passages of each Austen novel, labelled by the novel's title."""
    from compress.data.austen import NOVELS, load_austen

    data = load_austen()
    with open(path, "w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["text", "label"])
        for novel in NOVELS:
            lines = [ln.strip() for ln in data.texts[novel].split("\n") if len(ln.strip()) > 30]
            step = (len(lines) - 1) // per_novel
            for i in range(per_novel):
                out.writerow([f"{lines[i * step]} {lines[i * step + 1]}", data.titles[novel]])
    return path


def test_the_novels_table_has_six_classes_to_train_and_test_on(tmp_path):
    pytest.importorskip("rdata")
    if _available():
        pytest.skip(_available())
    table = TextTable(str(novel_passages(tmp_path / "texts.csv")))
    assert len(table.classes) == 6 and "Persuasion" in table.classes
    for split in ("train", "test"):  # calib (24 passages) need not hold every novel
        _, y = table.split(split)
        assert set(y.tolist()) == set(range(6)), (split, format_stats(table))
    assert [len(table.split(s)[0]) for s in ("train", "calib", "test")] == [450, 24, 126]


@pytest.mark.skipif(bool(_available()), reason=f"{_available()}")
def test_gate_end_to_end_fine_tunes_on_the_team_csv_and_holds_the_team_bounds(tmp_path):
    texts = novel_passages(tmp_path / "texts.csv")
    cache = tmp_path / "cache"
    cache.mkdir()
    for shared in ("data", "pretrained"):  # the real data and weights; nothing trained is shared
        (cache / shared).symlink_to(cache_root() / shared, target_is_directory=True)
    res = subprocess.run(
        [sys.executable, "-m", "pytest", "benchmarks/", "--benchmark-only", "--plugin", "team_text",
         "--thresholds", str(EXAMPLE / "thresholds.toml"), "-k", "team_texts", "-p", "no:cacheprovider",
         "--benchmark-disable-gc"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
        env=_env(EXAMPLE, COMPRESS_BENCH_CACHE=str(cache), COMPRESS_BENCH_PREPARE_JOBS="1", TEAM_TEXTS=str(texts)),
    )  # fmt: skip
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    assert re.search(rf"\b{len(PAIRS) + 1} passed\b", out) and not re.search(r"\d+ failed", out), out
    for t in PAIRS:  # each pair measured, in the run's summary table
        assert re.search(rf"^team_texts\s+{t}\s", res.stdout, re.M), t
    assert any(cache.glob("models/team_texts-*")), "fine-tuned from a cold cache"
