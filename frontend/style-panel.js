// The style panel: what the picture should look like, independent of what is painted.
//
// Exactly one style source is active: a seed (a random latent every client derives the same way), a preset
// from the model's manifest, or a reference photo the server encoded into a latent (its style_id).
// The dice rolls a new seed; the lock freezes the seed (dice and seed field disabled) and remembers it across
// page loads, so an artist can come back to the same look. CollageGAN is a separate on/off switch.
// The style in use belongs to the drawing: the app saves `saved` with it (autosave, project files) and hands it
// back on a page load or when a project is opened; a photo's style is taken up only if the server still has it.
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
const THUMB_SIDE = 160; // longest side of the photo kept for a reload: a few kB, enough for the drop zone

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
  return fitSide(width, height, PHOTO_SIDE);
}

/** width×height scaled down to at most `side` on its longest side, keeping its aspect and never 0 px. */
function fitSide(width, height, side) {
  const scale = Math.min(1, side / Math.max(width, height));
  return { width: Math.max(1, Math.round(width * scale)), height: Math.max(1, Math.round(height * scale)) };
}

/** What of a tab's `saved` style (parsed from storage, so possibly anything) a model offering `caps` can use. */
export function restorable(saved, { presets, styleImage, collage }) {
  if (typeof saved !== "object" || saved === null) return null;
  const preset = saved.mode === "preset" && presets.includes(saved.preset) ? saved.preset : null;
  const image = saved.mode === "image" && styleImage && typeof saved.styleId === "string";
  const thumb = typeof saved.thumb === "string" && saved.thumb.startsWith("data:image/") ? saved.thumb : null;
  return {
    mode: preset !== null ? "preset" : image ? "image" : "seed",
    seed: parseSeed(saved.seed),
    preset,
    styleId: image ? saved.styleId : null,
    thumb: image ? thumb : null,
    collage: collage && saved.collage === true,
  };
}

/** `bitmap` drawn smoothly at `size` on a new canvas; the bitmap is closed. */
function redraw(bitmap, size) {
  const canvas = document.createElement("canvas");
  canvas.width = size.width;
  canvas.height = size.height;
  const ctx = canvas.getContext("2d");
  ctx.imageSmoothingQuality = "high";
  ctx.drawImage(bitmap, 0, 0, size.width, size.height);
  bitmap.close();
  return canvas;
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
  const canvas = redraw(bitmap, size);
  const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.92));
  return blob ? new File([blob], file.name, { type: blob.type }) : file;
}

/** A small JPEG data URL of `file`, kept with the tab's style so a reload can show the photo; null if unreadable. */
async function thumbnail(file) {
  try {
    const bitmap = await createImageBitmap(file);
    return redraw(bitmap, fitSide(bitmap.width, bitmap.height, THUMB_SIDE)).toDataURL("image/jpeg", 0.85);
  } catch {
    return null;
  }
}

