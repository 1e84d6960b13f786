// Undo/redo as a command stack (the miniPaint pattern: each edit is an object that can do and undo itself).
//
// An edit stores only the pixels it changed (index, id before, id after), so a brush dab costs a few hundred
// bytes and a full clear of a 256² map 320 KiB. Edits are computed by diffing snapshots, which keeps every tool
// (brush, line, fill, clear, load) on the same path with no per-tool undo code.

/** One undoable change to a label map's ids. */
export class LabelEdit {
  constructor(name, indices, before, after) {
    this.name = name; // shown in the undo button's tooltip, e.g. "brush", "fill"
    this.indices = indices; // Uint32Array of changed pixel indices
    this.before = before; // Uint8Array of ids before the edit, same length
    this.after = after; // Uint8Array of ids after the edit, same length
  }

  /** The edit turning `before` into `after` (two equal-length id arrays), or null when they are equal. */
  static between(name, before, after) {
    if (before.length !== after.length) {
      throw new RangeError(`cannot diff label maps of ${before.length} and ${after.length} pixels`);
    }
    let count = 0;
    for (let i = 0; i < before.length; i++) if (before[i] !== after[i]) count++;
    if (count === 0) return null;
    const indices = new Uint32Array(count);
    const was = new Uint8Array(count);
    const now = new Uint8Array(count);
    for (let i = 0, k = 0; i < before.length; i++) {
      if (before[i] !== after[i]) {
        indices[k] = i;
        was[k] = before[i];
        now[k] = after[i];
        k++;
      }
    }
    return new LabelEdit(name, indices, was, now);
  }

  get size() {
    return this.indices.length;
  }

  do(ids) {
    for (let k = 0; k < this.indices.length; k++) ids[this.indices[k]] = this.after[k];
  }

  undo(ids) {
    for (let k = 0; k < this.indices.length; k++) ids[this.indices[k]] = this.before[k];
  }
}

/** A bounded undo/redo stack of edits. Pushing a new edit discards the redo branch. */
export class History {
  constructor(limit = 200) {
    if (!(limit >= 1)) throw new RangeError(`history limit must be >= 1, got ${limit}`);
    this.limit = limit; // oldest edits are dropped beyond this many
    this.done = [];
    this.undone = [];
  }

  /** Record an edit that has already been applied. Null edits (no pixel changed) are ignored. */
  push(edit) {
    if (!edit) return false;
    this.done.push(edit);
    if (this.done.length > this.limit) this.done.shift();
    this.undone.length = 0;
    return true;
  }

  get canUndo() {
    return this.done.length > 0;
  }

  get canRedo() {
    return this.undone.length > 0;
  }

  /** Revert the newest edit on `ids`; returns it, or null when there is nothing to undo. */
  undo(ids) {
    const edit = this.done.pop();
    if (!edit) return null;
    edit.undo(ids);
    this.undone.push(edit);
    return edit;
  }

  /** Re-apply the newest undone edit on `ids`; returns it, or null when there is nothing to redo. */
  redo(ids) {
    const edit = this.undone.pop();
    if (!edit) return null;
    edit.do(ids);
    this.done.push(edit);
    return edit;
  }

  clear() {
    this.done.length = 0;
    this.undone.length = 0;
  }
}
