"""The README's studio screenshots: the served default model, mid-session, in Debian chromium.

Starts `python -m server` on a free port with the repository's weights/, opens the app as a returning user (no
first-visit hint), paints a few strokes on the starter scene (trees, a rock), adds a layer named "Village" with a
house drawn by the rectangle tool, picks a preset style, waits for the frame answering the final map and saves a
screenshot. Rerun it whenever the shipped model or the studio's look changes.

    .venv/bin/python scripts/screenshot.py                                            # docs/studio.png, 1440×900
    .venv/bin/python scripts/screenshot.py --viewport 390x844 --out docs/studio-phone.png
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, server: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"the server exited with {server.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    sys.exit(f"the server did not answer at {url} within {timeout:.0f} s")


def stroke(page: Page, points: list[tuple[float, float]]) -> None:
    """A mouse stroke through label-map coordinates given as fractions of the map."""
    box = page.locator("#label-canvas").bounding_box()
    assert box is not None
    xy = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in points]
    page.mouse.move(*xy[0])
    page.mouse.down()
    for x, y in xy[1:]:
        page.mouse.move(x, y, steps=8)
    page.mouse.up()


def wait_fresh_frame(page: Page) -> None:
    """Until the picture on screen answers the newest label map (no send pending)."""
    page.wait_for_function(
        "collage.connectionState() === 'open' && !collage.sendPending()"
        " && collage.lastFrameSeq() > 0 && collage.lastFrameSeq() === collage.lastSentSeq()",
        timeout=30_000,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "studio.png")
    parser.add_argument("--style", default="golden-hour", help="preset style chip to pick")
    parser.add_argument("--viewport", default="1440x900", help="browser window, WIDTHxHEIGHT")
    args = parser.parse_args()
    width, height = (int(v) for v in args.viewport.split("x"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as data:
        env = {**os.environ, "COLLAGE_DATA_DIR": data, "COLLAGE_WEIGHTS_DIR": str(REPO / "weights")}
        server = subprocess.Popen(
            [sys.executable, "-m", "server", "--host", "127.0.0.1", "--port", str(port)], cwd=REPO, env=env
        )
        try:
            wait_ready(url, server)
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM)
                page = browser.new_page(viewport={"width": width, "height": height}, device_scale_factor=1)
                page.add_init_script("localStorage.setItem('collage-studio.hint-seen', '1')")
                page.goto(url)
                wait_fresh_frame(page)
                page.locator(f"#style-presets [data-preset='{args.style}']").click()
                for name, size, points in [
                    ("tree", 14, [(0.08, 0.74), (0.08, 0.86)]),
                    ("tree", 22, [(0.90, 0.76), (0.91, 0.78)]),
                    ("rock", 10, [(0.30, 0.86), (0.33, 0.87)]),
                ]:
                    page.locator(".swatch", has_text=name).first.click()
                    page.locator("#brush-size").fill(str(size))
                    stroke(page, points)
                page.locator("#layer-add").click()
                page.locator(".layer-row.current .layer-name").dblclick()
                page.locator(".layer-rename").fill("Village")
                page.keyboard.press("Enter")
                page.locator(".swatch", has_text="house").first.click()
                page.keyboard.press("u")
                stroke(page, [(0.64, 0.78), (0.76, 0.88)])
                page.keyboard.press("b")
                wait_fresh_frame(page)
                page.mouse.move(
                    *(lambda b: (b["x"] + 0.4 * b["width"], b["y"] + 0.3 * b["height"]))(
                        page.locator("#label-canvas").bounding_box()
                    )
                )  # the brush preview shows where the cursor is
                page.evaluate("window.scrollTo(0, 0)")  # a phone scrolled down to the palette while painting
                args.out.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(args.out))
                browser.close()
        finally:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
    print(args.out)  # noqa: T201


if __name__ == "__main__":
    main()
