// Save and open the layered project file the studio writes beside the flat label PNG.
//
// The PNG holds only the flattened drawing; the project keeps what is needed to go on editing it: every layer with
// its name and visibility, and the style. It is JSON, so the style is stored as given, with each layer's ids as
// base64 of the raw bytes, and the model's label names, so a project opened with another model is caught.
// A layer is `{name, visible, ids}` with `ids` a row-major Uint8Array holding a label id, or EMPTY where the layer
// paints nothing; layers are listed bottom first, and the bottom layer is always full and always visible.
//
// Opening checks everything a hand-edited file or one saved with another model could get wrong, and says what in
// a sentence a user can act on, because a bad id would otherwise only show up as a wrong colour or a server error.

import { EMPTY } from "./layers.js";

export { EMPTY };

/** The `format` field that marks a JSON file as a Collage Studio project. */
export const PROJECT_FORMAT = "collage-studio-project";

/** The project version this studio writes; it opens this version and older ones, and refuses newer ones. */
export const PROJECT_VERSION = 1;

const MAX_SIDE = 4096; // as for label PNGs

/** Base64 of raw bytes; `String.fromCharCode` takes its arguments on the stack, so it gets 32 KiB at a time. */
function toBase64(bytes) {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

/** Raw bytes of base64 text, or null when `text` is not base64 text. */
function fromBase64(text) {
  if (typeof text !== "string") return null;
  let s;
  try {
    s = atob(text);
  } catch {
    return null;
  }
  const bytes = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) bytes[i] = s.charCodeAt(i);
  return bytes;
}

/**
 * Run-length code of a layer's ids: each run as its id byte, then its length as a LEB128 varint. Upper layers are
 * mostly EMPTY, so a 512² layer takes a few hundred bytes instead of 256 KiB (and its base64 350 KB of the
 * browser's storage, which autosave shares with every other drawing).
 */
export function encodeRuns(ids) {
  const out = [];
  for (let i = 0; i < ids.length; ) {
    let j = i + 1;
    while (j < ids.length && ids[j] === ids[i]) j++;
    out.push(ids[i]);
    let n = j - i;
    while (n >= 0x80) {
      out.push((n & 0x7f) | 0x80);
      n >>>= 7;
    }
    out.push(n);
    i = j;
  }
  return Uint8Array.from(out);
}

/** The `length` ids of run-length code `bytes`, or null when they do not make exactly that many. */
export function decodeRuns(bytes, length) {
  const ids = new Uint8Array(length);
  let at = 0;
  for (let k = 0; k < bytes.length; ) {
    const id = bytes[k++];
    let n = 0;
    let shift = 0;
    let byte;
    do {
      if (k >= bytes.length || shift > 28) return null;
      byte = bytes[k++];
      n += (byte & 0x7f) * 2 ** shift;
      shift += 7;
    } while (byte & 0x80);
    if (n === 0 || at + n > length) return null;
    ids.fill(id, at, at + n);
    at += n;
  }
  return at === length ? ids : null;
}

/**
 * The project file's text for a drawing of width×height: `labels` (the model's [{id, name, ...}], of which only
 * id and name are kept, so opening it with another model can tell their labels apart), `layers` (bottom first,
 * each `{name, visible, ids}`) and `style` (any JSON value, stored as given; null when there is none).
 */
export function projectToJson({ width, height, labels, layers, style }) {
  return JSON.stringify({
    format: PROJECT_FORMAT,
    version: PROJECT_VERSION,
    width,
    height,
    labels: labels.map(({ id, name }) => ({ id, name })),
    layers: layers.map(({ name, visible, ids }) => ({ name, visible, runs: toBase64(encodeRuns(ids)) })),
    style: style ?? null,
  });
}

/** A layer's place and name for messages, e.g. `layer 2 ("Trees")`; layers are counted from 1, bottom first. */
function layerTitle(n, name) {
  return `layer ${n} (${JSON.stringify(name)})`;
}

/** Whether `value` is a JSON object (not null, not an array). */
function isObject(value) {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * A layer's width*height ids from its `ids` (the raw bytes, easy to write by hand) or its `runs` (their run-length
 * code, what the studio writes), both base64; throws when they are missing or do not make that many pixels.
 */
