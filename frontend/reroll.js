// The re-roll tool: click one object the CollageGAN stage composed (a tree, rock or house) to get another one.
//
// A click on the picture or on the label canvas is turned into a pixel of the label map (both show the whole map,
// scaled by CSS) and sent as {"type":"reroll", x, y}. The server keeps the new seed for that object for the rest
// of the session, answers `rerolled` (or an error below) and then sends the picture again under the seq of the
// frame on screen (docs/protocol.md). The helpers above the RerollTool class are pure, tested without a DOM.

/** Error codes a re-roll can get back; the status bar explains them instead of showing the server's text. */
export const REROLL_ERRORS = ["no_instance", "collage_off", "no_frame"];

/**
 * The label-map pixel under the client point (clientX, clientY) of an element that shows a width×height map
 * stretched over `rect` (its getBoundingClientRect()); null outside it. The element's CSS size never equals the
 * map's, so this is where the two meet.
 */
export function mapPixel(clientX, clientY, rect, width, height) {
  const u = (clientX - rect.left) / rect.width;
  const v = (clientY - rect.top) / rect.height;
  if (!(u >= 0 && u <= 1 && v >= 0 && v <= 1)) return null; // also NaN, for an element not laid out
  // The right and bottom edges belong to the last pixel.
  return { x: Math.min(width - 1, Math.floor(u * width)), y: Math.min(height - 1, Math.floor(v * height)) };
}

/** The `reroll` message for map pixel (x, y); with no seed the server draws one. */
export function rerollMessage(x, y, seed = null) {
  for (const [name, value] of [
    ["x", x],
    ["y", y],
  ]) {
    if (!Number.isInteger(value) || value < 0 || value > 0xffff) throw new RangeError(`bad ${name} ${value}`);
  }
  if (seed === null) return { type: "reroll", x, y };
  if (!Number.isInteger(seed) || seed < 0) throw new RangeError(`bad seed ${seed}`);
  return { type: "reroll", x, y, seed };
}

/** "tree, rock or house" from the model's collage classes. */
export function thingList(names) {
  if (names.length === 0) return "object";
  return names.length === 1 ? names[0] : `${names.slice(0, -1).join(", ")} or ${names.at(-1)}`;
}

/**
 * The status line for a re-roll answer, {text, isError}: a `rerolled` message, or an `error` with one of
 * REROLL_ERRORS; null for any other message. `things` are the model's collage classes (capabilities).
 */
export function rerollStatus(msg, things = []) {
  if (msg.type === "rerolled") return { text: `Re-rolled ${msg.thing} (seed ${msg.seed})`, isError: false };
  if (msg.type !== "error") return null;
  if (msg.code === "no_instance") {
    return { text: `No ${thingList(things)} to re-roll there (small ones are not redrawn)`, isError: true };
  }
  if (msg.code === "collage_off") return { text: "Re-roll needs CollageGAN: switch it on first", isError: true };
  if (msg.code === "no_frame") return { text: "Nothing to re-roll yet: wait for the first picture", isError: true };
  return null;
}

/** The re-roll button's tooltip: what it does, or why it is disabled. */
export function rerollTitle(enabled, things = []) {
  const what = `Re-roll one object (O): click a ${thingList(things)} for a new one`;
  return enabled ? what : `${what} (needs CollageGAN on)`;
}

/**
 * The tool's DOM side: its button, re-roll clicks on `surfaces` while the tool is in use, and the status of the
 * answers. A surface is [element clicked, element showing the map]: the label canvas's pointer surface takes the
 * clicks over the (possibly zoomed) label canvas, the picture takes its own. The app switches tools; this only
 * asks `isActive()`.
 */
export class RerollTool {
  constructor({ button, surfaces, stream, isActive, getMap, setStatus }) {
    this.button = button;
    this.stream = stream; // PaintStream: reroll() and the `rerolled` event
    this.isActive = isActive; // () => whether the re-roll tool is the current tool
    this.getMap = getMap; // () => the label map {width, height}, whose pixels the server counts in
    this.setStatus = setStatus; // (text, isError, clearAfterMs)
    this.things = []; // the model's collage classes, for the messages
    this.last = null; // the server's latest `rerolled` answer
    for (const [el, view] of surfaces) el.addEventListener("click", (e) => this._click(e, view));
    stream.addEventListener("rerolled", (e) => {
      this.last = e.detail;
      setStatus(rerollStatus(e.detail).text, false, 5000);
    });
    this.setEnabled(false);
  }

  /** Offer the tool (CollageGAN on) or grey it out; `things` are the model's collage classes. */
  setEnabled(enabled, things = this.things) {
    this.things = things;
    this.button.disabled = !enabled;
    this.button.title = rerollTitle(enabled, things);
  }

  get enabled() {
    return !this.button.disabled;
  }

  /** Show a re-roll error in words; false for any other server error, which the app reports itself. */
  explain(error) {
    if (!REROLL_ERRORS.includes(error.code)) return false;
    const { text, isError } = rerollStatus(error, this.things);
    this.setStatus(text, isError, 5000);
    return true;
  }

  _click(event, view) {
    const map = this.getMap();
    if (!this.isActive() || !this.enabled || event.altKey || event.button !== 0 || !map) return;
    const rect = view.getBoundingClientRect();
    const p = mapPixel(event.clientX, event.clientY, rect, map.width, map.height);
    if (p && !this.stream.reroll(p.x, p.y)) this.setStatus("Not connected: cannot re-roll now", true, 4000);
  }
}
