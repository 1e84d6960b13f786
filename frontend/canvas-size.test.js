import assert from "node:assert/strict";
import { test } from "node:test";
import { canvasSizes, maxBrushSize, offersSize } from "./canvas-size.js";

/** A model as GET /api/v1/models/{name} describes it (image_size is [height, width]). */
function model(height, width, fields = {}) {
  const limits = { dynamic_size: true, size_multiple: 32, min_size: 32, max_size: 1024 };
  return { image_size: [height, width], ...limits, ...fields };
}

test("a square model that takes any multiple of 32 gets 256² and 512², its own size included once", () => {
  assert.deepEqual(canvasSizes(model(256, 256)), [
    [256, 256],
    [512, 512],
  ]);
  assert.deepEqual(canvasSizes(model(32, 32, { size_multiple: 8 })), [
    [32, 32],
    [256, 256],
    [512, 512],
  ]);
  assert.deepEqual(canvasSizes(model(1024, 1024)), [
    [256, 256],
    [512, 512],
    [1024, 1024],
  ]);
});

test("sizes the generator cannot take are left out, leaving the model's own", () => {
  assert.deepEqual(canvasSizes(model(256, 256, { dynamic_size: false, min_size: 256, max_size: 256 })), [[256, 256]]);
  assert.deepEqual(canvasSizes(model(256, 256, { max_size: 384 })), [[256, 256]]);
  assert.deepEqual(canvasSizes(model(320, 320, { min_size: 320 })), [
    [320, 320],
    [512, 512],
  ]);
  assert.deepEqual(canvasSizes(model(384, 384, { size_multiple: 384, max_size: 768 })), [[384, 384]]);
});

test("a wide model keeps its own size only: a square would stretch the drawing", () => {
  assert.deepEqual(canvasSizes(model(32, 48, { size_multiple: 8 })), [[48, 32]]);
});

test("offersSize matches width and height in order", () => {
  const sizes = [
    [48, 32],
    [256, 256],
  ];
  assert.ok(offersSize(sizes, 48, 32));
  assert.ok(!offersSize(sizes, 32, 48));
  assert.ok(!offersSize(sizes, 512, 512));
});

test("the brush limit grows with the canvas beyond 256², never shrinks below it", () => {
  assert.equal(maxBrushSize(32, 32), 96);
  assert.equal(maxBrushSize(256, 256), 96);
  assert.equal(maxBrushSize(512, 512), 192);
  assert.equal(maxBrushSize(1024, 512), 192);
});
