"""The asv dashboard, readable with no network: its JavaScript and CSS served from the pages' folder.

``asv publish`` writes an ``index.html`` that loads jQuery, flot (and its time, selection and
categories plugins), flot-orderbars, stupidtable, blueimp-md5 and bootstrap from three CDNs.
This module gets the same libraries from the npm registry (``npm pack``, the ordinary client),
checks every file's hash, and rewrites the published pages to load local copies:

- :func:`fetch_assets`: the files, once, into ``$COMPRESS_BENCH_ENV/dashboard-assets``
  (default ``~/.cache/compress-bench-env/dashboard-assets``); nothing is fetched when they are
  there and verified;
- :func:`localize`: copies them into ``<html_dir>/vendor/`` and points every CDN ``<script>`` /
  ``<link>`` of ``index.html`` at them; raises if any ``http(s)://`` script or stylesheet is left
  (a future asv that adds a library fails here, not in a reader's browser);
- :func:`publish`: ``asv publish``, then :func:`localize`.

Every file is checked against the ``integrity`` value asv's own ``index.html`` carries for it
when the npm file is the CDN's file, byte for byte (jQuery, flot-orderbars, blueimp-md5,
bootstrap js and css). Two are not the CDN's bytes, so their hash is our own SHA-256 of the npm
file (:data:`ASSETS`, ``source="npm"``):

- flot 0.8.3: the npm package ships the unminified sources; cdnjs serves files it minified
  itself. Same release, same code, not minified.
- stupidtable 1.0.1 (cdnjs) is not on npm: its npm package, ``stupid-table-plugin``, has one
  version, 1.1.3, which keeps the API asv calls (``stupidtable(sort_fns)``, ``stupidsort(dir)``,
  ``data-sort`` / ``data-sort-value``).

Command line (no TensorFlow or torch: runs under any Python 3.11, e.g. from the Makefile)::

    python compress/reporting/dashboard.py fetch [--dest DIR]
    python -m compress.reporting.dashboard publish [--config asv.conf.json] [--html-dir DIR] [--assets DIR]
    python -m compress.reporting.dashboard localize HTML_DIR [--assets DIR]
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from html.parser import HTMLParser
from pathlib import Path

ENV_ROOT = "COMPRESS_BENCH_ENV"
ENV_OFFLINE = "COMPRESS_BENCH_OFFLINE"
#: Under ``<html_dir>``: where :func:`localize` puts the files.
VENDOR = "vendor"
#: Under the assets folder: the npm tarballs, kept so that a lost file is re-extracted offline.
TARBALLS = "npm"
NPM_TIMEOUT_S = 180


class DashboardError(RuntimeError):
    """The dashboard's files cannot be obtained, or a published page would still need the network."""


@dataclasses.dataclass(frozen=True)
class Asset:
    """One file the dashboard loads: where asv's index.html takes it from, where npm has it."""

    local: str  # path under the assets folder and under <html_dir>/vendor/
    package: str  # npm package name
    version: str
    member: str  # path inside the npm tarball
    integrity: str  # Subresource-Integrity form: "sha256-<base64>" or "sha512-<base64>"
    source: str  # "asv": the integrity asv's index.html carries (same bytes); "npm": our own hash
    url: str | None = None  # the CDN URL asv's index.html loads it from (None: needed by another asset)


_CDNJS = "https://cdnjs.cloudflare.com/ajax/libs"
_JSDELIVR = "https://cdn.jsdelivr.net/npm"

