import assert from "node:assert/strict";
import { test } from "node:test";
import { History, LabelEdit } from "./history.js";

test("LabelEdit.between stores only changed pixels and round-trips", () => {
  const before = Uint8Array.from([0, 0, 1, 1, 2]);
  const after = Uint8Array.from([0, 3, 1, 4, 2]);
  const edit = LabelEdit.between("brush", before, after);
  assert.deepEqual([...edit.indices], [1, 3]);
  assert.deepEqual([...edit.before], [0, 1]);
  assert.deepEqual([...edit.after], [3, 4]);
  const ids = after.slice();
  edit.undo(ids);
  assert.deepEqual(ids, before);
  edit.do(ids);
  assert.deepEqual(ids, after);
  assert.equal(LabelEdit.between("noop", before, before.slice()), null);
  assert.throws(() => LabelEdit.between("x", before, new Uint8Array(3)), RangeError);
});

test("undo and redo walk the stack; a new edit drops the redo branch", () => {
  const ids = new Uint8Array(4);
  const history = new History();
  const states = [ids.slice()];
  for (const [i, v] of [
    [0, 1],
    [1, 2],
    [2, 3],
  ]) {
    const before = ids.slice();
    ids[i] = v;
    history.push(LabelEdit.between("brush", before, ids));
    states.push(ids.slice());
  }
  assert.equal(history.undo(ids).name, "brush");
  assert.deepEqual(ids, states[2]);
  history.undo(ids);
  assert.deepEqual(ids, states[1]);
  history.redo(ids);
  assert.deepEqual(ids, states[2]);
  assert.ok(history.canRedo);
  const before = ids.slice();
  ids[3] = 9;
  history.push(LabelEdit.between("fill", before, ids));
  assert.equal(history.canRedo, false);
  assert.equal(history.redo(ids), null);
  history.undo(ids);
  history.undo(ids);
  history.undo(ids);
  assert.deepEqual(ids, states[0]);
  assert.equal(history.canUndo, false);
  assert.equal(history.undo(ids), null);
});

test("null edits are ignored and the limit drops the oldest edits", () => {
  const history = new History(2);
  assert.equal(history.push(null), false);
  const ids = new Uint8Array(3);
  for (let i = 0; i < 3; i++) {
    const before = ids.slice();
    ids[i] = 1;
    history.push(LabelEdit.between(`e${i}`, before, ids));
  }
  assert.equal(history.undo(ids).name, "e2");
  assert.equal(history.undo(ids).name, "e1");
  assert.equal(history.undo(ids), null);
  assert.deepEqual([...ids], [1, 0, 0]); // e0 fell off the stack and stays applied
  assert.throws(() => new History(0), RangeError);
});
