import assert from "node:assert/strict";
import { test } from "node:test";
import { paintEllipse, paintPolygon, paintRectShape, squareCorner } from "./shapes.js";
import { createLabelMap } from "./strokes.js";

/** Rows of the map as digit strings, e.g. ["001", "011"]. */
function rowsOf(map) {
  const rows = [];
  for (let y = 0; y < map.height; y++) rows.push([...map.ids.subarray(y * map.width, (y + 1) * map.width)].join(""));
  return rows;
}

test("rectangle paints the pixels whose centres it covers, corners in any order, edges included", () => {
  const map = createLabelMap(8, 6);
  // Centres 1.5..4.5 lie in [1.2, 4.6], centres 1.5..3.5 in [0.7, 3.5].
  assert.equal(paintRectShape(map, 4.6, 3.5, 1.2, 0.7, 1), 4 * 3);
  assert.deepEqual(rowsOf(map), [
    "00000000", //
    "01111000",
    "01111000",
    "01111000",
    "00000000",
    "00000000",
  ]);
  const other = createLabelMap(8, 6);
  paintRectShape(other, 1.2, 0.7, 4.6, 3.5, 1);
  assert.deepEqual(other.ids, map.ids);
});

test("rectangle is clipped to the map and counts only changed pixels", () => {
  const map = createLabelMap(8, 6);
  assert.equal(paintRectShape(map, -10, -10, 3, 2, 4), 3 * 2);
  assert.deepEqual(rowsOf(map), [
    "44400000", //
    "44400000",
    "00000000",
    "00000000",
    "00000000",
    "00000000",
  ]);
  assert.equal(paintRectShape(map, 3, 2, -10, -10, 4), 0); // repainting changes nothing
  assert.equal(paintRectShape(map, 2, 0, 20, 1, 4), 5); // (2,0) is already 4; (3,0)..(7,0) change
  assert.equal(paintRectShape(map, 20, 20, 30, 30, 4), 0); // wholly off the map
  assert.equal(paintRectShape(map, -Infinity, -Infinity, Infinity, Infinity, 2), 8 * 6);
});

test("degenerate rectangles paint only the pixel centres they pass through", () => {
  const map = createLabelMap(8, 6);
  assert.equal(paintRectShape(map, 2.5, 1.5, 2.5, 1.5, 3), 1); // a click on a centre
  assert.equal(paintRectShape(map, 5.2, 1.2, 5.2, 1.2, 3), 0); // a click off the centres
  assert.equal(paintRectShape(map, 1.5, 4.5, 6.5, 4.5, 3), 6); // a flat drag along row 4's centres
  assert.deepEqual(rowsOf(map), [
    "00000000", //
    "00300000",
    "00000000",
    "00000000",
    "03333330",
    "00000000",
  ]);
});

test("ellipse inscribed in the whole map", () => {
  const map = createLabelMap(8, 6);
  // Centre (4, 3), radii 4 and 3. Row 0: ((y+.5-3)/3)² = 25/36, so |x+.5-4| ≤ 4·√(11/36) ≈ 2.21, x = 2..5.
  // Row 1: 1/4, |x+.5-4| ≤ 3.46, x = 1..6. Row 2: 1/36, |x+.5-4| ≤ 3.94, x = 0..7. Rows 3..5 mirror rows 2..0.
  assert.equal(paintEllipse(map, 0, 0, 8, 6, 5), 4 + 6 + 8 + 8 + 6 + 4);
  assert.deepEqual(rowsOf(map), [
    "00555500", //
    "05555550",
    "55555555",
    "55555555",
    "05555550",
    "00555500",
  ]);
  assert.equal(paintEllipse(map, 8, 6, 0, 0, 5), 0); // same ellipse from the other corner: nothing changes
});

test("ellipse centred outside the map paints only its part on the map", () => {
  const map = createLabelMap(8, 6);
  // Centre (10, -1), radii 8 and 5: row y reaches left to 10 - 8·√(1 - ((y+1.5)/5)²), i.e. 2.37, 3.07, 4.29, 6.51.
  assert.equal(paintEllipse(map, 2, -6, 18, 4, 7), 6 + 5 + 4 + 1);
  assert.deepEqual(rowsOf(map), [
    "00777777", //
    "00077777",
    "00007777",
    "00000007",
    "00000000",
    "00000000",
  ]);
  assert.equal(paintEllipse(map, -20, -20, -10, -10, 7), 0);
});

test("a click paints a one-pixel dot and a one-axis drag a line (radii at least 0.5)", () => {
  const map = createLabelMap(8, 6);
  assert.equal(paintEllipse(map, 2.5, 1.5, 2.5, 1.5, 6), 1);
  assert.equal(paintEllipse(map, 1.5, 4.5, 5.5, 4.5, 6), 5);
  assert.deepEqual(rowsOf(map), [
    "00000000", //
    "00600000",
    "00000000",
    "00000000",
    "06666600",
    "00000000",
  ]);
});

