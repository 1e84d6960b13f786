// Autosave: the drawing (its layers) and its style, kept per model in the browser, so a reload, a crash or a new
// browser session comes back to the same picture.
//
// Every save goes to two stores: sessionStorage is this tab's own copy (it survives a reload, and no other tab
// writes it), localStorage the latest drawing of any tab, which a new tab or a new browser session opens. A reload
// prefers the first, so two tabs painting different things do not overwrite each other's work. What is saved is
// the committed drawing (PaintCanvas.committedLayers): a stroke still going or cancelled with Esc is never stored,
// even when the save falls in the middle of it.

import { offersSize } from "./canvas-size.js";
import { Layer } from "./layers.js";
import { parseProject, projectToJson } from "./project-io.js";

export const AUTOSAVE_PREFIX = "collage-studio.map."; // + model name
const OLD_STYLE_PREFIX = "collage-studio.style."; // + model name: where styles were saved before layers
const DELAY_MS = 400; // a burst of finished edits is saved once

/** Whether `store` took the item; when storage is full or disabled that copy is simply not kept. */
function setItem(store, key, text) {
  try {
    window[store].setItem(key, text);
    return true;
  } catch {
    return false;
  }
}

function removeItem(store, key) {
  try {
    window[store].removeItem(key);
  } catch {
    // storage disabled: there is no copy to remove
  }
}

function fromBase64(text) {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

/**
 * The drawing saved under `key` in `store` — {width, height, layers, style} — if the model offers its size and
 * has its labels, else null. Drawings saved before layers ({width, height, ids}) come back as one layer.
 */
function savedDrawing(store, key, sizes, labels) {
  try {
    const text = window[store].getItem(key);
    if (text === null) return null;
    const saved = JSON.parse(text);
    let drawing;
    if (saved.format) {
      drawing = parseProject(text, labels);
    } else {
      const ids = fromBase64(saved.ids);
      const known = new Set(labels.map((l) => l.id));
      if (ids.length !== saved.width * saved.height || ids.some((id) => !known.has(id))) return null;
      // Its style was kept apart then, per tab.
      const style = JSON.parse(window[store].getItem(OLD_STYLE_PREFIX + key.slice(AUTOSAVE_PREFIX.length)) ?? "null");
      drawing = { width: saved.width, height: saved.height, layers: [{ name: "Background", visible: true, ids }], style };
    }
    if (!offersSize(sizes, drawing.width, drawing.height)) return null;
    const layers = drawing.layers.map((l) => new Layer(l.name, l.ids, l.visible));
    return { width: drawing.width, height: drawing.height, layers, style: drawing.style ?? null };
  } catch {
    return null;
  }
}

export class Autosave {
  constructor(getDrawing, onFailure) {
    this.getDrawing = getDrawing; // () => {model, width, height, labels, layers, style} | null
    this.onFailure = onFailure; // (message) => void: the browser would not store the drawing
    this.timer = null;
  }

  /** Save shortly: after a finished edit or a change of style. */
  schedule() {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.save(), DELAY_MS);
  }

  /** Save now what the delayed save would, before the page goes or the drawing and model it saves change. */
  flush() {
    if (this.timer === null) return;
    this.save();
  }

  save() {
    clearTimeout(this.timer);
    this.timer = null;
    const drawing = this.getDrawing();
    if (!drawing) return;
    const key = AUTOSAVE_PREFIX + drawing.model;
    const text = projectToJson(drawing);
    const shared = setItem("localStorage", key, text);
    // A tab copy that could not be updated must not hide the newer shared one from a reload.
    if (!setItem("sessionStorage", key, text) && shared) removeItem("sessionStorage", key);
    if (!shared) {
      const kb = Math.round(text.length / 1024);
      this.onFailure(`Autosave failed: the browser would not store this ${kb} kB drawing; save the project instead`);
    }
  }

  /** The drawing this tab, else any tab, left for `model` at one of `sizes`, or null. */
  restore(model, sizes, labels) {
    const key = AUTOSAVE_PREFIX + model;
    return savedDrawing("sessionStorage", key, sizes, labels) ?? savedDrawing("localStorage", key, sizes, labels);
  }
}
