// The painting surface: a stack of layers, the flattened label map they make, and two canvases showing it.
//
//   label canvas    one canvas pixel per label pixel, coloured from the flattened ids, scaled up by CSS (pixelated)
//                   and, when zoomed, moved by a CSS transform (zoom.js); pointer positions are read against it
//   overlay canvas  device-pixel-ratio sized, on top and never transformed; draws the brush outline and shape
//                   previews and receives the pointer events
//
// The layers' ids are the source of truth (layers.js); `map` is their flattened stack, the label map the server
// renders, recomputed after every change. Tools change the current layer through the pure helpers (strokes.js,
// shapes.js, fill.js); the label canvas is only a view, repainted once per animation frame. Every finished gesture
// becomes one edit on the undo stack, found by diffing the layer against a snapshot taken when the gesture began,
// so a gesture that is cancelled or still going is never part of `committedLayers()` (what autosave stores).
//
// Strokes, lines and shapes may start, pass or end outside the canvas: the app forwards presses on the page
// around it (startFromPage), moves and releases are heard on the window, and the rasterisers clip.
//
// Events (CustomEvent): `change` {final: bool} after any change of the flattened ids (final=false while a gesture
// is still going), `pick` {id} from the eyedropper, `cursor` {x, y, id} (null when the pointer leaves),
// `history`, `refused` {message} when a tool cannot paint (a hidden layer), `layers` when the stack, the current
// layer or a layer's name or visibility changes, `resize`
// {width, height} when a resize step (or its undo or redo) gives the map another size, before the `change`.

import { MAX_BRUSH, maxBrushSize } from "./canvas-size.js";
import { majorityAround, regionMask } from "./fill.js";
import { History, LabelEdit } from "./history.js";
import {
  EMPTY,
  GroupEdit,
  Layer,
  LayerPropEdit,
  PixelEdit,
  StackEdit,
  flattenInto,
  ownerMap,
  snapshot,
  withObjectRemoved,
} from "./layers.js";
import { resizeNearest } from "./labelmap-io.js";
import { drawGuides } from "./guides.js";
import { idsToRgba } from "./palette.js";
import { paintEllipse, paintPolygon, paintRectShape, squareCorner } from "./shapes.js";
import { labelAt, paintSegment, radiusForSize, snapAngle } from "./strokes.js";

// "reroll" changes no ids: the app hears its clicks itself (reroll.js), this canvas only ignores them.
export const TOOLS = ["brush", "line", "rect", "ellipse", "polygon", "fill", "eyedropper", "eraser", "object", "reroll"];
export const MIN_SIZE = 1;
const DRAG_TOOLS = ["brush", "line", "eraser", "rect", "ellipse"]; // press, drag, release
const PAGE_TOOLS = [...DRAG_TOOLS, "polygon"]; // tools a press outside the canvas may start
const OUTLINE_TOOLS = ["brush", "line", "eraser"]; // tools whose brush outline follows the pointer
const WRITES_ACTIVE = [...PAGE_TOOLS, "fill"]; // tools that paint on the current layer
const CLOSE_PX = { mouse: 8, pen: 10, touch: 22 }; // a polygon click this close (screen px) to its first point closes it

