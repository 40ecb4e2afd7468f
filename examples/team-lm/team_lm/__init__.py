"""A team's language model for compress-bench: a small GPT-2 trained on the team's own text file.

The same plugin pattern as ``examples/team-models`` (registered on import; nothing read,
trained or imported from torch until a model is built), with the suite's generic
pieces: :class:`~compress.data.text_file.TextFile` (a plain UTF-8 file, paragraphs
split by their own bytes into train, calib and test) and the suite's own GPT-2 recipe,
:class:`~compress.models.text.causal_lm.CausalLM`, given that dataset: its BPE is trained on
the file's train split, its blocks cut from the file's splits, and the file's digest
(not its path) keys the cached weights, so editing the file retrains.

The file is ``$TEAM_TEXT`` (read when the recipe is made, so the gate's workers see it
too), else ``~/team-data/text.txt``. Missing, the model is unavailable, naming the path.
"""

import os

from compress.data.text_file import TextFile
from compress.models.text.causal_lm import CausalLM
from compress.registry import register_model

DEFAULT_TEXT = "~/team-data/text.txt"


@register_model(framework="torch", task="language-modeling", dataset="the team's text file ($TEAM_TEXT)",
                gate=("fp32", "dynamic_range", "onnx_fp32", "onnx_dynamic"))  # fmt: skip
def team_lm():
    """A 2-layer, 64-wide GPT-2 (BPE of 1,024 tokens, 128-token blocks) trained for 4 epochs on the team's text."""
    return CausalLM(
        vocab_size=1024, block=128, layers=2, width=64, heads=2, epochs=4, batch_size=8, learning_rate=5e-3,
        warmup_steps=20, dataset=TextFile(os.environ.get("TEAM_TEXT", DEFAULT_TEXT)),
    )
