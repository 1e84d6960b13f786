// Collage Studio's browser app: wires the canvas, palette, style panel, compare views and the paint socket.
//
// State lives in a few objects (the PaintCanvas owns the label map and its undo stack, the StylePanel the style,
// the PaintStream the connection); this file only connects their events and owns the DOM around them.

import { api, renderPreview, socketUrl } from "./api.js";
import { Autosave } from "./autosave.js";
import { MAX_BRUSH, canvasSizes } from "./canvas-size.js";
import { CompareView } from "./compare.js";
import { downloadBlob, openFile, saveLabels, saveProject } from "./files.js";
import { Help, TOOL_KEYS, toolForKey } from "./help.js";
import { LayersPanel } from "./layers-panel.js";
import { MIN_SIZE, PaintCanvas } from "./paint-canvas.js";
import { Palette, buildLut, cssColor } from "./palette.js";
import { PictureView } from "./picture.js";
import { RerollTool, thingList } from "./reroll.js";
import { starterScene } from "./scene.js";
import { PaintStream, throttle } from "./stream.js";
import { StylePanel } from "./style-panel.js";
import { ZoomView, isTyping } from "./zoom.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const LIVE_INTERVAL_MS = 100; // label maps sent at most ~10 times a second while a stroke is in progress
// Presses on these start nothing on the canvas; a press anywhere else on the page (the margins around the canvases)
// begins a stroke or shape that paints its part inside the canvas.
const NOT_PAGE = "button, input, select, label, a, textarea, dialog, .topbar, .toolbar, .sidebar, .statusbar, .surface";
const KEY_HINT = "The server needs an API key: open the page with ?api_key=…";

// ------------------------------------------------------------------------------------------------------------
// Widgets

const canvas = new PaintCanvas({ labelCanvas: $("label-canvas"), overlayCanvas: $("overlay-canvas") });
const palette = new Palette($("palette"));
const compare = new CompareView({
  stage: $("stage"),
  buttons: [...document.querySelectorAll("[data-view]")].filter((b) => b.tagName === "BUTTON"),
  slider: $("view-mix"),
  sliderLabel: $("view-mix-label"),
  caption: $("label-caption"),
  divider: $("split-divider"),
});
const style = new StylePanel(
  {
    fileInput: $("style-file"),
    dropZone: $("style-drop"),
    thumb: $("style-thumb"),
    thumbImg: $("style-thumb-img"),
    clearImage: $("style-clear"),
    presets: $("style-presets"),
    seedInput: $("seed-input"),
    dice: $("dice"),
    lock: $("seed-lock"),
    collage: $("collage-toggle"),
    message: $("style-message"),
  },
  {
    uploadStyle: (file) => {
      const body = new FormData();
      body.append("image", file);
      if (current.name) body.append("model", current.name);
      return api("/styles", { method: "POST", body });
    },
    readStyle: (styleId) => api(`/styles/${encodeURIComponent(styleId)}`),
    renderPreset: (model, preset) => renderPreview(current.manifest, preset),
  },
);
const stream = new PaintStream({ url: socketUrl(), getMap: () => canvas.map });
const outputCanvas = $("output-canvas");
const reroll = new RerollTool({
  button: $("reroll-tool"),
  surfaces: [
    [canvas.overlayCanvas, canvas.labelCanvas],
    [outputCanvas, outputCanvas],
  ],
  stream,
  isActive: () => canvas.tool === "reroll",
  getMap: () => canvas.map,
  setStatus: (...args) => setStatus(...args),
});

const zoom = new ZoomView({
  surfaces: [$("label-surface"), $("output-surface")],
  targets: [$("label-canvas"), outputCanvas],
  fitButton: $("zoom-fit"),
  readout: $("zoom-value"),
  onPinchStart: () => canvas.pinchStarted(),
});
canvas.addEventListener("layers", () => renderToolStatus());
const layersPanel = new LayersPanel(
  { list: $("layer-list"), add: $("layer-add"), remove: $("layer-remove"), up: $("layer-up"), down: $("layer-down") },
  canvas,
);
const help = new Help({
  dialog: $("help-dialog"),
  list: $("help-list"),
  button: $("help"),
  hint: $("first-hint"),
  hintClose: $("first-hint-close"),
});

