// What the overlay canvas draws over the label canvas: the brush outline, the centre line of a line being dragged
// and the outline of a polygon being clicked together. Drawn in device pixels so they stay crisp at any zoom and
// devicePixelRatio; the label canvas may be zoomed and panned under the overlay (zoom.js), so positions are
// mapped through both canvases' rectangles.

/**
 * Clear `overlay` and draw the guides for a `map`-sized label canvas shown as `view`: `polygon` (points, or null),
 * `brush` ({at, radius} in label pixels, or null) and `lineFrom` (the start of a line being dragged, or null).
 */
export function drawGuides(overlay, view, map, { polygon, brush, lineFrom }) {
  const ctx = overlay.getContext("2d");
  ctx.clearRect(0, 0, overlay.width, overlay.height);
  if (!map) return;
  const dpr = window.devicePixelRatio || 1;
  const own = overlay.getBoundingClientRect();
  const shown = view.getBoundingClientRect();
  const scale = (shown.width / map.width) * dpr; // device pixels per label pixel
  const at = (p) => [(shown.left - own.left) * dpr + p.x * scale, (shown.top - own.top) * dpr + p.y * scale];
  ctx.lineWidth = 1.5 * dpr;
  if (polygon) {
    ctx.beginPath();
    for (const p of polygon) ctx.lineTo(...at(p));
    ctx.closePath();
    ctx.strokeStyle = "rgba(255, 255, 255, 0.9)";
    ctx.stroke();
    return;
  }
  if (!brush) return;
  const r = Math.max(2 * dpr, brush.radius * scale);
  const [x, y] = at(brush.at);
  ctx.beginPath();
  ctx.arc(x, y, r, 0, Math.PI * 2);
  ctx.strokeStyle = "rgba(0, 0, 0, 0.55)";
  ctx.stroke();
  ctx.beginPath();
  ctx.arc(x, y, Math.max(1, r - 1.5 * dpr), 0, Math.PI * 2);
  ctx.strokeStyle = "rgba(255, 255, 255, 0.9)";
  ctx.stroke();
  if (lineFrom) {
    // Centre line of the line being dragged, so the direction is visible even under a large brush.
    ctx.beginPath();
    ctx.moveTo(...at(lineFrom));
    ctx.lineTo(x, y);
    ctx.setLineDash([4 * dpr, 4 * dpr]);
    ctx.strokeStyle = "rgba(255, 255, 255, 0.8)";
    ctx.stroke();
    ctx.setLineDash([]);
  }
}
