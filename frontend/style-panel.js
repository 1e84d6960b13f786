// The style panel: what the picture should look like, independent of what is painted.
//
// Exactly one style source is active: a seed (a random latent every client derives the same way), a preset
// from the model's manifest, or a reference photo the server encoded into a latent (its style_id).
// The dice rolls a new seed; the lock freezes the seed (dice and seed field disabled) and remembers it across
// page loads, so an artist can come back to the same look. CollageGAN is a separate on/off switch.
//
// Event: `change` {style: {seed}|{preset}|{style_id}, collage} whenever the effective style changes.

const STORAGE_KEY = "collage-studio.seed-lock";
const MAX_SEED = 2 ** 31 - 1;
// Photos the server takes as they are: its default pixel limit (COLLAGE_MAX_PIXELS), and a file size under its
// 16 MB body limit with room for the rest of the form. Its encoder sees only 128², so a camera photo loses
// nothing when the browser shrinks it to PHOTO_SIDE first.
export const MAX_PHOTO_PIXELS = 1024 * 1024;
export const MAX_PHOTO_BYTES = 15 * 1024 * 1024;
const PHOTO_SIDE = 1024; // longest side of a shrunk photo, so it stays within MAX_PHOTO_PIXELS

/** A fresh random seed in [0, 2³¹). */
export function randomSeed() {
  return crypto.getRandomValues(new Uint32Array(1))[0] & MAX_SEED;
}

/** Parse a seed typed by the user: a non-negative integer below 2³¹, else null. */
export function parseSeed(text) {
  const value = Number(String(text).trim());
  return Number.isInteger(value) && value >= 0 && value <= MAX_SEED && String(text).trim() !== "" ? value : null;
}

/** The size to send a width×height photo of `bytes` at, keeping its aspect; null when it can go as it is. */
export function shrunkSize(width, height, bytes) {
  if (width * height <= MAX_PHOTO_PIXELS && bytes <= MAX_PHOTO_BYTES) return null;
  const scale = Math.min(1, PHOTO_SIDE / Math.max(width, height));
  return { width: Math.max(1, Math.round(width * scale)), height: Math.max(1, Math.round(height * scale)) };
}

/** `file` as the server will take it: untouched when it fits, else redrawn smaller as a JPEG. */
async function fitPhoto(file) {
  let bitmap;
  try {
    bitmap = await createImageBitmap(file); // applies the EXIF rotation, as the server would
  } catch {
    return file; // the browser cannot read it either: the server's answer says what is wrong
  }
  const size = shrunkSize(bitmap.width, bitmap.height, file.size);
  if (!size) {
    bitmap.close();
    return file;
  }
  const canvas = document.createElement("canvas");
  canvas.width = size.width;
  canvas.height = size.height;
  const ctx = canvas.getContext("2d");
  ctx.imageSmoothingQuality = "high";
  ctx.drawImage(bitmap, 0, 0, size.width, size.height);
  bitmap.close();
  const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.92));
  return blob ? new File([blob], file.name, { type: blob.type }) : file;
}

export class StylePanel extends EventTarget {
  constructor(elements, { uploadStyle }) {
    super();
    this.el = elements; // {fileInput, dropZone, thumb, thumbImg, clearImage, presets, seedInput, dice, lock, collage, message}
    this.uploadStyle = uploadStyle; // async (File) => {style_id}
    const saved = this._loadLock();
    this.state = {
      mode: "seed", // "seed" | "preset" | "image"
      seed: saved ?? randomSeed(),
      locked: saved !== null,
      preset: null,
      styleId: null,
      collage: false,
    };
    this.thumbUrl = null;
    this._wire();
    this._render();
  }

  /** The `style` field of the configure message. */
  get style() {
    const s = this.state;
    if (s.mode === "image") return { style_id: s.styleId };
    if (s.mode === "preset") return { preset: s.preset };
    return { seed: s.seed };
  }

  /** Show the model's presets and enable what it can do. */
  setModel({ presets, styleImage, collage }) {
    const { el } = this;
    el.presets.replaceChildren(
      ...presets.map((name) => {
        const b = document.createElement("button");
        b.type = "button";
        b.className = "chip-button";
        b.dataset.preset = name;
        b.textContent = name.replace(/[-_]/g, " ");
        return b;
      }),
    );
    el.presets.closest("[data-section]")?.toggleAttribute("hidden", presets.length === 0);
    el.fileInput.disabled = !styleImage;
    el.dropZone.classList.toggle("disabled", !styleImage);
    el.dropZone.title = styleImage ? "Upload a reference photo (or drop one here)" : "This model has no style encoder";
    el.collage.disabled = !collage;
    el.collage.closest("label").title = collage
      ? "Compose trees, rocks and houses with the class generators"
      : "This model has no CollageGAN class generators";
    if (!collage) this.state.collage = false;
    // A preset or uploaded style belongs to the previous model's latent space: fall back to the seed.
    if (this.state.mode === "preset" && !presets.includes(this.state.preset)) this.state.mode = "seed";
    this._dropImage();
    if (this.state.mode === "image") this.state.mode = "seed";
    this._render();
  }

  /** Roll a new random seed (ignored while the seed is locked). */
  roll() {
    if (this.state.locked) return false;
    this._setSeed(randomSeed());
    return true;
  }

  /** Forget a style the server no longer knows (e.g. after a restart with another data dir). */
  resetToSeed(message) {
    this._dropImage();
    this.state.mode = "seed";
    this._render();
    this._showMessage(message, true);
    this._emit();
  }

