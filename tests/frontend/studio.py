"""A page running the studio in a real browser, with helpers that speak in label-map pixels (shared by the
browser tests)."""

from __future__ import annotations

import base64
import json
import re

import numpy as np
from playwright.sync_api import ConsoleMessage, Page

MODEL = "tiny-spade"

# The autosaved project in `store` for `model`, flattened: each pixel from the top visible layer painting it.
SAVED_IDS_JS = """((store, model) => {
    const saved = JSON.parse(store.getItem(`collage-studio.map.${model}`) ?? "null");
    if (saved === null) return null;
    const n = saved.width * saved.height;
    // Each layer's run-length code (frontend/project-io.js): an id byte, then the run's length as a LEB128 varint.
    const unrun = (text) => {
        const bytes = Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
        const ids = new Uint8Array(n);
        for (let k = 0, at = 0; k < bytes.length; ) {
            const id = bytes[k++];
            let len = 0;
            for (let shift = 0; ; shift += 7) {
                const b = bytes[k++];
                len += (b & 0x7f) * 2 ** shift;
                if (!(b & 0x80)) break;
            }
            ids.fill(id, at, at + len);
            at += len;
        }
        return ids;
    };
    const layers = saved.layers.filter((l, k) => k === 0 || l.visible).map((l) => unrun(l.runs));
    return Array.from({ length: n }, (_, i) => {
        for (let k = layers.length - 1; k > 0; k--) if (layers[k][i] !== 255) return layers[k][i];
        return layers[0][i];
    });
})"""


def decode_runs(text: str, length: int) -> np.ndarray:
    """A layer's `runs` field of a project file (base64 of run-length code) → its `length` ids."""
    data, out, k = base64.b64decode(text), [], 0
    while k < len(data):
        value, run, shift = data[k], 0, 0
        k += 1
        while True:
            run |= (data[k] & 0x7F) << shift
            shift += 7
            k += 1
            if not data[k - 1] & 0x80:
                break
        out.append(np.full(run, value, np.uint8))
    ids = np.concatenate(out)
    assert ids.size == length, (ids.size, length)
    return ids