const picture = new PictureView(stream, (...args) => setStatus(...args));

const current = {
  name: null, // served model in use
  manifest: null,
  sizes: [], // canvas sizes ([width, height]) the model offers (canvasSizes)
  runtime: "", // " · openvino bf16" etc. for the label caption
};

// ------------------------------------------------------------------------------------------------------------
// Status

let statusTimer = null;

/** Show a message in the status bar; errors from the live stream fade after `clearAfterMs`. */
function setStatus(text, isError = false, clearAfterMs = 0) {
  const el = $("status-message");
  el.textContent = text;
  el.classList.toggle("error", isError);
  clearTimeout(statusTimer);
  if (clearAfterMs > 0) statusTimer = setTimeout(() => setStatus(""), clearAfterMs);
}

function labelName(id) {
  return palette.labelById(id)?.name ?? `id ${id}`;
}

function renderToolStatus() {
  const upper = canvas.active !== canvas.layers[0]; // there the eraser empties the layer instead of painting
  const label = palette.labelById(canvas.tool === "eraser" ? canvas.eraserLabel : canvas.label);
  const el = $("tool-status");
  el.replaceChildren();
  if (canvas.tool === "eraser" && upper) {
    el.append(`Eraser · reveals the layers below · ${canvas.size} px · ${canvas.active.name}`);
  } else if (canvas.tool === "object") {
    el.append("Remove object · click a region: what is below or around it fills in");
  } else if (canvas.tool === "reroll") {
    el.append(`Re-roll · click a ${thingList(reroll.things)}`); // no label or brush size: it paints nothing
  } else {
    if (label) {
      const chip = document.createElement("span");
      chip.className = "chip";
      chip.style.background = cssColor(label);
      el.append(chip);
    }
    const tool = document.querySelector(`[data-tool=${canvas.tool}] .tool-name`)?.textContent ?? canvas.tool;
    const sized = ["brush", "line", "eraser"].includes(canvas.tool) ? ` · ${canvas.size} px` : "";
    const layer = canvas.layers.length > 1 ? ` · ${canvas.active.name}` : "";
    el.append(`${tool} · ${label?.name ?? ""}${sized}${layer}`);
  }
  const cur = palette.labelById(canvas.label);
  const head = $("current-label");
  head.querySelector(".chip").style.background = cur ? cssColor(cur) : "transparent";
  head.querySelector(".name").textContent = cur?.name ?? "";
  document.documentElement.style.setProperty("--current-color", cur ? cssColor(cur) : "#fff");
  for (const b of document.querySelectorAll("[data-tool]")) {
    b.setAttribute("aria-pressed", String(b.dataset.tool === canvas.tool));
  }
}

function setLabel(id) {
  canvas.label = id;
  palette.setCurrent(id);
  if (["eraser", "eyedropper", "object", "reroll"].includes(canvas.tool)) setTool("brush");
  renderToolStatus();
}

function setSize(size) {
  canvas.setSize(size);
  $("brush-size").max = String(canvas.maxSize); // first: the value is clamped to the old maximum
  $("brush-size").value = String(canvas.size);
  $("size-value").value = String(canvas.size);
  const reach = (canvas.size * MAX_BRUSH) / canvas.maxSize; // a brush rescaled with a 512² canvas keeps its dot
  $("size-dot").style.setProperty("--dot", `${Math.max(3, Math.min(26, 3 + reach * 0.45))}px`);
  renderToolStatus();
}

function setTool(tool) {
  if (tool === "reroll" && !reroll.enabled) return; // the shortcut of a greyed-out button
  canvas.setTool(tool);
  $("output-surface").dataset.activeTool = tool; // the picture takes re-roll clicks too (crosshair)
  renderToolStatus();
}

