// Regions of a label map: flood fill, and the mask and surroundings of a region for the "remove this object" tool.
//
// A region is the 4-connected set of pixels of equal id around a seed pixel. 4-connectivity matches what a painter
// expects from a bucket tool: a one-pixel diagonal line of another label walls a region off. Scanline filling keeps
// the explicit stack short (one entry per run, not per pixel).

/** Row-major index of the pixel under (x, y), or -1 outside the map. */
function seedIndex(map, x, y) {
  const sx = Math.floor(x);
  const sy = Math.floor(y);
  if (sx < 0 || sy < 0 || sx >= map.width || sy >= map.height) return -1;
  return sy * map.width + sx;
}

/**
 * Mark the region around the pixel at index `seed` in a new mask (1 inside) and return it, calling
 * `onRun(start, end)` with the index range [start, end) of each horizontal run of the region as it is marked.
 */
function scanRegion(map, seed, onRun) {
  const { width, height, ids } = map;
  const target = ids[seed];
  const mask = new Uint8Array(width * height);
  const stack = [seed % width, Math.floor(seed / width)];
  while (stack.length > 0) {
    const cy = stack.pop();
    const cx = stack.pop();
    const row = cy * width;
    if (mask[row + cx]) continue;
    // Grow the run left and right from the popped pixel. Runs are maximal, so they never reach a marked pixel.
    let left = cx;
    while (left > 0 && ids[row + left - 1] === target) left--;
    let right = cx;
    while (right < width - 1 && ids[row + right + 1] === target) right++;
    mask.fill(1, row + left, row + right + 1);
    onRun?.(row + left, row + right + 1);
    // Queue one seed per run of unmarked target pixels in the rows above and below.
    for (const ny of [cy - 1, cy + 1]) {
      if (ny < 0 || ny >= height) continue;
      const nrow = ny * width;
      let inRun = false;
      for (let nx = left; nx <= right; nx++) {
        const hit = !mask[nrow + nx] && ids[nrow + nx] === target;
        if (hit && !inRun) stack.push(nx, ny);
        inRun = hit;
      }
    }
  }
  return mask;
}

/**
 * Fill the region containing pixel (x, y) with `label`. Returns the number of pixels changed
 * (0 when the seed is outside the map or already has `label`).
 */
export function floodFill(map, x, y, label) {
  const seed = seedIndex(map, x, y);
  if (seed < 0 || map.ids[seed] === label) return 0;
  let changed = 0;
  scanRegion(map, seed, (start, end) => {
    map.ids.fill(label, start, end);
    changed += end - start;
  });
  return changed;
}

/**
 * The region containing pixel (x, y) as a Uint8Array of width*height, 1 inside and 0 elsewhere; all zeros when
 * (x, y) is outside the map. The map is not changed.
 */
export function regionMask(map, x, y) {
  const seed = seedIndex(map, x, y);
  return seed < 0 ? new Uint8Array(map.width * map.height) : scanRegion(map, seed);
}

/**
 * The id that occurs most often among the pixels just around `mask` (a Uint8Array of width*height, non-zero inside):
 * outside it and 4-adjacent to a masked pixel. Each such pixel counts once, however many masked pixels it touches.
 * A tie goes to the id whose first such pixel comes first in row-major order. Returns -1 when no pixel is around the
 * mask (it covers the whole map, or nothing).
 *
 * Removing an object is filling its region with this id: a tree in a meadow becomes meadow.
 */
export function majorityAround(map, mask) {
  const { width, height, ids } = map;
  const counts = new Uint32Array(256);
  const order = []; // ids in the row-major order of their first pixel around the mask
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = y * width + x;
      if (mask[i]) continue;
      const around =
        (x > 0 && mask[i - 1]) ||
        (x < width - 1 && mask[i + 1]) ||
        (y > 0 && mask[i - width]) ||
        (y < height - 1 && mask[i + width]);
      if (!around) continue;
      if (counts[ids[i]]++ === 0) order.push(ids[i]);
    }
  }
  let best = -1;
  for (const id of order) if (best < 0 || counts[id] > counts[best]) best = id;
  return best;
}
