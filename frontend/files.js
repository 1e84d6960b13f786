// Files the studio saves and opens: the flat label PNG, the layered project (project-io.js) and the picture.

import { decodeLabelPng, encodeLabelPng, resizeNearest } from "./labelmap-io.js";
import { Layer } from "./layers.js";
import { parseProject, projectToJson } from "./project-io.js";

export function downloadBlob(blob, filename) {
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = filename;
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
}

/** Download the flattened drawing as a PNG of ids. */
export async function saveLabels(canvas, model) {
  const png = await encodeLabelPng(canvas.map);
  downloadBlob(new Blob([png], { type: "image/png" }), `labels-${model}.png`);
}

/** Download the project: every layer (as last committed) and the style. */
export function saveProject(canvas, manifest, style) {
  const { width, height } = canvas.map;
  const layers = canvas.committedLayers();
  const text = projectToJson({ width, height, labels: manifest.labels, layers, style });
  downloadBlob(new Blob([text], { type: "application/json" }), `project-${manifest.name}.json`);
}

/**
 * Open `file` onto the canvas as one undoable step: a label PNG becomes the drawing (rescaled to the canvas, the
 * layers above emptied), a project file brings its layers. Returns {note, style}: what to tell the user, and the
 * project's style (null for a PNG). Throws an Error saying what is wrong with the file.
 */
export async function openFile(file, canvas, manifest, sizes) {
  const bytes = new Uint8Array(await file.arrayBuffer());
  if (bytes[0] === 0x7b) {
    // "{": a project file
    const project = parseProject(new TextDecoder().decode(bytes), manifest.labels);
    if (!sizes.some(([w, h]) => w === project.width && h === project.height)) {
      throw new Error(`it is ${project.width}×${project.height}, which ${manifest.name} does not paint`);
    }
    canvas.openProject({ ...project, layers: project.layers.map((l) => new Layer(l.name, l.ids, l.visible)) });
    return { note: ` (${project.layers.length} layers)`, style: project.style };
  }
  const map = await decodeLabelPng(bytes, manifest.labels);
  const { width, height } = canvas.map;
  canvas.replaceAll("open", resizeNearest(map, width, height).ids);
  const resized = map.width !== width || map.height !== height;
  return { note: resized ? ` (resized from ${map.width}×${map.height})` : "", style: null };
}
