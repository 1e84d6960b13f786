import assert from "node:assert/strict";
import { test } from "node:test";
import { inflateSync } from "node:zlib";
import {
  ENCODING_DEFLATE,
  ENCODING_RAW,
  PaintStream,
  backoffDelay,
  decodeImageFrame,
  decodeLabelFrame,
  deflate,
  encodeImageFrame,
  encodeLabelFrame,
  inflate,
  takesFrame,
  throttle,
} from "./stream.js";

test("label frame header is little-endian per the protocol", () => {
  const ids = Uint8Array.from([0, 1, 2, 3, 4, 5]);
  const frame = encodeLabelFrame(0x01020304, 3, 2, ENCODING_RAW, ids);
  assert.deepEqual([...frame.subarray(0, 10)], [0x01, 0x04, 0x03, 0x02, 0x01, 3, 0, 2, 0, 0]);
  assert.deepEqual([...frame.subarray(10)], [...ids]);
  const back = decodeLabelFrame(frame.buffer);
  assert.deepEqual(
    { ...back, payload: [...back.payload] },
    { seq: 0x01020304, width: 3, height: 2, encoding: 0, payload: [...ids] },
  );
});

test("label frame rejects bad seq, size and raw payload length", () => {
  assert.throws(() => encodeLabelFrame(-1, 1, 1, ENCODING_RAW, new Uint8Array(1)), RangeError);
  assert.throws(() => encodeLabelFrame(2 ** 32, 1, 1, ENCODING_RAW, new Uint8Array(1)), RangeError);
  assert.throws(() => encodeLabelFrame(1, 70000, 1, ENCODING_RAW, new Uint8Array(70000)), RangeError);
  assert.throws(() => encodeLabelFrame(1, 2, 2, ENCODING_RAW, new Uint8Array(3)), RangeError);
});

test("image frame decodes seq, server ms and format", () => {
  const jpeg = Uint8Array.from([0xff, 0xd8, 0xff, 0xd9]);
  const frame = encodeImageFrame(77, 12.5, "jpeg", jpeg);
  assert.deepEqual([...frame.subarray(0, 5)], [0x02, 77, 0, 0, 0]);
  const decoded = decodeImageFrame(frame.buffer);
  assert.equal(decoded.seq, 77);
  assert.equal(decoded.serverMs, 12.5);
  assert.equal(decoded.mime, "image/jpeg");
  assert.deepEqual([...decoded.image], [...jpeg]);
  assert.equal(decodeImageFrame(encodeImageFrame(1, 0, "webp", jpeg)).format, "webp");
  assert.throws(() => decodeImageFrame(new Uint8Array(5)), /too short/);
  const wrongType = frame.slice();
  wrongType[0] = 0x01;
  assert.throws(() => decodeImageFrame(wrongType), /unexpected frame type/);
  const wrongFormat = frame.slice();
  wrongFormat[9] = 7;
  assert.throws(() => decodeImageFrame(wrongFormat), /unknown image format/);
});

test("deflate makes zlib (RFC 1950) that node's zlib inflates, and it compresses label maps", async () => {
  const ids = new Uint8Array(256 * 256);
  ids.fill(6, 0, 30000);
  ids.fill(12, 40000, 50000);
  const packed = await deflate(ids);
  assert.equal(packed[0], 0x78); // zlib header: deflate, 32 KiB window
  assert.ok(packed.length < ids.length / 50, `compressed to ${packed.length} bytes`);
  assert.deepEqual(new Uint8Array(inflateSync(packed)), ids);
  assert.deepEqual(await inflate(packed), ids);
});

test("backoff grows exponentially, is capped and jittered into [½, 1] of the base", () => {
  assert.equal(
    backoffDelay(0, 250, 5000, () => 1),
    250,
  );
  assert.equal(
    backoffDelay(3, 250, 5000, () => 1),
    2000,
  );
  assert.equal(
    backoffDelay(10, 250, 5000, () => 1),
    5000,
  );
  assert.equal(
    backoffDelay(10, 250, 5000, () => 0),
    2500,
  );
});

/** A scripted WebSocket: records what the client sends; the test opens, answers and closes it. */
class FakeSocket {
  static all = [];
  constructor(url) {
    this.url = url;
    this.sent = [];
    this.closed = false;
    FakeSocket.all.push(this);
  }
  send(data) {
    this.sent.push(data);
  }
  close(code = 1000) {
    this.closed = true;
    this.onclose?.({ code });
  }
  open() {
    this.onopen?.();
  }
  receive(data) {
    this.onmessage?.({ data });
  }
  json() {
    return this.sent.filter((d) => typeof d === "string").map((d) => JSON.parse(d));
  }
  frames() {
    return this.sent.filter((d) => typeof d !== "string").map((d) => decodeLabelFrame(d));
  }
}

const tick = (ms = 0) => new Promise((resolve) => setTimeout(resolve, ms));

