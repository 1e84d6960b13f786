// The server's REST API as the studio uses it: JSON calls with the page's API key, the paint socket's address, and
// the preset previews.

import { encodeLabelPng } from "./labelmap-io.js";
import { starterScene } from "./scene.js";

const apiKey = new URLSearchParams(location.search).get("api_key");

/** A REST error; `status` tells a refused key (401/403), which no retry can fix, from a passing failure. */
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** The server's answer to `path` under /api/v1; throws an ApiError carrying the server's own message. */
async function request(path, options = {}) {
  const headers = new Headers(options.headers);
  if (apiKey) headers.set("X-API-Key", apiKey);
  const res = await fetch(`/api/v1${path}`, { ...options, headers });
  if (!res.ok) {
    let message = `${res.status} ${res.statusText}`;
    try {
      message = (await res.json()).error?.message ?? message;
    } catch {
      // not JSON: keep the status line
    }
    throw new ApiError(res.status, message);
  }
  return res;
}

/** JSON from the REST API; throws an ApiError carrying the server's own message. */
export async function api(path, options = {}) {
  return (await request(path, options)).json();
}

/** A small JPEG of the model's example scene in `preset`, rendered by the server (the preset chips' previews). */
export async function renderPreview(manifest, preset) {
  const { name, labels, image_size: [height, width], background_label: background = 0 } = manifest;
  const scene = await encodeLabelPng(starterScene(width, height, labels, background));
  const body = new FormData();
  body.append("labels", new Blob([scene], { type: "image/png" }), "scene.png");
  body.append("model", name);
  body.append("preset", preset);
  body.append("format", "jpeg");
  body.append("quality", "70");
  return (await request("/render", { method: "POST", body })).blob();
}

export function socketUrl() {
  const url = new URL("/api/v1/paint", location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  if (apiKey) url.searchParams.set("api_key", apiKey);
  return url.href;
}
