// The painting surface: two layered canvases over one label map.
//
//   label canvas    one canvas pixel per label pixel, coloured from the ids, scaled up by CSS (pixelated)
//   overlay canvas  device-pixel-ratio sized, on top; draws the brush outline and receives the pointer events
//
// The ids are the source of truth. Tools change them through the pure helpers (strokes.js, fill.js); the label
// canvas is only a view, repainted from the ids once per animation frame. Every finished gesture becomes one
// LabelEdit on the undo stack, found by diffing against a snapshot taken when the gesture began.
//
// Events (CustomEvent): `change` {final: bool} after any change of the ids (final=false while a gesture is
// still going), `pick` {id} from the eyedropper, `cursor` {x, y, id} (null when the pointer leaves), `history`,
// `resize` {width, height} when a resize step (or its undo or redo) gives the map another size, before the
// `change` that follows it.

import { MAX_BRUSH, maxBrushSize } from "./canvas-size.js";
import { floodFill } from "./fill.js";
import { History, LabelEdit } from "./history.js";
import { resizeNearest } from "./labelmap-io.js";
import { idsToRgba } from "./palette.js";
import { labelAt, paintSegment, radiusForSize, snapAngle } from "./strokes.js";

// "reroll" changes no ids: the app hears its clicks itself (reroll.js), this canvas only ignores them.
export const TOOLS = ["brush", "line", "fill", "eyedropper", "eraser", "reroll"];
export const MIN_SIZE = 1;

/**
 * A change of the map's size as one undoable step. It keeps both whole maps, so undoing a downscale brings back
 * every pixel the nearest-neighbour rescale dropped; the pixel edits below it on the stack stay valid because
 * undo reaches them only once the map has its old size again.
 */
class ResizeEdit {
  constructor(canvas, before, after) {
    this.name = "resize";
    this.canvas = canvas;
    this.before = before;
    this.after = after;
  }

  // The History hands every edit the ids; this one swaps the whole map instead. Each swap installs a copy, so
  // later strokes never touch the maps kept here, and the stream sees a new map object (see PaintStream).
  do() {
    this.canvas._resizeTo(copyMap(this.after));
  }

  undo() {
    this.canvas._resizeTo(copyMap(this.before));
  }
}

function copyMap(map) {
  return { width: map.width, height: map.height, ids: map.ids.slice() };
}

export class PaintCanvas extends EventTarget {
  constructor({ labelCanvas, overlayCanvas }) {
    super();
    this.labelCanvas = labelCanvas;
    this.overlayCanvas = overlayCanvas;
    this.labelCtx = labelCanvas.getContext("2d");
    this.overlayCtx = overlayCanvas.getContext("2d");
    this.map = null; // {width, height, ids}
    this.lut = null; // RGBA colour per id (palette.buildLut)
    this.image = null; // ImageData the ids are coloured into
    this.history = new History();
    this.tool = "brush";
    this.label = 0; // id painted by brush, line and fill
    this.eraserLabel = 0; // the model's background label
    this.size = 16; // brush diameter in label pixels
    this.maxSize = MAX_BRUSH; // the biggest brush this map allows (maxBrushSize)
    this.gesture = null; // the pointer gesture in progress
    this.hover = null; // last pointer position in label pixels, for the brush outline
    this.framePending = false;

    this._handlePointerDown = this._handlePointerDown.bind(this);
    this._handlePointerMove = this._handlePointerMove.bind(this);
    this._handlePointerUp = this._handlePointerUp.bind(this);
    this._handleHover = this._handleHover.bind(this);
    this._handleLeave = this._handleLeave.bind(this);
    // As in signature_pad: only pointerdown lives on the canvas; move/up go on the window for one gesture, so a
    // stroke that leaves the canvas keeps painting (clipped) instead of getting stuck.
    overlayCanvas.style.touchAction = "none";
    overlayCanvas.style.userSelect = "none";
    overlayCanvas.addEventListener("pointerdown", this._handlePointerDown);
    overlayCanvas.addEventListener("pointermove", this._handleHover);
    overlayCanvas.addEventListener("pointerleave", this._handleLeave);
    overlayCanvas.addEventListener("contextmenu", (e) => e.preventDefault());
    new ResizeObserver(() => this._resizeOverlay()).observe(overlayCanvas);
  }

  /** Replace the whole label map (new model, loaded file, starter scene); clears the undo stack. */
  setMap(map) {
    this._install(map);
    this.history.clear();
    this._emitHistory();
  }

  /**
   * Rescale the map to width×height with nearest neighbour (ids are never blended), as one undoable step named
   * "resize"; the brush scales with it. Returns the edit, or null when the map already has that size.
   */
  resize(width, height) {
    if (!this.map || (this.map.width === width && this.map.height === height)) return null;
    this.cancelGesture();
    // The map in use needs no copy: do() installs a copy of the rescaled one, and the edit alone keeps this one.
    const edit = new ResizeEdit(this, this.map, resizeNearest(this.map, width, height));
    edit.do();
    this.history.push(edit);
    this._changed(true);
    this._emitHistory();
    return edit;
  }

