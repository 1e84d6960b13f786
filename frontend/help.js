// What the studio tells a newcomer: the tools and their keys, the `?` overlay listing every shortcut, and a hint
// shown once on the first visit.
//
// TOOL_KEYS is the one table of the tools' shortcut keys: main.js dispatches with it, the overlay lists it and the
// tool buttons show it, so the three can never disagree.

const HINT_KEY = "collage-studio.hint-seen";

/** Tool → [key code, key shown]. */
export const TOOL_KEYS = {
  brush: ["KeyB", "B"],
  line: ["KeyL", "L"],
  rect: ["KeyU", "U"],
  ellipse: ["KeyC", "C"],
  polygon: ["KeyP", "P"],
  fill: ["KeyF", "F"],
  eyedropper: ["KeyI", "I"],
  eraser: ["KeyE", "E"],
  object: ["KeyX", "X"],
  reroll: ["KeyO", "O"], // O for object: R is the style dice
};

/** The tool a key code selects, or undefined. */
export function toolForKey(code) {
  return Object.keys(TOOL_KEYS).find((tool) => TOOL_KEYS[tool][0] === code);
}

/** Every shortcut the overlay lists: [keys, what they do]. */
export const SHORTCUTS = [
  ["B", "Brush"],
  ["L", "Straight line (hold Shift to snap to 45°)"],
  ["U", "Rectangle (hold Shift for a square)"],
  ["C", "Ellipse (hold Shift for a circle)"],
  ["P", "Polygon: click the corners; double-click, Enter or a click on the first corner closes it"],
  ["F", "Fill a connected region"],
  ["I / Alt-click", "Eyedropper: pick a label from the canvas"],
  ["E", "Eraser (on an upper layer it reveals the layers below)"],
  ["X", "Remove object: what is below it (on a layer) or around it fills in"],
  ["O", "Re-roll one tree, rock or house (CollageGAN on)"],
  ["[ / ]", "Smaller / bigger brush"],
  ["1…9, 0", "Pick a label by its place in the palette (with Shift: the 11th to 20th)"],
  ["Ctrl+Z / Ctrl+Shift+Z", "Undo / redo"],
  ["Esc", "Cancel the stroke or polygon in progress"],
  ["Wheel / pinch / + / −", "Zoom both canvases"],
  ["Space+drag / middle drag", "Pan the zoomed canvases"],
  ["Home", "Fit: back to the whole canvas"],
  ["N", "New layer above the current one"],
  ["F2 / double-click", "Rename the current layer"],
  ["R", "Random style (the dice)"],
  ["V", "Next compare view"],
  ["?", "This list"],
];

export class Help {
  constructor({ dialog, list, button, hint, hintClose }) {
    this.dialog = dialog; // <dialog> with the shortcut list
    this.hint = hint; // the first-visit hint
    list.replaceChildren(
      ...SHORTCUTS.flatMap(([keys, what]) => {
        const dt = document.createElement("dt");
        for (const [i, key] of keys.split(" / ").entries()) {
          if (i) dt.append(" / ");
          const kbd = document.createElement("kbd");
          kbd.textContent = key;
          dt.append(kbd);
        }
        const dd = document.createElement("dd");
        dd.textContent = what;
        return [dt, dd];
      }),
    );
    button.addEventListener("click", () => this.toggle());
    dialog.addEventListener("click", (e) => {
      if (e.target === dialog) dialog.close(); // a click on the backdrop
    });
    hintClose.addEventListener("click", () => this.dismissHint());
    let seen = true;
    try {
      seen = localStorage.getItem(HINT_KEY) !== null;
    } catch {
      // storage disabled: no hint rather than one on every load
    }
    hint.hidden = seen;
  }

  toggle() {
    if (this.dialog.open) this.dialog.close();
    else this.dialog.showModal();
    this.dismissHint(); // whoever found the list needs no hint pointing at it
  }

  dismissHint() {
    this.hint.hidden = true;
    try {
      localStorage.setItem(HINT_KEY, "1");
    } catch {
      // storage disabled
    }
  }
}
