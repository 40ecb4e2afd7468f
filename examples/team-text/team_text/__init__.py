"""A team's own labelled texts in compress-bench: a CSV of text and label, the suite's MiniLM.

The file is ``$TEAM_TEXTS`` (default: ``data/texts.csv`` beside this package), with a
header row naming the columns ``text`` and ``label``. Any number of labels: the
classifier gets one output per distinct label. Rows are split by each text's own
bytes (20 % test, 4.5 % calibration, the rest train), so appending rows never moves
a text from one split to another. The file's content digest is in the model's cache
key: change the file and the model is fine-tuned again.
"""

import os
from pathlib import Path

from compress.data.text_table import TextTable
from compress.models.text.text_classifier import TextClassifier
from compress.registry import register_model

TEXTS = os.environ.get("TEAM_TEXTS", str(Path(__file__).resolve().parents[1] / "data" / "texts.csv"))


@register_model(framework="torch", task="text-classification", dataset="the team's texts (CSV)",
                gate=("fp32", "onnx_fp32", "onnx_dynamic"))  # fmt: skip
def team_texts():
    """all-MiniLM-L6-v2 fine-tuned on the team's CSV: 3 epochs in batches of 16, 64 tokens a text."""
    return TextClassifier(dataset=TextTable(TEXTS), epochs=3, batch_size=16, learning_rate=1e-4)
