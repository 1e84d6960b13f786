import assert from "node:assert/strict";
import { test } from "node:test";
import { floodFill } from "./fill.js";

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
