// Flood fill on a label map: replace the 4-connected region of equal ids around a seed pixel.
//
// 4-connectivity matches what a painter expects from a bucket tool: a one-pixel diagonal line of another
// label walls a region off. Scanline filling keeps the explicit stack short (one entry per run, not per pixel).

/**
 * Fill the region containing pixel (x, y) with `label`. Returns the number of pixels changed
 * (0 when the seed is outside the map or already has `label`).
 */
export function floodFill(map, x, y, label) {
  const { width, height, ids } = map;
  const sx = Math.floor(x);
  const sy = Math.floor(y);
  if (sx < 0 || sy < 0 || sx >= width || sy >= height) return 0;
  const target = ids[sy * width + sx];
  if (target === label) return 0;
  let changed = 0;
  const stack = [sx, sy];
  while (stack.length > 0) {
    const cy = stack.pop();
    const cx = stack.pop();
    const row = cy * width;
    if (ids[row + cx] !== target) continue;
    // Grow the run left and right from the popped pixel.
    let left = cx;
    while (left > 0 && ids[row + left - 1] === target) left--;
    let right = cx;
    while (right < width - 1 && ids[row + right + 1] === target) right++;
    ids.fill(label, row + left, row + right + 1);
    changed += right - left + 1;
    // Queue one seed per run of target pixels in the rows above and below.
    for (const ny of [cy - 1, cy + 1]) {
      if (ny < 0 || ny >= height) continue;
      const nrow = ny * width;
      let inRun = false;
      for (let nx = left; nx <= right; nx++) {
        const hit = ids[nrow + nx] === target;
        if (hit && !inRun) stack.push(nx, ny);
        inRun = hit;
      }
    }
  }
  return changed;
}
