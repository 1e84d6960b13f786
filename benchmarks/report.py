"""Turn one benchmark run's results into the ratios, a console summary and `docs/benchmarks.md`.

Only ratios of numbers measured side by side in the same run are quoted as claims: they hold on a faster or
slower machine, while absolute milliseconds only describe this one.
"""

from __future__ import annotations

from typing import Any

from benchmarks import collage, runtimes

NA = "—"


def engine_row(model: dict[str, Any], size: int, batch: int, threads: int) -> dict[str, Any] | None:
    """The measured engine row of a model for one config, or None (not in the grid, or skipped)."""
    for row in model.get("engine", []):
        if (row["size"], row["batch"], row["threads"]) == (size, batch, threads) and "p50_ms" in row:
            return row
    return None


def find_model(results: dict[str, Any], name: str | None) -> dict[str, Any] | None:
    return next((m for m in results["models"] if m["name"] == name), None)


def ratios(results: dict[str, Any]) -> dict[str, Any]:
    """Machine-independent ratios: default vs spade-paper, end-to-end vs engine, vs peak, bf16 vs fp32."""
    threads = results["config"]["server_threads"]
    size = results["config"]["paint_size"]
    default = find_model(results, results["default_model"])
    paper = find_model(results, results.get("paper_model"))
    out: dict[str, Any] = {"at": f"{size}², batch 1, {threads} thread(s)"}

    d_row = engine_row(default, size, 1, threads) if default else None
    p_row = engine_row(paper, size, 1, threads) if paper else None
    if d_row and p_row:
        out["default_vs_paper"] = {
            "default": default["name"] if default else None,
            "latency_ratio": round(d_row["p50_ms"] / p_row["p50_ms"], 4),
            "speedup": round(p_row["p50_ms"] / d_row["p50_ms"], 2),
            "gmacs_ratio": round(d_row["gmacs_per_image"] / p_row["gmacs_per_image"], 4),
            "params_ratio": round(default["params_m"] / paper["params_m"], 4) if default and paper else None,
        }
    else:
        out["default_vs_paper"] = None  # spade-paper is not measured in --quick

    if d_row:
        single = (results.get("paint") or {}).get("runs", [])
        one = next((r for r in single if r["clients"] == 1), None)
        if one and one["p50_ms"]:
            out["paint_1_client_vs_engine"] = round(one["p50_ms"] / d_row["p50_ms"], 3)
            if one["server"][
                "infer_ms"
            ]:  # splits the gap: generator slower in the server, or everything else
                out["paint_1_client_vs_server_infer"] = round(one["p50_ms"] / one["server"]["infer_ms"], 3)
                out["server_infer_vs_engine"] = round(one["server"]["infer_ms"] / d_row["p50_ms"], 3)
        rest = results.get("rest") or {}
        if rest.get("render"):
            out["rest_render_vs_engine"] = round(rest["render"]["p50_ms"] / d_row["p50_ms"], 3)
            out["rest_render_overhead_ms"] = round(rest["render"]["p50_ms"] - d_row["p50_ms"], 2)
        if rest.get("batch") and rest.get("engine_images_per_s"):
            out["batch_job_vs_engine_throughput"] = round(
                rest["batch"]["images_per_s"] / rest["engine_images_per_s"], 3
            )
        one_thread = engine_row(default, size, 1, 1) if default else None
        if one_thread and threads != 1:
            out["default_thread_speedup"] = round(one_thread["p50_ms"] / d_row["p50_ms"], 3)

    achieved = {}
    for model in results["models"]:
        rows = [r for r in model.get("engine", []) if "peak_fraction" in r]
        if not rows:
            continue
        best = max(rows, key=lambda r: r["peak_fraction"])
        at = engine_row(model, size, 1, threads)
        achieved[model["name"]] = {
            "peak_fraction": at["peak_fraction"] if at else None,
            "best_peak_fraction": best["peak_fraction"],
            "best_at": f"{best['size']}² b{best['batch']} {best['threads']}t",
        }
    out["achieved_vs_peak"] = achieved
    compute = {}
    for prof in results.get("profile", []):
        if prof.get("compute_gflops"):
            compute[prof["model"]] = round(prof["compute_gflops"] / profile_peak(results, prof), 4)
    out["compute_ops_vs_peak"] = compute
    stage = results.get("collage") or {}
    if "stage" in stage:
        out["collage_stage_vs_base"] = {
            "at": f"{stage['model']}, {stage['size']}², {stage['runtime']} {stage['precision']}",
            "by_instances": {str(r["instances"]): r["vs_base"] for r in stage["stage"]},
        }
    step = results.get("train_step")
    if step:
        out["train_step_fp32_vs_bf16"] = {
            "at": f"{step['preset']}, {step['size']}², batch {step['batch']}, {step['threads']} thread(s)",
            "ratio": step["fp32_vs_bf16"],
            "avx512_bf16": step["avx512_bf16"],
        }
    return out