/** Poll `cond` until it holds (timers may run late on a busy machine). */
async function waitFor(cond, timeoutMs = 3000) {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error("timed out waiting for condition");
    await tick(5);
  }
}

function makeStream(map) {
  FakeSocket.all = [];
  const stream = new PaintStream({
    url: "ws://test/api/v1/paint",
    getMap: () => map,
    WebSocketImpl: FakeSocket,
    pingEveryMs: 0,
  });
  const events = [];
  for (const type of ["state", "frame", "configured", "servererror"]) {
    stream.addEventListener(type, (e) => events.push({ ...e.detail, type }));
  }
  return { stream, events };
}

test("on open the stream configures, sends the current map, and shows only newer frames", async () => {
  const map = { width: 4, height: 2, ids: Uint8Array.from([0, 0, 1, 1, 2, 2, 3, 3]) };
  const { stream, events } = makeStream(map);
  stream.configure({ model: "tiny", style: { seed: 5 } });
  stream.start();
  const ws = FakeSocket.all[0];
  assert.equal(ws.binaryType, "arraybuffer");
  ws.open();
  await waitFor(() => ws.frames().length > 0);
  assert.deepEqual(ws.json(), [{ type: "configure", model: "tiny", style: { seed: 5 } }]);
  const [first] = ws.frames();
  assert.equal(first.seq, 1);
  assert.equal(first.encoding, ENCODING_DEFLATE);
  assert.deepEqual(new Uint8Array(inflateSync(first.payload)), map.ids);

  stream.configure({ collage: true });
  assert.deepEqual(ws.json().at(-1), { type: "configure", collage: true });
  assert.deepEqual(stream.config, { model: "tiny", style: { seed: 5 }, collage: true });

  await stream.sendMap();
  ws.receive(encodeImageFrame(2, 8, "jpeg", Uint8Array.from([1])).buffer);
  ws.receive(encodeImageFrame(1, 8, "jpeg", Uint8Array.from([2])).buffer); // late: older than what is shown
  const frames = events.filter((e) => e.type === "frame");
  assert.deepEqual(
    frames.map((f) => f.seq),
    [2],
  );
  assert.ok(frames[0].latencyMs >= 0);
  assert.equal(stream.lastFrameSeq, 2);

  ws.receive(JSON.stringify({ type: "error", code: "bad_label_id", message: "id 99", seq: 3 }));
  ws.receive(JSON.stringify({ type: "configured", model: "tiny", z_dim: 8 }));
  assert.equal(events.find((e) => e.type === "servererror").code, "bad_label_id");
  assert.equal(events.find((e) => e.type === "configured").z_dim, 8);
  stream.stop();
});

test("requests made while a map is being sent collapse into one later send (latest wins)", async () => {
  const map = { width: 2, height: 1, ids: Uint8Array.from([0, 0]) };
  const { stream } = makeStream(map);
  stream.start();
  const ws = FakeSocket.all[0];
  ws.open(); // sends seq 1
  map.ids[0] = 1;
  stream.sendMap();
  map.ids[0] = 2;
  stream.sendMap();
  map.ids[0] = 3;
  stream.sendMap();
  await waitFor(() => ws.frames().length >= 2);
  await tick(20);
  const frames = ws.frames();
  assert.deepEqual(
    frames.map((f) => f.seq),
    [1, 2],
  );
  assert.deepEqual([...inflateSync(frames[1].payload)], [3, 0]);
  stream.stop();
});

test("after the socket drops it reconnects with backoff and re-sends config and map with higher seqs", async () => {
  const map = { width: 2, height: 2, ids: Uint8Array.from([4, 4, 5, 5]) };
  const { stream, events } = makeStream(map);
  stream.configure({ model: "tiny" });
  stream.start();
  FakeSocket.all[0].open();
  await waitFor(() => FakeSocket.all[0].frames().length > 0);
  FakeSocket.all[0].close(1006);
  const closed = events.filter((e) => e.type === "state").at(-1);
  assert.equal(closed.state, "closed");
  assert.ok(closed.retryInMs >= 125 && closed.retryInMs <= 250, `retry in ${closed.retryInMs} ms`);
  const t0 = Date.now();
  await waitFor(() => FakeSocket.all.length === 2);
  assert.ok(Date.now() - t0 >= 100, "reconnected before the backoff delay");
  const ws = FakeSocket.all[1];
  assert.equal(stream.state, "connecting");
  ws.open();
  await waitFor(() => ws.frames().length > 0);
  assert.deepEqual(ws.json(), [{ type: "configure", model: "tiny" }]);
  assert.deepEqual(
    ws.frames().map((f) => f.seq),
    [2],
  );
  assert.equal(stream.attempt, 0);
  stream.stop();
  assert.equal(stream.state, "stopped");
});

