// The picture pane and the connection readouts: frames from the paint socket drawn in arrival order, latency and
// server time, and what the badge and status line say while the socket is connecting, offline or stopped.

const $ = (id) => document.getElementById(id);

export class PictureView {
  constructor(stream, setStatus) {
    this.canvas = $("output-canvas");
    this.ctx = this.canvas.getContext("2d");
    this.setStatus = setStatus; // (text, isError) for frames that cannot be decoded
    this.arrived = 0; // frames received
    this.shownOrder = 0; // arrival number of the frame on screen (a re-roll's picture repeats the seq, never this)
    this.shownSeq = 0; // seq of the frame on screen
    this.framesShown = 0;
    this.latencies = []; // recent stroke-to-picture times, for a steady readout
    this.retryTicker = null; // counts the offline status down to the next attempt
    stream.addEventListener("frame", (e) => this._frame(e.detail));
    stream.addEventListener("state", (e) => this._state(e.detail));
    stream.addEventListener("pong", (e) => {
      $("conn").title = `websocket round trip ${e.detail.rttMs.toFixed(1)} ms`;
    });
  }

  async _frame(frame) {
    const order = ++this.arrived; // the stream delivers in order; decoding may finish out of it
    let bitmap;
    try {
      bitmap = await createImageBitmap(new Blob([frame.image], { type: frame.mime }));
    } catch {
      this.setStatus(`frame ${frame.seq} could not be decoded (${frame.format})`, true);
      return;
    }
    // Decoding is asynchronous: a newer frame may have reached the screen meanwhile.
    if (order <= this.shownOrder) {
      bitmap.close();
      return;
    }
    this.shownOrder = order;
    this.shownSeq = frame.seq;
    this.framesShown++;
    const { width, height } = bitmap;
    if (this.canvas.width !== width || this.canvas.height !== height) {
      this.canvas.width = width;
      this.canvas.height = height;
    }
    this.ctx.drawImage(bitmap, 0, 0);
    bitmap.close();
    $("output-surface").dataset.state = "live";
    $("download-picture").disabled = false;
    if (frame.latencyMs !== null) {
      this.latencies.push(frame.latencyMs);
      if (this.latencies.length > 9) this.latencies.shift();
      const sorted = [...this.latencies].sort((a, b) => a - b);
      $("latency").textContent = `latency ${Math.round(sorted[sorted.length >> 1])} ms`;
    }
    $("server-ms").textContent = `server ${frame.serverMs.toFixed(1)} ms`;
    $("frame-seq").textContent = `frame #${frame.seq}`;
    $("output-meta").textContent = `${width}×${height} ${frame.format}`;
  }

  _state({ state, retryInMs }) {
    $("conn").dataset.state = state;
    clearInterval(this.retryTicker);
    if (state === "closed") {
      const due = performance.now() + (retryInMs ?? 0);
      const show = () => {
        const left = Math.max(0, due - performance.now()) / 1000;
        $("conn-text").textContent = `offline · retrying in ${left.toFixed(1)} s`;
      };
      show();
      this.retryTicker = setInterval(show, 100);
    } else {
      $("conn-text").textContent = { connecting: "connecting…", open: "live", stopped: "disconnected" }[state];
    }
    if (state !== "open") {
      $("output-surface").dataset.state = this.framesShown > 0 ? "stale" : "waiting";
      // A stopped stream (the key was refused) no longer retries, so the badge must not promise a reconnect.
      $("output-badge").textContent = {
        connecting: "Connecting…",
        closed: "Offline · reconnecting",
        stopped: "Offline · not reconnecting",
      }[state];
    }
    if (state === "open") this.setStatus("");
  }
}
