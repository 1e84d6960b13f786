import assert from "node:assert/strict";
import { test } from "node:test";
import { floodFill } from "./fill.js";
import { starterScene } from "./scene.js";

const NAMES = [
  "sky",
  "cloud",
  "mountain",
  "snow",
  "rock",
  "hill",
  "grass",
  "flowers",
  "tree",
  "bush",
  "sand",
  "dirt",
  "water",
  "house",
];
const LABELS = NAMES.map((name, id) => ({ id, name }));

function counts(map) {
  const c = new Map();
  for (const id of map.ids) c.set(NAMES[id], (c.get(NAMES[id]) ?? 0) + 1);
  return c;
}

test("the starter scene has sky on top, mountains, a lake and a meadow", () => {
  const map = starterScene(256, 256, LABELS);
  const c = counts(map);
  const share = (name) => (c.get(name) ?? 0) / map.ids.length;
  assert.ok(share("sky") > 0.15, `sky ${share("sky")}`);
  assert.ok(share("mountain") > 0.08, `mountain ${share("mountain")}`);
  assert.ok(share("water") > 0.03, `water ${share("water")}`);
  assert.ok(share("grass") > 0.15, `grass ${share("grass")}`);
  for (const name of ["cloud", "snow", "tree", "sand", "flowers", "hill"]) assert.ok(share(name) > 0.001, name);
  assert.equal(map.ids[0], 0); // top-left is sky
  assert.equal(map.ids[255 * 256 + 128 - 100], 6); // bottom row is meadow
  // The lake is one connected body of water.
  const lake = { ...map, ids: map.ids.slice() };
  assert.equal(floodFill(lake, 134, 176, 255), c.get("water"));
});

test("scales to any size and falls back to the background for missing labels", () => {
  const small = starterScene(64, 48, LABELS);
  assert.equal(small.ids.length, 64 * 48);
  const minimal = starterScene(32, 32, [
    { id: 0, name: "sky" },
    { id: 1, name: "water" },
  ]);
  assert.deepEqual([...new Set(minimal.ids)].sort(), [0, 1]);
});