  setLut(lut) {
    this.lut = lut;
    this.redraw();
  }

  setTool(tool) {
    if (!TOOLS.includes(tool)) throw new Error(`unknown tool ${tool}`);
    this.cancelGesture();
    this.tool = tool;
    this.overlayCanvas.dataset.tool = tool;
    this._drawOverlay();
  }

  setSize(size) {
    this.size = Math.max(MIN_SIZE, Math.min(this.maxSize, Math.round(size)));
    this._drawOverlay();
  }

  /** Apply `mutate(ids)` as one undoable edit named `name` (clear, load, scene). Returns the edit or null. */
  applyEdit(name, mutate) {
    if (!this.map) return null;
    this.cancelGesture();
    const before = this.map.ids.slice();
    mutate(this.map.ids);
    const edit = LabelEdit.between(name, before, this.map.ids);
    if (this.history.push(edit)) this._changed(true);
    this._emitHistory();
    return edit;
  }

  undo() {
    if (!this.map) return null;
    this.cancelGesture();
    const edit = this.history.undo(this.map.ids);
    if (edit) this._changed(true);
    this._emitHistory();
    return edit;
  }

  redo() {
    if (!this.map) return null;
    this.cancelGesture();
    const edit = this.history.redo(this.map.ids);
    if (edit) this._changed(true);
    this._emitHistory();
    return edit;
  }

  /** Abort the gesture in progress (Escape, tool switch) and restore the ids it had changed. */
  cancelGesture() {
    const g = this.gesture;
    if (!g) return;
    this._endGesture();
    if (g.snapshot) {
      this.map.ids.set(g.snapshot);
      this._changed(true);
    }
  }

  _install(map) {
    this.map = map;
    this.maxSize = maxBrushSize(map.width, map.height);
    this.labelCanvas.width = map.width;
    this.labelCanvas.height = map.height;
    this.image = this.labelCtx.createImageData(map.width, map.height);
    this.redraw();
  }

  /** Install a map of another size for a resize step: brush and pointer scale with it, so both stay put on screen. */
  _resizeTo(map) {
    const sx = map.width / this.map.width;
    const sy = map.height / this.map.height;
    this._install(map);
    if (this.hover) this.hover = { x: this.hover.x * sx, y: this.hover.y * sy };
    this.setSize(this.size * sx);
    this.dispatchEvent(new CustomEvent("resize", { detail: { width: map.width, height: map.height } }));
  }

  /** Repaint the colour view from the ids (coalesced to one repaint per animation frame). */
  redraw() {
    if (this.framePending || !this.map || !this.lut) return;
    this.framePending = true;
    requestAnimationFrame(() => {
      this.framePending = false;
      idsToRgba(this.map.ids, this.lut, this.image.data);
      this.labelCtx.putImageData(this.image, 0, 0);
    });
  }

  // ------------------------------------------------------------------------------------------------------
  // Pointer input

  /** Label-map coordinates (floats) of a pointer event. */
  _toMap(event) {
    const rect = this.overlayCanvas.getBoundingClientRect();
    return {
      x: ((event.clientX - rect.left) / rect.width) * this.map.width,
      y: ((event.clientY - rect.top) / rect.height) * this.map.height,
    };
  }

  _handlePointerDown(event) {
    if (!this.map || this.gesture || (event.pointerType === "mouse" && event.button !== 0)) return;
    event.preventDefault();
    const p = this._toMap(event);
    // Alt-click picks a label with any tool, as in most paint programs.
    const tool = event.altKey ? "eyedropper" : this.tool;
    this.hover = p;
    if (tool === "reroll") return;
    if (tool === "eyedropper") {
      this._pick(p);
      this.gesture = { tool, pointerId: event.pointerId, snapshot: null };
    } else if (tool === "fill") {
      this.applyEdit("fill", () => floodFill(this.map, p.x, p.y, this.label));
      return;
    } else {
      const label = tool === "eraser" ? this.eraserLabel : this.label;
      this.gesture = { tool, label, pointerId: event.pointerId, snapshot: this.map.ids.slice(), start: p, last: p };
      paintSegment(this.map, p.x, p.y, p.x, p.y, radiusForSize(this.size), label);
      this._changed(false);
    }
    window.addEventListener("pointermove", this._handlePointerMove, { passive: false });
    window.addEventListener("pointerup", this._handlePointerUp, { passive: false });
    window.addEventListener("pointercancel", this._handlePointerUp, { passive: false });
  }

