// Compare views of labels and picture:
//   side     labels and picture next to each other (the default while painting)
//   overlay  the labels over the picture at an adjustable opacity
//   split    labels left of a movable divider, picture right of it
// In all three the label layer stays paintable: the pointer surface (overlay canvas) is always on top, only the
// coloured label view is faded or clipped. The views are pure CSS, driven by data attributes and one variable.

export const VIEWS = ["side", "overlay", "split"];
const CAPTIONS = { side: "Labels", overlay: "Labels over the picture", split: "Labels  ◂ │ ▸  Picture" };
const MIX_NAMES = { overlay: "Opacity", split: "Divider" };

export class CompareView {
  constructor({ stage, buttons, slider, sliderLabel, caption, divider }) {
    this.stage = stage; // element whose data-view selects the CSS layout
    this.buttons = buttons; // buttons with data-view
    this.slider = slider; // range 0..100: label opacity (overlay) or divider position (split)
    this.sliderLabel = sliderLabel; // wrapper of the slider, with a text span naming what it controls
    this.caption = caption; // the label pane's caption, which says what is shown where
    this.divider = divider; // draggable handle of the split view
    this.mix = { overlay: 55, split: 50 }; // slider value remembered per view
    for (const b of buttons) b.addEventListener("click", () => this.setView(b.dataset.view));
    slider.addEventListener("input", () => {
      this.mix[this.view] = Number(slider.value);
      this._apply();
    });
    this._wireDivider();
    this.setView("side");
  }

  setView(view) {
    if (!VIEWS.includes(view)) throw new Error(`unknown view ${view}`);
    this.view = view;
    this.stage.dataset.view = view;
    for (const b of this.buttons) b.setAttribute("aria-pressed", String(b.dataset.view === view));
    // Invisible in side-by-side but holding its place (and width), so the top bar wraps the same in every view
    // and the canvases do not move when the view changes.
    this.sliderLabel.style.visibility = view === "side" ? "hidden" : "";
    this.sliderLabel.querySelector("span").textContent = MIX_NAMES[view] ?? MIX_NAMES.overlay;
    this.caption.textContent = CAPTIONS[view];
    if (view !== "side") this.slider.value = String(this.mix[view]);
    this._apply();
  }

  /** Cycle to the next view (the V key). */
  next() {
    this.setView(VIEWS[(VIEWS.indexOf(this.view) + 1) % VIEWS.length]);
  }

  _apply() {
    this.stage.style.setProperty("--label-opacity", String(this.mix.overlay / 100));
    this.stage.style.setProperty("--split", `${this.mix.split}%`);
  }

  _wireDivider() {
    const d = this.divider;
    d.addEventListener("pointerdown", (e) => {
      e.preventDefault();
      e.stopPropagation();
      d.setPointerCapture(e.pointerId);
    });
    d.addEventListener("pointermove", (e) => {
      if (!d.hasPointerCapture(e.pointerId)) return;
      const rect = d.parentElement.getBoundingClientRect();
      const pct = Math.max(0, Math.min(100, ((e.clientX - rect.left) / rect.width) * 100));
      this.mix.split = Math.round(pct * 10) / 10;
      this.slider.value = String(this.mix.split);
      this._apply();
    });
  }
}
