"""nst-app: a web app to try styles (Gradio, offline): upload or pick a photo and a painting, move the strength
slider for an instant preview of the feed-forward network, blend two paintings, keep the photo's colours, refine
with the optimiser (progress bar, cancel) and download at full size.

Every handler turns a bad input into a message in the page (a warning and the status line), never a traceback;
the server keeps serving. Nothing is fetched from the internet: analytics off, system fonts, no CDN.
"""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import functools  # noqa: E402
import logging  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from collections.abc import Callable  # noqa: E402

import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402

from nst_tf import api, images, presets  # noqa: E402

ASSETS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets")
PHOTOS = ("tubingen.jpg", "golden_gate.jpg")
PAINTINGS = ("starry_night.jpg", "the_scream.jpg")
PREVIEW_SIZE = 384
FULL_SIZE_MAX = 2048  # long side of the full-size download (the photo's own size up to this)
MAX_PIXELS = 40_000_000  # uploads above this are refused with a message (and 25 MB per file, by Gradio)
MAX_FILE_SIZE = "25mb"
COLORS = ("none", "luminance", "histogram")
log = logging.getLogger("nst-app")


def upload_box(label: str, elem_id: str) -> gr.Image:
    """Gradio's image box, handing over the uploaded file's path undecoded: nst_tf reads it and names a bad file
    in the page (Gradio's own decoding would fail with a bare 'Error'). A subclass would make Gradio write a .pyi
    stub beside this module, so the one instance's preprocess is replaced instead."""
    box = gr.Image(label=label, sources=["upload"], elem_id=elem_id, height=260, type="filepath")
    box.preprocess = lambda payload: None if payload is None else payload.path
    return box


def sample(name: str) -> str:
    """The path of a bundled sample picture."""
    return os.path.join(ASSETS, name)


def read_upload(path: str | None, role: str) -> np.ndarray | None:
    """An uploaded file as a float image (long side at most FULL_SIZE_MAX); NSTError naming `role` if bad."""
    if path is None:
        return None
    try:
        pixels = images.load_image(path, max_pixels=MAX_PIXELS)
    except images.ImageError as exc:
        problem = str(exc).splitlines()[0].split(": ", 1)[-1]
        raise api.NSTError(f"{role} ({os.path.basename(path)}): {problem}") from None
    if min(pixels.shape[:2]) < images.MIN_SIDE:
        raise api.NSTError(f"{role} ({os.path.basename(path)}): too small ({pixels.shape[1]}x{pixels.shape[0]} px)")
    if max(pixels.shape[:2]) > FULL_SIZE_MAX:
        pixels = images.resize_long_side(pixels, FULL_SIZE_MAX, role)
    return pixels


def styles_and_blend(painting: np.ndarray | None, second: np.ndarray | None, blend: float):
    """The style list and weights: the painting alone, or both with `blend` the second one's share."""
    if painting is None and second is None:
        raise api.NSTError("painting: upload a painting or pick a sample")
    if painting is None or second is None:
        return [painting if painting is not None else second], None
    return [painting, second], [1.0 - blend, blend]


def fast_result(photo, painting, second, strength, blend, colors, size) -> np.ndarray:
    """The feed-forward network's result at long side `size` (at most the photo's own)."""
    if photo is None:
        raise api.NSTError("photo: upload a photo or pick a sample")
    styles, weights = styles_and_blend(painting, second, blend)
    size = min(int(size), max(photo.shape[:2]))
    out = api.stylize(photo, styles, method="fast", size=size, strength=float(strength), style_blend=weights,
                      preserve_colors=colors)
    return np.asarray(out, np.float32) / 255.0


def refine_result(photo, painting, second, start, blend, colors, preset, weights, progress, stop) -> np.ndarray:
    """The optimiser with a preset's settings, started from `start` (the current result); stops when `stop` is
    set (the image so far)."""
    if start is None:
        raise api.NSTError("refine: make a preview first (a photo and a painting)")
    styles, style_blend = styles_and_blend(painting, second, blend)

    def report(step, total, losses):
        progress((step, total), desc=f"refining: style loss {losses.get('style', 0.0):.3g}")
        return not stop.is_set()

    out = api.stylize(photo, styles, method="optimize", preset=preset, init=start, style_blend=style_blend,
                      preserve_colors=colors, weights=weights, progress=report)
    return np.asarray(out, np.float32) / 255.0


def _write(pixels: np.ndarray, folder: str) -> str:
    fd, path = tempfile.mkstemp(prefix="nst_", suffix=".png", dir=folder)
    os.close(fd)
    images.save_image(pixels, path)
    return path