  _handlePointerMove(event) {
    const g = this.gesture;
    if (!g || event.pointerId !== g.pointerId) return;
    event.preventDefault();
    const radius = radiusForSize(this.size);
    // Coalesced events carry the intermediate positions a fast pen or mouse produced between two frames.
    const events = event.getCoalescedEvents?.().length ? event.getCoalescedEvents() : [event];
    let changed = false;
    for (const e of events) {
      let p = this._toMap(e);
      if (g.tool === "eyedropper") {
        this._pick(p);
      } else if (g.tool === "line") {
        if (e.shiftKey) p = snapAngle(g.start.x, g.start.y, p.x, p.y);
        // Re-rasterise the whole line from the snapshot so the live picture shows exactly the final result.
        this.map.ids.set(g.snapshot);
        paintSegment(this.map, g.start.x, g.start.y, p.x, p.y, radius, g.label);
        changed = true;
      } else {
        changed = paintSegment(this.map, g.last.x, g.last.y, p.x, p.y, radius, g.label) > 0 || changed;
      }
      g.last = p;
    }
    this.hover = g.last;
    if (changed) this._changed(false);
    this._drawOverlay();
  }

  _handlePointerUp(event) {
    const g = this.gesture;
    if (!g || event.pointerId !== g.pointerId) return;
    this._endGesture();
    if (g.snapshot) {
      this.history.push(LabelEdit.between(g.tool, g.snapshot, this.map.ids));
      this._changed(true);
      this._emitHistory();
    }
  }

  _endGesture() {
    this.gesture = null;
    window.removeEventListener("pointermove", this._handlePointerMove);
    window.removeEventListener("pointerup", this._handlePointerUp);
    window.removeEventListener("pointercancel", this._handlePointerUp);
  }

  _handleHover(event) {
    if (!this.map) return;
    const p = this._toMap(event);
    this.hover = p;
    this.dispatchEvent(
      new CustomEvent("cursor", {
        detail: { x: Math.floor(p.x), y: Math.floor(p.y), id: labelAt(this.map, p.x, p.y) },
      }),
    );
    if (!this.gesture) this._drawOverlay();
  }

  _handleLeave() {
    if (this.gesture) return;
    this.hover = null;
    this.dispatchEvent(new CustomEvent("cursor", { detail: null }));
    this._drawOverlay();
  }

  _pick(p) {
    const id = labelAt(this.map, p.x, p.y);
    if (id >= 0) this.dispatchEvent(new CustomEvent("pick", { detail: { id } }));
  }

  _changed(final) {
    this.redraw();
    this.dispatchEvent(new CustomEvent("change", { detail: { final } }));
  }

  _emitHistory() {
    this.dispatchEvent(
      new CustomEvent("history", { detail: { canUndo: this.history.canUndo, canRedo: this.history.canRedo } }),
    );
  }

  // ------------------------------------------------------------------------------------------------------
  // Overlay: brush outline, sized in device pixels so it stays crisp at any zoom and devicePixelRatio.

  _resizeOverlay() {
    const canvas = this.overlayCanvas;
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(canvas.clientWidth * dpr));
    const h = Math.max(1, Math.round(canvas.clientHeight * dpr));
    if (canvas.width !== w || canvas.height !== h) {
      canvas.width = w;
      canvas.height = h;
    }
    this._drawOverlay();
  }

  _drawOverlay() {
    const ctx = this.overlayCtx;
    const canvas = this.overlayCanvas;
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    if (!this.map || !this.hover || !["brush", "line", "eraser"].includes(this.tool)) return;
    const scale = canvas.width / this.map.width; // device pixels per label pixel
    const dpr = window.devicePixelRatio || 1;
    const r = Math.max(2 * dpr, radiusForSize(this.size) * scale);
    const x = this.hover.x * scale;
    const y = this.hover.y * scale;
    ctx.lineWidth = 1.5 * dpr;
    ctx.beginPath();
    ctx.arc(x, y, r, 0, Math.PI * 2);
    ctx.strokeStyle = "rgba(0, 0, 0, 0.55)";
    ctx.stroke();
    ctx.beginPath();
    ctx.arc(x, y, Math.max(1, r - 1.5 * dpr), 0, Math.PI * 2);
    ctx.strokeStyle = "rgba(255, 255, 255, 0.9)";
    ctx.stroke();
    const g = this.gesture;
    if (g && g.tool === "line") {
      // Centre line of the line being dragged, so the direction is visible even under a large brush.
      ctx.beginPath();
      ctx.moveTo(g.start.x * scale, g.start.y * scale);
      ctx.lineTo(x, y);
      ctx.setLineDash([4 * dpr, 4 * dpr]);
      ctx.strokeStyle = "rgba(255, 255, 255, 0.8)";
      ctx.stroke();
      ctx.setLineDash([]);
    }
  }
}
