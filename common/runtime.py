"""The inference runtimes that run exported ONNX graphs: OpenVINO on CPU, onnxruntime for CUDA and as a fallback.

One small interface, `Graph` (named feeds in, named outputs out, `info` says what it runs on), so the server's
engine, `collage eval` and the benchmarks never care which runtime they hold:

- **OpenVINO** (the `cpu` extra; the default wherever it is installed): a model is compiled once per input
  size on first use (about 0.2–2 s) and kept in a bounded LRU cache, because the same graph compiled with
  dynamic H/W ran about 30% slower. A batch of one compiles static shapes; the larger batches of a graph whose
  batch axis is dynamic share one compilation per size with that axis left dynamic. Each compiled model holds
  its own intermediate buffers, so compiling every batch size on its own kept all of them (landscape-spade,
  batches of 8 then 1..8: peak RSS 1004 MiB at 256², 2650 at 512²; shared, 557 and 1423, though a first batch
  of 8 alone holds more, 501 against 406 at 256²), and no compile stall on each new batch size, for ~5–10%
  slower batched calls; a dynamic batch of one ran ~15% slower, so it stays static. Precision `bf16` runs the
  convolutions in bfloat16 on CPUs that do it natively (AVX512-BF16, AMX), as OpenVINO reports in
  `OPTIMIZATION_CAPABILITIES`; elsewhere f32.
- **onnxruntime** (`gpu` extra with CUDA, or CPU): dynamic shapes, f32, one session per file, without memory
  patterns: a pattern is one block planned per input shape, which the CPU arena could not carve from the blocks
  of earlier shapes, so the arena grew with every batch size seen (same load: 828 MiB at 256², 2880 at 512²;
  without, 492 and 1530, the largest run's needs, at no measurable cost in speed).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cache
from importlib.util import find_spec
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

log = logging.getLogger(__name__)

RuntimeName = Literal["openvino", "onnxruntime"]
RUNTIME_CHOICES = ("auto", "openvino", "onnxruntime")
PRECISION_CHOICES = ("auto", "f32", "bf16")
DEFAULT_MAX_COMPILED = 8  # compiled OpenVINO models kept per graph (per size in use: batch 1, larger batches)

_PROVIDER_ALIASES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}


class RuntimeUnavailable(Exception):
    """The requested runtime or precision cannot be used on this install or CPU."""


@dataclass(frozen=True)
class RuntimeInfo:
    """What a graph really runs on, as reported by the runtime itself."""

    runtime: RuntimeName
    device: str  # OpenVINO device ("CPU") or onnxruntime provider ("CPUExecutionProvider", "CUDAExecutionProvider")
    precision: str  # f32 | bf16: what the arithmetic is done in (the file may store fp16 weights either way)


class Graph(Protocol):
    """One ONNX file opened by a runtime."""

    info: RuntimeInfo
    inputs: dict[str, tuple[int | None, ...]]  # input name → shape, None where the graph leaves a dim dynamic
    outputs: list[str]

    def run(self, outputs: Sequence[str], feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """Run once on a batch; the arrays returned are the caller's own (not reused by the next run)."""
        ...


def installed_runtimes() -> list[RuntimeName]:
    """The runtimes importable here, the preferred CPU one first."""
    found: list[RuntimeName] = []
    if find_spec("openvino") is not None:
        found.append("openvino")
    if find_spec("onnxruntime") is not None:
        found.append("onnxruntime")
    return found


def resolve_runtime(requested: str) -> RuntimeName:
    """`auto` → OpenVINO where installed, else onnxruntime (the `gpu` extra installs only onnxruntime-gpu)."""
    installed = installed_runtimes()
    if requested not in RUNTIME_CHOICES:
        raise RuntimeUnavailable(f"unknown runtime {requested!r} (choose from {', '.join(RUNTIME_CHOICES)})")
    if requested == "auto":
        if not installed:
            raise RuntimeUnavailable(
                "no inference runtime is installed: `pip install -e '.[cpu]'` (OpenVINO + onnxruntime) "
                "or '.[gpu]' (onnxruntime-gpu)"
            )
        return installed[0]
    if requested not in installed:
        raise RuntimeUnavailable(f"runtime {requested} is not installed (installed: {installed or 'none'})")
    return requested


@cache
def _openvino_core() -> Any:
    """One OpenVINO Core per process: it loads the CPU plugin, which every graph and query can share."""
    import openvino as ov

    return ov.Core()