test("polygon: a triangle, with no pixel whose centre is past the hypotenuse", () => {
  const map = createLabelMap(8, 6);
  // Inside when x+.5 < 8·(1 - (y+.5)/6): row ends 7.33, 6, 4.67, 3.33, 2, 0.67.
  const triangle = [
    { x: 0, y: 0 },
    { x: 8, y: 0 },
    { x: 0, y: 6 },
  ];
  assert.equal(paintPolygon(map, triangle, 1), 7 + 6 + 5 + 3 + 2 + 1);
  assert.deepEqual(rowsOf(map), [
    "11111110", //
    "11111100",
    "11111000",
    "11100000",
    "11000000",
    "10000000",
  ]);
  assert.equal(paintPolygon(map, triangle, 1), 0);
});

test("polygon with vertices off the map is clipped", () => {
  const map = createLabelMap(8, 6);
  // Rows cross the left edge x = -4 and then the edge to (12, 3) at x = 4(y+.5) or the edge from it at 24 - 4(y+.5).
  const arrow = [
    { x: -4, y: -1 },
    { x: 12, y: 3 },
    { x: -4, y: 7 },
  ];
  assert.equal(paintPolygon(map, arrow, 2), 2 + 6 + 8 + 8 + 6 + 2);
  assert.deepEqual(rowsOf(map), [
    "22000000", //
    "22222200",
    "22222222",
    "22222222",
    "22222200",
    "22000000",
  ]);
  const far = [
    { x: 20, y: 20 },
    { x: 30, y: 20 },
    { x: 25, y: 30 },
  ];
  assert.equal(paintPolygon(map, far, 2), 0);
});

test("polygon uses the even-odd rule: an inner loop cuts a hole", () => {
  const map = createLabelMap(6, 6);
  // The outer square, a bridge to the inner square, the inner square, and the implicit closing edge back over the
  // bridge: the two bridge edges cancel and the inner square is crossed twice, so it stays empty.
  const ring = [
    [0, 0],
    [6, 0],
    [6, 6],
    [0, 6],
    [0, 0],
    [2, 2],
    [2, 4],
    [4, 4],
    [4, 2],
    [2, 2],
  ].map(([x, y]) => ({ x, y }));
  assert.equal(paintPolygon(map, ring, 3), 36 - 4);
  assert.deepEqual(rowsOf(map), [
    "333333", //
    "333333",
    "330033",
    "330033",
    "333333",
    "333333",
  ]);
});

test("polygon edge rule: a centre on a shared edge is painted by exactly one of the two polygons", () => {
  const map = createLabelMap(4, 2);
  // The shared edge x = 1 + (y+.5) passes exactly through the centres (1.5, 0.5) and (2.5, 1.5).
  const left = [
    { x: 0, y: 0 },
    { x: 1, y: 0 },
    { x: 3, y: 2 },
    { x: 0, y: 2 },
  ];
  const right = [
    { x: 1, y: 0 },
    { x: 4, y: 0 },
    { x: 4, y: 2 },
    { x: 3, y: 2 },
  ];
  assert.equal(paintPolygon(map, left, 1), 1 + 2);
  assert.equal(paintPolygon(map, right, 2), 3 + 2);
  assert.deepEqual(rowsOf(map), [
    "1222", //
    "1122",
  ]);
});

test("fewer than 3 points or no area paint nothing", () => {
  const map = createLabelMap(4, 4);
  assert.equal(paintPolygon(map, [], 1), 0);
  assert.equal(paintPolygon(map, [{ x: 1, y: 1 }], 1), 0);
  const two = [
    { x: 0, y: 0 },
    { x: 4, y: 4 },
  ];
  assert.equal(paintPolygon(map, two, 1), 0);
  const collinear = [
    { x: 0, y: 0 },
    { x: 2, y: 2 },
    { x: 4, y: 4 },
  ];
  assert.equal(paintPolygon(map, collinear, 1), 0);
  assert.ok(map.ids.every((v) => v === 0));
});

test("squareCorner keeps the drag's direction and takes the longer side", () => {
  assert.deepEqual(squareCorner(10, 10, 14, 12), { x: 14, y: 14 });
  assert.deepEqual(squareCorner(10, 10, 7, 15), { x: 5, y: 15 });
  assert.deepEqual(squareCorner(10, 10, 4, 8), { x: 4, y: 4 });
  assert.deepEqual(squareCorner(10, 10, 10, 13), { x: 13, y: 13 }); // no horizontal drag counts as rightwards
  assert.deepEqual(squareCorner(10, 10, 10, 10), { x: 10, y: 10 });
});
