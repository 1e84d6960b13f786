// Which canvas sizes the studio offers for a model, and how big a brush each size allows.
//
// A size is [width, height], the order of the paint socket's `size` and of the label-frame header.

/** Square sides offered beside the model's own size: the shipped model's 256², and 512² for finer detail. */
export const STUDIO_SIDES = [256, 512];

/** The biggest brush on a map of up to 256² (it spans over a third of it). */
export const MAX_BRUSH = 96;

/**
 * The sizes to offer for a model (`GET /api/v1/models/{name}`), smallest first: its own `image_size` always, and
 * 256² and 512² when its generator takes them. Only square models get the extra sizes, because the drawing is
 * rescaled when the size changes and a square would stretch a wide drawing.
 */
export function canvasSizes(model) {
  const [height, width] = model.image_size;
  const sizes = [[width, height]];
  if (width === height) {
    for (const side of STUDIO_SIDES) if (side !== width && takesSide(model, side)) sizes.push([side, side]);
  }
  return sizes.sort((a, b) => a[0] * a[1] - b[0] * b[1]);
}

/** Whether the generator renders `side` pixels along an axis (the server's own check, registry.check_size). */
function takesSide(model, side) {
  return model.dynamic_size && side % model.size_multiple === 0 && side >= model.min_size && side <= model.max_size;
}

/** Whether `sizes` holds width×height: a saved drawing or the current one may only be kept at a size on offer. */
export function offersSize(sizes, width, height) {
  return sizes.some(([w, h]) => w === width && h === height);
}

/**
 * The biggest brush for a width×height map: MAX_BRUSH up to 256², proportionally more above, so that a brush
 * rescaled with a 512² drawing keeps its reach.
 */
export function maxBrushSize(width, height) {
  return Math.max(MAX_BRUSH, Math.round((MAX_BRUSH * Math.min(width, height)) / 256));
}