@cache
def cpu_has_native_bf16() -> bool:
    """OpenVINO's own verdict: BF16 among the CPU plugin's optimisation capabilities (AVX512-BF16 or AMX)."""
    return "BF16" in _openvino_core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def resolve_precision(runtime: RuntimeName, requested: str) -> str:
    """`auto` → bf16 where OpenVINO runs it natively, else f32; onnxruntime always computes in f32."""
    if requested not in PRECISION_CHOICES:
        raise RuntimeUnavailable(
            f"unknown precision {requested!r} (choose from {', '.join(PRECISION_CHOICES)})"
        )
    if runtime == "onnxruntime":
        if requested == "bf16":
            raise RuntimeUnavailable("precision bf16 needs the OpenVINO runtime; onnxruntime runs f32")
        return "f32"
    native = cpu_has_native_bf16()
    if requested == "bf16" and not native:
        raise RuntimeUnavailable("this CPU has no native bf16 (OpenVINO reports no BF16 capability)")
    if requested == "auto":
        return "bf16" if native else "f32"
    return requested


def choose_providers(requested: Sequence[str]) -> list[str]:
    """onnxruntime providers: the requested ones that exist (aliases cpu/cuda/tensorrt), else CUDA when
    present, then CPU."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if requested:
        names = [_PROVIDER_ALIASES.get(p.lower(), p) for p in requested]
        missing = [p for p in names if p not in available]
        if missing:
            log.warning("onnxruntime providers %s are not available here (available: %s)", missing, available)
        chosen = [p for p in names if p in available]
        if chosen:
            return chosen
    return [p for p in ("CUDAExecutionProvider",) if p in available] + ["CPUExecutionProvider"]


class OrtGraph:
    """An onnxruntime session: dynamic shapes, f32, on the first provider that accepts the graph."""

    def __init__(
        self,
        path: Path,  # the .onnx file
        threads: int = 0,  # intra-op threads; 0 = onnxruntime's default (all cores)
        providers: Sequence[str] = (),  # onnxruntime providers in order; empty = CUDA when present, then CPU
    ) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # No busy-waiting between runs: spinning workers steal the cores that encoding, the event loop and (on a
        # shared box) everything else need; measured here it halved frame times on a loaded 2-core machine.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # Tensors from the arena one by one rather than one planned block per input shape (see the module doc):
        # the arena stops growing with each new batch size, and no run measured slower.
        options.enable_mem_pattern = False
        options.log_severity_level = 3  # errors only: CUDA-less hosts otherwise print a warning per session
        self.session = ort.InferenceSession(str(path), options, providers=choose_providers(providers))
        used = self.session.get_providers()  # what onnxruntime really uses, not what was asked for
        self.info = RuntimeInfo("onnxruntime", used[0], "f32")
        self.inputs = {
            i.name: tuple(d if isinstance(d, int) else None for d in i.shape)
            for i in self.session.get_inputs()
        }
        self.outputs = [o.name for o in self.session.get_outputs()]

    def run(self, outputs: Sequence[str], feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        return list(self.session.run(list(outputs), dict(feeds)))


class OpenVinoGraph:
    """An OpenVINO model compiled per input shapes on first use (batches over one share a dynamic batch axis),
    the compiled models in an LRU cache."""

    def __init__(
        self,
        path: Path,  # the .onnx file (fp16-at-rest files load as they are)
        threads: int = 0,  # INFERENCE_NUM_THREADS; 0 = OpenVINO's default (all cores)
        precision: str = "auto",  # auto | f32 | bf16, resolved by `resolve_precision`
        max_compiled: int = DEFAULT_MAX_COMPILED,  # compiled shapes kept; the least recently used goes first
    ) -> None:
        if max_compiled < 1:
            raise ValueError("max_compiled must be at least 1")
        self._core = _openvino_core()
        self._model = self._core.read_model(str(path))  # raises on ops OpenVINO's ONNX frontend lacks
        resolved = resolve_precision("openvino", precision)
        self._config: dict[str, Any] = {
            "PERFORMANCE_HINT": "LATENCY",
            # Explicit either way: on AMX CPUs OpenVINO would pick bf16 by itself, even when f32 is asked for.
            "INFERENCE_PRECISION_HINT": resolved,
        }
        if threads:
            self._config["INFERENCE_NUM_THREADS"] = threads
        self.max_compiled = max_compiled
        self.info = RuntimeInfo("openvino", "CPU", resolved)
        self.inputs = {
            port.get_any_name(): tuple(
                d.get_length() if d.is_static else None for d in port.get_partial_shape()
            )
            for port in self._model.inputs
        }
        self.outputs = [port.get_any_name() for port in self._model.outputs]
        self._compiled: OrderedDict[tuple[tuple[str, tuple[int | None, ...]], ...], Any] = OrderedDict()
        self._lock = threading.Lock()  # an infer request serves one caller at a time
        self.compiles = 0  # how many shapes were compiled (a cache miss each)

    @property
    def compiled_shapes(self) -> list[dict[str, tuple[int | None, ...]]]:
        """The input shapes compiled now (None: a dynamic batch axis), least recently used first."""
        return [dict(key) for key in self._compiled]

    def _key(self, shapes: dict[str, tuple[int, ...]]) -> tuple[tuple[str, tuple[int | None, ...]], ...]:
        """The shapes to compile for: a batch over one leaves the batch axis dynamic in every input whose graph
        has it dynamic, so batches of 2..N of one size share a compiled model and its buffers."""
        batched = [n for n, shape in shapes.items() if shape and self.inputs.get(n, (1,))[:1] == (None,)]
        dynamic = bool(batched) and all(shapes[n][0] > 1 for n in batched)
        return tuple(
            sorted(
                (n, (None, *shape[1:]) if dynamic and n in batched else shape) for n, shape in shapes.items()
            )
        )

    def _request(self, feeds: Mapping[str, np.ndarray]) -> Any:
        """The infer request compiled for these feeds' shapes: from the cache, else compiled now."""
        shapes = {name: tuple(int(d) for d in a.shape) for name, a in feeds.items()}
        key = self._key(shapes)
        request = self._compiled.get(key)
        if request is not None:
            self._compiled.move_to_end(key)
            return request
        for name, shape in shapes.items():
            declared = self.inputs.get(name)
            if (
                declared is None
                or len(declared) != len(shape)
                or any(d is not None and d != got for d, got in zip(declared, shape, strict=True))
            ):
                # OpenVINO would reshape even a dimension the graph fixes; onnxruntime refuses, and so do we
                raise ValueError(
                    f"input {name!r} has shape {list(shape)}, the graph takes {list(declared or [])}"
                )
        model = self._model.clone()
        model.reshape({name: [-1 if d is None else d for d in shape] for name, shape in key})
        compiled = self._core.compile_model(model, "CPU", self._config)
        actual = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()  # "f32" | "bf16"
        if actual != self.info.precision:  # reported as run, e.g. an op set OpenVINO keeps in f32
            self.info = replace(self.info, precision=actual)
        request = compiled.create_infer_request()
        self._compiled[key] = request
        self.compiles += 1
        while len(self._compiled) > self.max_compiled:
            self._compiled.popitem(last=False)
        return request

    def run(self, outputs: Sequence[str], feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        with self._lock:
            request = self._request(feeds)
            result = request.infer(dict(feeds))  # copies the outputs (share_outputs=False)
            return [np.asarray(result[name]) for name in outputs]


@dataclass(frozen=True)
class RuntimeChoice:
    """How to open graphs: the operator's COLLAGE_RUNTIME / COLLAGE_PRECISION / COLLAGE_THREADS …, or eval's flags."""

    runtime: str = "auto"  # auto | openvino | onnxruntime
    precision: str = "auto"  # auto | f32 | bf16 (bf16 only with OpenVINO on a CPU that has it)
    threads: int = 0  # runtime threads; 0 = the runtime's default
    providers: tuple[str, ...] = ()  # onnxruntime providers (ignored by OpenVINO)
    max_compiled: int = DEFAULT_MAX_COMPILED  # OpenVINO: compiled shapes kept per graph


def open_graph(path: Path, choice: RuntimeChoice) -> Graph:
    """Open one ONNX file as `choice` says; raises RuntimeUnavailable for impossible choices and the runtime's
    own exception when it cannot read the graph."""
    name = resolve_runtime(choice.runtime)
    if name == "openvino":
        return OpenVinoGraph(path, choice.threads, choice.precision, choice.max_compiled)
    resolve_precision("onnxruntime", choice.precision)  # refuses bf16 with a clear reason
    return OrtGraph(path, choice.threads, choice.providers)