#: The dashboard's third-party files, for asv 0.6.6's www/index.html.
ASSETS: tuple[Asset, ...] = (
    Asset("jquery/jquery-3.3.1.min.js", "jquery", "3.3.1", "package/dist/jquery.min.js",
          "sha256-FgpCb/KJQlLNfOu91ta32o/NMZxltwRo8QtmkMRdAu8=", "asv",
          "https://code.jquery.com/jquery-3.3.1.min.js"),
    # flot: npm ships no .min.js (cdnjs minified its own); the unminified 0.8.3 sources instead.
    Asset("flot/jquery.flot.js", "flot", "0.8.3", "package/jquery.flot.js",
          "sha256-t7kx8nPDixJ3ucbB9OBcTsCYhaSHvdrzJ54tfkmjjhI=", "npm",
          f"{_CDNJS}/flot/0.8.3/jquery.flot.min.js"),
    Asset("flot/jquery.flot.time.js", "flot", "0.8.3", "package/jquery.flot.time.js",
          "sha256-pYLIMq3HE4prBar2HxbrrCdHAfG+Sv6nfnOaHDS5xBo=", "npm",
          f"{_CDNJS}/flot/0.8.3/jquery.flot.time.min.js"),
    Asset("flot/jquery.flot.selection.js", "flot", "0.8.3", "package/jquery.flot.selection.js",
          "sha256-5shfbB6+S02inYriOMfFBgKD8F9+8FT2uRgX0CwJKRg=", "npm",
          f"{_CDNJS}/flot/0.8.3/jquery.flot.selection.min.js"),
    Asset("flot/jquery.flot.categories.js", "flot", "0.8.3", "package/jquery.flot.categories.js",
          "sha256-boFmSyjqeVxzSQb0qhVhRkCnWsf705mn+5CEBAaYNRo=", "npm",
          f"{_CDNJS}/flot/0.8.3/jquery.flot.categories.min.js"),
    Asset("flot-orderbars/jquery.flot.orderBars.js", "flot-orderbars", "1.0.0", "package/js/jquery.flot.orderBars.js",
          "sha256-OXNbT0b5b/TgglckAfR8VaJ2ezZv0dHoIeRKjYMKEr8=", "asv",
          f"{_JSDELIVR}/flot-orderbars@1.0.0/js/jquery.flot.orderBars.js"),
    # stupidtable 1.0.1 (cdnjs) is not on npm; stupid-table-plugin 1.1.3 is its only npm release.
    Asset("stupidtable/stupidtable.min.js", "stupid-table-plugin", "1.1.3", "package/stupidtable.min.js",
          "sha256-RkI4Dyjr6e18rCUXk7KB74YgxDhiBdkniPmxL1zOtOA=", "npm",
          f"{_CDNJS}/stupidtable/1.0.1/stupidtable.min.js"),
    Asset("blueimp-md5/md5.min.js", "blueimp-md5", "2.19.0", "package/js/md5.min.js",
          "sha512-8pbzenDolL1l5OPSsoURCx9TEdMFTaeFipASVrMYKhuYtly+k3tcsQYliOEKTmuB1t7yuzAiVo+yd7SJz+ijFQ==", "asv",
          f"{_CDNJS}/blueimp-md5/2.19.0/js/md5.min.js"),
    Asset("bootstrap/js/bootstrap.min.js", "bootstrap", "3.1.1", "package/dist/js/bootstrap.min.js",
          "sha256-iY0FoX8s/FEg3c26R6iFw3jAtGbzDwcA5QJ1fiS0A6E=", "asv",
          f"{_JSDELIVR}/bootstrap@3.1.1/dist/js/bootstrap.min.js"),
    Asset("bootstrap/css/bootstrap.min.css", "bootstrap", "3.1.1", "package/dist/css/bootstrap.min.css",
          "sha256-6VA0SGkrc43SYPvX98q/LhHwm2APqX5us6Vuulsafps=", "asv",
          f"{_JSDELIVR}/bootstrap@3.1.1/dist/css/bootstrap.min.css"),
    # bootstrap.min.css loads its icon font from ../fonts/: beside it, as on the CDN.
    Asset("bootstrap/fonts/glyphicons-halflings-regular.eot", "bootstrap", "3.1.1",
          "package/dist/fonts/glyphicons-halflings-regular.eot",
          "sha256-9JXzTk8XfPARWvmVu7/rP8q8iFAodudvxRpKtDm8hDE=", "npm"),
    Asset("bootstrap/fonts/glyphicons-halflings-regular.svg", "bootstrap", "3.1.1",
          "package/dist/fonts/glyphicons-halflings-regular.svg",
          "sha256-0WjVCojHMLTmgw3A2iorUdrkZYp32WGZQ8J7js/BnRo=", "npm"),
    Asset("bootstrap/fonts/glyphicons-halflings-regular.ttf", "bootstrap", "3.1.1",
          "package/dist/fonts/glyphicons-halflings-regular.ttf",
          "sha256-vRjv0+/XD+yK0JYRogzb+ZRAssHUAIXCm+A2+JHWU1g=", "npm"),
    Asset("bootstrap/fonts/glyphicons-halflings-regular.woff", "bootstrap", "3.1.1",
          "package/dist/fonts/glyphicons-halflings-regular.woff",
          "sha256-/Jadwcb/Uxq882gIncuvV3UTOwYm/1a1IwGgWfwPnh4=", "npm"),
)  # fmt: skip