class Studio:
    """A page running the app, with helpers that speak in label-map pixels."""

    def __init__(self, page: Page, base_url: str) -> None:
        self.page = page
        self.base_url = base_url
        self.console_errors: list[str] = []
        page.on("console", self._on_console)
        page.on("pageerror", lambda exc: self.console_errors.append(f"page error: {exc}"))

    def _on_console(self, msg: ConsoleMessage) -> None:
        if msg.type == "error":
            self.console_errors.append(msg.text)

    def open(self, query: str = "") -> None:
        self.page.goto(f"{self.base_url}/{query}")
        self._wait_ready()

    def reload(self) -> None:
        self.page.reload()
        self._wait_ready()

    def _wait_ready(self) -> None:
        self.page.wait_for_function("window.collage && window.collage.framesShown() > 0", timeout=20_000)

    def wait_autosaved(self) -> None:
        """Wait until the drawing every tab shares (localStorage) is this page's current label map and size."""
        self.page.wait_for_function(
            """model => {
                const { width, height } = collage.getSize();
                const ids = savedIds(localStorage, model);
                return ids !== null && ids.length === width * height
                    && collage.getLabelIds().every((id, i) => ids[i] === id);
            }""".replace("savedIds", SAVED_IDS_JS),
            arg=MODEL,
        )

    def saved_ids(self, store: str = "localStorage") -> np.ndarray | None:
        """The autosaved drawing of `store`, flattened as the app flattens its layers (None when there is none)."""
        size = self.page.evaluate("collage.getSize()")
        flat = self.page.evaluate(f"({SAVED_IDS_JS})({store}, {json.dumps(MODEL)})")
        return None if flat is None else np.array(flat, np.uint8).reshape(size["height"], size["width"])

    def ids(self) -> np.ndarray:
        size = self.page.evaluate("collage.getSize()")
        flat = self.page.evaluate("collage.getLabelIds()")
        return np.array(flat, dtype=np.uint8).reshape(size["height"], size["width"])

    def wait_fresh_frame(self, after: int) -> int:
        """Wait for a frame newer than `after` that answers the current label map; returns its seq.

        The newest map gets its seq only once the throttle lets it go and it is compressed, so a frame whose seq
        equals lastSentSeq may still answer an older map (mid-stroke, before an undo) while `sendPending()`.
        """
        self.page.wait_for_function(
            """after => collage.connectionState() === 'open' && !collage.sendPending()
                && collage.lastFrameSeq() > after && collage.lastFrameSeq() === collage.lastSentSeq()""",
            arg=after,
            timeout=20_000,
        )
        return int(self.page.evaluate("collage.lastFrameSeq()"))

    def seq(self) -> int:
        return int(self.page.evaluate("collage.lastFrameSeq()"))

    def picture(self) -> np.ndarray:
        """The output canvas as an H×W×3 float array."""
        rgba = self.page.evaluate(
            """() => {
                const c = document.getElementById('output-canvas');
                return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data);
            }"""
        )
        w, h = self.page.evaluate(
            "[document.getElementById('output-canvas').width, document.getElementById('output-canvas').height]"
        )
        return np.array(rgba, dtype=np.float32).reshape(h, w, 4)[..., :3]

    def to_client(self, x: float, y: float) -> tuple[float, float]:
        """Label-map coordinates → page coordinates on the painting surface."""
        box = self.page.locator("#label-canvas").bounding_box()  # zoom moves it under the overlay
        assert box is not None
        size = self.page.evaluate("collage.getSize()")
        return box["x"] + x * box["width"] / size["width"], box["y"] + y * box["height"] / size["height"]

    def stroke(self, *points: tuple[float, float], steps: int = 6) -> None:
        mouse = self.page.mouse
        mouse.move(*self.to_client(*points[0]))
        mouse.down()
        for p in points[1:]:
            mouse.move(*self.to_client(*p), steps=steps)
        mouse.up()

    def click_at(self, x: float, y: float) -> None:
        self.page.mouse.click(*self.to_client(x, y))

    def pick_label(self, name: str) -> int:
        swatch = self.page.locator(".swatch", has_text=re.compile(rf"^{name}", re.I))
        swatch.click()
        return int(swatch.get_attribute("data-label-id") or -1)

    def set_brush(self, size: int) -> None:
        self.page.locator("#brush-size").fill(str(size))
        assert self.page.evaluate("collage.brushSize()") == size

    def choose_canvas(self, side: int) -> None:
        """Pick the side×side canvas in the top bar and wait until the label map has that size."""
        self.page.locator("#canvas-size").select_option(f"{side}x{side}")
        self.page.wait_for_function(
            "side => collage.getSize().width === side && collage.getSize().height === side", arg=side
        )


def capsule(
    shape: tuple[int, int], p0: tuple[float, float], p1: tuple[float, float], radius: float
) -> np.ndarray:
    """Pixels whose centre lies within `radius` of the segment p0–p1 (the app's brush rule, written in numpy)."""
    ys, xs = np.mgrid[0 : shape[0], 0 : shape[1]] + 0.5
    d = np.subtract(p1, p0)
    t = np.clip(((xs - p0[0]) * d[0] + (ys - p0[1]) * d[1]) / max(float(d @ d), 1e-12), 0, 1)
    return (xs - p0[0] - t * d[0]) ** 2 + (ys - p0[1] - t * d[1]) ** 2 <= radius**2


def nearest(ids: np.ndarray, height: int, width: int) -> np.ndarray:
    """The app's nearest-neighbour rescale (resizeNearest): each pixel takes the source pixel under its centre."""
    rows = np.minimum(((np.arange(height) + 0.5) * ids.shape[0] / height).astype(int), ids.shape[0] - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * ids.shape[1] / width).astype(int), ids.shape[1] - 1)
    return ids[np.ix_(rows, cols)]


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).mean())


def box(page: Page, selector: str) -> dict[str, float]:
    """The page-coordinate box of the element `selector` names."""
    found = page.locator(selector).bounding_box()
    assert found is not None, selector
    return found


def assert_caption_fits(page: Page, pane: str) -> None:
    """The pane's caption is no wider than its surface, and its name and meta do not run into each other."""
    surface, caption = box(page, f"{pane} .surface"), box(page, f"{pane} figcaption")
    assert caption["width"] <= surface["width"] + 0.5, (pane, caption, surface)
    name, meta = box(page, f"{pane} figcaption > span:first-child"), box(page, f"{pane} .caption-meta")
    assert name["x"] + name["width"] <= meta["x"] or meta["y"] >= name["y"] + name["height"], (name, meta)