/** Offer the re-roll tool only while CollageGAN is on; leave it for the brush when it goes off. */
function renderReroll() {
  reroll.setEnabled(style.state.collage, current.manifest?.capabilities?.collage_classes ?? []);
  if (!reroll.enabled && canvas.tool === "reroll") setTool("brush");
}

// ------------------------------------------------------------------------------------------------------------
// Live output

const sendLive = throttle(() => stream.sendMap(), LIVE_INTERVAL_MS);
const autosave = new Autosave(() =>
  current.name && canvas.map
    ? {
        model: current.name,
        width: canvas.map.width,
        height: canvas.map.height,
        labels: current.manifest.labels,
        layers: canvas.committedLayers(),
        style: style.saved,
      }
    : null,
  (message) => setStatus(message, true, 10000),
);

function mapChanged(final) {
  if (!final) {
    sendLive();
    return;
  }
  sendLive.cancel();
  stream.sendMap();
  autosave.schedule();
}

stream.addEventListener("servererror", (event) => {
  const { code, message } = event.detail;
  if (code === "unknown_style" || code === "unknown_preset") {
    style.resetToSeed("The server no longer has this style; using the seed instead.");
    return;
  }
  if (code === "unauthorized") {
    setStatus(KEY_HINT, true);
    return;
  }
  if (reroll.explain(event.detail)) return;
  setStatus(`${code}: ${message}`, code !== "overloaded", 8000);
});

stream.addEventListener("configured", (event) => {
  const { model } = event.detail;
  if (model && model !== current.name) setStatus(`server is using model ${model}`, true);
});

style.addEventListener("change", (event) => {
  // The server renders on label maps only, so re-send the map to see the new style at once.
  stream.configure({ style: event.detail.style, collage: event.detail.collage });
  stream.sendMap();
  renderReroll();
  autosave.schedule(); // the style is saved with the drawing
});

// ------------------------------------------------------------------------------------------------------------
// Models

async function selectModel(name) {
  const manifest = await api(`/models/${encodeURIComponent(name)}`);
  const labels = manifest.labels;
  const [height, width] = manifest.image_size;
  const background = manifest.background_label ?? 0;
  const sizes = canvasSizes(manifest);
  const previous = current.manifest;
  // The same sizes, not just the current one: the undo stack may hold resize steps to any of them.
  const sameCanvas =
    previous &&
    JSON.stringify(sizes) === JSON.stringify(current.sizes) &&
    JSON.stringify(previous.labels.map((l) => [l.id, l.name])) === JSON.stringify(labels.map((l) => [l.id, l.name]));
  autosave.flush(); // the last stroke belongs to the model in use so far
  current.name = name;
  current.manifest = manifest;
  current.sizes = sizes;
  current.runtime = manifest.runtime ? ` · ${manifest.runtime} ${manifest.precision}` : "";

  palette.setLabels(labels);
  canvas.eraserLabel = background;
  canvas.setLut(buildLut(labels));
  let saved = null; // the drawing left for this model, with its style
  if (!sameCanvas) {
    saved = autosave.restore(name, sizes, labels);
    if (saved) canvas.setLayers(saved);
    else canvas.setMap(starterScene(width, height, labels, background));
    const first = labels.find((l) => l.name === "mountain") ?? labels.find((l) => l.id !== background) ?? labels[0];
    setLabel(first.id);
    setSize(Math.max(1, Math.round(Math.min(canvas.map.width, canvas.map.height) / 16))); // 16 px on a 256² canvas
  }
  document.documentElement.style.setProperty("--aspect", String(width / height));
  renderSizeChoice();

  const caps = manifest.capabilities ?? {};
  const presets = (manifest.styles ?? []).map((s) => (typeof s === "string" ? s : s.name));
  await style.setModel({
    name,
    presets,
    styleImage: Boolean(caps.style_image),
    collage: Boolean(caps.collage),
    seeded: (caps.z_dim ?? 1) > 0 || Boolean(caps.noise),
    saved: saved?.style ?? null,
  });
  if (current.name !== name) return; // another model was picked while the saved photo style was checked
  renderReroll();
  stream.configure({
    model: name,
    size: [canvas.map.width, canvas.map.height], // the server reads [width, height], like the binary frame header
    style: style.style,
    collage: style.state.collage,
    format: "jpeg",
    quality: 90,
  });
  stream.sendMap();
  $("model-select").value = name;
}

