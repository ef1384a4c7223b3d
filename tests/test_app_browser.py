"""nst-app in a real browser (headless Debian chromium driven by Playwright), and its command line.

The app runs in a subprocess on a free port; the tests upload files through the page, move the slider with the
mouse, download the full-size result and read it back, and check that the page fetched nothing from any host but
127.0.0.1 (offline: no fonts, scripts or analytics from the internet).
"""

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from urllib.parse import urlparse

import numpy as np
import pytest
from conftest import ROOT
from PIL import Image

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
MISSING = [name for name in ("gradio", "playwright") if importlib.util.find_spec(name) is None]
if not os.path.exists(CHROMIUM):
    MISSING.append("chromium (apt-get install chromium)")
browser_only = pytest.mark.skipif(bool(MISSING), reason=f"needs {', '.join(MISSING)} (.ci/run installs them)")
LOCAL = {"127.0.0.1", "localhost"}
ASSETS = os.path.join(ROOT, "nst_tf", "assets")  # the package's own samples: no skip without ../shared/data


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory, lpips_weights):
    """nst-app on a free port (its log in a file); the page's address."""
    port = free_port()
    log = tmp_path_factory.mktemp("app") / "app.log"
    env = dict(os.environ, PYTHONPATH=ROOT, GRADIO_ANALYTICS_ENABLED="False")
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "nst_tf.cli.app", f"--port={port}", "--weights=lpips",
                                 "--preview_size=128"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 300
    while True:  # serving, and the network loaded (its warm-up): the tests time the page, not the start-up
        try:
            urllib.request.urlopen(url, timeout=5).read()
            if "nst-app: ready" in log.read_text():
                break
        except OSError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            pytest.fail(f"nst-app did not start: {log.read_text()[-2000:]}")
        time.sleep(1)
    yield url, proc, log
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture
def page(server):
    """A fresh page of the app, with every request's host recorded."""
    from playwright.sync_api import sync_playwright

    url, _, _ = server
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        tab = browser.new_page(accept_downloads=True, viewport={"width": 1400, "height": 1000})
        tab.set_default_timeout(120_000)
        tab.hosts = set()
        tab.on("request", lambda request: tab.hosts.add(urlparse(request.url).hostname))
        tab.goto(url)
        tab.locator("#photo input[type=file]").wait_for(state="attached")
        yield tab
        browser.close()


def status(tab) -> str:
    return tab.locator("#status").inner_text()


def wait_status(tab, text: str) -> str:
    tab.wait_for_function("t => document.querySelector('#status').innerText.includes(t)", arg=text)
    return status(tab)


@browser_only
def test_stylize_in_the_browser_and_download(page, server, tmp_path):
    photo = str(tmp_path / "photo.jpg")  # 320 px: the full-size download stays quick
    Image.open(os.path.join(ASSETS, "tubingen.jpg")).convert("RGB").resize((320, 240)).save(photo, quality=95)
    page.locator("#photo input[type=file]").set_input_files(photo)
    wait_status(page, "photo: ")
    page.locator("#painting input[type=file]").set_input_files(os.path.join(ASSETS, "starry_night.jpg"))
    first = wait_status(page, "preview: ")
    assert "strength 1" in first and "strength 1." not in first, first
    box = page.locator("#strength input[type=range]").bounding_box()
    page.mouse.click(box["x"] + 0.8 * box["width"], box["y"] + box["height"] / 2)  # the slider: about 1.6
    moved_js = "() => /preview: .*strength (1\\.[1-9]|2)/.test(document.querySelector('#status').innerText)"
    page.wait_for_function(moved_js)
    moved = status(page)
    strength = float(moved.rsplit("strength ", 1)[1].split()[0])
    assert 1.4 <= strength <= 1.8, moved
    assert page.locator("#result img").count() >= 1
    page.locator("#full_size").click()
    done = wait_status(page, "full size: ")
    with page.expect_download() as info:
        page.locator("#download a").first.click()
    saved = tmp_path / "download.png"
    info.value.save_as(saved)
    result = np.asarray(Image.open(saved).convert("RGB"), np.float32)
    original = np.asarray(Image.open(photo).convert("RGB"), np.float32)
    assert result.shape == original.shape, (result.shape, original.shape, done)  # the photo's own size
    assert np.abs(result - original).mean() > 15, "the download is the photo, not a stylized image"
    assert page.hosts <= LOCAL, f"requests left the machine: {page.hosts - LOCAL}"


@browser_only
def test_bad_uploads_get_a_message_and_the_server_keeps_serving(page, server, tmp_path):
    url, proc, log = server
    text = tmp_path / "notes.jpg"
    text.write_text("not a picture")
    page.locator("#photo input[type=file]").set_input_files(str(text))
    message = wait_status(page, "not an image file")
    assert "⚠ photo (notes.jpg): not an image file" in message, message
    assert page.get_by_text("not an image file").count() >= 1
    truncated = tmp_path / "cut.jpg"
    with open(os.path.join(ASSETS, "tubingen.jpg"), "rb") as f:
        truncated.write_bytes(f.read()[:2000])
    page.locator("#painting input[type=file]").set_input_files(str(truncated))
    message = wait_status(page, "cut.jpg")
    assert "painting (cut.jpg): cannot decode image" in message, message
    assert "Traceback" not in page.content()
    page.locator("#photo_samples .thumbnail-item").first.click()  # the server still answers: pick a sample photo
    assert "sample: tubingen.jpg" in wait_status(page, "sample: ")
    assert proc.poll() is None and urllib.request.urlopen(url, timeout=10).status == 200
    assert "Traceback" not in log.read_text()
    assert page.hosts <= LOCAL, f"requests left the machine: {page.hosts - LOCAL}"


def test_app_flags_fail_before_gradio_and_tensorflow():
    """--help and bad flags answer without importing Gradio or TensorFlow (as a console script runs it)."""
    code = ("import sys; sys.argv[0] = 'nst-app'\nfrom nst_tf.cli.app import run\ntry:\n    run()\n"
            "except SystemExit as exc:\n    code = exc.code\n"
            "print('heavy:', 'tensorflow' in sys.modules or 'gradio' in sys.modules, file=sys.stderr)\n"
            "sys.exit(code)")
    for args, expected, rc in [(["--help"], None, 0), (["--port=70000"], "--port must be in 1..65535", 2),
                               (["--preset=nope"], "--preset=nope", 1), (["--preview_size=-1"], "must be positive", 2)]:
        proc = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True,
                              timeout=120)
        assert proc.stderr.strip().endswith("heavy: False"), (args, proc.stderr[-500:])
        assert proc.returncode == rc, (args, proc.returncode, proc.stderr[-500:])
        if expected is None:
            assert "--port" in proc.stdout and "--host" in proc.stdout
        else:
            assert expected in proc.stderr.rsplit("heavy:", 1)[0], proc.stderr[-500:]