def _guard(handler: Callable, fallback: Callable) -> Callable:
    """Run a handler; a bad input or any failure becomes a warning and a status line, never a traceback."""

    @functools.wraps(handler)  # Gradio reads the signature (gr.Request, gr.SelectData, gr.Progress)
    def run(*args, **kwargs):
        try:
            return handler(*args, **kwargs)
        except api.NSTError as exc:
            message = str(exc)
        except Exception as exc:  # the page must keep working: log it, say it in one line
            log.error("nst-app: %s", traceback.format_exc())
            message = f"internal error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        gr.Warning(message)
        return fallback(f"⚠ {message}")

    return run


THEME_FONTS = dict(font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])
CSS = "#status {min-height: 1.5em} footer {display: none !important}"


def build(weights: str = "imagenet", preset: str = "preview", preview_size: int = PREVIEW_SIZE) -> gr.Blocks:
    """The app's page and handlers."""
    folder = tempfile.mkdtemp(prefix="nst_app_")
    stops: dict[str, threading.Event] = {}
    refine_info = "; ".join(f"{name}: {presets.describe(name).split(':')[0].lower()}" for name in presets.names())

    with gr.Blocks(title="nst_tf: neural style transfer", analytics_enabled=False) as page:
        gr.Markdown("## nst_tf: neural style transfer\nUpload a photo and a painting (or pick samples), move the "
                    "strength slider, then *Refine* with the optimiser and download the result at full size.")
        photo, painting, second = gr.State(None), gr.State(None), gr.State(None)
        result, refined = gr.State(None), gr.State(False)
        with gr.Row():
            with gr.Column():
                photo_box = upload_box("Photo", "photo")
                photo_gallery = gr.Gallery([sample(p) for p in PHOTOS], label="Sample photos", columns=2,
                                           height=120, allow_preview=False, elem_id="photo_samples", buttons=[])
            with gr.Column():
                painting_box = upload_box("Painting", "painting")
                painting_gallery = gr.Gallery([sample(p) for p in PAINTINGS], label="Sample paintings", columns=2,
                                              height=120, allow_preview=False, elem_id="painting_samples",
                                              buttons=[])
            with gr.Column():
                second_box = upload_box("Second painting (optional, blended)", "second")
                blend = gr.Slider(0.0, 1.0, 0.5, step=0.05, label="Blend: share of the second painting",
                                  elem_id="blend")
        with gr.Row():
            with gr.Column():
                strength = gr.Slider(0.0, 2.0, 1.0, step=0.05, label="Strength (0: the photo, 1: the painting, "
                                     "2: more painterly)", elem_id="strength")
                colors = gr.Radio(list(COLORS), value="none", label="Keep the photo's colours", elem_id="colors")
                refine_preset = gr.Dropdown(presets.names(), value=preset, label="Refine with (a preset)",
                                            info=refine_info, elem_id="refine_preset")
                with gr.Row():
                    refine_button = gr.Button("Refine", variant="primary", elem_id="refine")
                    cancel_button = gr.Button("Cancel", variant="stop", elem_id="cancel")
                full_button = gr.Button("Full size", elem_id="full_size")
                download = gr.File(label="Download", interactive=False, elem_id="download", visible=False)
            with gr.Column(scale=2):
                status = gr.Markdown("", elem_id="status")
                output = gr.Image(label="Result", type="numpy", interactive=False, elem_id="result", height=460,
                                  buttons=["fullscreen"])

        def load(role: str):
            def handler(path):
                pixels = read_upload(path, role)
                if pixels is None:
                    return gr.skip(), None, ""
                return gr.skip(), pixels, f"{role}: {pixels.shape[1]}x{pixels.shape[0]} px"
            return _guard(handler, lambda message: (None, None, message))

        def pick(names):
            def handler(event: gr.SelectData):
                path = sample(names[event.index])
                return path, read_upload(path, "sample"), f"sample: {os.path.basename(path)}"
            return _guard(handler, lambda message: (None, None, message))

        def show(photo_pixels, painting_pixels, second_pixels, strength_value, blend_value, colors_value):
            if photo_pixels is None or (painting_pixels is None and second_pixels is None):
                return gr.skip(), gr.skip(), gr.skip(), gr.skip()  # not both yet: nothing to show
            pixels = fast_result(photo_pixels, painting_pixels, second_pixels, strength_value, blend_value,
                                 colors_value, preview_size)
            h, w = pixels.shape[:2]
            return pixels, pixels, False, f"preview: {w}x{h} px, strength {strength_value:g}"

        preview = _guard(show, lambda message: (gr.skip(), gr.skip(), gr.skip(), message))
        inputs = [photo, painting, second, strength, blend, colors]
        preview_outputs = [output, result, refined, status]

        for box, state, role in ((photo_box, photo, "photo"), (painting_box, painting, "painting"),
                                 (second_box, second, "second painting")):
            box.upload(load(role), [box], [box, state, status]).success(preview, inputs, preview_outputs)
            box.clear(lambda: (None, ""), None, [state, status]).then(preview, inputs, preview_outputs)
        photo_gallery.select(pick(PHOTOS), None, [photo_box, photo, status]).success(preview, inputs,
                                                                                     preview_outputs)
        painting_gallery.select(pick(PAINTINGS), None, [painting_box, painting, status]).success(
            preview, inputs, preview_outputs)
        for control in (strength, blend):
            control.release(preview, inputs, preview_outputs, trigger_mode="always_last")
        colors.change(preview, inputs, preview_outputs, trigger_mode="always_last")

        def refine(photo_pixels, painting_pixels, second_pixels, start, blend_value, colors_value, preset_name,
                   request: gr.Request, progress=gr.Progress()):
            stop = stops.setdefault(request.session_hash or "", threading.Event())
            stop.clear()
            pixels = refine_result(photo_pixels, painting_pixels, second_pixels, start, blend_value, colors_value,
                                   preset_name, weights, progress, stop)
            h, w = pixels.shape[:2]
            note = "refine cancelled: the image so far" if stop.is_set() else "refined"
            return pixels, pixels, True, f"{note}: {w}x{h} px ({preset_name})"

        def cancel(request: gr.Request):
            stops.setdefault(request.session_hash or "", threading.Event()).set()
            return "cancelling…"

        refine_button.click(_guard(refine, lambda message: (gr.skip(), gr.skip(), gr.skip(), message)),
                            [photo, painting, second, result, blend, colors, refine_preset], preview_outputs,
                            concurrency_limit=1)
        cancel_button.click(cancel, None, [status], concurrency_limit=None, queue=False)

        def full_size(photo_pixels, painting_pixels, second_pixels, current, was_refined, strength_value,
                      blend_value, colors_value):
            if was_refined and current is not None:
                pixels = current
            else:
                pixels = fast_result(photo_pixels, painting_pixels, second_pixels, strength_value, blend_value,
                                     colors_value, FULL_SIZE_MAX)
            h, w = pixels.shape[:2]
            note = f"full size: {w}x{h} px{' (refined)' if was_refined else ''}"
            return gr.update(value=_write(pixels, folder), visible=True), note

        full_button.click(_guard(full_size, lambda message: (gr.skip(), message)),
                          [photo, painting, second, result, refined, strength, blend, colors], [download, status])
    return page