def ratio_lines(r: dict[str, Any]) -> list[str]:
    """The ratios as sentences, for the console and the Markdown page."""
    lines = []
    dp = r.get("default_vs_paper")
    if dp:
        lines.append(
            f"default model ({dp['default']}) vs spade-paper latency at {r['at']}: {dp['latency_ratio']:.3f} "
            f"({dp['speedup']:.1f}× faster; GMACs ratio {dp['gmacs_ratio']:.3f}, parameters {dp['params_ratio']:.3f})"
        )
    else:
        lines.append("default model vs spade-paper: not measured in this run (--quick skips spade-paper)")
    for key, text in (
        ("paint_1_client_vs_engine", "paint→frame p50 (1 client) / engine-only p50"),
        (
            "paint_1_client_vs_server_infer",
            "paint→frame p50 (1 client) / the server's own generator-call mean",
        ),
        ("server_infer_vs_engine", "the server's generator-call mean (1 client) / engine-only p50"),
        ("rest_render_vs_engine", "REST single render p50 / engine-only p50"),
        ("batch_job_vs_engine_throughput", "batch-job images/s / engine-only images/s"),
        ("default_thread_speedup", "default model, all cores vs 1 thread (latency speed-up)"),
    ):
        if key in r:
            extra = f" ({r['rest_render_overhead_ms']:+.1f} ms)" if key == "rest_render_vs_engine" else ""
            lines.append(f"{text}: {r[key]:.3f}{extra}")
    for name, a in r["achieved_vs_peak"].items():
        at = f"{100 * a['peak_fraction']:.1f}%" if a["peak_fraction"] is not None else NA
        lines.append(
            f"{name}: achieved / peak FLOP/s = {at} at {r['at']}; best {100 * a['best_peak_fraction']:.1f}% "
            f"({a['best_at']})"
        )
    for name, frac in r.get("compute_ops_vs_peak", {}).items():
        lines.append(f"{name}: Conv/MatMul kernels alone / peak = {100 * frac:.1f}%")
    stage = r.get("collage_stage_vs_base")
    if stage:
        by = ", ".join(f"{n} instance(s) {v:.2f}" for n, v in stage["by_instances"].items())
        lines.append(f"CollageGAN composition stage / base generator ({stage['at']}), median time: {by}")
    step = r.get("train_step_fp32_vs_bf16")
    if step:
        lines.append(
            f"training step ({step['at']}), fp32 / bf16 autocast seconds per step: {step['ratio']:.3f} "
            f"(CPU reports avx512_bf16: {_yes_no(step['avx512_bf16'])})"
        )
    return lines


def _yes_no(flag: bool | None) -> str:
    return NA if flag is None else "yes" if flag else "no"


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return NA
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def profile_peak(results: dict[str, Any], prof: dict[str, Any]) -> float:
    """The peak an op profile is compared with: the profile is onnxruntime's (f32), so onnxruntime f32's peak
    from the runtimes section when it was measured at the profile's thread count, else the machine peak."""
    runtimes = results.get("runtimes")
    if runtimes and runtimes["threads"] == prof["threads"]:
        return float(runtimes["peaks_gflops"]["onnxruntime f32"]["peak"])
    return float(results["peak"]["peak_gflops"][str(prof["threads"])])


