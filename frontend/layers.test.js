import assert from "node:assert/strict";
import { test } from "node:test";
import { LabelEdit } from "./history.js";
import {
  EMPTY,
  Layer,
  LayerPropEdit,
  PixelEdit,
  StackEdit,
  flattenInto,
  ownerMap,
  snapshot,
  withObjectRemoved,
} from "./layers.js";

const E = EMPTY;

test("the top visible layer painting a pixel gives its id; hidden layers and EMPTY let the ones below show", () => {
  const bottom = new Layer("Background", Uint8Array.from([0, 0, 7, 7]));
  const trees = new Layer("Trees", Uint8Array.from([9, E, 9, E]));
  const house = new Layer("House", Uint8Array.from([E, E, 13, E]));
  const out = new Uint8Array(4);
  assert.deepEqual([...flattenInto([bottom, trees, house], out)], [9, 0, 13, 7]);
  assert.deepEqual([...ownerMap([bottom, trees, house])], [1, 0, 2, 0]);
  trees.visible = false;
  assert.deepEqual([...flattenInto([bottom, trees, house], out)], [0, 0, 13, 7]);
  assert.deepEqual([...ownerMap([bottom, trees, house])], [0, 0, 2, 0]);
});

test("a pixel edit undoes on its own layer, whatever the ids it is handed", () => {
  const layer = new Layer("L", Uint8Array.from([E, E, E]));
  const before = layer.ids.slice();
  layer.ids[1] = 9;
  const edit = new PixelEdit(layer, LabelEdit.between("brush", before, layer.ids));
  edit.undo(new Uint8Array(3));
  assert.deepEqual([...layer.ids], [E, E, E]);
  edit.do();
  assert.deepEqual([...layer.ids], [E, 9, E]);
  assert.equal(edit.name, "brush");
});

test("a stack edit swaps the order, and with pixels installs copies so later strokes never touch the kept ones", () => {
  const a = new Layer("A", Uint8Array.from([1, 1]));
  const b = new Layer("B", Uint8Array.from([E, 2]));
  const drawing = {
    layers: [a, b],
    map: { width: 2, height: 1 },
    installStack(state) {
      this.layers = state.layers.slice();
      if (state.pixels) this.layers.forEach((l, k) => (l.ids = state.pixels[k].slice()));
    },
  };
  const before = snapshot(drawing, true);
  const edit = new StackEdit("remove layer", drawing, before, { ...snapshot(drawing, false), layers: [a] });
  edit.do();
  assert.deepEqual(drawing.layers, [a]);
  a.ids[0] = 5; // a stroke after the edit
  edit.undo();
  assert.deepEqual(drawing.layers, [a, b]);
  assert.deepEqual([...a.ids], [1, 1]); // the kept pixels came back untouched
  a.ids[1] = 6;
  assert.deepEqual([...before.pixels[0]], [1, 1]);
});

test("a layer property edit flips one field both ways", () => {
  const layer = new Layer("Trees", new Uint8Array(1));
  const edit = new LayerPropEdit("rename layer", layer, "name", "Trees", "Forest");
  edit.do();
  assert.equal(layer.name, "Forest");
  edit.undo();
  assert.equal(layer.name, "Trees");
});

test("removing an object from an upper layer shows what lies below, and fills only where that is the object again", () => {
  // Mountain 3 and grass 7 below; a tree 9 on the upper layer over both, painted on the bottom too at pixel 4.
  const bottom = new Layer("Background", Uint8Array.from([3, 3, 7, 7, 9, 7]));
  const trees = new Layer("Trees", Uint8Array.from([E, 9, 9, E, 9, E]));
  const region = Uint8Array.from([0, 1, 1, 0, 1, 0]);
  assert.deepEqual([...withObjectRemoved([bottom, trees], 1, region, 7)], [E, E, E, E, 7, E]);
  const out = new Uint8Array(6);
  trees.ids = withObjectRemoved([bottom, trees], 1, region, 7);
  assert.deepEqual([...flattenInto([bottom, trees], out)], [3, 3, 7, 7, 7, 7]); // no tree left, no grass hump
  // On the bottom layer, always full, the whole region takes the fill; the input is never changed.
  const flat = new Layer("Background", Uint8Array.from([7, 9, 9, 7]));
  assert.deepEqual([...withObjectRemoved([flat], 0, Uint8Array.from([0, 1, 1, 0]), 7)], [7, 7, 7, 7]);
  assert.deepEqual([...flat.ids], [7, 9, 9, 7]);
});
