import assert from "node:assert/strict";
import { test } from "node:test";
import {
  EMPTY,
  PROJECT_FORMAT,
  PROJECT_VERSION,
  decodeRuns,
  encodeRuns,
  parseProject,
  projectToJson,
} from "./project-io.js";

const LABELS = ["sea", "cloud", "bush", "grass", "tree"].map((name, id) => ({ id, name, color: [id, id, id] }));
const E = EMPTY;

/** A 4×3 project: a full bottom layer and a hidden upper layer painting a tree on two pixels. */
function sample() {
  return {
    width: 4,
    height: 3,
    labels: LABELS,
    layers: [
      { name: "Background", visible: true, ids: Uint8Array.from([0, 0, 0, 0, 1, 1, 3, 3, 3, 3, 3, 3]) },
      { name: "Trees", visible: false, ids: Uint8Array.from([E, E, E, E, E, 4, E, E, E, 4, E, E]) },
    ],
    style: { preset: "sunset", seed: 7, weights: [0.5, 0.25] },
  };
}

/** The sample's JSON, changed by `edit` (which gets the parsed object), as text again. */
function edited(edit) {
  const data = JSON.parse(projectToJson(sample()));
  edit(data);
  return JSON.stringify(data);
}

const b64 = (bytes) => Buffer.from(bytes).toString("base64");

test("the file is JSON with base64 layers and only the id and name of each label", () => {
  const data = JSON.parse(projectToJson(sample()));
  assert.deepEqual(data, {
    format: "collage-studio-project",
    version: 1,
    width: 4,
    height: 3,
    labels: LABELS.map(({ id, name }) => ({ id, name })),
    layers: [
      // Runs: [id, length]: 4 × 0, 2 × 1, 6 × 3; then 5 × EMPTY, 4, 3 × EMPTY, 4, 2 × EMPTY.
      { name: "Background", visible: true, runs: b64([0, 4, 1, 2, 3, 6]) },
      { name: "Trees", visible: false, runs: b64([E, 5, 4, 1, E, 3, 4, 1, E, 2]) },
    ],
    style: { preset: "sunset", seed: 7, weights: [0.5, 0.25] },
  });
  assert.equal(PROJECT_FORMAT, "collage-studio-project");
  assert.equal(PROJECT_VERSION, 1);
  assert.equal(EMPTY, 255);
});

test("two 4×3 layers and a style round-trip", () => {
  const { width, height, layers, style } = sample();
  assert.deepEqual(parseProject(projectToJson(sample()), LABELS), { width, height, layers, style });
});

test("no style is stored as null; missing names and visibility get their defaults", () => {
  const text = projectToJson({ ...sample(), style: undefined });
  assert.equal(JSON.parse(text).style, null);
  assert.equal(parseProject(text, LABELS).style, null);
  const project = parseProject(
    edited((data) => {
      delete data.layers[1].name;
      delete data.layers[1].visible;
      delete data.labels;
    }),
    LABELS,
  );
  assert.equal(project.layers[1].name, "Layer 2");
  assert.equal(project.layers[1].visible, true);
});

test("a 512×512 project round-trips (base64 is built in chunks)", () => {
  const bottom = Uint8Array.from({ length: 512 * 512 }, (_, i) => (i * 7 + (i >> 9)) % LABELS.length);
  const top = Uint8Array.from({ length: 512 * 512 }, (_, i) => (i % 3 === 0 ? 4 : EMPTY));
  const layers = [
    { name: "Background", visible: true, ids: bottom },
    { name: "Top", visible: true, ids: top },
  ];
  const text = projectToJson({ width: 512, height: 512, labels: LABELS, layers, style: null });
  assert.deepEqual(parseProject(text, LABELS).layers, layers);
  // Raw bytes, as a hand-written file may give them, open the same.
  const raw = JSON.parse(text);
  raw.layers.forEach((l, k) => {
    delete l.runs;
    l.ids = b64(layers[k].ids);
  });
  assert.deepEqual(parseProject(JSON.stringify(raw), LABELS).layers, layers);
});

test("runs keep a mostly empty 512² layer small, with lengths past one varint byte", () => {
  const ids = new Uint8Array(512 * 512).fill(EMPTY);
  ids.fill(4, 1000, 1300);
  const runs = encodeRuns(ids);
  assert.deepEqual([...runs.subarray(0, 3)], [E, 1000 & 0x7f | 0x80, 1000 >> 7]);
  assert.ok(runs.length < 16, `${runs.length} bytes`);
  assert.deepEqual(decodeRuns(runs, ids.length), ids);
  assert.equal(decodeRuns(runs, ids.length + 1), null); // too few pixels
  assert.equal(decodeRuns(runs, ids.length - 1), null); // too many
  assert.equal(decodeRuns(Uint8Array.from([4, 0x80]), 4), null); // a length cut short
  assert.equal(decodeRuns(Uint8Array.from([4, 0, 4, 4]), 4), null); // an empty run
});

