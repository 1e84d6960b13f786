// Zoom and pan of the label canvas and the picture together, so a label pixel stays over the same picture pixel.
//
// Both surfaces keep their size; inside them the label canvas and the picture get the same CSS transform
// (translate, then scale about the top-left corner). The view is kept as a zoom factor and a pan in fractions of
// the surface's width and height, so two surfaces of equal size get equal pixels. The overlay canvas that takes
// the pointer is never transformed: PaintCanvas reads positions against the label canvas's transformed rectangle.
//
// Input: the wheel zooms about the pointer (Ctrl+wheel too, which is what a trackpad pinch sends); two fingers
// pinch and pan; Space+drag or a middle-button drag pans; the fit button (and the 0 key) goes back to the whole
// canvas. A second finger landing takes over from the stroke the first one began (onPinchStart cancels it).

export const MIN_ZOOM = 1;
export const MAX_ZOOM = 16;
const WHEEL_STEP = 1.0015; // zoom factor per wheel delta pixel: one mouse notch (~100 px) is ×1.16

/** The pan that keeps `view` inside the surface at `zoom`: translate in [1 - zoom, 0] of the surface's size. */
export function clampView({ zoom, x, y }) {
  const z = Math.min(MAX_ZOOM, Math.max(MIN_ZOOM, zoom));
  const clamp = (v) => Math.min(0, Math.max(1 - z, v));
  return { zoom: z, x: clamp(x), y: clamp(y) };
}

/**
 * The view after zooming by `factor` about the point (u, v) of the surface (fractions of its size): the content
 * under that point stays under it.
 */
export function zoomAbout(view, factor, u, v) {
  const zoom = Math.min(MAX_ZOOM, Math.max(MIN_ZOOM, view.zoom * factor));
  const k = zoom / view.zoom;
  return clampView({ zoom, x: u - (u - view.x) * k, y: v - (v - view.y) * k });
}

export class ZoomView extends EventTarget {
  constructor({ surfaces, targets, fitButton, readout, onPinchStart }) {
    super();
    this.surfaces = surfaces; // the label and picture surfaces, same size, overflow hidden
    this.targets = targets; // the label canvas and the picture canvas, transformed together
    this.fitButton = fitButton;
    this.readout = readout; // shows "200%"
    this.onPinchStart = onPinchStart; // () => void: stop the stroke a first finger began
    this.view = { zoom: 1, x: 0, y: 0 };
    this.spaceDown = false;
    this.drag = null; // {pointerId, surface, x, y, view}: a pan in progress
    this.touches = new Map(); // pointerId -> {x, y} of fingers on a surface
    this.pinch = null; // {dist, mid, view}
    for (const surface of surfaces) this._wire(surface);
    // The pan is kept in fractions of the surface; a new window size (a phone turned) needs new pixels.
    new ResizeObserver(() => this._apply()).observe(surfaces[0]);
    fitButton.addEventListener("click", () => this.fit());
    window.addEventListener("keydown", (e) => {
      // On a focused button or field Space does what it does there (press it, type a space).
      if (e.code === "Space" && !isControl(e.target)) {
        this.spaceDown = true;
        e.preventDefault(); // no page scroll while Space is held to pan
      }
    });
    window.addEventListener("keyup", (e) => {
      if (e.code === "Space") this.spaceDown = false;
    });
    window.addEventListener("blur", () => (this.spaceDown = false));
    this._apply();
  }

  fit() {
    this.setView({ zoom: 1, x: 0, y: 0 });
  }

  /** Zoom by `factor` about the surfaces' centre (the + and - keys). */
  zoomBy(factor) {
    this.setView(zoomAbout(this.view, factor, 0.5, 0.5));
  }

  setView(view) {
    this.view = clampView(view);
    this._apply();
  }

  _apply() {
    const { zoom, x, y } = this.view;
    for (const el of this.targets) {
      const surface = el.parentElement;
      el.style.transformOrigin = "0 0";
      el.style.transform =
        zoom === 1 ? "" : `translate(${x * surface.clientWidth}px, ${y * surface.clientHeight}px) scale(${zoom})`;
    }
    for (const surface of this.surfaces) surface.dataset.zoomed = String(zoom > 1);
    this.fitButton.disabled = zoom === 1;
    this.readout.textContent = `${Math.round(zoom * 100)}%`;
    this.dispatchEvent(new CustomEvent("change", { detail: { ...this.view } }));
  }

