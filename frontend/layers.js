// Layers of a drawing, and the undoable edits on them.
//
// A layer holds one label id per pixel, or EMPTY where it paints nothing. Layers are kept bottom first; the bottom
// layer is always full and always visible (the background an artist paints on), so the flattened stack — each
// pixel taken from the topmost visible layer that paints it — is always a complete label map, the one the server
// renders. The eraser writes EMPTY on an upper layer, which lets the layers below show through.
//
// Every edit knows what it changes and ignores the ids History hands it: a pixel edit belongs to one layer (which
// may not even be on top any more when it is undone), a stack edit swaps the list of layers and, for a resize or
// an opened project, their pixels and the drawing's size.

export const EMPTY = 255; // "this layer paints nothing here"; never a label id (labels are 0..254)

/** One layer: a name, whether it is shown, and width*height ids (EMPTY where it paints nothing). */
export class Layer {
  constructor(name, ids, visible = true) {
    this.name = name;
    this.ids = ids; // Uint8Array, row-major like the label map
    this.visible = visible;
  }
}

/** Write the flattened stack into `out` (a Uint8Array of the layers' length): the top visible layer wins. */
export function flattenInto(layers, out) {
  out.set(layers[0].ids);
  for (let k = 1; k < layers.length; k++) {
    if (!layers[k].visible) continue;
    const ids = layers[k].ids;
    for (let i = 0; i < ids.length; i++) if (ids[i] !== EMPTY) out[i] = ids[i];
  }
  return out;
}

/**
 * Which layer shows at each pixel: a Uint8Array of indices into `layers` (the topmost visible layer that paints
 * there). The object eraser uses it to change the layer an object was painted on, not the one selected.
 */
export function ownerMap(layers) {
  const owner = new Uint8Array(layers[0].ids.length);
  for (let k = 1; k < layers.length; k++) {
    if (!layers[k].visible) continue;
    const ids = layers[k].ids;
    for (let i = 0; i < ids.length; i++) if (ids[i] !== EMPTY) owner[i] = k;
  }
  return owner;
}

/**
 * Layer k's ids with an object removed, `region` being non-zero where the object shows (all of it owned by layer k).
 * On an upper layer those pixels empty, so what was painted below shows through — except where that is the
 * object's own label (it was painted below as well), which gets `fill`; the bottom layer, always full, gets `fill`
 * throughout. A tree on its own layer over a mountain and a meadow thus leaves mountain and meadow, not a hump of
 * meadow over the mountain.
 */
export function withObjectRemoved(layers, k, region, fill) {
  const ids = layers[k].ids.slice();
  const below = k > 0 ? flattenInto(layers.slice(0, k), new Uint8Array(ids.length)) : null;
  for (let i = 0; i < ids.length; i++) {
    if (region[i]) ids[i] = below && below[i] !== ids[i] ? EMPTY : fill;
  }
  return ids;
}

/** A pixel edit (a LabelEdit of history.js) on one layer. */
export class PixelEdit {
  constructor(layer, edit) {
    this.name = edit.name;
    this.layer = layer;
    this.edit = edit;
  }

  do() {
    this.edit.do(this.layer.ids);
  }

  undo() {
    this.edit.undo(this.layer.ids);
  }
}

/** Several layers' pixel edits as one undo step (clear, example scene, open a PNG). */
export class GroupEdit {
  constructor(name, edits) {
    this.name = name;
    this.edits = edits; // PixelEdits
  }

  do() {
    for (const edit of this.edits) edit.do();
  }

  undo() {
    for (const edit of this.edits) edit.undo();
  }
}

/** A change of one layer's name or visibility. */
export class LayerPropEdit {
  constructor(name, layer, prop, before, after) {
    this.name = name; // "hide layer", "rename layer", …
    this.layer = layer;
    this.prop = prop; // "name" | "visible"
    this.before = before;
    this.after = after;
  }

  do() {
    this.layer[this.prop] = this.after;
  }

  undo() {
    this.layer[this.prop] = this.before;
  }
}

/**
 * The state of a stack an edit can go back to: its layers in order and, when `withPixels`, copies of their ids and
 * the size. Adding, removing and reordering need only the order; a resize or an opened project needs the pixels.
 */
export function snapshot(drawing, withPixels) {
  return {
    layers: drawing.layers.slice(),
    active: drawing.active, // the current layer, which undo and redo bring back
    pixels: withPixels ? drawing.layers.map((l) => l.ids.slice()) : null,
    width: drawing.map.width,
    height: drawing.map.height,
  };
}

/** A change of the stack as a whole: layers added, removed or moved, or (with pixels) resized or replaced. */
export class StackEdit {
  constructor(name, drawing, before, after) {
    this.name = name;
    this.drawing = drawing; // the PaintCanvas: {layers, map, installStack(state)}
    this.before = before; // snapshot()
    this.after = after;
  }

  do() {
    this.drawing.installStack(this.after);
  }

  undo() {
    this.drawing.installStack(this.before);
  }
}