def default_assets_dir() -> Path:
    """``$COMPRESS_BENCH_ENV/dashboard-assets`` (default ``~/.cache/compress-bench-env/dashboard-assets``)."""
    root = os.environ.get(ENV_ROOT) or str(Path.home() / ".cache" / "compress-bench-env")
    return Path(root).expanduser() / "dashboard-assets"


def integrity_of(data: bytes, algorithm: str) -> str:
    """``data``'s hash in Subresource-Integrity form (``sha256-<base64>``)."""
    return f"{algorithm}-{base64.b64encode(hashlib.new(algorithm, data).digest()).decode()}"


def verified(asset: Asset, data: bytes) -> bool:
    return integrity_of(data, asset.integrity.split("-", 1)[0]) == asset.integrity


def _packages(assets: tuple[Asset, ...] | list[Asset]) -> list[tuple[str, str]]:
    return list(dict.fromkeys((a.package, a.version) for a in assets))


def _tarball_name(package: str, version: str) -> str:
    return f"{package.lstrip('@').replace('/', '-')}-{version}.tgz"  # npm pack's own naming


def _missing_help(dest: Path, missing: list[Asset]) -> str:
    pkgs = " ".join(f"{p}@{v}" for p, v in _packages(missing))
    return (
        f"put the npm tarballs of {pkgs} (from `npm pack <name>@<version>` on a machine with the npm registry)"
        f" into {dest / TARBALLS}/, or the files themselves under {dest}/ ({', '.join(a.local for a in missing)});"
        " then run `make dashboard-assets` again"
    )


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _npm_pack(npm: str, package: str, version: str, into: Path, help_: str) -> Path:
    """``npm pack package@version`` into ``into``; the tarball's path. npm checks the registry's integrity."""
    into.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=into, prefix=".pack.") as tmp:
        cmd = [npm, "pack", f"{package}@{version}", "--pack-destination", tmp, "--silent", "--no-fund",
               "--no-audit", "--loglevel=error"]  # fmt: skip
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=NPM_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            res = None
        packed = list(Path(tmp).glob("*.tgz"))
        if res is None or res.returncode != 0 or len(packed) != 1:
            lines = [ln for ln in (res.stderr if res else "").splitlines() if ln.strip() and "complete log" not in ln]
            why = f"timed out after {NPM_TIMEOUT_S} s" if res is None else "; ".join(lines[:2]) or "no tarball written"
            raise DashboardError(
                f"`npm pack {package}@{version}` failed ({why}): is the npm registry reachable "
                f"(`npm ping`; behind a proxy: `npm config set proxy URL`)? Otherwise {help_}"
            )
        target = into / _tarball_name(package, version)
        os.replace(packed[0], target)
    return target


def _read_member(tarball: Path, member: str) -> bytes:
    with tarfile.open(tarball, "r:gz") as tar:
        try:
            f = tar.extractfile(member)
        except KeyError:
            f = None
        if f is None:
            raise DashboardError(f"{tarball} has no file {member}")
        return f.read()


