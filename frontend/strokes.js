// Rasterise brush and line strokes into a label map of ids.
//
// Canvas 2D always anti-aliases path edges, so a stroke drawn with it would blend two label colours into a
// colour that names no label. We therefore decide coverage ourselves: a pixel belongs to a stroke when its
// centre lies within `radius` of the stroke's centre line. Every pixel gets exactly one id, never a mix.
//
// A label map is `{width, height, ids}` with `ids` a row-major Uint8Array of width*height label ids.
// Coordinates are floats in label-map pixels; pixel (x, y) covers [x, x+1) × [y, y+1), its centre is (x+.5, y+.5).

/** Make an empty label map filled with `fill`. */
export function createLabelMap(width, height, fill = 0) {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width <= 0 || height <= 0) {
    throw new RangeError(`label map size must be positive integers, got ${width}×${height}`);
  }
  const ids = new Uint8Array(width * height);
  if (fill) ids.fill(fill);
  return { width, height, ids };
}

/** Brush radius (in pixels) for a brush size (diameter in pixels); size 1 covers exactly one pixel. */
export function radiusForSize(size) {
  return Math.max(0.5, size / 2);
}

/**
 * Paint the capsule of all pixels whose centre is within `radius` of the segment (x0,y0)–(x1,y1).
 * A zero-length segment paints a disc. Returns the number of pixels whose id changed.
 */
export function paintSegment(map, x0, y0, x1, y1, radius, label) {
  const { width, height, ids } = map;
  const minX = Math.max(0, Math.floor(Math.min(x0, x1) - radius));
  const maxX = Math.min(width - 1, Math.ceil(Math.max(x0, x1) + radius));
  const minY = Math.max(0, Math.floor(Math.min(y0, y1) - radius));
  const maxY = Math.min(height - 1, Math.ceil(Math.max(y0, y1) + radius));
  const dx = x1 - x0;
  const dy = y1 - y0;
  const len2 = dx * dx + dy * dy;
  const r2 = radius * radius;
  let changed = 0;
  for (let y = minY; y <= maxY; y++) {
    const py = y + 0.5;
    const row = y * width;
    for (let x = minX; x <= maxX; x++) {
      const px = x + 0.5;
      // Project the pixel centre onto the segment, clamp to its ends, measure the distance.
      let t = len2 > 0 ? ((px - x0) * dx + (py - y0) * dy) / len2 : 0;
      t = t < 0 ? 0 : t > 1 ? 1 : t;
      const ex = px - (x0 + t * dx);
      const ey = py - (y0 + t * dy);
      if (ex * ex + ey * ey <= r2 && ids[row + x] !== label) {
        ids[row + x] = label;
        changed++;
      }
    }
  }
  return changed;
}

/** Paint a polyline stroke (array of {x, y}) with round caps and joins. Returns the number of changed pixels. */
export function paintStroke(map, points, radius, label) {
  if (points.length === 0) return 0;
  if (points.length === 1) return paintSegment(map, points[0].x, points[0].y, points[0].x, points[0].y, radius, label);
  let changed = 0;
  for (let i = 1; i < points.length; i++) {
    const a = points[i - 1];
    const b = points[i];
    changed += paintSegment(map, a.x, a.y, b.x, b.y, radius, label);
  }
  return changed;
}

/** Fill an axis-aligned rectangle [x0, x1) × [y0, y1) (clipped to the map) with `label`. */
export function paintRect(map, x0, y0, x1, y1, label) {
  const { width, height, ids } = map;
  const ax = Math.max(0, Math.floor(x0));
  const bx = Math.min(width, Math.ceil(x1));
  for (let y = Math.max(0, Math.floor(y0)); y < Math.min(height, Math.ceil(y1)); y++) {
    if (bx > ax) ids.fill(label, y * width + ax, y * width + bx);
  }
}

/** The id under a point, or -1 outside the map. */
export function labelAt(map, x, y) {
  const ix = Math.floor(x);
  const iy = Math.floor(y);
  if (ix < 0 || iy < 0 || ix >= map.width || iy >= map.height) return -1;
  return map.ids[iy * map.width + ix];
}

/** Snap a line end so the segment is horizontal, vertical or at 45° (the Shift modifier of the line tool). */
export function snapAngle(x0, y0, x1, y1) {
  const dx = x1 - x0;
  const dy = y1 - y0;
  const step = Math.PI / 4;
  const angle = Math.round(Math.atan2(dy, dx) / step) * step;
  const len = Math.hypot(dx, dy);
  // Rounding removes float dust such as cos(π/2) = 6e-17 so that vertical lines stay exactly vertical.
  const round = (v) => Math.round(v * 1e6) / 1e6;
  return { x: x0 + round(Math.cos(angle) * len), y: y0 + round(Math.sin(angle) * len) };
}
