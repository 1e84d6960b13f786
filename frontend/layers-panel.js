// The layers panel: the canvas's layer stack as a list, top layer first as in every paint program, with buttons to
// add, remove and reorder, an eye per layer, and a double-click (or F2) to rename. Every change goes through the
// PaintCanvas, so each one is a step on the undo stack; the list is redrawn whenever the canvas says `layers`.

export class LayersPanel {
  constructor({ list, add, remove, up, down }, canvas) {
    this.list = list; // <ol> of layer rows
    this.buttons = { add, remove, up, down };
    this.canvas = canvas;
    canvas.addEventListener("layers", () => this.render());
    add.addEventListener("click", () => canvas.addLayer());
    remove.addEventListener("click", () => canvas.removeLayer(canvas.active));
    up.addEventListener("click", () => canvas.moveLayer(canvas.active, 1));
    down.addEventListener("click", () => canvas.moveLayer(canvas.active, -1));
  }

  render() {
    const { canvas } = this;
    const layers = canvas.layers;
    this.list.replaceChildren(...layers.map((layer, k) => this._row(layer, k)).reverse());
    const index = layers.indexOf(canvas.active);
    this.buttons.remove.disabled = index < 1;
    this.buttons.up.disabled = index < 1 || index === layers.length - 1;
    this.buttons.down.disabled = index < 2;
  }

  _row(layer, k) {
    const { canvas } = this;
    const row = document.createElement("li");
    row.className = "layer-row";
    row.dataset.layerIndex = String(k);
    row.classList.toggle("current", layer === canvas.active);
    row.classList.toggle("hidden-layer", !layer.visible);

    const eye = document.createElement("button");
    eye.type = "button";
    eye.className = "layer-eye";
    eye.setAttribute("aria-pressed", String(layer.visible));
    eye.innerHTML = `<svg class="icon"><use href="#i-eye${layer.visible ? "" : "-off"}" /></svg>`;
    eye.disabled = k === 0;
    eye.title = k === 0 ? "The bottom layer always shows" : layer.visible ? "Hide this layer" : "Show this layer";
    eye.addEventListener("click", () => canvas.setLayerVisible(layer, !layer.visible));

    const name = document.createElement("button");
    name.type = "button";
    name.className = "layer-name";
    name.textContent = layer.name;
    name.title = "Paint on this layer; double-click (or F2) to rename";
    name.addEventListener("click", () => canvas.setActive(layer));
    name.addEventListener("dblclick", () => this._rename(row, layer));
    row.append(eye, name);
    return row;
  }

  /** Rename the current layer (F2). */
  renameCurrent() {
    const k = this.canvas.layers.indexOf(this.canvas.active);
    const row = this.list.querySelector(`[data-layer-index="${k}"]`);
    if (row) this._rename(row, this.canvas.active);
  }

  /** Swap the row's name for a text field; Enter or leaving it renames, Escape keeps the old name. */
  _rename(row, layer) {
    const input = document.createElement("input");
    input.type = "text";
    input.className = "layer-rename";
    input.value = layer.name;
    input.maxLength = 40;
    input.setAttribute("aria-label", "Layer name");
    let done = false;
    const finish = (keep) => {
      if (done) return;
      done = true;
      if (keep) this.canvas.renameLayer(layer, input.value);
      this.render();
    };
    input.addEventListener("keydown", (e) => {
      if (e.key === "Enter") finish(true);
      else if (e.key === "Escape") finish(false);
      e.stopPropagation(); // typing a name is not a shortcut
    });
    input.addEventListener("blur", () => finish(true));
    row.querySelector(".layer-name").replaceWith(input);
    input.select();
    input.focus();
  }
}