test("unauthorized close (4401) stops retrying", async () => {
  const { stream } = makeStream({ width: 1, height: 1, ids: new Uint8Array(1) });
  stream.start();
  FakeSocket.all[0].close(4401);
  await tick(400);
  assert.equal(FakeSocket.all.length, 1);
  assert.equal(stream.state, "stopped");
});

test("a map replaced while it was being compressed is never sent (no stale size after a model switch)", async () => {
  const holder = { map: { width: 2, height: 2, ids: new Uint8Array(4) } };
  FakeSocket.all = [];
  const stream = new PaintStream({
    url: "ws://t",
    getMap: () => holder.map,
    WebSocketImpl: FakeSocket,
    pingEveryMs: 0,
  });
  stream.start();
  const ws = FakeSocket.all[0];
  ws.open(); // starts compressing the 2×2 map
  holder.map = { width: 3, height: 1, ids: Uint8Array.from([7, 8, 9]) };
  await waitFor(() => ws.frames().length > 0);
  await tick(20);
  const frames = ws.frames();
  assert.deepEqual(
    frames.map((f) => [f.seq, f.width, f.height]),
    [[1, 3, 1]],
  );
  stream.stop();
});

test("a frame is taken when newer, or with the seq on screen only while a re-roll's picture is owed", () => {
  assert.equal(takesFrame(5, 4, 0), true);
  assert.equal(takesFrame(4, 4, 0), false);
  assert.equal(takesFrame(4, 4, 1), true);
  assert.equal(takesFrame(3, 4, 1), false); // a re-roll never makes an older frame new
});

test("a re-roll is sent as JSON, and its picture under the seq on screen is shown once per answer", async () => {
  const map = { width: 4, height: 4, ids: new Uint8Array(16) };
  const { stream, events } = makeStream(map);
  stream.addEventListener("rerolled", (e) => events.push({ ...e.detail, type: "rerolled" }));
  assert.equal(stream.reroll(1, 2), false); // not connected: nothing sent
  stream.start();
  const ws = FakeSocket.all[0];
  ws.open();
  await waitFor(() => ws.frames().length > 0);
  assert.equal(stream.reroll(1, 2), true);
  stream.reroll(3, 0, 99);
  assert.deepEqual(ws.json().slice(-2), [
    { type: "reroll", x: 1, y: 2 },
    { type: "reroll", x: 3, y: 0, seed: 99 },
  ]);
  const shown = () => events.filter((e) => e.type === "frame").map((f) => f.image[0]);
  const picture = (seq, byte) => ws.receive(encodeImageFrame(seq, 5, "jpeg", Uint8Array.from([byte])).buffer);

  picture(1, 10);
  picture(1, 11); // the same seq again, with no re-roll answered: a duplicate, dropped
  const answer = { type: "rerolled", x: 1, y: 2, seed: 7, thing: "house", box: [0, 0, 4, 4] };
  ws.receive(JSON.stringify(answer));
  assert.deepEqual(events.at(-1), { ...answer, type: "rerolled" });
  picture(1, 12); // the re-roll's picture keeps the seq
  picture(1, 13); // only one picture per answer
  assert.deepEqual(shown(), [10, 12]);
  assert.equal(stream.lastFrameSeq, 1);

  // Two answers before their pictures: both pictures show, in order.
  ws.receive(JSON.stringify({ ...answer, seed: 8 }));
  ws.receive(JSON.stringify({ ...answer, seed: 9 }));
  picture(1, 14);
  picture(1, 15);
  assert.deepEqual(shown(), [10, 12, 14, 15]);

  // The answer came while a newer map rendered: that frame comes first, the re-roll's picture under its seq.
  await stream.sendMap(); // seq 2
  ws.receive(JSON.stringify({ ...answer, seed: 10 }));
  picture(2, 20);
  picture(2, 21);
  picture(1, 22); // older than what is shown, whatever is owed
  assert.deepEqual(shown(), [10, 12, 14, 15, 20, 21]);

  // A new socket is a new server session: an answer owed on the old one lets nothing through.
  ws.receive(JSON.stringify({ ...answer, seed: 11 }));
  ws.close(1006);
  await waitFor(() => FakeSocket.all.length === 2);
  const next = FakeSocket.all[1];
  next.open();
  next.receive(encodeImageFrame(2, 5, "jpeg", Uint8Array.from([30])).buffer);
  assert.deepEqual(shown(), [10, 12, 14, 15, 20, 21]);
  stream.stop();
});

test("throttle runs the first call at once and holds one trailing call pending until cancelled", () => {
  let calls = 0;
  const throttled = throttle(() => calls++, 60_000);
  assert.equal(throttled.pending(), false);
  throttled();
  assert.equal(calls, 1);
  assert.equal(throttled.pending(), false);
  throttled();
  throttled();
  assert.equal(calls, 1);
  assert.equal(throttled.pending(), true); // the app's test hook reports this as a send still to come
  throttled.cancel();
  assert.equal(throttled.pending(), false);
  assert.equal(calls, 1);
});