/**
 * Offer the model's canvas sizes. A model with one size shows it disabled rather than hidden, so the top bar keeps
 * its layout from model to model.
 */
function renderSizeChoice() {
  const select = $("canvas-size");
  select.replaceChildren(...current.sizes.map(([w, h]) => new Option(`${w}×${h}`, `${w}x${h}`)));
  select.disabled = current.sizes.length < 2;
  select.title = select.disabled
    ? "This model paints at this size only"
    : "Label map and picture size: the drawing is rescaled (undo goes back)";
  showCanvasSize();
}

/** Show the map's size in the size choice and under the label canvas. */
function showCanvasSize() {
  const { width, height } = canvas.map;
  $("canvas-size").value = `${width}x${height}`;
  $("label-meta").textContent = `${current.name} · ${width}×${height}${current.runtime}`;
}

/** The served models, retrying while the server is unreachable; null once it refuses the key. */
async function loadModels() {
  for (let attempt = 0; ; attempt++) {
    try {
      return await api("/models");
    } catch (err) {
      if (err.status === 401 || err.status === 403) {
        setStatus(KEY_HINT, true);
        return null;
      }
      setStatus(`Cannot reach the server (${err.message}); retrying…`, true);
      await new Promise((resolve) => setTimeout(resolve, Math.min(5000, 500 * 2 ** attempt)));
    }
  }
}

// ------------------------------------------------------------------------------------------------------------
// Files

/** Open a label PNG or a project file; a project brings its style too. */
async function loadLabels(file) {
  if (!current.manifest) return;
  try {
    const { note, style: saved } = await openFile(file, canvas, current.manifest, current.sizes);
    if (saved) style.restore(saved);
    setStatus(`Opened ${file.name}${note}`);
  } catch (err) {
    setStatus(`Could not open ${file.name}: ${err.message}`, true);
  }
}

function downloadPicture() {
  outputCanvas.toBlob((blob) => {
    const seed = style.state.mode === "seed" ? `-seed${style.state.seed}` : "";
    if (blob) downloadBlob(blob, `collage-${current.name}${seed}.png`);
  }, "image/png");
}

// ------------------------------------------------------------------------------------------------------------
// Input wiring

canvas.addEventListener("change", (e) => mapChanged(e.detail.final));
// A resize step, or its undo or redo: the server must expect the new size before the map that follows it.
canvas.addEventListener("resize", (e) => {
  stream.configure({ size: [e.detail.width, e.detail.height] });
  setSize(canvas.size); // the canvas scaled the brush with the map
  showCanvasSize();
});
window.addEventListener("pagehide", () => autosave.flush());
canvas.addEventListener("history", (e) => {
  $("undo").disabled = !e.detail.canUndo;
  $("redo").disabled = !e.detail.canRedo;
  const last = canvas.history.done.at(-1);
  $("undo").title = last ? `Undo ${last.name} (Ctrl+Z)` : "Undo (Ctrl+Z)";
});
canvas.addEventListener("refused", (e) => setStatus(e.detail.message, true, 5000));
canvas.addEventListener("pick", (e) => {
  canvas.label = e.detail.id;
  palette.setCurrent(e.detail.id);
  renderToolStatus();
});
canvas.addEventListener("cursor", (e) => {
  $("cursor-status").textContent = e.detail ? `${e.detail.x}, ${e.detail.y} · ${labelName(e.detail.id)}` : "";
});
$("overlay-canvas").addEventListener("pointerdown", () => {
  // Give the keyboard back to the shortcuts after typing a seed.
  if (document.activeElement instanceof HTMLElement) document.activeElement.blur();
});
canvas.overlayCanvas.addEventListener("pointerdown", (e) => {
  // The eyedropper hands back to the brush once a label is picked. The release is heard on the window, like the
  // canvas's own gesture end, because a drag may finish outside the canvas.
  if (canvas.tool !== "eyedropper" || e.altKey) return;
  const end = (up) => {
    if (up.pointerId !== e.pointerId) return; // another finger or pen lifting is not this pick's end
    window.removeEventListener("pointerup", end);
    window.removeEventListener("pointercancel", end);
    if (up.type === "pointerup") setTool("brush"); // a cancelled touch picked nothing: keep the eyedropper
  };
  window.addEventListener("pointerup", end);
  window.addEventListener("pointercancel", end);
});