export class PaintCanvas extends EventTarget {
  constructor({ labelCanvas, overlayCanvas }) {
    super();
    this.labelCanvas = labelCanvas;
    this.overlayCanvas = overlayCanvas;
    this.labelCtx = labelCanvas.getContext("2d");
    this.layers = []; // Layer objects, bottom first (layers.js)
    this.active = null; // the layer tools paint on
    this.map = null; // {width, height, ids}: the flattened stack
    this.lut = null; // RGBA colour per id (palette.buildLut)
    this.image = null; // ImageData the ids are coloured into
    this.history = new History();
    this.tool = "brush";
    this.label = 0; // id painted by brush, line, shapes and fill
    this.eraserLabel = 0; // the model's background label: what the eraser paints on the bottom layer
    this.size = 16; // brush diameter in label pixels
    this.maxSize = MAX_BRUSH; // the biggest brush this map allows (maxBrushSize)
    this.gesture = null; // the gesture in progress (a drag, or a polygon being clicked together)
    this.hover = null; // last pointer position in label pixels, for the brush outline
    this.framePending = false;
    this.layerCount = 0; // for default names: "Layer 2", "Layer 3", …

    this._handlePointerDown = this._handlePointerDown.bind(this);
    this._handlePointerMove = this._handlePointerMove.bind(this);
    this._handlePointerUp = this._handlePointerUp.bind(this);
    this._handleHover = this._handleHover.bind(this);
    this._handleLeave = this._handleLeave.bind(this);
    this.finishPolygon = this.finishPolygon.bind(this);
    overlayCanvas.style.touchAction = "none";
    overlayCanvas.style.userSelect = "none";
    overlayCanvas.addEventListener("pointerdown", (e) => this._handlePointerDown(e, false));
    overlayCanvas.addEventListener("pointermove", this._handleHover);
    overlayCanvas.addEventListener("pointerleave", this._handleLeave);
    overlayCanvas.addEventListener("contextmenu", (e) => e.preventDefault());
    new ResizeObserver(() => this._resizeOverlay()).observe(overlayCanvas);
  }

  /** Replace the whole drawing with one full layer (new model, starter scene); clears the undo stack. */
  setMap(map) {
    this.setLayers({ width: map.width, height: map.height, layers: [new Layer("Background", map.ids)] });
  }

  /** Replace the whole drawing with `layers` (bottom first, the bottom one full), e.g. a restored autosave. */
  setLayers({ width, height, layers }) {
    this.cancelGesture();
    this.layerCount = layers.length;
    this.installStack({ layers, pixels: null, width, height }, false);
    this.history.clear();
    this._emitHistory();
  }

  /** Open a project (parsed project-io file) as one undoable step; its size may differ from the current one. */
  openProject({ width, height, layers }) {
    this._stackStep("open", { layers, pixels: layers.map((l) => l.ids), width, height });
    this.layerCount = Math.max(this.layerCount, layers.length);
  }

  /**
   * Make the drawing `ids` (a full map of the current size) as one undoable step named `name` (clear, scene,
   * open): the bottom layer gets them, the layers above are emptied but kept, with their names.
   */
  replaceAll(name, ids) {
    if (!this.map) return null;
    this.cancelGesture();
    // One pixel edit per layer that changes: an undo step holds the changed pixels only, not copies of every layer.
    const edits = [];
    this.layers.forEach((layer, k) => {
      const before = layer.ids.slice();
      if (k === 0) layer.ids.set(ids);
      else layer.ids.fill(EMPTY);
      const diff = LabelEdit.between(name, before, layer.ids);
      if (diff) edits.push(new PixelEdit(layer, diff));
    });
    if (edits.length === 0) return null;
    const edit = new GroupEdit(name, edits);
    this.history.push(edit);
    this._compose();
    this._changed(true);
    this._emitHistory();
    return edit;
  }

  /**
   * Rescale every layer to width×height with nearest neighbour (ids are never blended), as one undoable step named
   * "resize"; the brush scales with it. Returns the edit, or null when the map already has that size.
   */
  resize(width, height) {
    if (!this.map || (this.map.width === width && this.map.height === height)) return null;
    const pixels = this.layers.map((l) => resizeNearest({ ...this.map, ids: l.ids }, width, height).ids);
    return this._stackStep("resize", { layers: this.layers.slice(), pixels, width, height });
  }

  /** The layers as the last finished edit left them: a gesture still going (or cancelled) is not in them. */
  committedLayers() {
    const g = this.gesture;
    return this.layers.map((l) => new Layer(l.name, g?.snapshot && g.layer === l ? g.snapshot : l.ids, l.visible));
  }

  // ------------------------------------------------------------------------------------------------------
  // Layers