def gap_note(results: dict[str, Any]) -> list[str]:
    """Where the biggest gap to the peak is, from the default model's op profile (onnxruntime f32)."""
    prof = next((p for p in results.get("profile", []) if p["model"] == results["default_model"]), None)
    if not prof or not prof.get("graph_gflops"):
        return []
    peak = profile_peak(results, prof)
    compute_share = prof["compute_ms"] / prof["kernel_ms"] if prof["kernel_ms"] else 0.0
    others = [
        (op, s) for op, s in prof["share"].items() if op not in ("Conv", "MatMul", "Gemm", "ConvTranspose")
    ]
    top = ", ".join(f"{op} {100 * s:.0f}%" for op, s in others[:4])
    reorder = (
        " ReorderInput/ReorderOutput are onnxruntime converting activations between NCHW and the blocked "
        "NCHWc layout its vectorised convolutions use, around every op that cannot run blocked."
        if any(op.startswith("Reorder") for op, _ in others[:4])
        else ""
    )
    return [
        f"On onnxruntime f32, the default model ({prof['model']}, {prof['size']}², batch 1, {prof['threads']} "
        f"thread(s)) runs at {prof['graph_gflops']:.1f} GFLOP/s = {100 * prof['graph_gflops'] / peak:.1f}% of "
        "onnxruntime's measured f32 peak. "
        f"Conv/MatMul hold all of its MACs and take {100 * compute_share:.0f}% of the kernel time at "
        f"{_fmt(prof['compute_gflops'])} GFLOP/s ({100 * (prof['compute_gflops'] or 0) / peak:.1f}% of peak); the "
        f"rest goes to ops that do no MACs and only move memory ({top}).{reorder}",
    ]