def fetch_assets(dest: str | os.PathLike | None = None, *, offline: bool | None = None,
                 log=print) -> Path:  # fmt: skip
    """The dashboard's files under ``dest`` (default :func:`default_assets_dir`), each verified; ``dest``.

    Idempotent: a file already there with the right hash is kept, and nothing is fetched when all
    are. A missing or altered file is re-extracted from the npm tarball kept under ``dest/npm/``,
    which is fetched with ``npm pack`` when absent, unless ``offline`` (default:
    ``$COMPRESS_BENCH_OFFLINE`` is ``1``). Raises :class:`DashboardError` saying what to install or
    where to put the files when they cannot be had, and when a file's hash does not match.
    """
    dest = Path(dest).expanduser() if dest is not None else default_assets_dir()
    if offline is None:
        offline = os.environ.get(ENV_OFFLINE, "") not in ("", "0")
    missing = [a for a in ASSETS if not ((dest / a.local).is_file() and verified(a, (dest / a.local).read_bytes()))]
    if not missing:
        return dest
    tarballs = dest / TARBALLS
    for package, version in _packages(missing):
        tarball = tarballs / _tarball_name(package, version)
        if not tarball.is_file():
            if offline:
                raise DashboardError(
                    f"the dashboard's files are not in {dest} and {ENV_OFFLINE} forbids fetching them: run "
                    f"`make dashboard-assets` (or `python compress/reporting/dashboard.py fetch --dest {dest}`) on a machine "
                    f"that reaches the npm registry, or {_missing_help(dest, missing)}"
                )
            npm = shutil.which("npm")
            if npm is None:
                raise DashboardError(
                    "npm is not installed, and the dashboard's files come from the npm registry: install it "
                    f"(Debian: `apt-get install npm`), or {_missing_help(dest, missing)}"
                )
            log(f"dashboard-assets: npm pack {package}@{version}")
            tarball = _npm_pack(npm, package, version, tarballs, _missing_help(dest, missing))
        for asset in (a for a in missing if (a.package, a.version) == (package, version)):
            data = _read_member(tarball, asset.member)
            if not verified(asset, data):
                got = integrity_of(data, asset.integrity.split("-", 1)[0])
                raise DashboardError(
                    f"{asset.package}@{asset.version} {asset.member}: hash {got}, expected {asset.integrity} "
                    f"({'asv index.html integrity' if asset.source == 'asv' else 'compress/reporting/dashboard.py ASSETS'}); "
                    f"the tarball {tarball} is not the published one: delete it and fetch again"
                )
            _write_atomic(dest / asset.local, data)
    return dest