  _wire() {
    const { el } = this;
    el.dice.addEventListener("click", () => this.roll());
    el.lock.addEventListener("click", () => {
      this.state.locked = !this.state.locked;
      this._saveLock();
      this._render();
    });
    el.seedInput.addEventListener("change", () => {
      const seed = parseSeed(el.seedInput.value);
      if (seed === null) {
        this._showMessage(`A seed is a whole number from 0 to ${MAX_SEED}.`, true);
        el.seedInput.value = String(this.state.seed);
        return;
      }
      this._setSeed(seed);
    });
    el.seedInput.addEventListener("keydown", (e) => {
      if (e.key === "Enter") el.seedInput.blur();
    });
    el.presets.addEventListener("click", (e) => {
      const button = e.target.closest("[data-preset]");
      if (!button) return;
      const s = this.state;
      // Clicking the active preset again returns to the seed.
      const same = s.mode === "preset" && s.preset === button.dataset.preset;
      s.mode = same ? "seed" : "preset";
      s.preset = same ? null : button.dataset.preset;
      this._render();
      this._emit();
    });
    el.fileInput.addEventListener("change", () => {
      const file = el.fileInput.files?.[0];
      el.fileInput.value = "";
      if (file) this._upload(file);
    });
    el.dropZone.addEventListener("dragover", (e) => {
      if (el.fileInput.disabled) return;
      e.preventDefault();
      el.dropZone.classList.add("dragging");
    });
    el.dropZone.addEventListener("dragleave", () => el.dropZone.classList.remove("dragging"));
    el.dropZone.addEventListener("drop", (e) => {
      e.preventDefault();
      el.dropZone.classList.remove("dragging");
      const file = e.dataTransfer?.files?.[0];
      if (file && !el.fileInput.disabled) this._upload(file);
    });
    el.clearImage.addEventListener("click", (e) => {
      e.preventDefault();
      e.stopPropagation();
      this._dropImage();
      this.state.mode = "seed";
      this._render();
      this._emit();
    });
    el.collage.addEventListener("change", () => {
      this.state.collage = el.collage.checked;
      this._emit();
    });
  }

  async _upload(file) {
    if (!file.type.startsWith("image/")) {
      this._showMessage(`${file.name} is not an image.`, true);
      return;
    }
    // Preview the new photo while the server encodes it; the current style stays in use until that succeeds.
    const url = URL.createObjectURL(file);
    this._showThumb(url);
    this.el.dropZone.classList.add("busy");
    this._showMessage("Encoding the reference photo…");
    try {
      const { style_id: styleId } = await this.uploadStyle(await fitPhoto(file));
      this._dropImage();
      this.thumbUrl = url;
      this._showThumb(url);
      this.state.mode = "image";
      this.state.styleId = styleId;
      this._showMessage(`Style from ${file.name}`);
      this._render();
      this._emit();
    } catch (err) {
      URL.revokeObjectURL(url);
      this._showThumb(this.thumbUrl); // the photo, preset or seed in use before
      this._showMessage(`Could not use ${file.name}: ${err.message}`, true);
    } finally {
      this.el.dropZone.classList.remove("busy");
    }
  }

  _dropImage() {
    if (this.thumbUrl) URL.revokeObjectURL(this.thumbUrl);
    this.thumbUrl = null;
    this.state.styleId = null;
    this._showThumb(null);
  }

  _showThumb(url) {
    this.el.thumb.hidden = url === null;
    if (url) this.el.thumbImg.src = url;
    else this.el.thumbImg.removeAttribute("src");
  }

  _setSeed(seed) {
    this.state.seed = seed;
    this.state.mode = "seed";
    this._saveLock();
    this._showMessage(""); // a good seed answers an error about a bad one, and ends any photo's message
    this._render();
    this._emit();
  }

  _render() {
    const { el, state: s } = this;
    el.seedInput.value = String(s.seed);
    el.seedInput.readOnly = s.locked;
    el.dice.disabled = s.locked;
    el.lock.setAttribute("aria-pressed", String(s.locked));
    el.lock.title = s.locked ? "Seed locked: click to unlock" : "Lock the seed (kept across page loads)";
    el.lock.classList.toggle("on", s.locked);
    el.collage.checked = s.collage;
    for (const b of el.presets.querySelectorAll("[data-preset]")) {
      b.classList.toggle("current", s.mode === "preset" && b.dataset.preset === s.preset);
    }
    el.thumb.classList.toggle("current", s.mode === "image");
    el.seedInput.closest("[data-section]")?.classList.toggle("inactive", s.mode !== "seed");
  }

  _showMessage(text, isError = false) {
    this.el.message.textContent = text;
    this.el.message.classList.toggle("error", isError);
  }

  _loadLock() {
    try {
      const raw = localStorage.getItem(STORAGE_KEY);
      return raw === null ? null : parseSeed(raw);
    } catch {
      return null; // storage disabled (private mode): the lock just does not persist
    }
  }

  _saveLock() {
    try {
      if (this.state.locked) localStorage.setItem(STORAGE_KEY, String(this.state.seed));
      else localStorage.removeItem(STORAGE_KEY);
    } catch {
      // storage disabled: nothing to remember
    }
  }

  _emit() {
    this.dispatchEvent(new CustomEvent("change", { detail: { style: this.style, collage: this.state.collage } }));
  }
}
