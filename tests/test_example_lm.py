"""examples/team-lm end to end: a team's plain text file, the suite's GPT-2 recipe, the team's bounds.

The text file is real prose: the first half of *Persuasion* (the Austen novels'
``heldout_first`` split, 233,408 characters, 510 paragraphs), written to a temporary
file and named by ``$TEAM_TEXT``. The gate runs from a cold cache (nothing of this
machine's cache is used: the model reads only the file), trains ``team_lm`` (tokenizer
and GPT-2), measures its four pairs and the gate's self-test on it against the
example's thresholds file. Measured on a loaded 2-core AMD EPYC: about 50 s of wall
time, 35 s of CPU (training 15-20 s).
"""

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_plugins import _env

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "team-lm"
PAIRS = ("fp32", "dynamic_range", "onnx_fp32", "onnx_dynamic")


def _available() -> str | None:
    """Why the test cannot run here: the novels (to write the file) or a library of the model's pairs missing."""
    from compress.data.austen import AUSTEN

    missing = [m for m in ("tokenizers", "transformers", "onnxruntime") if importlib.util.find_spec(m) is None]
    if missing:
        return f"team_lm's gate needs {', '.join(missing)} (compress-bench's torch extra)"
    return AUSTEN.unavailable()


def persuasion_first_half(path: Path) -> Path:
    """The first half of *Persuasion*, as the Austen data ship it, written to ``path`` (UTF-8)."""
    from compress.data.austen import load_austen

    (segment,) = load_austen().heldout_first
    path.write_text(segment.text + "\n", encoding="utf-8")
    return path


@pytest.mark.skipif(bool(_available()), reason=f"{_available()}")
def test_gate_end_to_end_trains_team_lm_on_the_team_text_and_holds_the_team_bounds(tmp_path):
    text = persuasion_first_half(tmp_path / "text.txt")
    res = subprocess.run(
        [sys.executable, "-m", "pytest", "benchmarks/", "--benchmark-only", "--plugin", "team_lm",
         "--thresholds", str(EXAMPLE / "thresholds.toml"), "-k", "team_lm", "-p", "no:cacheprovider",
         "--benchmark-disable-gc"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
        env=_env(EXAMPLE, COMPRESS_BENCH_CACHE=str(tmp_path / "cache"), COMPRESS_BENCH_PREPARE_JOBS="1",
                 TEAM_TEXT=str(text)),
    )  # fmt: skip
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    # its 4 pairs and the gate's self-test on its model (benchmarks/test_planted.py)
    assert re.search(rf"\b{len(PAIRS) + 1} passed\b", out) and not re.search(r"\d+ (failed|skipped)", out), out
    assert re.search(r"^team_lm: fp32 perplexity .* FAILS, as it must; .* passes, as it must$", res.stdout, re.M), out
    for t in PAIRS:  # each pair measured, in the run's summary table
        assert re.search(rf"^team_lm\s+{t}\s", res.stdout, re.M), t
    # trained here, on the file's content: its digest keys the weights, not its path
    (meta,) = [p for p in (tmp_path / "cache" / "models").glob("team_lm-*.json") if '"parent"' not in p.read_text()]
    assert '"type": "TextFile"' in meta.read_text() and str(text) not in meta.read_text()