function layerIds(layer, width, height, title) {
  const raw = layer.ids !== undefined;
  const bytes = fromBase64(raw ? layer.ids : layer.runs);
  if (!bytes) throw new Error(`the pixels of ${title} are missing or not valid base64`);
  if (raw && bytes.length !== width * height) {
    throw new Error(`${title} has ${bytes.length} pixels; a ${width}×${height} project needs ${width * height}`);
  }
  const ids = raw ? bytes : decodeRuns(bytes, width * height);
  if (!ids) throw new Error(`the pixel runs of ${title} do not make the ${width}×${height} pixels`);
  return ids;
}

/**
 * Parse a project file's text into `{width, height, layers, style}`, each layer `{name, visible, ids}` with `ids`
 * a Uint8Array. `labels` are the current model's labels ([{id, name, ...}]): every id a layer uses must be one of
 * them (or EMPTY), and a label the file names must have the same name here. A layer without a name is called
 * "Layer N" and one without `visible` is shown. Throws an Error with a sentence a user can act on for anything that
 * is not a project this studio and model can open.
 */
export function parseProject(text, labels) {
  let data;
  try {
    data = JSON.parse(text);
  } catch {
    throw new Error("this file is not a Collage Studio project (it is not JSON)");
  }
  if (!isObject(data) || data.format !== PROJECT_FORMAT) {
    throw new Error(`this file is not a Collage Studio project (its format is not "${PROJECT_FORMAT}")`);
  }
  const { version, width, height } = data;
  if (!Number.isInteger(version) || version < 1) {
    throw new Error(`the project's version ${JSON.stringify(version)} is not valid`);
  }
  if (version > PROJECT_VERSION) {
    throw new Error(
      `this project is version ${version}, from a newer Collage Studio; this one opens up to ${PROJECT_VERSION}`,
    );
  }
  const validSide = (v) => Number.isInteger(v) && v > 0 && v <= MAX_SIDE;
  if (!validSide(width) || !validSide(height)) {
    throw new Error(
      `the project's size ${JSON.stringify(width)}×${JSON.stringify(height)} is not valid: width and height ` +
        `must be whole numbers from 1 to ${MAX_SIDE}`,
    );
  }
  const modelNames = new Map(labels.map((l) => [l.id, l.name]));
  const fileLabels = data.labels ?? [];
  const validLabel = (l) => isObject(l) && Number.isInteger(l.id) && typeof l.name === "string";
  if (!Array.isArray(fileLabels) || !fileLabels.every(validLabel)) {
    throw new Error("the project's label list is not valid: it must be a list of {id, name}");
  }
  for (const { id, name } of fileLabels) {
    if (modelNames.has(id) && modelNames.get(id) !== name) {
      throw new Error(
        `label id ${id} is "${name}" in this project but "${modelNames.get(id)}" in the current model; ` +
          `open the project with the model it was painted with`,
      );
    }
  }
  if (!Array.isArray(data.layers) || data.layers.length === 0) throw new Error("the project has no layers");
  const allowed = new Uint8Array(256);
  for (const l of labels) allowed[l.id] = 1;
  allowed[EMPTY] = 1;
  const layers = data.layers.map((layer, k) => {
    const n = k + 1;
    if (!isObject(layer)) throw new Error(`layer ${n} of the project is not valid`);
    const name = layer.name ?? `Layer ${n}`;
    if (typeof name !== "string") throw new Error(`layer ${n} has the name ${JSON.stringify(name)}, which is not text`);
    const visible = layer.visible ?? true;
    if (typeof visible !== "boolean") {
      throw new Error(`${layerTitle(n, name)} has visible ${JSON.stringify(visible)}; it must be true or false`);
    }
    const ids = layerIds(layer, width, height, layerTitle(n, name));
    for (let i = 0; i < ids.length; i++) {
      if (!allowed[ids[i]]) {
        throw new Error(
          `${layerTitle(n, name)} uses label id ${ids[i]} (at x=${i % width}, y=${Math.floor(i / width)}), ` +
            `which is not a label of the current model`,
        );
      }
    }
    return { name, visible, ids };
  });
  const bottom = layers[0];
  const hole = bottom.ids.indexOf(EMPTY);
  if (hole >= 0) {
    throw new Error(
      `the bottom layer ${JSON.stringify(bottom.name)} is empty at x=${hole % width}, y=${Math.floor(hole / width)}; ` +
        `the bottom layer must paint every pixel`,
    );
  }
  if (!bottom.visible) {
    throw new Error(`the bottom layer ${JSON.stringify(bottom.name)} is hidden; the bottom layer is always shown`);
  }
  return { width, height, layers, style: data.style ?? null };
}
