"""compress/reporting/history.py: which commits asv benchmarks, and under which machine name."""

import subprocess
import sys
from pathlib import Path

from compress.reporting import history

ROOT = Path(__file__).resolve().parent.parent


def _rev_list(*args):
    return subprocess.run(["git", "rev-list", *args], cwd=ROOT, check=True, capture_output=True, text=True).stdout.split()


def test_default_is_the_last_commits_of_head_oldest_first():
    shas = history.commits(None, 3)
    assert shas == _rev_list("--max-count", "3", "HEAD")[::-1]


def test_a_range_keeps_its_newest_count():
    assert history.commits("HEAD~4..HEAD", 2) == _rev_list("--reverse", "HEAD~4..HEAD")[-2:]


def test_an_unknown_range_is_one_line_not_a_traceback():
    out = subprocess.run([sys.executable, "-m", "compress.reporting.history", "no-such-ref..HEAD"], cwd=ROOT,
                         capture_output=True, text=True)  # fmt: skip
    assert out.returncode != 0 and out.stderr.strip().startswith("error: git rev-list")
    assert "Traceback" not in out.stderr


def test_machine_name_tells_two_hosts_called_vm_apart():
    from compress.machine import machine_info

    name = history.machine_name()
    assert name.startswith(machine_info()["hostname"] + "-") and machine_info()["machine_id"][:8] in name
