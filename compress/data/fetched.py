"""Files the set-up fetches from a registry by its own client (an sdist, a wheel, a ``.deb``):
the folder an explicit ``--data-dir`` names, and the check of a file's published digest.

Shared by :mod:`compress.data.sentiment`, :mod:`compress.data.austen` and
:mod:`compress.models.minilm_assets`, so that each says the same thing the same way.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from compress.data.fashion_mnist import ENV_DATA, DataCorruptError, DataNotFoundError


def data_dir_holding(path: str | os.PathLike[str], *, filename: str, subdir: str, what: str, get: str) -> Path:
    """The directory holding ``filename`` under an explicitly given ``path``: it or ``path/subdir``.

    ``what`` says what the file is (in the message), ``get`` the command that fetches it.

    Raises:
        DataNotFoundError: ``path`` does not exist, is not a directory, or holds
            ``filename`` neither itself nor in ``subdir/``; the message names ``path``.
    """
    given = Path(path).expanduser()
    origin = f"(given by --data-dir or ${ENV_DATA})"
    expected = f"expected {filename} ({what}) in it or in a {subdir}/ folder inside it"
    advice = f"fix the path, or unset {ENV_DATA} (drop --data-dir) to use the cached copy"
    if not given.exists():
        raise DataNotFoundError(f"data directory {given} {origin} does not exist; {expected}; {advice}")
    if not given.is_dir():
        raise DataNotFoundError(f"data directory {given} {origin} is not a directory; {expected}; {advice}")
    for d in (given, given / subdir):
        if (d / filename).is_file():
            return d
    raise DataNotFoundError(
        f"data directory {given} {origin} holds {filename} neither itself nor in a {subdir}/ folder: "
        f"{expected}; get it with `{get}`; {advice}"
    )


def check_sha256(blob: bytes, origin: str, *, filename: str, sha256: str,
                 error: type[Exception] = DataCorruptError) -> bytes:  # fmt: skip
    """``blob`` if its SHA-256 is ``sha256`` (the published ``filename``'s); ``error`` naming ``origin`` if not."""
    got = hashlib.sha256(blob).hexdigest()
    if got != sha256:
        raise error(
            f"{origin}: not the published {filename} (sha256 {got[:12]}..., {len(blob)} bytes; "
            f"expected {sha256[:12]}...). Delete or replace it."
        )
    return blob
