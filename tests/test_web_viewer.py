"""The web page at `/`, driven in headless Chromium against the real service (Redis, worker, uvicorn).

Needs Debian's `chromium` (`apt-get install -y chromium`; .ci/run installs it) and the `playwright` Python
package, which drives that browser (no browser download). HMU_CHROMIUM overrides the browser path.
"""

from __future__ import annotations

import io
import json
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import redis
import uvicorn
from PIL import Image
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import sync_playwright

from core.settings import Settings
from hmu.serve import worker_process
from models.data.bvh import parse_bvh
from models.motion.gltf_export import read_glb
from service.main import create_app
from tests.conftest import free_port

CHROMIUM = Path(os.environ.get("HMU_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
KEY = "web-key"
BASE, EDITED = "momask-small", "momask-small-unlearned"
LIMB_COLOURS = ((220, 38, 38), (37, 99, 235), (31, 41, 55), (249, 115, 22), (8, 145, 178))  # CHAIN_COLORS


@pytest.fixture(scope="module")
def base_url(redis_url: str, tmp_path_factory: pytest.TempPathFactory):
    """URL of the gateway served by uvicorn in a thread, with a worker process and two tiny models."""
    from models.pipelines import MotionPipeline

    root = tmp_path_factory.mktemp("web")
    MotionPipeline.random("momask", "tiny", seed=0).save_pretrained(root / "models" / BASE)
    MotionPipeline.random("momask", "tiny", seed=1).save_pretrained(root / "models" / EDITED)
    (root / "models" / EDITED / "manifest.json").write_text(json.dumps({"parent": BASE, "method": "uce"}))
    settings = Settings(
        redis_url=redis_url.rsplit("/", 1)[0] + "/2", models_dir=root / "models",
        weights_dir=root / "weights", datasets_dir=root / "datasets", artifacts_dir=root / "artifacts",
        api_keys={KEY: ["generate"]},
        default_model=BASE, batch_window_ms=50, heartbeat_interval_s=0.5, worker_concurrency=2,
    )
    client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    client.flushdb()
    with worker_process(settings, concurrency=2) as process:
        deadline = time.monotonic() + 60
        while not client.keys("hmu:worker:*"):
            assert process.poll() is None, "the worker process exited"
            assert time.monotonic() < deadline, "the worker did not start"
            time.sleep(0.1)
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port,
                                               log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.is_file():
        pytest.fail(f"Chromium not found at {CHROMIUM}: install it with `apt-get install -y chromium` "
                    "(or point HMU_CHROMIUM at a Chromium binary); the web page test needs a real browser")
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield instance
        instance.close()


def canvas_pixels(canvas) -> np.ndarray:
    """(H, W, 3) int RGB of an element's screenshot."""
    return np.asarray(Image.open(io.BytesIO(canvas.screenshot())).convert("RGB")).astype(np.int64)


def near(img: np.ndarray, rgb: tuple[int, int, int], tol: int = 40) -> int:
    return int((np.abs(img - np.array(rgb)).max(-1) < tol).sum())


def wait_for(page, expression: str, errors: list[str], timeout_ms: float = 90_000) -> None:
    """page.wait_for_function with a failure message that shows the page's status line and JS errors."""
    try:
        page.wait_for_function(expression, timeout=timeout_ms)
    except PlaywrightTimeout:
        status = page.inner_text("#status")
        pytest.fail(f"timed out waiting for `{expression}`; page status: {status!r}; JS errors: {errors}")


def test_page_generates_animates_and_downloads_bvh(base_url, browser, tmp_path):
    context = browser.new_context(accept_downloads=True, viewport={"width": 1200, "height": 1000})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.set_default_timeout(90_000)

    page.goto(base_url + "/")
    assert "hmu" in page.title()
    wait_for(page, "document.getElementById('status').textContent.includes('API key')", errors)
    assert page.locator("#status").get_attribute("class") == "error"  # 401 explained, before a key is given

    page.fill("#api-key", KEY)
    page.keyboard.press("Tab")  # change event -> GET /models again, with the key
    wait_for(page, "document.querySelectorAll('#model-a option').length === 2", errors)
    assert page.input_value("#model-a") == BASE and page.input_value("#model-b") == EDITED
    assert "uce of momask-small" in page.locator("#model-b option:checked").inner_text()

    page.fill("#prompt", "a person walks forward and waves")
    page.fill("#length", "40")
    page.fill("#seed", "5")
    page.click("#generate")
    wait_for(page, "window.hmuViewer.motions.length === 2 && window.hmuViewer.framesDrawn > 10", errors)
    canvases = page.locator("#panels canvas")
    assert canvases.count() == 2
    assert [canvases.nth(i).get_attribute("data-model") for i in range(2)] == [BASE, EDITED]
    joints = page.evaluate("window.hmuViewer.motions.map(m => m.joints)")
    assert [np.asarray(j).shape for j in joints] == [(40, 22, 3), (40, 22, 3)]
    assert not np.allclose(joints[0], joints[1])  # two different models, two different motions

    # animating: the picture changes over time while playing, and stops changing when paused
    first = page.evaluate("document.querySelector('#panels canvas').toDataURL()")
    page.wait_for_timeout(400)
    assert page.evaluate("document.querySelector('#panels canvas').toDataURL()") != first
    page.click("#play")
    assert page.inner_text("#play") == "Play"
    paused = page.evaluate("document.querySelector('#panels canvas').toDataURL()")
    page.wait_for_timeout(300)
    assert page.evaluate("document.querySelector('#panels canvas').toDataURL()") == paused
    page.click("#play")

    for i in range(2):
        img = canvas_pixels(canvases.nth(i))
        Image.fromarray(img.astype(np.uint8)).save(tmp_path / f"canvas{i}.png")
        assert len(np.unique(img.reshape(-1, 3), axis=0)) > 20 and img.std() > 5, "the canvas looks blank"
        assert near(img, (214, 217, 223), 6) > 500, "no ground grid"
        limbs = sum(near(img, rgb) for rgb in LIMB_COLOURS)
        assert limbs > 100, f"only {limbs} pixels of stick-figure limb colours: no figure drawn"

    # BVH download: the same request with format=bvh, i.e. the same motion (same seed) as a BVH file
    with page.expect_download() as info:
        page.locator("#panels a.bvh").first.click()
    download = info.value
    assert download.suggested_filename == f"{BASE}-seed5.bvh"
    path = tmp_path / download.suggested_filename
    download.save_as(path)
    bvh = parse_bvh(path.read_text())
    assert bvh.n_frames == 40 and bvh.fps == pytest.approx(20) and len(bvh.joints) == 22
    np.testing.assert_allclose(bvh.motion[:, :3] / 100, np.asarray(joints[0])[:, 0], atol=1e-4)

    # glTF download from the panel's menu: Mixamo rig at 60 fps, fetched from the job's artifact URL
    page.locator("#panels select.rig").first.select_option("mixamo")
    page.locator("#panels select.fps").first.select_option("60")
    with page.expect_download() as info:
        page.locator("#panels a.glb").first.click()
    download = info.value
    assert download.suggested_filename == f"{BASE}-seed5-mixamo-60fps.glb"
    glb = read_glb(download.path().read_bytes())
    assert "mixamorig:LeftHand" in glb["names"] and len(glb["times"]) == 118  # 40 frames at 20 fps -> 60 fps
    assert errors == [], f"JavaScript errors: {errors}"
    context.close()


def test_page_plays_a_timeline_then_edits_it(base_url, browser):
    page = browser.new_context(viewport={"width": 1200, "height": 1000}).new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(base_url + "/")
    page.fill("#api-key", KEY)
    page.keyboard.press("Tab")
    wait_for(page, "document.querySelectorAll('#model-a option').length === 2", errors)
    page.select_option("#model-b", BASE)
    page.fill("#prompt", "a person walks forward = 6\na person jumps = 4.5\na person waves = 4")
    page.fill("#seed", "3")
    page.click("#generate")
    wait_for(page, "window.hmuViewer.motions.length === 2 && window.hmuViewer.framesDrawn > 10", errors)
    motions = page.evaluate("window.hmuViewer.motions.map(m => [m.joints.length, m.segments])")
    assert motions[0][0] == 288  # 120 + 88 + 80 frames: longer than one generation (196)
    assert [(s["start"], s["end"]) for s in motions[0][1]] == [(0, 120), (120, 208), (208, 288)]
    # the label names the part being played; playing on past 196 frames reaches the last part
    page.wait_for_function("document.getElementById('frame-label').textContent.includes('a person')")
    page.wait_for_function("document.getElementById('frame-label').textContent.includes('waves')",
                           timeout=30_000)

    page.fill("#prompt", "a person sits down")  # editing the 288-frame timeline: a clear 422 (edits take <= 196)
    page.fill("#keep", "0:40")
    page.click("#generate")
    wait_for(page, "document.getElementById('status').className === 'error'", errors)
    assert "196" in page.inner_text("#status")
    page.fill("#prompt", "a person walks forward")
    page.fill("#keep", "")
    page.fill("#length", "80")
    page.click("#generate")
    wait_for(page, "window.hmuViewer.motions.length === 2 && window.hmuViewer.motions[0].joints.length === 80",
             errors)
    before = page.evaluate("window.hmuViewer.motions[0].joints")
    page.fill("#prompt", "a person jumps")
    page.fill("#keep", "0:20 60:80")
    page.click("#generate")
    wait_for(page, "window.hmuViewer.motions[0].kept && window.hmuViewer.motions[0].kept.length === 2", errors)
    after = page.evaluate("window.hmuViewer.motions[0].joints")
    np.testing.assert_allclose(np.asarray(after)[:20], np.asarray(before)[:20], atol=1e-4)
    assert errors == [], f"JavaScript errors: {errors}"


def test_static_files_are_served(base_url):
    import httpx

    index = httpx.get(base_url + "/")
    assert index.status_code == 200 and index.headers["content-type"].startswith("text/html")
    assert 'id="prompt"' in index.text and 'src="/static/app.js"' in index.text
    for name, kind in (("app.js", "javascript"), ("style.css", "text/css")):
        response = httpx.get(f"{base_url}/static/{name}")
        assert response.status_code == 200 and kind in response.headers["content-type"]
    assert httpx.get(base_url + "/static/nope.js").status_code == 404