  /** Add an empty layer above the current one and make it current. */
  addLayer() {
    if (!this.map) return null;
    const layer = new Layer(`Layer ${++this.layerCount}`, new Uint8Array(this.map.ids.length).fill(EMPTY));
    const layers = this.layers.slice();
    layers.splice(layers.indexOf(this.active) + 1, 0, layer);
    this._stackStep("add layer", { ...snapshot(this, false), layers, active: layer });
    return layer;
  }

  /** Remove a layer (never the bottom one); the one below it becomes current. */
  removeLayer(layer) {
    const index = this.layers.indexOf(layer);
    if (index < 1) return null;
    return this._stackStep("remove layer", {
      ...snapshot(this, false),
      layers: this.layers.filter((l) => l !== layer),
      active: this.active === layer ? this.layers[index - 1] : this.active,
    });
  }

  /** Move a layer up (+1) or down (-1) among the upper layers; the bottom layer stays the bottom. */
  moveLayer(layer, delta) {
    const from = this.layers.indexOf(layer);
    const to = from + delta;
    if (from < 1 || to < 1 || to >= this.layers.length) return null;
    const layers = this.layers.slice();
    layers.splice(from, 1);
    layers.splice(to, 0, layer);
    return this._stackStep(delta > 0 ? "move layer up" : "move layer down", { ...snapshot(this, false), layers });
  }

  setLayerVisible(layer, visible) {
    if (layer === this.layers[0] || layer.visible === visible) return null; // the bottom layer always shows
    return this._propStep(new LayerPropEdit(visible ? "show layer" : "hide layer", layer, "visible", !visible, visible));
  }

  renameLayer(layer, name) {
    const clean = String(name).trim().slice(0, 40);
    if (!clean || clean === layer.name) return null;
    return this._propStep(new LayerPropEdit("rename layer", layer, "name", layer.name, clean));
  }

  setActive(layer) {
    if (!this.layers.includes(layer) || layer === this.active) return;
    this.cancelGesture();
    this.active = layer;
    this._emitLayers();
  }

  /** Put `state` (a layers.js snapshot) in place: a StackEdit's do and undo (`step`), and setLayers. */
  installStack(state, step = true) {
    const resized = !this.map || state.width !== this.map.width || state.height !== this.map.height;
    const before = this.map;
    this.layers = state.layers.slice();
    // Each install copies the kept pixels, so later strokes never touch the copies an edit holds.
    if (state.pixels) this.layers.forEach((l, k) => (l.ids = state.pixels[k].slice()));
    // Undo and redo bring back the layer that was current then, if it is still there.
    if (state.active && this.layers.includes(state.active)) this.active = state.active;
    if (!this.layers.includes(this.active)) this.active = this.layers.at(-1);
    if (resized) this._install(state.width, state.height, step ? before : null);
    this._compose();
    this._emitLayers();
  }

  _stackStep(name, after) {
    this.cancelGesture();
    const edit = new StackEdit(name, this, snapshot(this, after.pixels !== null), after);
    edit.do();
    this.history.push(edit);
    this._changed(true);
    this._emitHistory();
    return edit;
  }

  _propStep(edit) {
    this.cancelGesture();
    edit.do();
    this.history.push(edit);
    this._compose();
    this._changed(true);
    this._emitLayers();
    this._emitHistory();
    return edit;
  }

  // ------------------------------------------------------------------------------------------------------
  // Tools, undo

  setLut(lut) {
    this.lut = lut;
    this.redraw();
  }

  setTool(tool) {
    if (!TOOLS.includes(tool)) throw new Error(`unknown tool ${tool}`);
    this.cancelGesture();
    this.tool = tool;
    this.overlayCanvas.dataset.tool = tool;
    this.drawOverlay();
  }

  setSize(size) {
    this.size = Math.max(MIN_SIZE, Math.min(this.maxSize, Math.round(size)));
    this.drawOverlay();
  }

  undo() {
    return this._historyStep((h) => h.undo());
  }

  redo() {
    return this._historyStep((h) => h.redo());
  }

  _historyStep(step) {
    if (!this.map) return null;
    this.cancelGesture();
    const edit = step(this.history);
    if (edit) {
      this._compose();
      if (edit instanceof LayerPropEdit) this._emitLayers();
      this._changed(true);
    }
    this._emitHistory();
    return edit;
  }