class _Refs(HTMLParser):
    """Every resource a page loads by itself: (tag, attribute, URL, attributes) of script, link, img, iframe."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.refs: list[tuple[str, str, str, dict]] = []

    def handle_starttag(self, tag, attrs):
        a = {k: (v or "") for k, v in attrs}
        if tag == "script" and a.get("src"):
            self.refs.append((tag, "src", a["src"], a))
        elif tag == "link" and a.get("href") and not ({"alternate", "canonical"} & set(a.get("rel", "").split())):
            self.refs.append((tag, "href", a["href"], a))  # stylesheet, icon, preload: fetched on load
        elif tag in ("img", "iframe", "embed", "source") and a.get("src"):
            self.refs.append((tag, "src", a["src"], a))


_REMOTE = re.compile(r"^\s*(https?:)?//", re.I)


def remote_refs(html: str) -> list[str]:
    """The resources ``html`` would load from another host (``http(s)://`` or ``//``), as ``tag attr=URL``."""
    parser = _Refs()
    parser.feed(html)
    parser.close()
    return [f"<{tag} {attr}={url}>" for tag, attr, url, _ in parser.refs if _REMOTE.match(url)]


_TAG = re.compile(r"<(script|link)\b([^>]*)>", re.I | re.S)
_ATTR = re.compile(r"""([^\s=/>]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+)))?""", re.S)
_DROP = {"integrity", "crossorigin", "referrerpolicy"}


def _attrs(body: str) -> list[tuple[str, str | None]]:
    """A tag's attributes in order, as (name, value); ``None`` for a bare attribute."""
    out = []
    for m in _ATTR.finditer(body):
        value = next((v for v in m.groups()[1:] if v is not None), None)
        out.append((m.group(1), value))
    return out


def _rewrite(html: str, by_url: dict[str, Asset], prefix: str) -> tuple[str, list[str]]:
    """``html`` with each CDN ``<script src>`` / ``<link href>`` pointed at ``prefix/<asset.local>``."""
    done: list[str] = []

    def sub(m: re.Match) -> str:
        tag, body = m.group(1), m.group(2)
        attrs = _attrs(body)
        key = "src" if tag.lower() == "script" else "href"
        url = next((v for k, v in attrs if k.lower() == key), None)
        if not url or not _REMOTE.match(url):
            return m.group(0)
        asset = by_url.get(url.strip())
        if asset is None:
            raise DashboardError(
                f"index.html loads {url}, which compress/reporting/dashboard.py does not know: add it to ASSETS "
                "(its npm package, version and hash), or the published pages would need the network"
            )
        sri = next((v for k, v in attrs if k.lower() == "integrity"), None)
        if sri and asset.source == "asv" and sri.strip() != asset.integrity:
            raise DashboardError(
                f"index.html pins {url} to {sri}, and compress/reporting/dashboard.py to {asset.integrity}: "
                "asv changed the file; update ASSETS"
            )
        kept = []
        for k, v in attrs:
            if k.lower() in _DROP:
                continue
            if k.lower() == key:
                v = f"{prefix}/{asset.local}"
            kept.append(k if v is None else f'{k}="{v}"')
        done.append(url)
        return f"<{tag} {' '.join(kept)}{' /' if body.rstrip().endswith('/') else ''}>"

    return _TAG.sub(sub, html), done


def localize(html_dir: str | os.PathLike, assets: str | os.PathLike | None = None) -> list[str]:
    """Make the published dashboard in ``html_dir`` load nothing from another host; the CDN URLs replaced.

    Copies the files of :data:`ASSETS` (verified again) from ``assets`` (default
    :func:`default_assets_dir`; see :func:`fetch_assets`) into ``html_dir/vendor/`` and rewrites
    ``index.html``: every CDN ``<script src>`` / ``<link href>`` points at its copy, without its
    ``integrity`` / ``crossorigin`` / ``referrerpolicy`` attributes. Raises :class:`DashboardError`
    when ``index.html`` loads a URL not in :data:`ASSETS`, pins a known URL to another hash, or
    when any ``.html`` page of ``html_dir`` still loads an ``http(s)://`` resource afterwards.
    Idempotent: a page already localized is left as it is.
    """
    html_dir = Path(html_dir)
    index = html_dir / "index.html"
    if not index.is_file():
        raise DashboardError(f"{index} does not exist: run `asv publish` first")
    src = Path(assets).expanduser() if assets is not None else default_assets_dir()
    for asset in ASSETS:
        path = src / asset.local
        data = path.read_bytes() if path.is_file() else None
        if data is None or not verified(asset, data):
            raise DashboardError(f"{path} is {'missing' if data is None else 'altered'}: run `make dashboard-assets`")
        _write_atomic(html_dir / VENDOR / asset.local, data)
    by_url = {a.url: a for a in ASSETS if a.url}
    html, done = _rewrite(index.read_text(encoding="utf-8"), by_url, VENDOR)
    if done:
        _write_atomic(index, html.encode("utf-8"))
    pages = {p.name: p.read_text(encoding="utf-8", errors="replace") for p in sorted(html_dir.glob("*.html"))}
    left = {name: refs for name, html in pages.items() if (refs := remote_refs(html))}
    if left:
        raise DashboardError(
            "the dashboard would still load from the network: "
            + "; ".join(f"{name}: {', '.join(refs)}" for name, refs in left.items())
        )
    return done


def _html_dir_of(config: Path) -> Path:
    """The ``html_dir`` of an asv config (relative to the current directory, as asv reads it)."""
    from asv.config import Config  # the suite's environment has asv

    return Path(Config.load(str(config)).html_dir)


def merge_results(sources: list[str | os.PathLike], config: str | os.PathLike = "asv.conf.json") -> list[str]:
    """Copy other machines' asv results (``<source>/<machine>/*.json``) into the config's results_dir,
    so that one dashboard shows every machine; returns the machine names merged.

    A machine folder that exists here too is merged file by file (a result of the same commit
    and environment from the source replaces the local one); the source's ``benchmarks.json``
    (the benchmark definitions) is not copied: the local one describes the benchmarks."""
    from asv.config import Config

    dest = Path(Config.load(str(config)).results_dir)
    merged = []
    for src in map(Path, sources):
        if not src.is_dir():
            raise DashboardError(f"{src}: no such folder of asv results (expected {src}/<machine>/machine.json)")
        for machine in sorted(p for p in src.iterdir() if (p / "machine.json").is_file()):
            shutil.copytree(machine, dest / machine.name, dirs_exist_ok=True)
            merged.append(machine.name)
    return merged


def publish(config: str | os.PathLike = "asv.conf.json", *, html_dir: str | os.PathLike | None = None,
            assets: str | os.PathLike | None = None, python: str = sys.executable,
            merge: list[str | os.PathLike] = ()) -> Path:  # fmt: skip
    """``asv publish`` with ``config`` (after :func:`merge_results` of ``merge``), then :func:`localize`;
    the published folder."""
    assets_dir = fetch_assets(assets)  # before asv: a missing file stops here, with what to do
    for name in merge_results(list(merge), config):
        print(f"dashboard: merged the results of machine {name}")
    cmd = [python, "-m", "asv", "publish", "--config", str(config)]
    if html_dir is not None:
        cmd += ["--html-dir", str(html_dir)]
    res = subprocess.run(cmd)
    if res.returncode != 0:
        raise DashboardError(f"`{' '.join(cmd)}` exited with {res.returncode}")
    out = Path(html_dir) if html_dir is not None else _html_dir_of(Path(config))
    localize(out, assets_dir)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m compress.reporting.dashboard", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fetch", help="the dashboard's JavaScript/CSS from the npm registry, once, verified")
    f.add_argument("--dest", help="folder (default $COMPRESS_BENCH_ENV/dashboard-assets)")
    f.add_argument("--offline", action="store_true", help="never call npm: fail unless the files are there")
    pub = sub.add_parser("publish", help="asv publish, then the pages made to load nothing from the network")
    pub.add_argument("--config", default="asv.conf.json")
    pub.add_argument("--html-dir", help="output folder (default: the config's html_dir)")
    pub.add_argument("--assets", help="the fetched files' folder (default $COMPRESS_BENCH_ENV/dashboard-assets)")
    pub.add_argument("--merge", action="append", default=[], metavar="DIR",
                     help="also show the asv results of other machines kept in DIR/<machine>/ (repeatable)")
    loc = sub.add_parser("localize", help="rewrite already published pages to load local copies")
    loc.add_argument("html_dir")
    loc.add_argument("--assets")
    args = p.parse_args(argv)
    try:
        if args.cmd == "fetch":
            dest = fetch_assets(args.dest, offline=True if args.offline else None)
            print(f"dashboard-assets: {len(ASSETS)} files verified in {dest}")
        elif args.cmd == "publish":
            out = publish(args.config, html_dir=args.html_dir, assets=args.assets, merge=args.merge)
            print(f"dashboard: {out / 'index.html'} (loads nothing from the network)")
        else:
            done = localize(args.html_dir, args.assets)
            print(f"dashboard: {len(done)} CDN references made local in {Path(args.html_dir) / 'index.html'}")
    except DashboardError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
