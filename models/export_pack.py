"""Export a CollageGAN class generator as a class pack: a folder with `<thing>_encoder.onnx`,
`<thing>_decoder.onnx` and `class_pack.json` (`common.manifest.ClassPack`), to be attached to any base model
with the same label set by `collage attach` (`models/attach.py`). docs/contracts.md "Class generators" gives
the graphs' inputs and outputs.

A pack rather than files written straight into a model folder because a class generator trains on its own
(one run per thing class) and outlives the base model: the same house generator serves SPADE today and the
zoo's models later. Both graphs go through `models.export.write_graph`, the path a model's roles take (parity
with torch, 16-bit weights, GMACs); the pack entry records those figures under `training.export`.

Called by `collage export RUN --out DIR` when RUN's architecture exports a `ClassPackSpec`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from common.manifest import FORMAT_VERSION, PACK_NAME, ClassPack
from models.archs import ClassPackSpec
from models.export import MAX_FILE_BYTES, ExportError, export_report, write_graph

GRAPH_INPUTS = {  # the contract's input names: the server feeds every one, so a graph may not drop any
    "encoder": frozenset({"context", "labels", "mask", "valid"}),
    "decoder": frozenset({"phi", "z", "noise"}),
}


def export_pack(
    spec: ClassPackSpec,
    *,
    out_dir: str | Path,
    training: Mapping[str, Any] | None = None,
    config: Mapping[str, Any] | None = None,
    max_side: int | None = None,  # longer instances (picture px) are left to the base; None: no limit
    max_file_bytes: int = MAX_FILE_BYTES,
) -> dict[str, Any]:
    """Export `spec`'s encoder and decoder to `out_dir` with its class_pack.json; returns the pack.

    `training` is provenance (run, step, wall time…) and `config` the resolved training config (stored under
    training.config), as for `export_modules`. `max_side` is a serving limit, not a training one: a generator
    drawing T² boxes blurs an instance many times larger, which the base may have drawn with more detail.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / PACK_NAME).unlink(missing_ok=True)  # a failed export must not leave an old pack over new files
    graphs = {}
    for role_name, role in (("encoder", spec.encoder), ("decoder", spec.decoder)):
        name = f"{spec.thing}_{role_name}"
        if role.size is None:
            raise ValueError(f"{name}: a class generator's graphs have fixed sizes, this role has none")
        graph = write_graph(name, role, out / f"{name}.onnx", role.size, max_file_bytes)
        if graph.inputs != GRAPH_INPUTS[role_name]:
            missing = ", ".join(sorted(GRAPH_INPUTS[role_name] - graph.inputs)) or "none"
            raise ExportError(f"{name}: the graph's inputs are {sorted(graph.inputs)}, missing: {missing}")
        graphs[role_name] = graph

    provenance = dict(training or {})
    if config is not None:
        provenance["config"] = dict(config)
    provenance["export"] = export_report(graphs)
    entry = {
        **spec.entry,
        "encoder": graphs["encoder"].file,
        "decoder": graphs["decoder"].file,
        "training": provenance,
        "metrics": {},
    }
    if max_side is not None:
        entry["max_side"] = max_side
    pack = {"format_version": FORMAT_VERSION, "label_set": spec.label_set.name, "class_generators": [entry]}
    try:
        ClassPack.model_validate(pack)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ExportError(f"{PACK_NAME} would be invalid at {where}: {first['msg']}") from None
    (out / PACK_NAME).write_text(json.dumps(pack, indent=2) + "\n")
    return pack