// Strokes and shapes may begin on the page around the canvases (mouse and pen: a finger there scrolls the page).
// A polygon's corner may also fall on the picture beside the labels: a mountain range running off the right edge.
document.addEventListener("pointerdown", (e) => {
  if (e.pointerType === "touch" || !(e.target instanceof Element)) return;
  const cornerOnPicture = canvas.gesture?.tool === "polygon" && e.target.closest("#output-surface");
  if (!cornerOnPicture && e.target.closest(NOT_PAGE)) return;
  canvas.startFromPage(e);
});
zoom.addEventListener("change", () => canvas.drawOverlay());
$("zoom-in").addEventListener("click", () => zoom.zoomBy(1.25));
$("zoom-out").addEventListener("click", () => zoom.zoomBy(0.8));
for (const b of document.querySelectorAll("[data-tool]")) {
  const key = TOOL_KEYS[b.dataset.tool]?.[1];
  if (key) b.querySelector(".tool-name")?.setAttribute("data-key", key);
}

palette.addEventListener("select", (e) => setLabel(e.detail.id));
for (const b of document.querySelectorAll("[data-tool]")) b.addEventListener("click", () => setTool(b.dataset.tool));
$("brush-size").addEventListener("input", (e) => setSize(Number(e.target.value)));
$("undo").addEventListener("click", () => canvas.undo());
$("redo").addEventListener("click", () => canvas.redo());
$("clear").addEventListener("click", () =>
  canvas.replaceAll("clear", new Uint8Array(canvas.map.ids.length).fill(canvas.eraserLabel)),
);
$("scene").addEventListener("click", () => {
  if (!current.manifest) return;
  const scene = starterScene(canvas.map.width, canvas.map.height, current.manifest.labels, canvas.eraserLabel);
  canvas.replaceAll("example scene", scene.ids);
});
$("save-labels").addEventListener("click", () => canvas.map && saveLabels(canvas, current.name));
$("save-project").addEventListener("click", () => canvas.map && saveProject(canvas, current.manifest, style.saved));
$("open-labels").addEventListener("click", () => $("labels-file").click());
$("labels-file").addEventListener("change", (e) => {
  const file = e.target.files?.[0];
  e.target.value = "";
  if (file) loadLabels(file);
});
$("download-picture").addEventListener("click", downloadPicture);
$("canvas-size").addEventListener("change", (e) => {
  const [width, height] = e.target.value.split("x").map(Number);
  e.target.blur(); // give the keyboard back to the shortcuts, so Ctrl+Z can undo the resize at once
  canvas.resize(width, height);
});
$("model-select").addEventListener("change", (e) => {
  selectModel(e.target.value)
    .then(() => {
      if (stream.state === "stopped") stream.start(); // the first model failed to load: never connected yet
    })
    .catch((err) => setStatus(`Cannot load model: ${err.message}`, true));
  const url = new URL(location.href);
  url.searchParams.set("model", e.target.value);
  history.replaceState(null, "", url);
});

/** Size steps that feel even: ±1 for fine brushes, ±~15% for big ones. */
function nextSize(size, direction) {
  const step = Math.max(1, Math.round(size * 0.15));
  return Math.max(MIN_SIZE, Math.min(canvas.maxSize, size + direction * step));
}

