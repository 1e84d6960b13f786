import assert from "node:assert/strict";
import { test } from "node:test";
import { floodFill, majorityAround, regionMask } from "./fill.js";

/** Label map from rows of digit strings, e.g. ["001", "011"]. */
function mapOf(rows) {
  const height = rows.length;
  const width = rows[0].length;
  const ids = Uint8Array.from(rows.join(""), (c) => Number(c));
  return { width, height, ids };
}

function rowsOf(map) {
  const rows = [];
  for (let y = 0; y < map.height; y++) rows.push([...map.ids.subarray(y * map.width, (y + 1) * map.width)].join(""));
  return rows;
}

/** The mask floodFill paints, found by filling a copy with an id the map does not use. */
function floodFillMask(map, x, y) {
  const copy = { ...map, ids: map.ids.slice() };
  floodFill(copy, x, y, 9);
  return copy.ids.map((v) => (v === 9 ? 1 : 0));
}

test("fills exactly one 4-connected region", () => {
  const map = mapOf([
    "0010000", //
    "0010110",
    "1110100",
    "0000100",
    "2222100",
  ]);
  const changed = floodFill(map, 1, 1, 5);
  assert.deepEqual(rowsOf(map), [
    "5510000", //
    "5510110",
    "1110100",
    "0000100",
    "2222100",
  ]);
  assert.equal(changed, 4);
  // The other 0 region wraps around the 1-walls; filling it leaves the first region and the 2s alone.
  assert.equal(floodFill(map, 6, 4, 7), 17);
  assert.deepEqual(rowsOf(map), [
    "5517777", //
    "5517117",
    "1117177",
    "7777177",
    "2222177",
  ]);
});

test("diagonal neighbours do not leak (4-connectivity)", () => {
  const map = mapOf(["010", "101", "010"]);
  assert.equal(floodFill(map, 1, 1, 7), 1);
  assert.deepEqual(rowsOf(map), ["010", "171", "010"]);
});

test("a region that snakes around U-turns is filled completely", () => {
  const map = mapOf([
    "0000000", //
    "1111110",
    "0000000",
    "0111111",
    "0000000",
  ]);
  assert.equal(floodFill(map, 6, 4, 3), 23);
  assert.ok(rowsOf(map).every((row) => !row.includes("0")));
});

test("same label or outside the map is a no-op", () => {
  const map = mapOf(["22", "22"]);
  assert.equal(floodFill(map, 0, 0, 2), 0);
  assert.equal(floodFill(map, 2, 0, 9), 0);
  assert.equal(floodFill(map, -1, 0, 9), 0);
  assert.deepEqual(rowsOf(map), ["22", "22"]);
});

test("large open map fills every pixel", () => {
  const map = { width: 512, height: 512, ids: new Uint8Array(512 * 512) };
  assert.equal(floodFill(map, 100.7, 300.2, 4), 512 * 512);
  assert.ok(map.ids.every((v) => v === 4));
});

test("regionMask marks one 4-connected region and leaves the map alone", () => {
  const map = mapOf([
    "0010000", //
    "0010110",
    "1110100",
    "0000100",
    "2222100",
  ]);
  const before = map.ids.slice();
  const mask = regionMask(map, 6.9, 4.1);
  assert.deepEqual(rowsOf({ width: 7, height: 5, ids: mask }), [
    "0001111", //
    "0001001",
    "0001011",
    "1111011",
    "0000011",
  ]);
  assert.deepEqual(map.ids, before);
  assert.deepEqual(regionMask(map, 1, 1), floodFillMask(map, 1, 1));
  assert.deepEqual(regionMask(map, 7, 0), new Uint8Array(35)); // outside: all zeros
  assert.deepEqual(regionMask(map, 0, -0.5), new Uint8Array(35));
});

test("removing a tree blob inside grass turns it into grass", () => {
  const map = mapOf([
    "666666", //
    "668866",
    "688866",
    "668666",
    "666666",
  ]);
  const mask = regionMask(map, 2, 2);
  assert.equal(majorityAround(map, mask), 6);
  floodFill(map, 2, 2, majorityAround(map, mask));
  assert.ok(map.ids.every((v) => v === 6));
});

test("a blob with grass on three sides and water on one gets grass", () => {
  const map = mapOf([
    "00000", //
    "68886",
    "68886",
    "66666",
  ]);
  // Around it: 3 water pixels above, 2 + 2 grass at the sides and 3 below.
  assert.equal(majorityAround(map, regionMask(map, 2, 1)), 6);
  // The water's own surroundings are the tree's top (3 pixels) and grass at both ends (2).
  assert.equal(majorityAround(map, regionMask(map, 0, 0)), 8);
});

test("each pixel around the region counts once; ties go to the id met first in row-major order", () => {
  // The 1 touches the 8-region on four sides and the 2 on two, yet each counts once: a tie, and the 2 comes first.
  const notch = mapOf([
    "2888", //
    "8188",
    "8888",
  ]);
  assert.equal(majorityAround(notch, regionMask(notch, 3, 2)), 2);
  const plus = mapOf([
    "040", //
    "485",
    "050",
  ]);
  assert.equal(majorityAround(plus, regionMask(plus, 1, 1)), 4);
  const flipped = mapOf([
    "050", //
    "485",
    "040",
  ]);
  assert.equal(majorityAround(flipped, regionMask(flipped, 1, 1)), 5);
});

test("a region covering the whole map, or an empty mask, has nothing around it", () => {
  const map = mapOf(["33", "33"]);
  assert.equal(majorityAround(map, regionMask(map, 0, 0)), -1);
  assert.equal(majorityAround(map, regionMask(map, -1, 0)), -1);
});