  /** A client point as fractions of `surface`. */
  _uv(surface, clientX, clientY) {
    const r = surface.getBoundingClientRect();
    return { u: (clientX - r.left) / r.width, v: (clientY - r.top) / r.height };
  }

  _wire(surface) {
    surface.addEventListener(
      "wheel",
      (e) => {
        e.preventDefault();
        const { u, v } = this._uv(surface, e.clientX, e.clientY);
        const delta = e.deltaMode === 1 ? e.deltaY * 33 : e.deltaY; // lines → pixels
        this.setView(zoomAbout(this.view, WHEEL_STEP ** -delta, u, v));
      },
      { passive: false },
    );
    // Capture phase: a pan or pinch is decided before the canvas starts a stroke or a re-roll.
    surface.addEventListener("pointerdown", (e) => this._down(surface, e), { capture: true });
    surface.addEventListener("pointermove", (e) => this._move(surface, e));
    for (const type of ["pointerup", "pointercancel", "lostpointercapture"]) {
      surface.addEventListener(type, (e) => this._up(e));
    }
  }

  _down(surface, e) {
    if (e.pointerType === "touch") {
      this.touches.set(e.pointerId, { x: e.clientX, y: e.clientY });
      if (this.touches.size === 2) {
        this.onPinchStart();
        this.pinch = { ...this._pinchGeometry(surface), view: { ...this.view } };
        for (const id of this.touches.keys()) surface.setPointerCapture?.(id);
      }
      if (this.touches.size >= 2) {
        e.stopPropagation();
        e.preventDefault();
      }
      return;
    }
    if (!(this.spaceDown || e.button === 1)) return;
    e.stopPropagation(); // a pan, not a stroke
    e.preventDefault();
    surface.setPointerCapture(e.pointerId);
    this.drag = { pointerId: e.pointerId, surface, x: e.clientX, y: e.clientY, view: { ...this.view } };
    surface.dataset.panning = "true";
  }

  _move(surface, e) {
    if (this.touches.has(e.pointerId)) {
      this.touches.set(e.pointerId, { x: e.clientX, y: e.clientY });
      if (this.pinch && this.touches.size === 2) {
        const now = this._pinchGeometry(surface);
        const start = this.pinch;
        const zoomed = zoomAbout(start.view, now.dist / start.dist, start.mid.u, start.mid.v);
        this.setView({ ...zoomed, x: zoomed.x + now.mid.u - start.mid.u, y: zoomed.y + now.mid.v - start.mid.v });
      }
      return;
    }
    const d = this.drag;
    if (!d || d.pointerId !== e.pointerId) return;
    const r = d.surface.getBoundingClientRect();
    this.setView({
      ...d.view,
      x: d.view.x + (e.clientX - d.x) / r.width,
      y: d.view.y + (e.clientY - d.y) / r.height,
    });
  }

  _up(e) {
    this.touches.delete(e.pointerId);
    if (this.touches.size < 2) this.pinch = null;
    if (this.drag?.pointerId === e.pointerId) {
      delete this.drag.surface.dataset.panning;
      this.drag = null;
    }
  }

  _pinchGeometry(surface) {
    const [a, b] = [...this.touches.values()];
    const r = surface.getBoundingClientRect();
    return {
      dist: Math.max(1, Math.hypot(a.x - b.x, a.y - b.y)),
      mid: { u: ((a.x + b.x) / 2 - r.left) / r.width, v: ((a.y + b.y) / 2 - r.top) / r.height },
    };
  }
}

/** Whether a key event goes to a text field (letters type there instead of choosing tools). */
export function isTyping(target) {
  return target instanceof HTMLElement && target.matches("input[type=text], input:not([type]), select, textarea");
}

/** Whether a key event goes to a control that Space or Enter operates (a button, a field, a link). */
export function isControl(target) {
  return target instanceof HTMLElement && target.matches("button, input, select, textarea, a[href], summary");
}
