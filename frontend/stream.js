// The paint websocket client: label maps go up as binary frames, pictures come back as binary frames.
//
// Wire format (little-endian, see docs/protocol.md):
//   client → server  0x01 | seq u32 | width u16 | height u16 | encoding u8 (0 raw, 1 zlib) | ids
//   server → client  0x02 | seq u32 | server ms f32 | format u8 (0 jpeg, 1 webp, 2 png) | image bytes
//   both ways        JSON text messages: configure/configured, ping/pong, reroll/rerolled, error
//
// Latest wins on both ends: the server keeps one pending map per connection, and this client keeps at most one
// map waiting while it compresses the previous one, and never shows a frame older than the one on screen.
// Sequence numbers keep increasing across reconnects, so a late frame from an old socket can never win.
// The one exception is a re-roll: its picture is the last frame re-composed, sent under that frame's seq, so
// after each `rerolled` one frame with the seq on screen is taken as new.

import { rerollMessage } from "./reroll.js";

export const MSG_LABELS = 0x01;
export const MSG_FRAME = 0x02;
export const ENCODING_RAW = 0;
export const ENCODING_DEFLATE = 1;
export const IMAGE_FORMATS = ["jpeg", "webp", "png"]; // index = the format byte
const HEADER_BYTES = 10;

/**
 * Whether a frame with `seq` is to be shown when the newest one shown had `lastSeq` and `rerolls` re-roll
 * answers are still owed. Newer frames always are; one with the same seq only as a re-roll's answer.
 */
export function takesFrame(seq, lastSeq, rerolls) {
  return seq > lastSeq || (seq === lastSeq && rerolls > 0);
}

/** Build a label-map frame around an already encoded payload. */
export function encodeLabelFrame(seq, width, height, encoding, payload) {
  if (!Number.isInteger(seq) || seq < 0 || seq > 0xffffffff) throw new RangeError(`bad seq ${seq}`);
  if (!(width >= 1 && width <= 0xffff && height >= 1 && height <= 0xffff)) {
    throw new RangeError(`bad label map size ${width}×${height}`);
  }
  if (encoding === ENCODING_RAW && payload.length !== width * height) {
    throw new RangeError(`raw payload has ${payload.length} bytes, expected ${width * height}`);
  }
  const out = new Uint8Array(HEADER_BYTES + payload.length);
  const view = new DataView(out.buffer);
  view.setUint8(0, MSG_LABELS);
  view.setUint32(1, seq, true);
  view.setUint16(5, width, true);
  view.setUint16(7, height, true);
  view.setUint8(9, encoding);
  out.set(payload, HEADER_BYTES);
  return out;
}

/** Parse a label-map frame (the server's view; used by tests and to document the format). */
export function decodeLabelFrame(buffer) {
  const bytes = buffer instanceof Uint8Array ? buffer : new Uint8Array(buffer);
  if (bytes.length < HEADER_BYTES || bytes[0] !== MSG_LABELS) throw new Error("not a label-map frame");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return {
    seq: view.getUint32(1, true),
    width: view.getUint16(5, true),
    height: view.getUint16(7, true),
    encoding: view.getUint8(9),
    payload: bytes.subarray(HEADER_BYTES),
  };
}

