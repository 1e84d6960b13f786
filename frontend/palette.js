// The label palette: built from the model manifest's labels (never hard-coded), with keyboard shortcuts.
//
// Shortcuts: 1–9 and 0 pick the first ten labels, Shift+1…Shift+0 the next ten. We match on `event.code`
// (the physical key) because Shift+1 produces "!" on one layout and "+" on another.

/** Human shortcut text for the label at palette position `index`, or "" when it has none. */
export function shortcutLabel(index) {
  if (index < 0 || index >= 20) return "";
  const digit = String((index + 1) % 10);
  return index < 10 ? digit : `⇧${digit}`;
}

/** Palette position chosen by a keyboard event ({code, shiftKey}), or -1. */
export function indexForKey({ code, shiftKey }) {
  const match = /^(?:Digit|Numpad)(\d)$/.exec(code ?? "");
  if (!match) return -1;
  const digit = Number(match[1]);
  const pos = digit === 0 ? 9 : digit - 1;
  return shiftKey ? pos + 10 : pos;
}

/** RGBA lookup table (256 × 4 bytes) from manifest labels; unknown ids show as magenta so they stand out. */
export function buildLut(labels) {
  const lut = new Uint8Array(256 * 4);
  for (let id = 0; id < 256; id++) lut.set([255, 0, 255, 255], id * 4);
  for (const { id, color } of labels) lut.set([color[0], color[1], color[2], 255], id * 4);
  return lut;
}

/** Write the colours of `ids` into an RGBA pixel buffer (e.g. ImageData.data). */
export function idsToRgba(ids, lut, out) {
  const out32 = new Uint32Array(out.buffer, out.byteOffset, ids.length);
  const lut32 = new Uint32Array(lut.buffer, lut.byteOffset, 256);
  for (let i = 0; i < ids.length; i++) out32[i] = lut32[ids[i]];
  return out;
}

/** CSS colour for a label. */
export function cssColor(label) {
  return `rgb(${label.color[0]}, ${label.color[1]}, ${label.color[2]})`;
}

/** Text colour (dark or light) readable on a label's swatch. */
export function inkFor(color) {
  const [r, g, b] = color;
  return 0.299 * r + 0.587 * g + 0.114 * b > 150 ? "#111" : "#fff";
}

/**
 * The palette widget. Renders one swatch button per label into `root` and dispatches `select` events
 * ({detail: {id}}) when the user clicks one; `setCurrent(id)` marks the current label.
 */
export class Palette extends EventTarget {
  constructor(root) {
    super();
    this.root = root;
    this.labels = [];
    this.current = -1;
    root.addEventListener("click", (event) => {
      const button = event.target.closest("[data-label-id]");
      if (button) this._select(Number(button.dataset.labelId));
    });
  }

  setLabels(labels) {
    this.labels = labels;
    this.root.replaceChildren(
      ...labels.map((label, index) => {
        const button = document.createElement("button");
        button.type = "button";
        button.className = "swatch";
        button.dataset.labelId = String(label.id);
        button.title = `${label.name}${shortcutLabel(index) ? ` (${shortcutLabel(index)})` : ""}${label.is_thing ? " · object" : ""}`;
        const chip = document.createElement("span");
        chip.className = "chip";
        chip.style.background = cssColor(label);
        const name = document.createElement("span");
        name.className = "name";
        name.textContent = label.name;
        const key = document.createElement("kbd");
        key.textContent = shortcutLabel(index);
        button.append(chip, name, key);
        return button;
      }),
    );
    this.setCurrent(this.current);
  }

  /** Handle a keydown; returns true when it picked a label. */
  handleKey(event) {
    const index = indexForKey(event);
    if (index < 0 || index >= this.labels.length) return false;
    this._select(this.labels[index].id);
    return true;
  }

  labelById(id) {
    return this.labels.find((l) => l.id === id);
  }

  setCurrent(id) {
    this.current = id;
    for (const button of this.root.querySelectorAll("[data-label-id]")) {
      const on = Number(button.dataset.labelId) === id;
      button.classList.toggle("current", on);
      button.setAttribute("aria-pressed", String(on));
    }
  }

  _select(id) {
    this.setCurrent(id);
    this.dispatchEvent(new CustomEvent("select", { detail: { id } }));
  }
}