test("files that are not projects this studio can open", () => {
  assert.throws(
    () => parseProject("PNG\0...", LABELS),
    /^Error: this file is not a Collage Studio project \(it is not JSON\)$/,
  );
  assert.throws(() => parseProject("[1, 2]", LABELS), /is not a Collage Studio project \(its format is not/);
  assert.throws(
    () => parseProject(edited((d) => (d.format = "krita")), LABELS),
    /its format is not "collage-studio-project"/,
  );
  assert.throws(
    () => parseProject(edited((d) => (d.version = 2)), LABELS),
    /^Error: this project is version 2, from a newer Collage Studio; this one opens up to 1$/,
  );
  assert.throws(() => parseProject(edited((d) => (d.version = "1")), LABELS), /project's version "1" is not valid/);
});

test("bad sizes and missing layers", () => {
  const size = /size .* is not valid: width and height must be whole numbers from 1 to 4096/;
  assert.throws(() => parseProject(edited((d) => (d.width = 0)), LABELS), size);
  assert.throws(() => parseProject(edited((d) => (d.height = 2.5)), LABELS), /size 4×2.5 is not valid/);
  assert.throws(() => parseProject(edited((d) => (d.width = "4")), LABELS), /size "4"×3 is not valid/);
  assert.throws(() => parseProject(edited((d) => (d.height = 4097)), LABELS), size);
  assert.throws(() => parseProject(edited((d) => (d.layers = [])), LABELS), /^Error: the project has no layers$/);
  assert.throws(() => parseProject(edited((d) => delete d.layers), LABELS), /the project has no layers/);
});

test("layer pixels of the wrong length or not base64", () => {
  assert.throws(
    () => parseProject(edited((d) => (d.layers[1].ids = b64([0, 1, 2]))), LABELS),
    /^Error: layer 2 \("Trees"\) has 3 pixels; a 4×3 project needs 12$/,
  );
  assert.throws(
    () => parseProject(edited((d) => (d.layers[0].ids = "AAAA*AAA")), LABELS),
    /^Error: the pixels of layer 1 \("Background"\) are missing or not valid base64$/,
  );
  assert.throws(() => parseProject(edited((d) => delete d.layers[1].runs), LABELS), /layer 2 .* are missing/);
  assert.throws(
    () => parseProject(edited((d) => (d.layers[1].runs = b64([E, 5, 4, 1]))), LABELS),
    /pixel runs of layer 2 .* do not make the 4×3 pixels/,
  );
});

test("ids the model does not have, and empty or hidden bottom layers", () => {
  const unknown = edited((d) => (d.layers[1].ids = b64([E, E, E, E, E, E, E, 9, E, E, E, E])));
  assert.throws(
    () => parseProject(unknown, LABELS),
    /^Error: layer 2 \("Trees"\) uses label id 9 \(at x=3, y=1\), which is not a label of the current model$/,
  );
  // Valid with the full model, the tree id is unknown to a model without it.
  assert.throws(
    () => parseProject(projectToJson(sample()), LABELS.slice(0, 4)),
    /layer 2 \("Trees"\) uses label id 4 /,
  );
  const holed = edited((d) => (d.layers[0].ids = b64([0, 0, 0, 0, 1, 1, 3, 3, 3, E, 3, 3])));
  assert.throws(
    () => parseProject(holed, LABELS),
    /^Error: the bottom layer "Background" is empty at x=1, y=2; the bottom layer must paint every pixel$/,
  );
  const hidden = edited((d) => (d.layers[0].visible = false));
  assert.throws(
    () => parseProject(hidden, LABELS),
    /^Error: the bottom layer "Background" is hidden; the bottom layer is always shown$/,
  );
});

test("a label named differently by the current model, and bad names", () => {
  const renamed = LABELS.map((l) => (l.id === 2 ? { ...l, name: "rock" } : l));
  assert.throws(
    () => parseProject(projectToJson(sample()), renamed),
    /^Error: label id 2 is "bush" in this project but "rock" in the current model; open the project with the model/,
  );
  assert.throws(
    () => parseProject(edited((d) => (d.labels = [{ id: 1 }])), LABELS),
    /the project's label list is not valid/,
  );
  assert.throws(
    () => parseProject(edited((d) => (d.layers[1].name = 7)), LABELS),
    /^Error: layer 2 has the name 7, which is not text$/,
  );
  assert.throws(
    () => parseProject(edited((d) => (d.layers[1].visible = "no")), LABELS),
    /^Error: layer 2 \("Trees"\) has visible "no"; it must be true or false$/,
  );
  assert.throws(() => parseProject(edited((d) => (d.layers[1] = null)), LABELS), /^Error: layer 2 of the project/);
});
