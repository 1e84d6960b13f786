// Rasterise filled shapes (rectangle, ellipse, polygon) into a label map of ids, for the studio's shape tools.
//
// As with strokes, coverage is decided per pixel instead of by Canvas 2D, whose anti-aliased edges would blend two
// label colours into a colour that names no label: a pixel belongs to a shape when its centre lies inside it, and
// gets exactly the shape's id. A shape may start or end outside the map; only the part on the map is painted.
//
// A label map is `{width, height, ids}` with `ids` a row-major Uint8Array of width*height label ids.
// Coordinates are floats in label-map pixels; pixel (x, y) covers [x, x+1) × [y, y+1), its centre is (x+.5, y+.5).

/** Write `label` into pixels [from, to] of row `y` (already clipped to the map); returns how many changed. */
function paintRun(map, y, from, to, label) {
  const { width, ids } = map;
  let changed = 0;
  for (let i = y * width + from; i <= y * width + to; i++) {
    if (ids[i] !== label) {
      ids[i] = label;
      changed++;
    }
  }
  return changed;
}

/**
 * Paint the axis-aligned rectangle spanned by the corners (x0, y0) and (x1, y1), given in any order: every pixel
 * whose centre lies in it, edges included. Returns the number of pixels whose id changed.
 *
 * Unlike `paintRect` in strokes.js, which fills every pixel the box touches, this follows the centre rule of the
 * other shapes, so a rectangle and the ellipse inscribed in it line up.
 */
export function paintRectShape(map, x0, y0, x1, y1, label) {
  const { width, height } = map;
  // Centres x+.5 in [min, max] are the pixels x in [ceil(min - .5), floor(max - .5)].
  const minX = Math.max(0, Math.ceil(Math.min(x0, x1) - 0.5));
  const maxX = Math.min(width - 1, Math.floor(Math.max(x0, x1) - 0.5));
  const minY = Math.max(0, Math.ceil(Math.min(y0, y1) - 0.5));
  const maxY = Math.min(height - 1, Math.floor(Math.max(y0, y1) - 0.5));
  if (minX > maxX) return 0;
  let changed = 0;
  for (let y = minY; y <= maxY; y++) changed += paintRun(map, y, minX, maxX, label);
  return changed;
}

/**
 * Paint the ellipse inscribed in the rectangle spanned by (x0, y0) and (x1, y1): centre the rectangle's centre,
 * radii half its sides. Each radius is at least 0.5, so a click (or a drag along one axis) still paints a dot (a
 * line) when it lands near pixel centres. Returns the number of pixels whose id changed.
 */
export function paintEllipse(map, x0, y0, x1, y1, label) {
  const { width, height, ids } = map;
  const cx = (x0 + x1) / 2;
  const cy = (y0 + y1) / 2;
  const rx = Math.max(0.5, Math.abs(x1 - x0) / 2);
  const ry = Math.max(0.5, Math.abs(y1 - y0) / 2);
  const minX = Math.max(0, Math.ceil(cx - rx - 0.5));
  const maxX = Math.min(width - 1, Math.floor(cx + rx - 0.5));
  const minY = Math.max(0, Math.ceil(cy - ry - 0.5));
  const maxY = Math.min(height - 1, Math.floor(cy + ry - 0.5));
  let changed = 0;
  for (let y = minY; y <= maxY; y++) {
    const ey = (y + 0.5 - cy) / ry;
    const row = y * width;
    for (let x = minX; x <= maxX; x++) {
      const ex = (x + 0.5 - cx) / rx;
      if (ex * ex + ey * ey <= 1 && ids[row + x] !== label) {
        ids[row + x] = label;
        changed++;
      }
    }
  }
  return changed;
}

/**
 * Paint the polygon through `points` (an array of {x, y}, closed implicitly) by the even-odd rule on pixel centres,
 * so a self-crossing outline leaves holes where it overlaps itself. Fewer than 3 points paint nothing. Returns the
 * number of pixels whose id changed.
 *
 * Each row inside the map's part of the bounding box is cut by the edges it crosses; the pixels between the 1st and
 * 2nd crossing, the 3rd and 4th, … are inside. An edge counts for a row when its ends lie on opposite sides of the
 * row's centre line (exactly one end strictly below it), and a pixel whose centre lies exactly on a crossing belongs
 * to the span starting there: a pixel centre on an edge that two polygons share is painted by exactly one of them.
 */
export function paintPolygon(map, points, label) {
  if (points.length < 3) return 0;
  const { width, height } = map;
  const ys = points.map((p) => p.y);
  const minY = Math.max(0, Math.ceil(Math.min(...ys) - 0.5));
  const maxY = Math.min(height - 1, Math.floor(Math.max(...ys) - 0.5));
  let changed = 0;
  const crossings = [];
  for (let y = minY; y <= maxY; y++) {
    const py = y + 0.5;
    crossings.length = 0;
    for (let i = 0; i < points.length; i++) {
      const a = points[i];
      const b = points[(i + 1) % points.length];
      if (a.y > py !== b.y > py) crossings.push(a.x + ((py - a.y) * (b.x - a.x)) / (b.y - a.y));
    }
    crossings.sort((p, q) => p - q);
    for (let k = 0; k + 1 < crossings.length; k += 2) {
      // Centres x+.5 in [start, end) are the pixels x in [ceil(start - .5), ceil(end - .5) - 1].
      const from = Math.max(0, Math.ceil(crossings[k] - 0.5));
      const to = Math.min(width - 1, Math.ceil(crossings[k + 1] - 0.5) - 1);
      if (from <= to) changed += paintRun(map, y, from, to, label);
    }
  }
  return changed;
}

/**
 * The Shift modifier of the rectangle and ellipse tools: move the far corner (x1, y1) so the box from (x0, y0) is a
 * square whose side is the longer of the drag's width and height, in the drag's direction on each axis (a drag
 * along one axis only counts as positive on the other). Returns the new corner as {x, y}.
 */
export function squareCorner(x0, y0, x1, y1) {
  const dx = x1 - x0;
  const dy = y1 - y0;
  const side = Math.max(Math.abs(dx), Math.abs(dy));
  return { x: x0 + (dx < 0 ? -side : side), y: y0 + (dy < 0 ? -side : side) };
}
