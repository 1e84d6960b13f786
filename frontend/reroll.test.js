import assert from "node:assert/strict";
import { test } from "node:test";
import { REROLL_ERRORS, mapPixel, rerollMessage, rerollStatus, rerollTitle, thingList } from "./reroll.js";

test("a click maps from the element's CSS size to the label map's pixels", () => {
  // A 256² map shown at 512×512 CSS px from (100, 50): 2 CSS px per map pixel.
  const rect = { left: 100, top: 50, width: 512, height: 512 };
  assert.deepEqual(mapPixel(100, 50, rect, 256, 256), { x: 0, y: 0 });
  assert.deepEqual(mapPixel(101.9, 51.9, rect, 256, 256), { x: 0, y: 0 });
  assert.deepEqual(mapPixel(102, 52, rect, 256, 256), { x: 1, y: 1 });
  assert.deepEqual(mapPixel(100 + 300, 50 + 101, rect, 256, 256), { x: 150, y: 50 });
  // The right and bottom edges belong to the last pixel; beyond them is no pixel.
  assert.deepEqual(mapPixel(612, 562, rect, 256, 256), { x: 255, y: 255 });
  assert.equal(mapPixel(612.5, 300, rect, 256, 256), null);
  assert.equal(mapPixel(99, 300, rect, 256, 256), null);
  assert.equal(mapPixel(300, 49, rect, 256, 256), null);
});

test("a wide map shown smaller than it is maps each axis on its own", () => {
  // 48×32 map in a 240×160 box: 5 CSS px per map pixel; a 512² map in a 300² box: under one.
  assert.deepEqual(mapPixel(237, 3, { left: 0, top: 0, width: 240, height: 160 }, 48, 32), { x: 47, y: 0 });
  assert.deepEqual(mapPixel(150, 75, { left: 0, top: 0, width: 300, height: 300 }, 512, 512), { x: 256, y: 128 });
  assert.equal(mapPixel(0, 0, { left: 0, top: 0, width: 0, height: 0 }, 32, 32), null); // not laid out
});

test("the reroll message carries integer map pixels and a seed only when one is given", () => {
  assert.deepEqual(rerollMessage(3, 200), { type: "reroll", x: 3, y: 200 });
  assert.deepEqual(rerollMessage(0, 0, 42), { type: "reroll", x: 0, y: 0, seed: 42 });
  assert.equal(JSON.stringify(rerollMessage(5, 6)), '{"type":"reroll","x":5,"y":6}');
  for (const [x, y, seed] of [
    [1.5, 2, null],
    [-1, 2, null],
    [1, 70000, null],
    [1, "2", null],
    [1, 2, -3],
    [1, 2, 0.5],
  ]) {
    assert.throws(() => rerollMessage(x, y, seed), RangeError, `${x}, ${y}, ${seed}`);
  }
});

test("re-roll answers and their three errors read as short statuses; other messages are not its business", () => {
  const things = ["tree", "rock", "house"];
  const rerolled = { type: "rerolled", x: 5, y: 6, seed: 77, thing: "house", box: [0, 0, 20, 20] };
  assert.deepEqual(rerollStatus(rerolled, things), { text: "Re-rolled house (seed 77)", isError: false });
  assert.match(rerollStatus({ type: "error", code: "no_instance" }, things).text, /^No tree, rock or house to re-roll/);
  assert.match(rerollStatus({ type: "error", code: "collage_off" }, things).text, /needs CollageGAN/);
  assert.match(rerollStatus({ type: "error", code: "no_frame" }, things).text, /wait for the first picture/);
  for (const code of REROLL_ERRORS) assert.equal(rerollStatus({ type: "error", code }, things).isError, true);
  assert.equal(rerollStatus({ type: "error", code: "bad_label_id" }, things), null);
  assert.equal(rerollStatus({ type: "configured" }, things), null);
});

test("the tool's tooltip names its shortcut, the model's objects and why it may be off", () => {
  assert.equal(thingList([]), "object");
  assert.equal(thingList(["house"]), "house");
  assert.equal(thingList(["tree", "house"]), "tree or house");
  assert.equal(rerollTitle(true, ["tree", "rock"]), "Re-roll one object (O): click a tree or rock for a new one");
  assert.match(rerollTitle(false, ["tree"]), /\(needs CollageGAN on\)$/);
});