export class StylePanel extends EventTarget {
  constructor(elements, { uploadStyle, readStyle, renderPreset }) {
    super();
    this.el = elements; // {fileInput, dropZone, thumb, thumbImg, clearImage, presets, seedInput, dice, lock, collage, message}
    this.uploadStyle = uploadStyle; // async (File) => {style_id}
    this.readStyle = readStyle; // async (style_id) => the stored style; throws when the server does not have it
    this.renderPreset = renderPreset; // async (model, preset) => Blob: a small picture of the preset, by the server
    this.previewUrls = []; // object URLs of the preset previews shown, revoked with the next model's
    this.model = null; // the model whose presets are shown, and under whose name the tab's style is kept
    const saved = this._loadLock();
    this.state = {
      mode: "seed", // "seed" | "preset" | "image"
      seed: saved ?? randomSeed(),
      locked: saved !== null,
      preset: null,
      styleId: null,
      thumb: null, // a small data URL of the photo, kept so that a reload can show it again
      collage: false,
    };
    this.thumbUrl = null;
    this.upload = null; // {url} of the photo being encoded while it is still the user's latest choice
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

  /** What to save with the drawing, for `restore` (and a page load) to take up again. */
  get saved() {
    const { mode, seed, preset, styleId, thumb, collage } = this.state;
    return { mode, seed, preset, styleId, thumb, collage };
  }

  /**
   * Show the model's presets and enable what it can do, and take up `saved`, the style saved with the drawing
   * being restored (null when the drawing on the canvas stays, or has no style saved).
   */
  async setModel({ name, presets, styleImage, collage, seeded = true, saved: raw = null }) {
    this._abandonUpload(); // a photo sent for the previous model would be encoded in its latent space
    this.model = name;
    this.caps = { presets, styleImage, collage };
    // A model switch that keeps the drawing keeps the style in use where it can (below).
    const saved = raw ? await this._savedStyle(raw) : null;
    if (this.model !== name) return; // another model was chosen while a photo style was checked
    const { el } = this;
    el.presets.replaceChildren(
      ...presets.map((name) => {
        const b = document.createElement("button");
        b.type = "button";
        b.className = "chip-button";
        b.dataset.preset = name;
        const thumb = document.createElement("img");
        thumb.className = "preset-thumb";
        thumb.alt = "";
        b.append(thumb, name.replace(/[-_]/g, " "));
        return b;
      }),
    );
    this._loadPreviews(name, presets);
    el.presets.closest("[data-section]")?.toggleAttribute("hidden", presets.length === 0);
    // Controls the model cannot use are hidden, not shown greyed out: each architecture offers its own set.
    el.fileInput.disabled = !styleImage;
    el.dropZone.hidden = !styleImage;
    el.dropZone.title = "Upload a reference photo (or drop one here)";
    el.collage.disabled = !collage;
    el.collage.closest("label").hidden = !collage;
    el.collage.closest("label").title = "Compose trees, rocks and houses with the class generators";
    // A generator with neither a style latent nor noise draws one picture per map: a seed would change nothing.
    el.seedInput.closest("[data-section]").hidden = !seeded;
    if (!collage) this.state.collage = false;
    // A preset or uploaded style belongs to the previous model's latent space: fall back to the seed.
    if (this.state.mode === "preset" && !presets.includes(this.state.preset)) this.state.mode = "seed";
    this._dropImage();
    if (this.state.mode === "image") this.state.mode = "seed";
    if (saved) this._takeUp(saved);
    this._render();
  }

  /** Take up the style saved with a drawing that was just opened (a project file). */
  async restore(raw) {
    const model = this.model;
    const saved = await this._savedStyle(raw);
    if (!saved || this.model !== model) return;
    this._chose();
    this._dropImage();
    this._takeUp(saved);
    this._render();
    this._emit();
  }

  /** Show each preset's look on its chip: one server render per preset, one after another, behind the painting. */
  async _loadPreviews(model, presets) {
    for (const url of this.previewUrls) URL.revokeObjectURL(url);
    this.previewUrls = [];
    for (const preset of presets) {
      let blob;
      try {
        blob = await this.renderPreset(model, preset);
      } catch {
        return; // the server is busy or gone: the chips keep their names, which is all they had before
      }
      if (this.model !== model) return; // another model's chips are shown now
      const url = URL.createObjectURL(blob);
      this.previewUrls.push(url);
      const chip = [...this.el.presets.querySelectorAll("[data-preset]")].find((b) => b.dataset.preset === preset);
      if (chip) chip.querySelector(".preset-thumb").src = url;
    }
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
      this._chose();
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
      this._chose();
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
    this._abandonUpload(); // the latest photo wins, even when an earlier, bigger one would finish after it
    // Preview the new photo while the server encodes it; the current style stays in use until that succeeds.
    const upload = { url: URL.createObjectURL(file) };
    this.upload = upload;
    this._showThumb(upload.url);
    this.el.dropZone.classList.add("busy");
    this._showMessage("Encoding the reference photo…");
    try {
      const photo = await fitPhoto(file);
      const [{ style_id: styleId }, thumb] = await Promise.all([this.uploadStyle(photo), thumbnail(photo)]);
      if (!this._settle(upload)) return;
      this._dropImage();
      this.thumbUrl = upload.url;
      this._showThumb(upload.url);
      this.state.mode = "image";
      this.state.styleId = styleId;
      this.state.thumb = thumb;
      this._showMessage(`Style from ${file.name}`);
      this._render();
      this._emit();
    } catch (err) {
      if (!this._settle(upload)) return;
      URL.revokeObjectURL(upload.url);
      this._showThumb(this.thumbUrl); // the photo, preset or seed in use before
      this._showMessage(`Could not use ${file.name}: ${err.message}`, true);
    }
  }

  /** Whether `upload` is still the user's latest choice; if so it ends here, and the busy look with it. */
  _settle(upload) {
    if (this.upload !== upload) return false; // superseded: its style or error no longer matters
    this.upload = null;
    this.el.dropZone.classList.remove("busy");
    return true;
  }

  /** Give up on the photo being encoded, if any: whatever the server answers for it is then ignored. */
  _abandonUpload() {
    const upload = this.upload;
    if (!upload) return;
    this._settle(upload);
    URL.revokeObjectURL(upload.url);
    this._showThumb(this.thumbUrl);
    this._showMessage("");
  }

  /** The user picked a style: it supersedes a photo still uploading, and answers any earlier message. */
  _chose() {
    this._abandonUpload();
    this._showMessage("");
  }

  _dropImage() {
    if (this.thumbUrl) URL.revokeObjectURL(this.thumbUrl);
    this.thumbUrl = null;
    this.state.styleId = null;
    this.state.thumb = null;
    this._showThumb(null);
  }

  _showThumb(url) {
    this.el.thumb.hidden = url === null;
    if (url) this.el.thumbImg.src = url;
    else this.el.thumbImg.removeAttribute("src");
  }

  _setSeed(seed) {
    this._chose(); // a good seed answers an error about a bad one, and ends any photo's message
    this.state.seed = seed;
    this.state.mode = "seed";
    this._saveLock();
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

  /**
   * A saved style (parsed from storage or a file, so possibly anything) as this model can use it, once the server
   * confirmed it still has a saved photo style.
   */
  async _savedStyle(raw) {
    const saved = restorable(raw, this.caps);
    if (saved?.mode !== "image") return saved;
    try {
      await this.readStyle(saved.styleId); // the server keeps styles, but may have restarted on other data
      return saved;
    } catch {
      this._showMessage("The photo style from before the reload is unavailable; using the seed instead.", true);
      return { ...saved, mode: "seed", styleId: null, thumb: null };
    }
  }

  _takeUp(saved) {
    const s = this.state;
    if (saved.seed !== null) {
      s.seed = saved.seed; // the drawing's own seed, locked or not; a locked seed stays locked at it
      this._saveLock();
    }
    s.mode = saved.mode;
    s.preset = saved.preset;
    s.styleId = saved.styleId;
    s.thumb = saved.thumb;
    s.collage = saved.collage;
    if (saved.mode === "image") {
      this.thumbUrl = saved.thumb; // a data URL: revoking it when the photo goes is a harmless no-op
      this._showThumb(saved.thumb);
    }
  }

  _emit() {
    this.dispatchEvent(new CustomEvent("change", { detail: { style: this.style, collage: this.state.collage } }));
  }
}
