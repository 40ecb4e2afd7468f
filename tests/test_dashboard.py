"""The asv dashboard, end to end and offline, in a real headless browser.

The fast tests run :mod:`compress.reporting.dashboard` on asv's own ``www/index.html``. The end-to-end test
runs asv for real on this repository's benchmarks (the unit tier's tiny torch model, trained on
real Fashion-MNIST in a temporary cache; ``fp32`` and ``onnx_fp32``, ``asv run --quick``),
``asv publish`` writes the pages and :func:`compress.reporting.dashboard.localize` points their CDN links at
local copies (``make dashboard-assets`` fetched them). The pages are served on 127.0.0.1 and
opened in Debian's chromium through its chromedriver (``.ci/install-browser.sh``; Selenium Manager
never runs), with every other host unresolvable. The test waits for asv's own graph of
``compression.Latency.time_single_image``, over commits and then by technique: flot's plot object
must hold the values asv measured and its canvas must show pixels of each series' colour; Chrome's
network log must show no request to another host and its console no failed load. It fails, naming
the command, when the browser is missing; it never skips.

Screenshots (the page, its graph, the by-technique page) are kept, and their paths printed, under
``$COMPRESS_BENCH_RESULTS/../dashboard/`` (default ``~/.cache/compress-bench/dashboard/``).
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path

import pytest

from compress.reporting import dashboard

REPO = Path(__file__).resolve().parents[1]
PAIRS = "tiny_torch.fp32,tiny_torch.onnx_fp32"
BENCHMARK = "compression.Latency.time_single_image"
MACHINE = "test-machine"
INSTALL = "sh .ci/install-browser.sh (as root), or: sudo apt-get install chromium chromium-driver"


# -- compress/reporting/dashboard.py on asv's own index.html (fast: no asv run, no browser) -----------------


@pytest.fixture(scope="module")
def assets() -> Path:
    return dashboard.fetch_assets(offline=True)  # `make dashboard-assets` fetched them; never the network here


@pytest.fixture
def asv_index(tmp_path) -> Path:
    import asv

    html = tmp_path / "html"
    html.mkdir()
    shutil.copy(Path(asv.__file__).parent / "www" / "index.html", html / "index.html")
    return html


def test_localize_points_every_cdn_reference_of_asvs_index_at_vendor(asv_index, assets):
    before = (asv_index / "index.html").read_text()
    assert len(dashboard.remote_refs(before)) == 10  # 9 scripts and bootstrap's stylesheet, on 3 CDNs
    done = dashboard.localize(asv_index, assets)
    after = (asv_index / "index.html").read_text()
    assert sorted(done) == sorted(a.url for a in dashboard.ASSETS if a.url)
    assert dashboard.remote_refs(after) == [] and "integrity=" not in after and "crossorigin" not in after
    assert after.count('onerror="js_load_failure()"') == 9  # asv's error page still shows a failed load
    assert '<link rel="stylesheet" href="vendor/bootstrap/css/bootstrap.min.css">' in after
    for a in dashboard.ASSETS:
        assert dashboard.verified(a, (asv_index / dashboard.VENDOR / a.local).read_bytes()), a.local
    assert dashboard.localize(asv_index, assets) == [] and (asv_index / "index.html").read_text() == after


def test_localize_refuses_a_cdn_file_it_does_not_know(asv_index, assets):
    index = asv_index / "index.html"
    extra = '<script src="https://cdn.example.org/new.js"></script>'
    index.write_text(index.read_text().replace("</head>", f"{extra}</head>"))
    with pytest.raises(dashboard.DashboardError, match=r"https://cdn\.example\.org/new\.js.*add it to ASSETS"):
        dashboard.localize(asv_index, assets)


def test_localize_refuses_a_file_asv_now_pins_to_another_hash(asv_index, assets):
    index = asv_index / "index.html"
    index.write_text(index.read_text().replace("sha256-FgpCb/KJQlLNfOu91ta32o/NMZxltwRo8QtmkMRdAu8=", "sha256-AAAA"))
    with pytest.raises(dashboard.DashboardError, match=r"jquery-3\.3\.1\.min\.js to sha256-AAAA.*asv changed"):
        dashboard.localize(asv_index, assets)


def test_an_absolute_url_left_in_any_page_is_an_error(asv_index, assets):
    (asv_index / "extra.html").write_text('<link rel="stylesheet" href="//fonts.example.org/a.css">')
    with pytest.raises(dashboard.DashboardError, match=r"extra\.html: <link href=//fonts\.example\.org/a\.css>"):
        dashboard.localize(asv_index, assets)


def test_fetch_offline_without_the_files_says_what_to_do(tmp_path):
    what = r"make dashboard-assets.*jquery@3\.3\.1.*stupid-table-plugin@1\.1\.3"
    with pytest.raises(dashboard.DashboardError, match=what):
        dashboard.fetch_assets(tmp_path / "empty", offline=True)


def test_fetch_restores_an_altered_file_from_the_kept_tarball_without_npm(tmp_path, assets, monkeypatch):
    dest = tmp_path / "assets"
    shutil.copytree(assets / dashboard.TARBALLS, dest / dashboard.TARBALLS)
    monkeypatch.setattr(dashboard.shutil, "which", lambda name: None)  # no npm: nothing may be fetched
    assert dashboard.fetch_assets(dest, offline=False) == dest
    jquery = dest / dashboard.ASSETS[0].local
    jquery.write_text("tampered")
    dashboard.fetch_assets(dest, offline=False)
    assert all(dashboard.verified(a, (dest / a.local).read_bytes()) for a in dashboard.ASSETS)
    (dest / dashboard.TARBALLS / "flot-0.8.3.tgz").unlink()
    (dest / dashboard.ASSETS[1].local).unlink()
    with pytest.raises(dashboard.DashboardError, match=r"npm is not installed.*apt-get install npm"):
        dashboard.fetch_assets(dest, offline=False)


# -- end to end: asv, the published pages, a headless browser ----------------------------------


def _shots_dir() -> Path:
    results = os.environ.get("COMPRESS_BENCH_RESULTS") or str(Path.home() / ".cache/compress-bench/benchmarks")
    return Path(results).expanduser().resolve().parent / "dashboard"


def _browser() -> tuple[str, str]:
    """(chromium, chromedriver) of the system; the test fails with the install command when either is missing."""
    chromium = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.fail(f"no {'chromium' if not chromium else 'chromedriver'} on PATH: install them with {INSTALL}")
    return chromium, driver


def _asv(args: list[str], env: dict, cwd: Path, timeout: int) -> subprocess.CompletedProcess:
    res = subprocess.run([sys.executable, "-m", "asv", *args], cwd=cwd, env=env, capture_output=True, text=True,
                         timeout=timeout)  # fmt: skip
    out = f"{res.stdout[-6000:]}\n{res.stderr[-6000:]}"
    assert res.returncode == 0, f"asv {args[0]} exited with {res.returncode}\n{out}"
    return res


def _asv_results(tmp: Path) -> tuple[Path, Path, dict[str, float]]:
    """asv run for real on HEAD, in a temporary results/html/env folder and HOME.

    (config, html_dir, the latency asv measured per technique in seconds).
    """
    from asv import util

    conf = util.load_json(str(REPO / "asv.conf.json"), js_comments=True)
    conf.update(repo=str(REPO), benchmark_dir=str(REPO / "benchmarks" / "asv_bench"), results_dir=str(tmp / "results"),
                html_dir=str(tmp / "html"), env_dir=str(tmp / "env"))  # fmt: skip
    config = tmp / "asv.conf.json"
    config.write_text(json.dumps(conf, indent=2))
    (tmp / "home").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMPRESS_BENCH_", "ASV"))}
    env.update(
        HOME=str(tmp / "home"),  # asv machine writes ~/.asv-machine.json: not the user's
        ASV_PYTHONPATH=str(REPO),  # asv drops PYTHONPATH; the benchmarks import this checkout's compress
        COMPRESS_BENCH_TIER="unit", COMPRESS_BENCH_PAIRS=PAIRS, COMPRESS_BENCH_CACHE=str(tmp / "cache"),
        COMPRESS_BENCH_OFFLINE="1",
    )  # fmt: skip
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True)
    head = head.stdout.strip()
    _asv(["machine", "--yes", "--machine", MACHINE, "--config", str(config)], env, tmp, 120)
    assert (tmp / "home" / ".asv-machine.json").is_file()
    _asv(["run", "--config", str(config), "--machine", MACHINE, "--python=same", "--set-commit-hash", head,
          "--quick", "--show-stderr"], env, tmp, 1500)  # fmt: skip
    [result] = (tmp / "results" / MACHINE).glob(f"{head[:8]}-*.json")
    stored = json.loads(result.read_text())
    columns = stored["result_columns"]
    row = dict(zip(columns, stored["results"][BENCHMARK]))
    assert row["params"] == [["'tiny_torch'"], ["'fp32'", "'onnx_fp32'"]], row["params"]
    latency = dict(zip(("fp32", "onnx_fp32"), row["result"]))
    assert all(isinstance(v, float) and v > 0 for v in latency.values()), latency  # both measured
    return config, tmp / "html", latency


class _Server(http.server.ThreadingHTTPServer):
    requests: list[tuple[str, int]]


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_request(self, code="-", size="-"):
        self.server.requests.append((urllib.parse.urlsplit(self.path).path, int(code)))

    def log_message(self, format, *args):
        pass


# The plot asv drew (flot keeps it on its placeholder): its series and, on its canvas, the
# pixels of each series' colour and those that are not background at all.
_PLOT_JS = """
var $ = window.jQuery;
if (!$ || !$.plot) return {error: 'jQuery/flot not loaded', href: location.href};
var plot = $('#main-graph').data('plot');
if (!plot) return null;
var canvas = plot.getCanvas(), ctx = canvas.getContext('2d');
var img = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
var series = plot.getData().map(function (s) {
    var c = $.color.parse(s.color), hits = 0;
    for (var i = 0; i < img.length; i += 4)
        if (img[i + 3] > 200 && Math.abs(img[i] - c.r) < 24 && Math.abs(img[i + 1] - c.g) < 24
            && Math.abs(img[i + 2] - c.b) < 24) hits++;
    var points = s.data.filter(function (p) { return p && p[1] !== null && isFinite(p[1]); });
    return {label: s.label, color: s.color, points: points, pixels: hits};
});
var painted = 0;
for (var i = 3; i < img.length; i += 4) if (img[i] > 0) painted++;
return {series: series, painted: painted, width: canvas.width, height: canvas.height};
"""


def _drawn_plot(driver, wait, url: str, png: Path, timeout: float = 60) -> dict:
    """Open ``url``; once asv's graph is drawn (a series with a point, painted in its colour), its state.

    The page is screenshotted to ``png`` in any case, so a failure leaves a picture of what was shown.
    """
    state = {}

    def drawn(d):
        plot = state["plot"] = d.execute_script(_PLOT_JS)
        if not plot or plot.get("error"):
            return bool(plot and "error.html" in plot.get("href", ""))  # asv's page for a script that failed
        return any(s["points"] and s["pixels"] >= 10 for s in plot["series"])

    driver.execute_script("window.jQuery && jQuery('#main-graph').removeData('plot')")  # not the last page's plot
    driver.get(url)
    try:
        wait(driver, timeout, poll_frequency=0.5).until(drawn)
        time.sleep(0.5)  # the overview plot is drawn after the main one
    finally:
        driver.save_screenshot(str(png))
    plot = state["plot"]
    assert plot and not plot.get("error"), f"{plot}: a script failed to load (asv shows error.html)"
    for s in plot["series"]:
        assert s["points"], f"series {s['label']} has no point: {plot}"
        assert s["pixels"] >= 10, f"series {s['label']} ({s['color']}) is not on the canvas: {s['pixels']} pixels"
    return plot


@pytest.mark.allow_hosts(["127.0.0.1", "::1"])  # this test's own loopback: its server, chromedriver
def test_dashboard_renders_offline_in_a_headless_browser(tmp_path, monkeypatch, capsys, assets):
    chromium, chromedriver = _browser()
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        from selenium.webdriver.common import selenium_manager
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait
    except ImportError as e:
        pytest.fail(f"{e}: install the test extra (pip install -e '.[test]': selenium)")

    config, html_dir, latency = _asv_results(tmp_path)
    dashboard.publish(config, assets=assets)
    index = (html_dir / "index.html").read_text()
    assert dashboard.remote_refs(index) == [] and "integrity=" not in index
    assert all((html_dir / dashboard.VENDOR / a.local).is_file() for a in dashboard.ASSETS)

    server = _Server(("127.0.0.1", 0), functools.partial(_Handler, directory=str(html_dir)))
    server.requests = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"

    # The system chromium and chromedriver, named explicitly; Selenium Manager (which downloads
    # drivers) must not run at all, and is told to stay offline should it ever be reached.
    monkeypatch.setenv("SE_OFFLINE", "true")

    def no_manager(*args, **kwargs):
        raise AssertionError("Selenium Manager was called: the system chromedriver must be used")

    monkeypatch.setattr(selenium_manager.SeleniumManager, "binary_paths", no_manager)
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1400,1000",
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", "--no-first-run", "--disable-extensions",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-default-apps", "--metrics-recording-only", "--no-proxy-server",
                f"--user-data-dir={tmp_path / 'chromium'}"):  # fmt: skip
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    service = Service(executable_path=chromedriver, log_output=str(tmp_path / "chromedriver.log"))
    shots = _shots_dir()
    shots.mkdir(parents=True, exist_ok=True)
    page_png, graph_png, bars_png = (shots / f"dashboard-{n}.png" for n in ("screenshot", "graph", "by-technique"))

    driver = webdriver.Chrome(service=service, options=options)
    try:
        model = urllib.parse.quote(repr("tiny_torch"))  # asv names a string parameter by its repr

        # Latency over commits: one series per technique, each with its measured point.
        t0 = time.perf_counter()
        plot = _drawn_plot(driver, WebDriverWait, f"{base}#{BENCHMARK}?machine={MACHINE}&p-model={model}", page_png)
        driver.find_element(By.ID, "main-graph").screenshot(str(graph_png))
        assert driver.find_element(By.ID, "title").text.strip() == BENCHMARK
        plotted = {s["label"].removeprefix("technique-"): [p[1] for p in s["points"]] for s in plot["series"]}
        assert plotted == {t: [v] for t, v in latency.items()}, (plotted, latency)  # what asv measured, one commit
        assert plot["painted"] > 1000, plot["painted"]  # axes, grid, points: far from an empty canvas

        # The same with technique on the x axis (flot's categories plugin, bars): one series, the commit.
        by_technique = f"{base}#{BENCHMARK}?machine={MACHINE}&x-axis=technique&p-model={model}"
        plot = _drawn_plot(driver, WebDriverWait, by_technique, bars_png)
        [series] = plot["series"]
        assert {str(x).strip("'"): y for x, y in series["points"]} == latency, (series, latency)
        with capsys.disabled():
            print(f"\ndashboard: graphs drawn in {time.perf_counter() - t0:.1f} s; screenshots: {page_png} (page), "
                  f"{graph_png} (its graph), {bars_png} (by technique)")

        # Nothing left 127.0.0.1: every request the page made (Chrome's network log) went to the
        # test's server, and the browser reports no failed load.
        urls = []
        for entry in driver.get_log("performance"):
            msg = json.loads(entry["message"])["message"]
            if msg["method"] == "Network.requestWillBeSent":
                urls.append(msg["params"]["request"]["url"])
        net = [u for u in urls if urllib.parse.urlsplit(u).scheme in ("http", "https", "ws", "wss", "ftp")]
        off = [u for u in net if urllib.parse.urlsplit(u).hostname != "127.0.0.1"]  # chrome://, data: stay inside
        assert net and not off, f"requests that left 127.0.0.1: {off}"
        errors = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors
        served = dict(server.requests)
        for a in dashboard.ASSETS:
            if a.url:  # every library asv loads came from vendor/, with a 200
                assert served.get(f"/{dashboard.VENDOR}/{a.local}") == 200, (a.local, server.requests)
    finally:
        driver.quit()
        server.shutdown()
        server.server_close()
