// The starter scene: sky, clouds, snowy mountains, hills, a lake with a sandy shore, a meadow with flowers and
// trees, drawn by code at any size so a first-time visitor sees a picture before painting anything.
//
// Labels are looked up by name in the model's label list; a model without (say) "snow" simply gets the next best
// thing, so the scene works with any landscape-like label set and degrades to the background label otherwise.

import { createLabelMap, paintSegment } from "./strokes.js";

function fillEllipse(map, cx, cy, rx, ry, label) {
  const { width, height, ids } = map;
  for (let y = Math.max(0, Math.floor(cy - ry)); y <= Math.min(height - 1, Math.ceil(cy + ry)); y++) {
    for (let x = Math.max(0, Math.floor(cx - rx)); x <= Math.min(width - 1, Math.ceil(cx + rx)); x++) {
      const u = (x + 0.5 - cx) / rx;
      const v = (y + 0.5 - cy) / ry;
      if (u * u + v * v <= 1) ids[y * width + x] = label;
    }
  }
}

/** Fill every pixel of column x from row `top` (float) down to row `bottom` (exclusive) with `label`. */
function fillColumn(map, x, top, bottom, label) {
  const y0 = Math.max(0, Math.round(top));
  const y1 = Math.min(map.height, Math.round(bottom));
  for (let y = y0; y < y1; y++) map.ids[y * map.width + x] = label;
}

/** Build the starter scene for `labels` ([{id, name}]) at width×height; `background` is the eraser label. */
export function starterScene(width, height, labels, background = 0) {
  const byName = new Map(labels.map((l) => [l.name, l.id]));
  const pick = (...names) => {
    for (const name of names) if (byName.has(name)) return byName.get(name);
    return background;
  };
  const sky = pick("sky");
  const cloud = pick("cloud", "sky");
  const mountain = pick("mountain", "hill");
  const snow = pick("snow", "mountain");
  const hill = pick("hill", "grass");
  const grass = pick("grass", "hill");
  const water = pick("water", "sea", "river");
  const sand = pick("sand", "grass");
  const tree = pick("tree", "bush");
  const bush = pick("bush", "tree");
  const flowers = pick("flowers", "grass");
  const rock = pick("rock", "mountain");
  const dirt = pick("dirt", "sand");

  const map = createLabelMap(width, height, sky);
  const W = width;
  const H = height;

  // Clouds: clusters of overlapping ellipses.
  for (const [cx, cy, s] of [
    [0.2, 0.11, 1],
    [0.72, 0.07, 0.8],
  ]) {
    fillEllipse(map, cx * W, cy * H, 0.1 * W * s, 0.035 * H * s, cloud);
    fillEllipse(map, (cx + 0.06 * s) * W, (cy - 0.02) * H, 0.07 * W * s, 0.04 * H * s, cloud);
    fillEllipse(map, (cx - 0.07 * s) * W, (cy + 0.005) * H, 0.06 * W * s, 0.028 * H * s, cloud);
  }

  // Mountain ridge: a sum of sines with two clear peaks; snow where the ridge is high.
  const horizon = 0.56 * H;
  for (let x = 0; x < W; x++) {
    const t = x / W;
    const ridge =
      H *
      (0.36 -
        0.13 * Math.exp(-(((t - 0.3) / 0.12) ** 2)) -
        0.09 * Math.exp(-(((t - 0.74) / 0.1) ** 2)) +
        0.012 * Math.sin(t * 47) +
        0.008 * Math.sin(t * 91 + 1));
    fillColumn(map, x, ridge, horizon, mountain);
    const snowLine = 0.3 * H + 0.01 * H * Math.sin(t * 60);
    if (ridge < snowLine) fillColumn(map, x, ridge, snowLine + 0.02 * H * Math.sin(t * 23) ** 2, snow);
    // Rolling hills in front of the mountains.
    const hillTop = H * (0.5 + 0.035 * Math.sin(t * 7 + 0.5) + 0.015 * Math.sin(t * 19));
    fillColumn(map, x, hillTop, H, hill);
    // The meadow, gently undulating.
    const meadowTop = H * (0.6 + 0.015 * Math.sin(t * 5 + 2));
    fillColumn(map, x, meadowTop, H, grass);
  }

  // The lake with a sandy shore, and a dirt path leading to it.
  fillEllipse(map, 0.52 * W, 0.69 * H, 0.33 * W, 0.085 * H, sand);
  fillEllipse(map, 0.53 * W, 0.685 * H, 0.3 * W, 0.07 * H, water);
  for (let i = 0; i < 12; i++) {
    const a = i / 12;
    const b = (i + 1) / 12;
    const path = (s) => ({ x: W * (0.42 + 0.12 * Math.sin(s * 3)), y: H * (0.76 + 0.24 * s) });
    paintSegment(map, path(a).x, path(a).y, path(b).x, path(b).y, W * (0.008 + 0.02 * a), dirt);
  }

  // Trees and bushes around the lake, boulders and flowers in the foreground.
  for (const [x, y, r] of [
    [0.1, 0.62, 0.05],
    [0.17, 0.6, 0.04],
    [0.88, 0.63, 0.055],
    [0.94, 0.58, 0.04],
  ]) {
    fillEllipse(map, x * W, y * H, r * W, r * 1.5 * H, tree);
  }
  for (const [x, y] of [
    [0.24, 0.66],
    [0.8, 0.67],
  ]) {
    fillEllipse(map, x * W, y * H, 0.035 * W, 0.022 * H, bush);
  }
  fillEllipse(map, 0.7 * W, 0.84 * H, 0.04 * W, 0.03 * H, rock);
  for (const [x, y, r] of [
    [0.15, 0.86, 0.07],
    [0.82, 0.93, 0.09],
    [0.62, 0.95, 0.05],
  ]) {
    fillEllipse(map, x * W, y * H, r * W, r * 0.45 * H, flowers);
  }
  return map;
}