  /** Abort the gesture in progress (Escape, tool switch) and restore the layer it had changed. */
  cancelGesture() {
    const g = this.gesture;
    if (!g) return;
    this._endGesture();
    if (g.snapshot) {
      g.layer.ids.set(g.snapshot);
      this._compose();
      this._changed(true);
    }
    this.drawOverlay();
  }

  /** Close the polygon being clicked together and paint it (double-click, Enter, or a click on its first point). */
  finishPolygon() {
    const g = this.gesture;
    if (!g || g.tool !== "polygon") return;
    g.layer.ids.set(g.snapshot);
    paintPolygon(this._target(g.layer), g.points, g.label);
    this._commit(g);
  }

  /** A press on the page outside the canvas (main.js decides which presses count): strokes and shapes only. */
  startFromPage(event) {
    if (!this.map || !PAGE_TOOLS.includes(this.tool) || event.altKey) return;
    // A press beside a zoomed canvas may lie over a part of the map that is scrolled out of sight: painting there
    // would change pixels nobody sees. Only presses off the map itself begin a stroke from the page.
    const p = this._toMap(event);
    if (p.x >= 0 && p.y >= 0 && p.x < this.map.width && p.y < this.map.height) return;
    this._handlePointerDown(event, true);
  }

  /** A second finger began a pinch: a stroke stops (undone), a polygon keeps all but the corner the finger added. */
  pinchStarted() {
    const g = this.gesture;
    if (g?.tool === "polygon") {
      g.points.pop();
      if (g.points.length === 0) this.cancelGesture();
      this.drawOverlay();
    } else {
      this.cancelGesture();
    }
  }

  _install(width, height, before) {
    this.map = { width, height, ids: new Uint8Array(width * height) };
    this.maxSize = maxBrushSize(width, height);
    this.labelCanvas.width = width;
    this.labelCanvas.height = height;
    this.image = this.labelCtx.createImageData(width, height);
    if (before) {
      // A resize step: brush and pointer scale with the map, so both stay put on screen.
      const sx = width / before.width;
      if (this.hover) this.hover = { x: this.hover.x * sx, y: (this.hover.y * height) / before.height };
      this.setSize(this.size * sx);
      this.dispatchEvent(new CustomEvent("resize", { detail: { width, height } }));
    }
  }

