import assert from "node:assert/strict";
import { test } from "node:test";
import { MAX_ZOOM, clampView, zoomAbout } from "./zoom.js";

test("the view never shows past the canvas's edges and stays between 1× and MAX_ZOOM", () => {
  assert.deepEqual(clampView({ zoom: 0.5, x: 0.3, y: -2 }), { zoom: 1, x: 0, y: 0 });
  assert.deepEqual(clampView({ zoom: 2, x: -1.5, y: 0.2 }), { zoom: 2, x: -1, y: 0 });
  assert.equal(clampView({ zoom: 99, x: 0, y: 0 }).zoom, MAX_ZOOM);
});

test("zooming keeps the content under the pointer in place", () => {
  const before = { zoom: 1, x: 0, y: 0 };
  const after = zoomAbout(before, 2, 0.25, 0.75);
  // Content point (0.25, 0.75) of the unzoomed canvas sits at u = x + zoom * 0.25 = 0.25 again.
  assert.equal(after.zoom, 2);
  assert.ok(Math.abs(after.x + after.zoom * 0.25 - 0.25) < 1e-12);
  assert.ok(Math.abs(after.y + after.zoom * 0.75 - 0.75) < 1e-12);
  const back = zoomAbout(after, 0.5, 0.25, 0.75);
  assert.deepEqual(back, { zoom: 1, x: 0, y: 0 });
});
