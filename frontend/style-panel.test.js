import assert from "node:assert/strict";
import { test } from "node:test";
import { MAX_PHOTO_BYTES, MAX_PHOTO_PIXELS, restorable, shrunkSize } from "./style-panel.js";

test("photos within the server's limits go as they are", () => {
  assert.equal(shrunkSize(640, 480, 200_000), null);
  assert.equal(shrunkSize(1024, 1024, MAX_PHOTO_BYTES), null); // exactly the pixel limit is allowed
});

test("a camera photo shrinks to a 1024 px longest side, keeping its aspect", () => {
  assert.deepEqual(shrunkSize(4000, 3000, 3_000_000), { width: 1024, height: 768 });
  assert.deepEqual(shrunkSize(3000, 4000, 3_000_000), { width: 768, height: 1024 });
  assert.deepEqual(shrunkSize(1025, 1024, 500_000), { width: 1024, height: 1023 });
  assert.deepEqual(shrunkSize(100_000, 20, 500_000), { width: 1024, height: 1 }); // never 0 px
  for (const [w, h] of [
    [4000, 3000],
    [1025, 1024],
    [9000, 7000],
  ]) {
    const { width, height } = shrunkSize(w, h, 0);
    assert.ok(width * height <= MAX_PHOTO_PIXELS, `${w}×${h} → ${width}×${height}`);
  }
});

test("a file too big for the upload limit is re-encoded at its size when it has few pixels", () => {
  assert.deepEqual(shrunkSize(900, 900, MAX_PHOTO_BYTES + 1), { width: 900, height: 900 });
});

const CAPS = { presets: ["winter", "dusk"], styleImage: true, collage: false };

test("a tab's saved preset, photo or seed comes back while the model still offers it", () => {
  const thumb = "data:image/jpeg;base64,AAAA";
  assert.deepEqual(restorable({ mode: "preset", preset: "dusk", seed: 7 }, CAPS), {
    mode: "preset",
    seed: 7,
    preset: "dusk",
    styleId: null,
    thumb: null,
    collage: false,
  });
  const photo = { mode: "image", styleId: "0123456789abcdef0123", thumb, seed: 7 };
  assert.equal(restorable(photo, CAPS).styleId, photo.styleId);
  assert.equal(restorable(photo, CAPS).thumb, thumb);
  assert.equal(restorable({ mode: "preset", preset: "summer", seed: 7 }, CAPS).mode, "seed");
  assert.equal(restorable(photo, { ...CAPS, styleImage: false }).mode, "seed");
  assert.equal(restorable({ mode: "seed", collage: true }, CAPS).collage, false); // no CollageGAN here
});

test("whatever else storage holds gives the seed, or nothing", () => {
  for (const junk of [null, 3, "winter"]) assert.equal(restorable(junk, CAPS), null);
  assert.deepEqual(restorable({}, CAPS), {
    mode: "seed",
    seed: null,
    preset: null,
    styleId: null,
    thumb: null,
    collage: false,
  });
  assert.equal(restorable({ seed: -1 }, CAPS).seed, null);
  assert.equal(restorable({ seed: "12" }, CAPS).seed, 12);
  assert.equal(restorable({ mode: "image", styleId: "x", thumb: "javascript:alert(1)" }, CAPS).thumb, null);
});