def warm_up() -> None:
    """Load TensorFlow and the bundled network in the background, so that the first preview is quick."""
    try:
        api._network(None)
        print("nst-app: ready (network loaded)", flush=True)
    except Exception:  # the first preview will say what is wrong
        log.warning("nst-app: warm-up failed: %s", traceback.format_exc())


def _patient_url_ok(url: str, wait: float = 120.0) -> bool:
    """Gradio's start-up check that the page answers, with more patience (3 s per try is too little on a busy
    2-core machine, and Gradio then stops with 'localhost is not accessible')."""
    import httpx

    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            if httpx.head(url, timeout=15, verify=False).status_code in (200, 401, 301, 302, 303, 307, 308):
                return True
        except (httpx.HTTPError, OSError):
            pass
        time.sleep(0.5)
    return False


def serve(host: str = "127.0.0.1", port: int = 7860, weights: str = "imagenet", preset: str = "preview",
          preview_size: int = PREVIEW_SIZE, block: bool = True) -> None:
    """Build the page and serve it on host:port (offline: no share link, no analytics, system fonts)."""
    logging.getLogger("httpx").setLevel(logging.WARNING)  # no line per request of Gradio's own start-up checks
    page = build(weights, preset, preview_size)
    gr.networking.url_ok = _patient_url_ok
    page.queue(default_concurrency_limit=2)
    page.launch(server_name=host, server_port=port, share=False, inbrowser=False, show_error=False,
                max_file_size=MAX_FILE_SIZE, ssr_mode=False, allowed_paths=[ASSETS], prevent_thread_lock=True,
                quiet=False, theme=gr.themes.Default(**THEME_FONTS), css=CSS, footer_links=[], mcp_server=False)
    threading.Thread(target=warm_up, daemon=True).start()  # after the page is up: it answers meanwhile
    if block:
        page.block_thread()