  _compose() {
    flattenInto(this.layers, this.map.ids);
    this.redraw();
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

  /** `layer` as a label map for the rasterisers. */
  _target(layer) {
    return { width: this.map.width, height: this.map.height, ids: layer.ids };
  }

  // ------------------------------------------------------------------------------------------------------
  // Pointer input

  /** Label-map coordinates (floats) of a client point, read against the (possibly zoomed) label canvas. */
  _toMap(event) {
    const rect = this.labelCanvas.getBoundingClientRect();
    return {
      x: ((event.clientX - rect.left) / rect.width) * this.map.width,
      y: ((event.clientY - rect.top) / rect.height) * this.map.height,
    };
  }

  _handlePointerDown(event, fromPage) {
    if (!this.map || (event.pointerType === "mouse" && event.button !== 0)) return;
    // Alt-click picks a label with any tool, as in most paint programs.
    const tool = event.altKey ? "eyedropper" : this.tool;
    const g = this.gesture;
    if (g && (g.tool !== "polygon" || tool !== "polygon")) return; // a drag, or a polygon, is going on
    event.preventDefault();
    const p = this._toMap(event);
    this.hover = p;
    if (tool === "reroll") return;
    if (WRITES_ACTIVE.includes(tool) && !this.active.visible) {
      // Paint on a hidden layer would change nothing anyone sees, yet take an undo step.
      const message = `"${this.active.name}" is hidden: show it (the eye in Layers) to paint on it`;
      this.dispatchEvent(new CustomEvent("refused", { detail: { message } }));
      return;
    }
    if (tool === "polygon") {
      this._addPolygonPoint(p, event);
      return;
    }
    if (tool === "fill") {
      this._fill(p);
      return;
    }
    if (tool === "object") {
      this._removeObject(p);
      return;
    }
    if (tool === "eyedropper") {
      this._pick(p);
      this.gesture = { tool, pointerId: event.pointerId, snapshot: null };
    } else {
      const bottom = this.active === this.layers[0];
      const label = tool === "eraser" ? (bottom ? this.eraserLabel : EMPTY) : this.label;
      const layer = this.active;
      this.gesture = { tool, label, layer, pointerId: event.pointerId, snapshot: layer.ids.slice(), start: p, last: p };
      if (tool === "brush" || tool === "eraser") {
        paintSegment(this._target(layer), p.x, p.y, p.x, p.y, radiusForSize(this.size), label);
        this._compose();
        this._changed(false);
      }
    }
    if (fromPage) this.drawOverlay();
    window.addEventListener("pointermove", this._handlePointerMove, { passive: false });
    window.addEventListener("pointerup", this._handlePointerUp, { passive: false });
    window.addEventListener("pointercancel", this._handlePointerUp, { passive: false });
  }

  _addPolygonPoint(p, event) {
    let g = this.gesture;
    if (!g) {
      const layer = this.active;
      g = { tool: "polygon", label: this.label, layer, pointerId: 0, snapshot: layer.ids.slice(), points: [] };
      this.gesture = g;
      window.addEventListener("pointermove", this._handlePointerMove, { passive: false });
      window.addEventListener("dblclick", this.finishPolygon); // on the canvas or the page around it
    }
    const first = g.points[0];
    if (first && g.points.length >= 3) {
      const scale = this.labelCanvas.getBoundingClientRect().width / this.map.width; // screen px per label px
      if (Math.hypot(first.x - p.x, first.y - p.y) * scale <= (CLOSE_PX[event.pointerType] ?? CLOSE_PX.mouse)) {
        this.finishPolygon();
        return;
      }
    }
    g.points.push(p); // a double-click adds its second corner twice, which changes no pixel of the polygon
    this.drawOverlay();
  }

  _handlePointerMove(event) {
    const g = this.gesture;
    if (!g) return;
    if (g.tool === "polygon") {
      this.hover = this._toMap(event); // the next vertex follows the pointer in the preview
      this.drawOverlay();
      return;
    }
    if (event.pointerId !== g.pointerId) return;
    event.preventDefault();
    const radius = radiusForSize(this.size);
    const target = g.snapshot ? this._target(g.layer) : null;
    // Coalesced events carry the intermediate positions a fast pen or mouse produced between two frames.
    const events = event.getCoalescedEvents?.().length ? event.getCoalescedEvents() : [event];
    let changed = false;
    for (const e of events) {
      let p = this._toMap(e);
      if (g.tool === "eyedropper") {
        this._pick(p);
      } else if (g.tool === "brush" || g.tool === "eraser") {
        changed = paintSegment(target, g.last.x, g.last.y, p.x, p.y, radius, g.label) > 0 || changed;
      } else {
        // Line and shapes re-rasterise from the snapshot so the live picture shows exactly the final result.
        g.layer.ids.set(g.snapshot);
        if (g.tool === "line") {
          if (e.shiftKey) p = snapAngle(g.start.x, g.start.y, p.x, p.y);
          paintSegment(target, g.start.x, g.start.y, p.x, p.y, radius, g.label);
        } else {
          const c = e.shiftKey ? squareCorner(g.start.x, g.start.y, p.x, p.y) : p;
          const paint = g.tool === "rect" ? paintRectShape : paintEllipse;
          paint(target, g.start.x, g.start.y, c.x, c.y, g.label);
        }
        changed = true;
      }
      g.last = p;
    }
    this.hover = g.last;
    if (changed) {
      this._compose();
      this._changed(false);
    }
    this.drawOverlay();
  }

  _handlePointerUp(event) {
    const g = this.gesture;
    if (!g || g.tool === "polygon" || event.pointerId !== g.pointerId) return;
    if (event.type === "pointercancel" && g.snapshot) {
      this.cancelGesture(); // the system took the pointer (a palm, a scroll): half a stroke is not kept
      return;
    }
    if (g.snapshot) this._commit(g);
    else this._endGesture();
  }

  /** Record a finished gesture on its layer as one edit. */
  _commit(g) {
    this._endGesture();
    const diff = LabelEdit.between(g.tool, g.snapshot, g.layer.ids);
    if (diff) this.history.push(new PixelEdit(g.layer, diff));
    this._compose();
    this._changed(true);
    this._emitHistory();
    this.drawOverlay();
  }

  _endGesture() {
    this.gesture = null;
    window.removeEventListener("pointermove", this._handlePointerMove);
    window.removeEventListener("pointerup", this._handlePointerUp);
    window.removeEventListener("pointercancel", this._handlePointerUp);
    window.removeEventListener("dblclick", this.finishPolygon);
  }

  /**
   * The fill: the current label over the region of the flattened map around `p`, written onto the current layer
   * (it fills what the artist sees, whichever layer that came from).
   */
  _fill(p) {
    const mask = regionMask(this.map, p.x, p.y);
    const layer = this.active;
    const before = layer.ids.slice();
    for (let i = 0; i < mask.length; i++) if (mask[i]) layer.ids[i] = this.label;
    this._commit({ tool: "fill", layer, snapshot: before });
  }

  /**
   * The object eraser: the region under `p` is removed from the layer it was painted on (the topmost visible one
   * there), so a tree on an upper layer is removed where it was drawn: what lies below shows through, and where
   * nothing else does (the bottom layer, or the same label below) it takes the label most common around it.
   */
  _removeObject(p) {
    const ix = Math.floor(p.x);
    const iy = Math.floor(p.y);
    if (ix < 0 || iy < 0 || ix >= this.map.width || iy >= this.map.height) return;
    const owner = ownerMap(this.layers);
    const k = owner[iy * this.map.width + ix];
    // The majority is taken around the whole region as seen, so parts of the object painted on other layers never
    // count as its surroundings; only the part on the owning layer changes.
    const region = regionMask(this.map, p.x, p.y);
    const around = majorityAround(this.map, region);
    if (around < 0) return; // the region is the whole map: nothing around it to fill from
    for (let i = 0; i < region.length; i++) if (owner[i] !== k) region[i] = 0;
    const layer = this.layers[k];
    const before = layer.ids.slice();
    layer.ids.set(withObjectRemoved(this.layers, k, region, around));
    this._commit({ tool: "remove object", layer, snapshot: before });
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
    if (!this.gesture || this.gesture.tool === "polygon") this.drawOverlay();
  }

  _handleLeave() {
    if (this.gesture) return;
    this.hover = null;
    this.dispatchEvent(new CustomEvent("cursor", { detail: null }));
    this.drawOverlay();
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

  _emitLayers() {
    this.dispatchEvent(new CustomEvent("layers"));
  }

  // ------------------------------------------------------------------------------------------------------
  // Overlay: brush outline and shape previews (guides.js).

  _resizeOverlay() {
    const canvas = this.overlayCanvas;
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(canvas.clientWidth * dpr));
    const h = Math.max(1, Math.round(canvas.clientHeight * dpr));
    if (canvas.width !== w || canvas.height !== h) {
      canvas.width = w;
      canvas.height = h;
    }
    this.drawOverlay();
  }

  /** Redraw the overlay (also after a zoom or pan moved the label canvas under it: the app calls it then). */
  drawOverlay() {
    const g = this.gesture;
    drawGuides(this.overlayCanvas, this.labelCanvas, this.map, {
      polygon: g?.tool === "polygon" ? (this.hover ? [...g.points, this.hover] : g.points) : null,
      brush: this.hover && OUTLINE_TOOLS.includes(this.tool) ? { at: this.hover, radius: radiusForSize(this.size) } : null,
      lineFrom: g?.tool === "line" ? g.start : null,
    });
  }
}
