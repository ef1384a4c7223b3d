"""Take docs/images/app.png: nst-app with the Tübingen photo in the style of The Starry Night, strength 1.6.

  nst-app --weights=lpips &                                    # or any running nst-app
  python docs/app_screenshot.py --url=http://127.0.0.1:7860/

Drives Debian's chromium through Playwright (as tests/test_app_browser.py does): picks the sample photo and
painting, moves the strength slider, waits for the preview, and saves the page.
"""

from __future__ import annotations

import argparse
import os

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> None:
    """Open the page, make a preview, save the screenshot."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:7860/", help="the running app")
    parser.add_argument("--output", default=os.path.join(HERE, "images", "app.png"), help="PNG file to write")
    parser.add_argument("--chromium", default="/usr/bin/chromium", help="the browser")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    wait = "t => document.querySelector('#status').innerText.includes(t)"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(600_000)
        page.goto(args.url)
        page.locator("#photo_samples .thumbnail-item").first.click()
        page.wait_for_function(wait, arg="sample: tubingen.jpg")
        page.locator("#painting_samples .thumbnail-item").first.click()
        page.wait_for_function(wait, arg="preview: ")
        box = page.locator("#strength input[type=range]").bounding_box()
        page.mouse.click(box["x"] + 0.8 * box["width"], box["y"] + box["height"] / 2)
        page.wait_for_function(wait, arg="strength 1.")
        page.mouse.move(0, 0)
        shot = page.screenshot(full_page=True)
        browser.close()
    import io

    from PIL import Image

    with Image.open(io.BytesIO(shot)) as image:  # 256 colours: a third of the bytes, no visible loss here
        image.convert("RGB").quantize(256, dither=Image.Dither.FLOYDSTEINBERG).save(args.output, optimize=True)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
