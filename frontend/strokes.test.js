import assert from "node:assert/strict";
import { test } from "node:test";
import { createLabelMap, labelAt, paintRect, paintSegment, paintStroke, radiusForSize, snapAngle } from "./strokes.js";

/** Coordinates (x,y) of pixels holding `label`, as "x,y" strings in row-major order. */
function pixelsOf(map, label) {
  const out = [];
  for (let i = 0; i < map.ids.length; i++)
    if (map.ids[i] === label) out.push(`${i % map.width},${Math.floor(i / map.width)}`);
  return out;
}

test("size-1 brush at a pixel centre paints exactly that pixel", () => {
  const map = createLabelMap(5, 5);
  const changed = paintSegment(map, 2.5, 3.5, 2.5, 3.5, radiusForSize(1), 7);
  assert.equal(changed, 1);
  assert.deepEqual(pixelsOf(map, 7), ["2,3"]);
});

test("size-3 dab covers the 3×3 block, size-5 dab a disc of 21 pixels", () => {
  const a = createLabelMap(9, 9);
  paintSegment(a, 4.5, 4.5, 4.5, 4.5, radiusForSize(3), 1);
  assert.deepEqual(pixelsOf(a, 1), ["3,3", "4,3", "5,3", "3,4", "4,4", "5,4", "3,5", "4,5", "5,5"]);
  const b = createLabelMap(9, 9);
  assert.equal(paintSegment(b, 4.5, 4.5, 4.5, 4.5, radiusForSize(5), 1), 21); // 5×5 minus the 4 corners
  assert.equal(labelAt(b, 2, 2), 0);
  assert.equal(labelAt(b, 2, 3), 1);
});

test("horizontal segment paints a band with round caps and nothing else", () => {
  const map = createLabelMap(20, 9);
  paintSegment(map, 3.5, 4.5, 15.5, 4.5, 1.5, 2);
  for (let y = 0; y < 9; y++) {
    for (let x = 0; x < 20; x++) {
      const inBand = y >= 3 && y <= 5 && x >= 2 && x <= 16;
      assert.equal(labelAt(map, x, y) === 2, inBand, `pixel ${x},${y}`);
    }
  }
});

test("diagonal stroke is connected and only writes the stroke label (no anti-aliased ids)", () => {
  const map = createLabelMap(32, 32, 3);
  paintStroke(
    map,
    [
      { x: 1, y: 1 },
      { x: 30, y: 20 },
      { x: 5, y: 30 },
    ],
    1,
    9,
  );
  assert.deepEqual([...new Set(map.ids)].sort(), [3, 9]);
  // Every column crossed by the first segment has at least one stroke pixel: no gaps.
  for (let x = 2; x < 29; x++) {
    let hit = false;
    for (let y = 0; y < 32; y++) hit ||= labelAt(map, x, y) === 9;
    assert.ok(hit, `column ${x} has no stroke pixel`);
  }
});

test("painting is clipped to the map and repainting reports zero changes", () => {
  const map = createLabelMap(4, 4);
  const first = paintSegment(map, -10, -10, 1, 1, 1.5, 5);
  assert.ok(first > 0);
  assert.equal(paintSegment(map, -10, -10, 1, 1, 1.5, 5), 0);
  assert.equal(map.ids.length, 16);
});

test("single-point stroke, empty stroke, rectangle", () => {
  const map = createLabelMap(6, 6);
  assert.equal(paintStroke(map, [], 2, 1), 0);
  assert.equal(paintStroke(map, [{ x: 0.5, y: 0.5 }], 0.5, 1), 1);
  paintRect(map, 2, 2, 10, 4, 4);
  assert.equal(pixelsOf(map, 4).length, 4 * 2);
});

test("labelAt outside the map is -1; createLabelMap rejects bad sizes", () => {
  const map = createLabelMap(3, 2, 6);
  assert.equal(labelAt(map, 2.9, 1.9), 6);
  assert.equal(labelAt(map, 3, 0), -1);
  assert.equal(labelAt(map, -0.1, 0), -1);
  assert.throws(() => createLabelMap(0, 4), RangeError);
  assert.throws(() => createLabelMap(2.5, 4), RangeError);
});

test("snapAngle snaps to 0°, 45° and 90°", () => {
  const flat = snapAngle(0, 0, 10, 1);
  assert.equal(flat.y, 0);
  assert.ok(Math.abs(flat.x - Math.hypot(10, 1)) < 1e-5);
  const diag = snapAngle(0, 0, 10, 9);
  assert.ok(Math.abs(diag.x - diag.y) < 1e-6);
  const up = snapAngle(5, 5, 6, -20);
  assert.equal(up.x, 5);
  assert.ok(Math.abs(up.y - (5 - Math.hypot(1, 25))) < 1e-5);
});
