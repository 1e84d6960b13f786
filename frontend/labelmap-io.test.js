import assert from "node:assert/strict";
import { test } from "node:test";
import { inflateSync } from "node:zlib";
import { crc32, decodeLabelPng, encodeLabelPng, resizeNearest } from "./labelmap-io.js";

// The landscape label set's first entries are enough for these files.
const LABELS = [
  [120, 178, 230],
  [236, 238, 245],
  [130, 110, 120],
  [255, 255, 255],
  [120, 120, 110],
  [160, 170, 80],
  [110, 200, 60],
  [230, 120, 200],
  [30, 110, 40],
  [70, 150, 90],
  [230, 210, 140],
  [150, 100, 60],
  [40, 90, 200],
  [200, 60, 50],
].map((color, id) => ({ id, color, name: `l${id}` }));

// 7×5 maps written by Pillow: ids[y][x] = (7y + x) % 14, as mode L, mode P (Pillow packs 14 colours into 4 bits)
// and colour-coded RGB (Pillow applies PNG row filters to these).
const EXPECTED = Array.from({ length: 35 }, (_, i) => i % 14);
const PIL_L = "iVBORw0KGgoAAAANSUhEUgAAAAcAAAAFCAAAAACs8akEAAAAEUlEQVR4nGNkYIQAdiiNgw8ABCsAMnStlvYAAAAASUVORK5CYII=";
const PIL_P =
  "iVBORw0KGgoAAAANSUhEUgAAAAcAAAAFBAMAAAB7tOvrAAAAKlBMVEUAAP8KBfUUCuseD+EoFNcyGc08HsNGI7lQKK9aLaVkMptuN5F4PIeCQX0O7NpOAAAAFUlEQVR4nGNkVFKSZilXUhJhRGUBACO5AspeF9O0AAAAAElFTkSuQmCC";
const PIL_RGB =
  "iVBORw0KGgoAAAANSUhEUgAAAAcAAAAFCAIAAAAG+GGPAAAAT0lEQVR4nGOo2PTszbuvTXkV////r6jIW7AqIO+EDUvesUdGexI0NIyeX+6Ve3OuY0PPgkdZTJOs5M41nLW5ISepW/xIxKgioGNZDxcpagGX8TZt2YyhGwAAAABJRU5ErkJggg==";

const fromB64 = (s) => new Uint8Array(Buffer.from(s, "base64"));

test("crc32 matches the standard check value", () => {
  assert.equal(crc32(new TextEncoder().encode("123456789")), 0xcbf43926);
});

test("decodes Pillow's grey, 4-bit palette and filtered RGB label PNGs to the same ids", async () => {
  for (const [name, b64] of [
    ["L", PIL_L],
    ["P", PIL_P],
    ["RGB", PIL_RGB],
  ]) {
    const map = await decodeLabelPng(fromB64(b64), LABELS);
    assert.equal(map.width, 7, name);
    assert.equal(map.height, 5, name);
    assert.deepEqual([...map.ids], EXPECTED, name);
  }
});

test("encode → decode round-trips, and the file is a valid 8-bit grey PNG", async () => {
  const ids = Uint8Array.from({ length: 40 * 30 }, (_, i) => (i * 7 + (i >> 5)) % 14);
  const png = await encodeLabelPng({ width: 40, height: 30, ids });
  const view = new DataView(png.buffer);
  assert.equal(String.fromCharCode(...png.subarray(12, 16)), "IHDR");
  assert.equal(view.getUint32(16), 40);
  assert.equal(view.getUint32(20), 30);
  assert.deepEqual([png[24], png[25]], [8, 0]); // depth 8, grey
  assert.equal(view.getUint32(29), crc32(png.subarray(12, 29)));
  // The IDAT stream is standard zlib: every row is filter byte 0 followed by the ids.
  const idatLength = view.getUint32(33);
  const raw = inflateSync(png.subarray(41, 41 + idatLength));
  assert.equal(raw.length, 30 * 41);
  assert.deepEqual([...raw.subarray(41, 82)], [0, ...ids.subarray(40, 80)]);
  const back = await decodeLabelPng(png, LABELS);
  assert.deepEqual(back.ids, ids);
});

test("clear errors for files that are not label maps", async () => {
  await assert.rejects(decodeLabelPng(new TextEncoder().encode("GIF89a..."), LABELS), /not a PNG/);
  const png = await encodeLabelPng({ width: 3, height: 1, ids: Uint8Array.from([0, 1, 200]) });
  await assert.rejects(decodeLabelPng(png, LABELS), /label id 200 at x=2, y=0 does not exist/);
  await assert.rejects(decodeLabelPng(png.subarray(0, 30), LABELS), /truncated/);
  const corrupt = png.slice();
  corrupt[41] = 0; // the zlib header of the IDAT stream
  await assert.rejects(decodeLabelPng(corrupt, LABELS), /image data is corrupt/);
  const rgb = fromB64(PIL_RGB);
  await assert.rejects(
    decodeLabelPng(rgb, LABELS.slice(1)),
    /colour rgb\(120, 178, 230\) at x=0, y=0 is not a label colour/,
  );
});

test("nearest-neighbour resize never invents ids", () => {
  const map = { width: 2, height: 2, ids: Uint8Array.from([1, 2, 3, 4]) };
  const up = resizeNearest(map, 4, 4);
  assert.deepEqual([...up.ids], [1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4]);
  const down = resizeNearest(up, 2, 2);
  assert.deepEqual([...down.ids], [1, 2, 3, 4]);
  assert.deepEqual([...resizeNearest(map, 3, 1).ids], [3, 4, 4]); // sampled at pixel centres
});