def markdown(results: dict[str, Any]) -> str:
    """The whole `docs/benchmarks.md` page."""
    meta, peak, cfg = results["meta"], results["peak"], results["config"]
    out = [
        "# Benchmarks",
        "",
        f"Written by `{meta['command']}` on {meta['date']} — commit `{meta['git_commit']}`"
        f"{' (uncommitted changes)' if meta['git_dirty'] else ''}, {meta['cpu_model']} "
        f"({meta['cores']} cores), onnxruntime {meta['onnxruntime']}, OpenVINO {meta.get('openvino', '–')}, "
        f"{meta['wall_s']:.0f} s in total. "
        f"Load average at start/end: {meta['load_start']} / {meta['load_end']}."
        + (" **Quick run: tiny grid, few iterations — smoke test only.**" if cfg["quick"] else ""),
        "",
        "Every number below comes from this one run. Absolute milliseconds describe this machine only; the "
        "ratios compare things measured side by side and are the claims worth quoting.",
        "",
        "## Ratios (independent of machine speed)",
        "",
    ]
    out += [f"- {line}" for line in ratio_lines(results["ratios"])]
    for line in gap_note(results):
        out += ["", line]
    if "runtimes" in results:
        out += ["", *runtimes.markdown_lines(results["runtimes"], results.get("paint_latency", []))]
    if "collage" in results:
        out += ["", *collage.markdown_lines(results["collage"])]
    out += [
        "",
        "## Machine peak",
        "",
        f"On the server's default runtime ({peak.get('runtime', 'onnxruntime f32')}), best of several runs, one node "
        "per graph (built with `onnx.helper`).",
        "",
        "| kernel | shape | " + " | ".join(f"{t} thread(s), GFLOP/s" for t in peak["peak_gflops"]) + " |",
        "|---|---|" + "---:|" * len(peak["peak_gflops"]),
    ]
    for name, by_t in peak["gflops"].items():
        out.append(
            f"| {name} | {peak['shapes'][name]} | " + " | ".join(_fmt(v) for v in by_t.values()) + " |"
        )
    out.append("| **peak** | | " + " | ".join(f"**{_fmt(v)}**" for v in peak["peak_gflops"].values()) + " |")
    out += [
        "",
        "## Models",
        "",
        "GMACs per 256² frame; memory: a fresh process opening the model and rendering one 256² frame, above the "
        "same process before (peak = VmHWM, resident = VmRSS after).",
        "",
        "| model | source | GMACs / 256² | params (M) | ONNX (MB) | peak RSS (MB) | resident (MB) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for m in results["models"]:
        mem = m.get("memory") or {}
        gm = m.get("gmacs_256")
        out.append(
            f"| {m['name']}{' (default)' if m['name'] == results['default_model'] else ''} | {m['source']} | "
            f"{_fmt(gm, 3)} | {_fmt(m.get('params_m'), 3)} | {_fmt(m.get('onnx_mb'))} | "
            f"{_fmt(mem.get('peak_rss_mb'))} | {_fmt(mem.get('resident_mb'))} |"
        )
    out += [
        "",
        "## Engine",
        "",
        "Generator only (`server.registry.load_model` on the server's default runtime, as the peak), a batch of copies of one "
        "painted map; p50/p95 over the timed runs after one warm-up run; "
        "achieved GFLOP/s = 2 × MACs / p50, against the peak for the same thread count. Configs predicted to "
        f"take over {cfg['max_config_s']:g} s (warm-up + one run, extrapolated from the same model's cheapest "
        "config) are skipped.",
        "",
        "| model | size | batch | threads | p50 ms | p95 ms | runs | ms / image | images/s | GFLOP/s | % of peak |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for m in results["models"]:
        if m.get("error"):
            out.append(f"| {m['name']} | | | | {m['error']} | | | | | | |")
        for r in m.get("engine", []):
            if "skipped" in r:
                out.append(
                    f"| {m['name']} | {r['size']}² | {r['batch']} | {r['threads']} | skipped: {r['skipped']} "
                    "| | | | | | |"
                )
                continue
            frac = r.get("peak_fraction")
            out.append(
                f"| {m['name']} | {r['size']}² | {r['batch']} | {r['threads']} | {_fmt(r['p50_ms'])} | "
                f"{_fmt(r['p95_ms'])} | {r['runs']} | {_fmt(r['ms_per_image'])} | {_fmt(r['images_per_s'])} | "
                f"{_fmt(r.get('achieved_gflops'))} | {_fmt(100 * frac if frac is not None else None)} |"
            )
    if results.get("profile"):
        out += [
            "",
            "## Where the time goes",
            "",
            "onnxruntime's profiler, kernel time per op type (batch 1, warm-up excluded).",
            "",
            "| model | run ms | Conv/MatMul ms | Conv/MatMul GFLOP/s | top ops by share of kernel time |",
            "|---|---:|---:|---:|---|",
        ]
        for p in results["profile"]:
            top = ", ".join(f"{op} {100 * s:.1f}%" for op, s in list(p["share"].items())[:6])
            out.append(
                f"| {p['model']} ({p['size']}², {p['threads']}t) | {_fmt(p['run_ms'])} | {_fmt(p['compute_ms'])} | "
                f"{_fmt(p['compute_gflops'])} | {top} |"
            )
    paint = results.get("paint")
    if paint:
        out += [
            "",
            "## Paint path",
            "",
            f"Real uvicorn (`python -m server`, {cfg['server_threads']} onnxruntime threads), model "
            f"`{paint['model']}` at {paint['size']}², JPEG. Each client paints a new map every "
            f"{1000 / paint['rate']:.0f} ms for {paint['seconds']:g} s without waiting for pictures (open loop). "
            "Latency = send of a map → the frame answering it. Delivered frames/s and staleness count frames that "
            "arrived while their client was still painting; stale = a newer map had already been sent (seqs "
            "behind the client's newest; ms since that newer map was sent). Dropped = maps replaced in the "
            "latest-wins slot before rendering (server counter).",
            "",
            "| clients | maps sent | frames | dropped | p50 ms | p95 ms | p99 ms | frames/s (all) | frames/s per "
            "client | stale frames | seqs behind (mean / max) | stale ms p50 / p95 | server infer ms | mean batch |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in paint["runs"]:
            stale = f"{100 * r['stale_frames']:.0f}%" if r["stale_frames"] is not None else NA
            out.append(
                f"| {r['clients']} | {r['maps_sent']} | {r['frames']} | {r['server_dropped']} | "
                f"{_fmt(r['p50_ms'])} | {_fmt(r['p95_ms'])} | {_fmt(r['p99_ms'])} | {_fmt(r['frames_per_s'])} | "
                f"{_fmt(r['frames_per_s_per_client'])} | {stale} | {_fmt(r['stale_seqs_mean'], 2)} / "
                f"{_fmt(r['stale_seqs_max'])} | {_fmt(r['stale_ms_p50'])} / {_fmt(r['stale_ms_p95'])} | "
                f"{_fmt(r['server']['infer_ms'])} | {_fmt(r['server']['mean_batch'], 2)} |"
            )
    rest = results.get("rest")
    if rest:
        ren, bat = rest["render"], rest["batch"]
        out += [
            "",
            "## REST",
            "",
            f"Same server and model (`{rest['model']}`), {ren['size']}², JPEG. Engine-only: the generator alone, "
            f"{cfg['server_threads']} thread(s): {_fmt(rest['engine_p50_ms'])} ms p50 at batch 1; "
            f"{_fmt(rest['engine_images_per_s'])} images/s at batch {rest['engine_batch']} (the largest measured; "
            "the server batches up to 8).",
            "",
            "| measurement | value | engine-only | ratio |",
            "|---|---:|---:|---:|",
            f"| single render p50 / p95 ms ({ren['requests']} sequential) | {_fmt(ren['p50_ms'])} / "
            f"{_fmt(ren['p95_ms'])} | {_fmt(rest['engine_p50_ms'])} | "
            f"{_fmt(ren['p50_ms'] / rest['engine_p50_ms'], 2)} |",
            f"| single render, server-side generator / queue / encode ms (p50) | "
            f"{_fmt(ren['server_render_ms_p50'])} / {_fmt(ren['server_queue_ms_p50'])} / "
            f"{_fmt(ren['server_encode_ms_p50'])} | | |",
            f"| batch job images/s ({bat['items']} items, POST → done) | {_fmt(bat['images_per_s'])} | "
            f"{_fmt(rest['engine_images_per_s'])} | {_fmt(bat['images_per_s'] / rest['engine_images_per_s'], 2)} |",
            f"| batch job mean server batch / generator ms per batch | {_fmt(bat['server']['mean_batch'], 2)} / "
            f"{_fmt(bat['server']['infer_ms'])} | | |",
        ]
    data = results.get("data")
    if data:
        out += [
            "",
            "## Procedural data",
            "",
            f"`benchmarks/render_speed.py`: layout + style + render pairs at {data['size']}² on one pinned core: "
            f"{data['pairs_per_s_wall']} pairs/s wall, {data['pairs_per_s_cpu']} pairs/s of CPU time "
            f"(layout {data['layout_ms']} ms, render {data['render_ms']} ms, median).",
        ]
    step = results.get("train_step")
    if step:
        out += [
            "",
            "## Training step",
            "",
            f"`benchmarks/train_step.py`: one `{step['preset']}` training step (`recipe.step`: G+E and D forward, "
            "backward and Adam; no data loading, no EMA update) at "
            f"{step['size']}², batch {step['batch']}, {step['threads']} thread(s), in fp32 and under bfloat16 "
            f"autocast (`collage train --precision=bf16`). Both start from the same seed and batch; after "
            f"{step['warmup']} warm-up step(s) each, {step['steps']} timed steps each alternate between the two, so "
            f"both see the same load. torch {step['torch']}, {step['cpu_model']}: avx512_bf16 "
            f"{_yes_no(step['avx512_bf16'])}, amx_tile {_yes_no(step['amx_tile'])}.",
            "",
            "| precision | s/step (median) | images/s |",
            "|---|---:|---:|",
            *(
                f"| {p} | {_fmt(step[p]['s_per_step'], 3)} | {_fmt(step[p]['images_per_s'], 2)} |"
                for p in ("fp32", "bf16")
            ),
            "",
            f"fp32 / bf16 seconds per step: **{step['fp32_vs_bf16']:.3f}**.",
        ]
    out += [
        "",
        "## Reproduce",
        "",
        "```",
        "make bench          # full suite (< 15 min on 2 cores); rewrites this page and benchmarks/results/latest.json",
        "make bench-quick    # smoke test (< 2 min); writes benchmarks/results/quick.json + quick.md",
        "python -m benchmarks.collage --out benchmarks/results/collage.json --markdown docs/benchmarks.md",
        "                    # the CollageGAN section alone (~1 min), spliced into this page",
        "```",
        "",
        "Run it on an otherwise idle machine: every number shares the CPU with whatever else is running.",
        "",
    ]
    return "\n".join(out)
