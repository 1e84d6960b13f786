import assert from "node:assert/strict";
import { test } from "node:test";
import { buildLut, idsToRgba, indexForKey, inkFor, shortcutLabel } from "./palette.js";

test("digit keys pick the first ten labels, Shift+digit the next ten", () => {
  assert.equal(indexForKey({ code: "Digit1", shiftKey: false }), 0);
  assert.equal(indexForKey({ code: "Digit0", shiftKey: false }), 9);
  assert.equal(indexForKey({ code: "Numpad3", shiftKey: false }), 2);
  assert.equal(indexForKey({ code: "Digit4", shiftKey: true }), 13);
  assert.equal(indexForKey({ code: "KeyB", shiftKey: false }), -1);
  assert.deepEqual([0, 8, 9, 10, 19, 20].map(shortcutLabel), ["1", "9", "0", "⇧1", "⇧0", ""]);
  for (let i = 0; i < 20; i++) {
    const label = shortcutLabel(i);
    const code = `Digit${label.at(-1)}`;
    assert.equal(indexForKey({ code, shiftKey: label.startsWith("⇧") }), i);
  }
});

test("ids are coloured through the lookup table; unknown ids are magenta", () => {
  const lut = buildLut([
    { id: 0, color: [10, 20, 30] },
    { id: 2, color: [200, 100, 0] },
  ]);
  const out = idsToRgba(Uint8Array.from([0, 2, 1]), lut, new Uint8ClampedArray(12));
  assert.deepEqual([...out], [10, 20, 30, 255, 200, 100, 0, 255, 255, 0, 255, 255]);
});

test("swatch ink is dark on light colours and light on dark ones", () => {
  assert.equal(inkFor([255, 255, 255]), "#111");
  assert.equal(inkFor([30, 110, 40]), "#fff");
});
