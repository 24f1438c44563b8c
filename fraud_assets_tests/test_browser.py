"""End to end through the UI a data scientist uses: the platform starts, the lineage shows every layer
and its key assets, and Materialize on an asset launches a run that succeeds.

Starts `dg dev` (webserver + daemon) on a free loopback port with a temporary DAGSTER_HOME and
FRAUD_DATA_DIR (the shared harness, fraud_assets_tests/platform.py), drives headless Debian Chromium
through Playwright (no browser download), and keeps screenshots in test_artifacts/ (git-ignored).
CI installs Chromium in .ci/run. `FRAUD_UPDATE_SCREENSHOTS=1` also refreshes docs/img/lineage.png (README).
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fraud_assets_tests.platform import Platform

REPO_ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO_ROOT / "test_artifacts"
README_SCREENSHOT = REPO_ROOT / "docs" / "img" / "lineage.png"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LAYERS = ["raw", "cleaned", "features", "models", "scoring", "monitoring"]
# Contract tables from docs/architecture.md; each must show in the expanded lineage once its layer exists.
KEY_ASSETS = {
    "raw": "authorizations",
    "cleaned": "transactions",
    "features": "transaction_features",
    "scoring": "transaction_scores",
}
# The unpartitioned asset clicked: needs nothing but an (empty) landing zone.
MATERIALIZE = "raw/file_register"
STARTUP_TIMEOUT_S = 300
RUN_TIMEOUT_S = 600

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


@pytest.fixture(scope="module", autouse=True)
def chromium() -> None:
    """The browser this test drives: a machine without it fails the test, it never skips (.ci/run
    installs it)."""
    if not CHROMIUM.exists():
        pytest.fail(f"needs Debian chromium at {CHROMIUM} (apt-get install chromium; .ci/run installs it)")


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """Webserver + daemon (`dg dev`) on a free loopback port, with an empty landing zone."""
    root = tmp_path_factory.mktemp("platform")
    (root / "data" / "landing").mkdir(parents=True)
    platform = Platform(root)
    platform.start(timeout=STARTUP_TIMEOUT_S)
    try:
        yield platform
    finally:
        platform.stop()  # the whole process group it started: webserver, daemon, code servers, runs


def run_by_id_prefix(platform: Platform, prefix: str) -> list[dict]:
    data = platform.graphql(
        "{ runsOrError { ... on Runs { results { runId status assetSelection { path } } } } }"
    )
    return [r for r in data["runsOrError"]["results"] if r["runId"].startswith(prefix)]


def run_failure_messages(platform: Platform, run_id: str) -> list[str]:
    data = platform.graphql(
        "query($id: ID!) { logsForRun(runId: $id) { ... on EventConnection { events { __typename "
        "... on MessageEvent { message } } } } }",
        {"id": run_id},
    )
    events = data["logsForRun"].get("events", [])
    return [
        e.get("message", "") for e in events if "Failure" in e["__typename"] or "Error" in e["__typename"]
    ]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser):
    ARTIFACTS.mkdir(exist_ok=True)
    context = browser.new_context(viewport={"width": 1920, "height": 1200})
    page = context.new_page()
    page.set_default_timeout(60_000)
    try:
        yield page
    finally:
        context.close()


def shows_name(text: str, name: str) -> bool:
    """A graph node shows `name`, or a middle-truncated form of it (`transact…features`)."""
    text = text.strip()
    if text == name:
        return True
    head, ellipsis, tail = text.partition("…")
    return bool(ellipsis) and len(head) >= 3 and name.startswith(head) and name.endswith(tail)


def wait_until_rendered(page, names, timeout_s: float = 60) -> list[str]:
    """Names not (yet) shown as graph nodes after `timeout_s`; empty when all render."""
    deadline = time.monotonic() + timeout_s
    while True:
        lines = page.inner_text("body").splitlines()
        missing = [n for n in names if not any(shows_name(line, n) for line in lines)]
        if not missing or time.monotonic() > deadline:
            return missing
        page.wait_for_timeout(1000)


def defined_groups() -> set[str]:
    from fraud_assets.definitions import defs

    graph = defs.get_repository_def().asset_graph
    return {graph.get(k).group_name for k in graph.materializable_asset_keys}


def test_lineage_shows_every_layer_group_and_the_key_assets(platform, page):
    groups = [g for g in LAYERS if g in defined_groups()]
    assert {"raw", "cleaned"} <= set(groups)
    page.goto(f"{platform.url}/asset-groups", wait_until="domcontentloaded")
    page.get_by_text("Global asset lineage").wait_for()
    for group in groups:  # one collapsed node per group (and an entry in the group tree)
        page.get_by_text(group, exact=True).first.wait_for()
    page.screenshot(path=str(ARTIFACTS / "lineage_groups.png"))

    page.get_by_role("button", name="settings", exact=True).click()
    page.get_by_role("menuitem", name="Expand all groups").click()
    page.keyboard.press("Escape")
    # Room for the whole graph: hide the navigation and the group tree, zoom out to fit.
    page.get_by_text("Hide navigation").click()
    page.locator("button").filter(has=page.locator('[aria-label="panel_show_right"]')).click()
    page.get_by_role("button", name="zoom_out", exact=True).click()
    present = {group: asset for group, asset in KEY_ASSETS.items() if group in groups}
    missing = wait_until_rendered(page, present.values())
    page.wait_for_timeout(1500)  # let the zoom animation settle before the screenshot
    page.screenshot(path=str(ARTIFACTS / "lineage_expanded.png"))
    assert not missing, f"not rendered in the lineage: {missing}"


# Bounding box of the graph's nodes and group boxes (SVG foreignObjects), in viewport pixels.
GRAPH_BOX_JS = """() => {
    const rs = [...document.querySelectorAll('svg foreignObject')].map(e => e.getBoundingClientRect())
        .filter(r => r.width > 0 && r.height > 0);
    return {x0: Math.min(...rs.map(r => r.left)), y0: Math.min(...rs.map(r => r.top)),
            x1: Math.max(...rs.map(r => r.right)), y1: Math.max(...rs.map(r => r.bottom))};
}"""
# GitHub shows a README picture at most about this wide: wider, it is scaled down below readable.
README_WIDTH = 1100


def test_readme_lineage_picture_shows_every_asset_top_to_bottom_at_readable_size(platform, browser):
    """Layers stacked top to bottom (the UI's vertical orientation), zoomed until node names are plain
    text, the picture cropped to the graph: narrow enough that the README shows it near full size."""
    ARTIFACTS.mkdir(exist_ok=True)
    width, height = 1400, 2600
    context = browser.new_context(viewport={"width": width, "height": height})
    context.add_init_script(
        "window.localStorage.setItem('asset-graph-direction', JSON.stringify('vertical'))"
    )
    page = context.new_page()
    page.set_default_timeout(60_000)
    try:
        page.goto(f"{platform.url}/asset-groups", wait_until="domcontentloaded")
        page.get_by_text("Global asset lineage").wait_for()
        page.get_by_text("raw", exact=True).first.wait_for()
        page.get_by_role("button", name="settings", exact=True).click()
        page.get_by_role("menuitem", name="Expand all groups").click()
        page.keyboard.press("Escape")
        page.get_by_text("Hide navigation").click()
        page.locator("button").filter(has=page.locator('[aria-label="panel_show_right"]')).click()
        page.wait_for_timeout(3000)  # the layout settles, then zoom in to where nodes are name boxes
        for _ in range(2):
            page.get_by_role("button", name="zoom_in", exact=True).click()
            page.wait_for_timeout(1500)
        # Zooming keeps the centre: drag the graph's top-left corner into view.
        box = page.evaluate(GRAPH_BOX_JS)
        page.mouse.move(width - 200, height // 2)
        page.mouse.down()
        page.mouse.move(width - 120 - box["x0"], height // 2 + 160 - box["y0"], steps=20)
        page.mouse.up()
        page.wait_for_timeout(1000)
        missing = wait_until_rendered(page, asset_names())
        box = page.evaluate(GRAPH_BOX_JS)
        pad = 12
        clip = {
            "x": box["x0"] - pad,
            "y": box["y0"] - pad,
            "width": box["x1"] - box["x0"] + 2 * pad,
            "height": box["y1"] - box["y0"] + 2 * pad,
        }
        page.screenshot(path=str(ARTIFACTS / "lineage_vertical.png"), clip=clip)
    finally:
        context.close()
    assert not missing, f"not rendered in the lineage: {missing}"
    assert 0 <= clip["x"] <= clip["x"] + clip["width"] <= width, "the graph is cut at the sides"
    assert clip["y"] + clip["height"] <= height, "the graph is cut at the bottom"
    assert clip["width"] <= README_WIDTH
    if os.environ.get("FRAUD_UPDATE_SCREENSHOTS") == "1":  # refresh the README's picture on purpose only
        shutil.copyfile(ARTIFACTS / "lineage_vertical.png", README_SCREENSHOT)


def asset_names() -> list[str]:
    from fraud_assets.definitions import defs

    graph = defs.get_repository_def().asset_graph
    return sorted({k.path[-1] for k in graph.materializable_asset_keys})


def test_materialize_button_launches_a_run_that_succeeds(platform, page):
    page.goto(f"{platform.url}/assets/{MATERIALIZE}", wait_until="domcontentloaded")
    button = page.locator("button").filter(has_text="Materialize").first
    button.wait_for()
    button.click()
    toast = page.get_by_text(re.compile(r"Launched run [0-9a-f]{8}")).first
    toast.wait_for()
    run_prefix = re.search(r"Launched run ([0-9a-f]{8})", toast.inner_text()).group(1)
    page.screenshot(path=str(ARTIFACTS / "materialize_launched.png"))

    # Identify the click's run by the id in the toast: automation sensors may launch runs of their own.
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while True:
        runs = run_by_id_prefix(platform, run_prefix)
        assert len(runs) == 1, f"run {run_prefix} not found"
        run = runs[0]
        assert [MATERIALIZE.split("/")] == [a["path"] for a in run["assetSelection"] or []]
        if run["status"] in ("SUCCESS", "FAILURE", "CANCELED"):
            break
        assert time.monotonic() < deadline, f"run {run['runId']} still {run['status']} after {RUN_TIMEOUT_S}s"
        time.sleep(3)
    assert run["status"] == "SUCCESS", run_failure_messages(platform, run["runId"])

    # The UI shows the run as succeeded too.
    page.goto(f"{platform.url}/runs/{run['runId']}", wait_until="domcontentloaded")
    page.get_by_text("Success", exact=True).first.wait_for()
    page.get_by_text("Loading run logs").wait_for(state="detached")  # logs shown in the screenshot
    page.screenshot(path=str(ARTIFACTS / "materialize_run_succeeded.png"))