window.addEventListener("keydown", (e) => {
  if (isTyping(e.target) || help.dialog.open) return;
  const mod = e.ctrlKey || e.metaKey;
  if (mod && e.code === "KeyZ") {
    e.preventDefault();
    if (e.shiftKey) canvas.redo();
    else canvas.undo();
    return;
  }
  if (mod && e.code === "KeyY") {
    e.preventDefault();
    canvas.redo();
    return;
  }
  if (mod || e.altKey) return;
  if (e.key === "?") {
    help.toggle();
  } else if (e.key === "+" || e.key === "=") {
    zoom.zoomBy(1.25);
  } else if (e.key === "-") {
    zoom.zoomBy(0.8);
  } else if (e.code === "Home") {
    zoom.fit();
  } else if (e.code === "Enter" && canvas.gesture?.tool === "polygon") {
    canvas.finishPolygon();
  } else if (e.code === "F2") {
    layersPanel.renameCurrent();
  } else if (e.code === "KeyN" && !e.shiftKey) {
    canvas.addLayer();
  } else if (e.code === "BracketLeft" || e.code === "BracketRight") {
    setSize(nextSize(canvas.size, e.code === "BracketRight" ? 1 : -1));
  } else if (toolForKey(e.code) && !e.shiftKey) {
    setTool(toolForKey(e.code));
  } else if (e.code === "KeyR" && !e.shiftKey) {
    style.roll();
  } else if (e.code === "KeyV" && !e.shiftKey) {
    compare.next();
  } else if (e.code === "Escape") {
    canvas.cancelGesture();
  } else if (!palette.handleKey(e)) {
    return;
  }
  e.preventDefault();
});

// A read-only window onto the app for the browser tests (and the curious).
window.collage = Object.freeze({
  getLabelIds: () => Array.from(canvas.map.ids),
  // Bottom first; EMPTY (255) where a layer paints nothing.
  getLayers: () => canvas.layers.map((l) => ({ name: l.name, visible: l.visible, ids: Array.from(l.ids) })),
  activeLayer: () => canvas.layers.indexOf(canvas.active),
  getZoom: () => ({ ...zoom.view }),
  getSize: () => ({ width: canvas.map.width, height: canvas.map.height }),
  getSeed: () => style.state.seed,
  getStyle: () => ({ ...style.style }),
  getModel: () => current.name,
  currentLabel: () => canvas.label,
  tool: () => canvas.tool,
  polygonCorners: () => (canvas.gesture?.tool === "polygon" ? canvas.gesture.points.length : 0),
  brushSize: () => canvas.size,
  lastFrameSeq: () => picture.shownSeq,
  // A re-roll's picture keeps the seq: framesShown() tells it has arrived, this what the server re-rolled.
  lastReroll: () => (reroll.last ? { ...reroll.last } : null),
  lastSentSeq: () => stream.seq,
  // A map still waiting for the throttle or being compressed has no seq yet, so lastSentSeq alone cannot tell
  // whether the frame on screen answers the newest map.
  sendPending: () => sendLive.pending() || stream.sending,
  framesShown: () => picture.framesShown,
  connectionState: () => stream.state,
  outputDataUrl: () => outputCanvas.toDataURL("image/png"),
});

// ------------------------------------------------------------------------------------------------------------
// Start

/** Fill the model picker and open the wanted model; false when there is nothing to open, and why is shown. */
async function start() {
  const models = await loadModels();
  if (!models) return false; // the server refused the key; loadModels said so
  $("model-select").replaceChildren(
    ...models.map((m) => {
      const option = document.createElement("option");
      option.value = m.name;
      option.textContent = `${m.name} (${m.architecture})`;
      return option;
    }),
  );
  $("model-picker").hidden = models.length < 2;
  const wanted = params.get("model");
  const initial = models.find((m) => m.name === wanted) ?? models.find((m) => m.default) ?? models[0];
  if (!initial) {
    setStatus("The server has no models. Export one into the weights folder and restart it.", true);
    return false;
  }
  try {
    await selectModel(initial.name);
    return true;
  } catch (err) {
    setStatus(`Cannot load model ${initial.name}: ${err.message}`, true);
    return false;
  }
}

setTool("brush");
setSize(16);
// A page with no model never connects: stopping the stream says "disconnected", not "connecting…" forever.
if (await start()) stream.start();
else stream.stop();