/** Parse a picture frame from the server: {seq, serverMs, format, mime, image}. */
export function decodeImageFrame(buffer) {
  const bytes = buffer instanceof Uint8Array ? buffer : new Uint8Array(buffer);
  if (bytes.length < HEADER_BYTES) throw new Error(`frame too short (${bytes.length} bytes)`);
  if (bytes[0] !== MSG_FRAME) throw new Error(`unexpected frame type 0x${bytes[0].toString(16)}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const format = IMAGE_FORMATS[view.getUint8(9)];
  if (!format) throw new Error(`unknown image format byte ${view.getUint8(9)}`);
  return {
    seq: view.getUint32(1, true),
    serverMs: view.getFloat32(5, true),
    format,
    mime: `image/${format}`,
    image: bytes.subarray(HEADER_BYTES),
  };
}

/** Build a picture frame (the server's side; used by tests and the fake server in them). */
export function encodeImageFrame(seq, serverMs, format, image) {
  const code = IMAGE_FORMATS.indexOf(format);
  if (code < 0) throw new RangeError(`unknown image format ${format}`);
  const out = new Uint8Array(HEADER_BYTES + image.length);
  const view = new DataView(out.buffer);
  view.setUint8(0, MSG_FRAME);
  view.setUint32(1, seq, true);
  view.setFloat32(5, serverMs, true);
  view.setUint8(9, code);
  out.set(image, HEADER_BYTES);
  return out;
}

async function pipeBytes(bytes, transform) {
  const stream = new Blob([bytes]).stream().pipeThrough(transform);
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** zlib-compress (RFC 1950) bytes with the platform's CompressionStream. */
export function deflate(bytes) {
  return pipeBytes(bytes, new CompressionStream("deflate"));
}

/** Inverse of `deflate`. */
export function inflate(bytes) {
  return pipeBytes(bytes, new DecompressionStream("deflate"));
}

/** Reconnect delay for the n-th failed attempt (0-based): exponential from `min` to `max`, with jitter in [½, 1]. */
export function backoffDelay(attempt, min = 250, max = 5000, random = Math.random) {
  const base = Math.min(max, min * 2 ** attempt);
  return Math.round(base * (0.5 + 0.5 * random()));
}

/**
 * A self-healing paint connection. Events (all CustomEvent, details in brackets):
 *   state [{state: "connecting"|"open"|"closed"|"stopped", attempt, retryInMs}]
 *   frame [{seq, serverMs, latencyMs, format, mime, image}]   newest picture only (or a re-roll of it)
 *   rerolled [{x, y, seed, thing, box}]                      a re-roll's picture follows
 *   configured [the server's effective config]
 *   servererror [{code, message, seq}]
 *   pong [{rttMs}]
 */
export class PaintStream extends EventTarget {
  constructor({
    url, // ws:// or wss:// address of /api/v1/paint
    getMap, // () => {width, height, ids}: the current label map, read at send time
    WebSocketImpl = globalThis.WebSocket, // injectable for tests
    compress = typeof CompressionStream === "function", // send zlib ids (encoding 1) or raw ids
    pingEveryMs = 5000, // keep-alive + round-trip measurement; 0 disables
    now = () => performance.now(),
  }) {
    super();
    this.url = url;
    this.getMap = getMap;
    this.WebSocketImpl = WebSocketImpl;
    this.compress = compress;
    this.pingEveryMs = pingEveryMs;
    this.now = now;
    this.config = {}; // merged configure fields, re-sent in full on every (re)connect
    this.state = "closed";
    this.attempt = 0; // failed connection attempts since the last successful open
    this.seq = 0; // last seq sent; only grows
    this.lastFrameSeq = 0; // seq of the newest frame delivered
    // `rerolled` answers whose same-seq picture has not come yet. It may stay above 0 when a newer map's frame
    // carried the re-roll instead (or two re-rolls shared one picture): that only lets one more re-roll picture
    // of the seq on screen through, and only re-rolls repeat a seq.
    this.rerollsOwed = 0;
    this.sentAt = new Map(); // seq → send time, for stroke-to-picture latency
    this.ws = null;
    this.sending = false; // a map is being compressed/sent
    this.pendingSend = false; // another map was requested meanwhile (latest wins)
    this.retryTimer = null;
    this.pingTimer = null;
    this.stopped = true;
  }

  start() {
    this.stopped = false;
    this._connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    clearInterval(this.pingTimer);
    if (this.ws) this.ws.close(1000, "client stopped");
    this._setState("stopped");
  }

  /** Merge configure fields (model, size, style, collage, format, quality) and send them when connected. */
  configure(fields) {
    Object.assign(this.config, fields);
    if (this.state === "open") this._sendJson({ type: "configure", ...fields });
  }

  /** Ask for another object at map pixel (x, y) (collage on); false when not connected, so nothing was sent. */
  reroll(x, y, seed = null) {
    const message = rerollMessage(x, y, seed);
    if (this.state !== "open") return false;
    this._sendJson(message);
    return true;
  }

  /** Send the current label map. Calls made while one is in flight collapse into a single later send. */
  async sendMap() {
    if (this.state !== "open") return; // (re)connecting sends the map itself once open
    if (this.sending) {
      this.pendingSend = true;
      return;
    }
    this.sending = true;
    try {
      do {
        this.pendingSend = false;
        await this._sendOnce();
      } while (this.pendingSend && this.state === "open");
    } finally {
      this.sending = false;
    }
  }

  async _sendOnce() {
    const map = this.getMap();
    const { width, height, ids } = map;
    const payload = this.compress ? await deflate(ids) : ids;
    const ws = this.ws;
    if (this.state !== "open" || !ws) return;
    if (this.getMap() !== map) {
      // The map was replaced (another model or size) while compressing: send the new one instead.
      this.pendingSend = true;
      return;
    }
    const seq = ++this.seq;
    this.sentAt.set(seq, this.now());
    ws.send(encodeLabelFrame(seq, width, height, this.compress ? ENCODING_DEFLATE : ENCODING_RAW, payload));
  }

  _connect() {
    if (this.stopped) return;
    this._setState("connecting");
    let ws;
    try {
      ws = new this.WebSocketImpl(this.url);
    } catch {
      this._scheduleRetry();
      return;
    }
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    ws.onopen = () => {
      if (ws !== this.ws) return;
      this.attempt = 0;
      this._setState("open");
      this._sendJson({ type: "configure", ...this.config });
      this.sendMap();
      clearInterval(this.pingTimer);
      if (this.pingEveryMs > 0) {
        this.pingTimer = setInterval(() => this._sendJson({ type: "ping", t: this.now() }), this.pingEveryMs);
      }
    };
    ws.onmessage = (event) => {
      if (ws === this.ws) this._handleMessage(event.data);
    };
    ws.onclose = (event) => {
      if (ws !== this.ws) return;
      this.ws = null;
      clearInterval(this.pingTimer);
      this.sentAt.clear();
      this.rerollsOwed = 0; // the next socket is a new server session: nothing is owed on it
      if (event.code === 4401) {
        // Unauthorized: retrying with the same key cannot succeed.
        this.stopped = true;
        this._setState("stopped");
        return;
      }
      this._scheduleRetry();
    };
    // Errors are always followed by a close event, which is where the retry happens.
    ws.onerror = () => {};
  }

  _scheduleRetry() {
    if (this.stopped) return;
    const retryInMs = backoffDelay(this.attempt);
    this.attempt++;
    this._setState("closed", { retryInMs });
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this._connect(), retryInMs);
  }

  _handleMessage(data) {
    if (typeof data === "string") {
      let msg;
      try {
        msg = JSON.parse(data);
      } catch {
        this._emit("servererror", { code: "bad_message", message: "server sent invalid JSON", seq: null });
        return;
      }
      if (msg.type === "configured") this._emit("configured", msg);
      else if (msg.type === "pong") this._emit("pong", { rttMs: this.now() - msg.t });
      else if (msg.type === "error") this._emit("servererror", msg);
      else if (msg.type === "rerolled") {
        this.rerollsOwed++;
        this._emit("rerolled", msg);
      }
      return;
    }
    const frame = decodeImageFrame(data);
    if (!takesFrame(frame.seq, this.lastFrameSeq, this.rerollsOwed)) return; // stale: a newer one is on screen
    if (frame.seq === this.lastFrameSeq) this.rerollsOwed--;
    this.lastFrameSeq = frame.seq;
    const sent = this.sentAt.get(frame.seq);
    for (const seq of this.sentAt.keys()) if (seq <= frame.seq) this.sentAt.delete(seq);
    this._emit("frame", { ...frame, latencyMs: sent === undefined ? null : this.now() - sent });
  }

  _sendJson(msg) {
    if (this.ws && this.state === "open") this.ws.send(JSON.stringify(msg));
  }

  _setState(state, extra = {}) {
    this.state = state;
    this._emit("state", { state, attempt: this.attempt, ...extra });
  }

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}

/** Call `fn` at most once per `intervalMs`, always including a trailing call after the last request. */
export function throttle(fn, intervalMs) {
  let last = -Infinity;
  let timer = null;
  const throttled = () => {
    const wait = last + intervalMs - performance.now();
    if (wait <= 0) {
      clearTimeout(timer);
      timer = null;
      last = performance.now();
      fn();
    } else if (timer === null) {
      timer = setTimeout(() => {
        timer = null;
        last = performance.now();
        fn();
      }, wait);
    }
  };
  throttled.cancel = () => {
    clearTimeout(timer);
    timer = null;
  };
  /** Whether a trailing call is still waiting for its turn. */
  throttled.pending = () => timer !== null;
  return throttled;
}
