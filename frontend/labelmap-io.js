// Save and load label maps as PNG files of ids: an 8-bit greyscale PNG whose pixel value is the label id.
//
// We write and parse the PNG bytes ourselves instead of going through <img>/canvas, because browsers colour-manage
// and premultiply decoded images (a gAMA or iCCP chunk would shift grey 12 to 13 and change the label). Only the
// zlib step uses the platform (CompressionStream). Loading also accepts palette PNGs (PIL mode "P": the index is
// the id) and colour-coded RGB(A) PNGs (mapped back to ids through the label colours).

import { deflate, inflate } from "./stream.js";

const SIGNATURE = [137, 80, 78, 71, 13, 10, 26, 10];

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** CRC-32 as used by PNG chunks (and zip, gzip). */
export function crc32(bytes, crc = 0) {
  let c = ~crc >>> 0;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

function chunk(type, data) {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

/** Encode a label map as a greyscale PNG (Uint8Array of the file's bytes). */
export async function encodeLabelPng(map) {
  const { width, height, ids } = map;
  const header = new Uint8Array(13);
  const hv = new DataView(header.buffer);
  hv.setUint32(0, width);
  hv.setUint32(4, height);
  header.set([8, 0, 0, 0, 0], 8); // bit depth 8, colour type 0 (grey), deflate, adaptive filter, no interlace
  // Every scanline is prefixed with filter type 0 (None): ids are flat regions, zlib compresses them well as is.
  const raw = new Uint8Array(height * (width + 1));
  for (let y = 0; y < height; y++) raw.set(ids.subarray(y * width, (y + 1) * width), y * (width + 1) + 1);
  const parts = [
    Uint8Array.from(SIGNATURE),
    chunk("IHDR", header),
    chunk("IDAT", await deflate(raw)),
    chunk("IEND", new Uint8Array(0)),
  ];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

function paeth(a, b, c) {
  const p = a + b - c;
  const pa = Math.abs(p - a);
  const pb = Math.abs(p - b);
  const pc = Math.abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/** Undo the PNG scanline filters; returns the raw pixel bytes (height × stride). */
function unfilter(data, height, stride, bpp) {
  const out = new Uint8Array(height * stride);
  for (let y = 0; y < height; y++) {
    const type = data[y * (stride + 1)];
    const src = y * (stride + 1) + 1;
    const dst = y * stride;
    for (let x = 0; x < stride; x++) {
      const raw = data[src + x];
      const a = x >= bpp ? out[dst + x - bpp] : 0;
      const b = y > 0 ? out[dst - stride + x] : 0;
      const c = x >= bpp && y > 0 ? out[dst - stride + x - bpp] : 0;
      let v;
      if (type === 0) v = raw;
      else if (type === 1) v = raw + a;
      else if (type === 2) v = raw + b;
      else if (type === 3) v = raw + ((a + b) >> 1);
      else if (type === 4) v = raw + paeth(a, b, c);
      else throw new Error(`PNG row ${y} has unknown filter type ${type}`);
      out[dst + x] = v & 0xff;
    }
  }
  return out;
}

const CHANNELS = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 }; // colour type → samples per pixel

/** One sample per pixel from unfiltered rows of 1, 2, 4 or 8-bit samples (PIL writes small palettes packed). */
function unpackSamples(pixels, width, height, stride, depth, channels) {
  const samples = new Uint8Array(width * height * channels);
  if (depth === 8) {
    for (let y = 0; y < height; y++)
      samples.set(pixels.subarray(y * stride, y * stride + width * channels), y * width * channels);
    return samples;
  }
  const mask = (1 << depth) - 1;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const bit = x * depth;
      samples[y * width + x] = (pixels[y * stride + (bit >> 3)] >> (8 - depth - (bit & 7))) & mask;
    }
  }
  return samples;
}

/**
 * Decode a PNG into a label map. `labels` (the model's [{id, color}]) validates ids and maps colour PNGs to ids.
 * Throws an Error with a sentence a user can act on for anything that is not a label map.
 */
export async function decodeLabelPng(bytes, labels) {
  bytes = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  if (bytes.length < 8 || SIGNATURE.some((v, i) => bytes[i] !== v)) throw new Error("this file is not a PNG");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let header = null;
  let ended = false;
  const idat = [];
  for (let pos = 8; pos + 8 <= bytes.length;) {
    const length = view.getUint32(pos);
    const type = String.fromCharCode(...bytes.subarray(pos + 4, pos + 8));
    const data = bytes.subarray(pos + 8, pos + 8 + length);
    if (data.length !== length) throw new Error("the PNG file is truncated");
    if (type === "IHDR") {
      header = {
        width: view.getUint32(pos + 8),
        height: view.getUint32(pos + 12),
        depth: bytes[pos + 16],
        colorType: bytes[pos + 17],
        interlace: bytes[pos + 20],
      };
    } else if (type === "IDAT") idat.push(data);
    else if (type === "IEND") {
      ended = true;
      break;
    }
    pos += 12 + length;
  }
  if (!header) throw new Error("the PNG has no header (IHDR)");
  if (!ended || idat.length === 0) throw new Error("the PNG file is truncated");
  const { width, height, depth, colorType, interlace } = header;
  const channels = CHANNELS[colorType];
  const packed = colorType === 0 || colorType === 3 ? [1, 2, 4, 8] : [8];
  if (!channels || !packed.includes(depth)) {
    throw new Error(
      `label maps must be 8-bit grey, palette or RGB PNGs; this one has colour type ${colorType}, depth ${depth}`,
    );
  }
  if (interlace !== 0) throw new Error("interlaced PNGs are not supported for label maps; save without interlacing");
  if (width * height > 4096 * 4096) throw new Error(`label map ${width}×${height} is too large`);
  const compressed = new Uint8Array(idat.reduce((n, d) => n + d.length, 0));
  let offset = 0;
  for (const d of idat) {
    compressed.set(d, offset);
    offset += d.length;
  }
  let data;
  try {
    data = await inflate(compressed);
  } catch (err) {
    throw new Error(`the PNG image data is corrupt (${err.message})`);
  }
  const stride = Math.ceil((width * channels * depth) / 8);
  if (data.length < height * (stride + 1)) throw new Error("the PNG image data is truncated");
  const pixels = unfilter(data, height, stride, Math.max(1, (channels * depth) / 8));
  const samples = unpackSamples(pixels, width, height, stride, depth, channels);
  const ids = new Uint8Array(width * height);
  if (colorType === 0 || colorType === 3 || colorType === 4) {
    // Grey value or palette index is the id; the palette's colours (if any) are ignored.
    for (let i = 0; i < ids.length; i++) ids[i] = samples[i * channels];
  } else {
    const byColor = new Map(labels.map((l) => [(l.color[0] << 16) | (l.color[1] << 8) | l.color[2], l.id]));
    for (let i = 0; i < ids.length; i++) {
      const rgb = samples.subarray(i * channels, i * channels + 3);
      const id = byColor.get((rgb[0] << 16) | (rgb[1] << 8) | rgb[2]);
      if (id === undefined) {
        throw new Error(
          `colour rgb(${rgb.join(", ")}) at x=${i % width}, y=${Math.floor(i / width)} is not a label colour`,
        );
      }
      ids[i] = id;
    }
  }
  const known = new Set(labels.map((l) => l.id));
  for (let i = 0; i < ids.length; i++) {
    if (!known.has(ids[i])) {
      throw new Error(`label id ${ids[i]} at x=${i % width}, y=${Math.floor(i / width)} does not exist in this model`);
    }
  }
  return { width, height, ids };
}

/** Nearest-neighbour resize of a label map (ids must never be interpolated). */
export function resizeNearest(map, width, height) {
  if (map.width === width && map.height === height) return { width, height, ids: map.ids.slice() };
  const ids = new Uint8Array(width * height);
  for (let y = 0; y < height; y++) {
    const sy = Math.min(map.height - 1, Math.floor(((y + 0.5) * map.height) / height));
    for (let x = 0; x < width; x++) {
      const sx = Math.min(map.width - 1, Math.floor(((x + 0.5) * map.width) / width));
      ids[y * width + x] = map.ids[sy * map.width + sx];
    }
  }
  return { width, height, ids };
}
