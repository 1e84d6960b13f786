"""Attach CollageGAN class generators, exported as class packs, to a served model folder (`collage attach`).

    collage export runs/00007-collage-class --out packs/house           # one pack per thing class
    collage attach packs/tree packs/rock packs/house --model weights/landscape-spade
    collage attach --detach --model weights/landscape-spade            # remove every class generator

A pack (`class_pack.json` + `<thing>_encoder.onnx` + `<thing>_decoder.onnx`, models/export_pack.py) fits any
base model with the same label set, so attaching checks that, and that each class id names the same thing class
in the model's labels; then it copies the graphs into the model folder and merges the entries into model.json's
`class_generators`, replacing an entry of the same class and keeping them in class-id order. Every pack's files
are checked against their sha256 before anything is copied, and the folder is read back through
`common.manifest` afterwards: the server opens it exactly so.

Torch-free: only `common` and the standard library, so it runs wherever the server does.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from common.checksums import sha256_file
from common.manifest import (
    MANIFEST_NAME,
    PACK_NAME,
    ClassGenerator,
    ClassPack,
    Manifest,
    ManifestError,
    read_manifest,
    verified_files,
)


class AttachError(ValueError):
    """A pack that cannot be attached to the model: unreadable, tampered with, or for other labels."""


def read_pack(folder: Path) -> ClassPack:
    """The folder's class_pack.json, validated, once every file it names is a plain name in the folder whose
    contents match its sha256."""
    try:
        pack = ClassPack.model_validate_json((folder / PACK_NAME).read_bytes())
    except FileNotFoundError:
        raise AttachError(
            f"{folder}: no {PACK_NAME}; export a collage-class run with `collage export`"
        ) from None
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise AttachError(f"{folder / PACK_NAME} is invalid at {where}: {first['msg']}") from None
    for cg in pack.class_generators:
        for ref in (cg.encoder, cg.decoder):
            path = folder / ref.path
            if Path(ref.path).name != ref.path or not path.is_file():
                raise AttachError(f"{folder}: {ref.path!r} is missing or not a plain file name in the pack")
            if sha256_file(path) != ref.sha256:
                raise AttachError(f"{folder}: {ref.path} does not match its sha256 in {PACK_NAME}")
    return pack


def _check_fits(manifest: Manifest, pack: ClassPack, folder: Path) -> None:
    """The pack's generators were trained on the model's label set, and their class ids name the same things."""
    labels = {entry.id: entry for entry in manifest.labels}
    for label_set in {pack.label_set, *(cg.label_set for cg in pack.class_generators)}:
        if label_set != manifest.label_set:
            raise AttachError(
                f"{folder}: the pack was trained on label set {label_set!r}, model {manifest.name} uses "
                f"{manifest.label_set!r}; a class generator only fits a model with its own labels"
            )
    for cg in pack.class_generators:
        label = labels.get(cg.class_id)
        if label is None or label.name != cg.thing or not label.is_thing:
            raise AttachError(
                f"{folder}: class {cg.class_id} is {label.name if label else 'absent'!r} in model "
                f"{manifest.name}, not the thing class {cg.thing!r} the pack draws"
            )


def _write_manifest(model: Path, generators: Sequence[ClassGenerator]) -> Manifest:
    """model.json with `class_generators` replaced (every other field as it was), validated, written atomically."""
    data = json.loads((model / MANIFEST_NAME).read_text())
    data["class_generators"] = [cg.model_dump(mode="json") for cg in generators]
    try:
        manifest = Manifest.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise AttachError(f"{MANIFEST_NAME} would be invalid at {where}: {first['msg']}") from None
    tmp = model / f".{MANIFEST_NAME}.tmp"
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, model / MANIFEST_NAME)
    return manifest


def _class_files(manifest: Manifest) -> set[str]:
    return {path for cg in manifest.class_generators for path in (cg.encoder.path, cg.decoder.path)}


def _remove_unreferenced(model: Path, before: Manifest, after: Manifest) -> None:
    """Delete the class generators' files that model.json named before and no longer names."""
    for name in _class_files(before) - _class_files(after):
        (model / name).unlink(missing_ok=True)


def attach(packs: Sequence[Path], model: Path) -> Manifest:
    """Attach every class generator of `packs` to the model folder `model`; returns its new manifest.

    Nothing in the folder changes unless every pack is valid, fits the model and is the only one for its class.
    """
    before = read_manifest(model)
    verified_files(model, before)  # attach to a folder the server would serve, not to a broken one
    base_files = {before.files.generator.path} | (
        {before.files.encoder.path} if before.files.encoder else set()
    )
    incoming: dict[int, tuple[Path, ClassGenerator]] = {}
    for folder in packs:
        pack = read_pack(folder)
        _check_fits(before, pack, folder)
        for cg in pack.class_generators:
            if cg.class_id in incoming:
                raise AttachError(
                    f"{folder}: a second generator for {cg.thing!r} (the first is in {incoming[cg.class_id][0]})"
                )
            if {cg.encoder.path, cg.decoder.path} & (base_files | {MANIFEST_NAME}):
                raise AttachError(f"{folder}: its file names clash with the base model's files")
            incoming[cg.class_id] = (folder, cg)
    for folder, cg in incoming.values():
        for ref in (cg.encoder, cg.decoder):
            shutil.copyfile(folder / ref.path, model / ref.path)
    merged = {cg.class_id: cg for cg in before.class_generators} | {k: cg for k, (_, cg) in incoming.items()}
    after = _write_manifest(model, [merged[k] for k in sorted(merged)])
    _remove_unreferenced(model, before, after)
    verified_files(model, after)
    return after


def detach(model: Path) -> Manifest:
    """Remove every class generator from the model folder (entries and files); returns its new manifest."""
    before = read_manifest(model)
    after = _write_manifest(model, [])
    _remove_unreferenced(model, before, after)
    return after


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="collage attach", description=__doc__.split("\n")[0])
    parser.add_argument(
        "packs", type=Path, nargs="*", help="class pack folders (`collage export` of collage-class runs)"
    )
    parser.add_argument(
        "--model", type=Path, required=True, help="model folder to attach to, e.g. weights/landscape-spade"
    )
    parser.add_argument(
        "--detach", action="store_true", help="remove every class generator from the model instead"
    )
    args = parser.parse_args(argv)
    if bool(args.packs) == args.detach:
        parser.error("give pack folders to attach, or --detach alone")
    try:
        manifest = detach(args.model) if args.detach else attach(args.packs, args.model)
    except AttachError as err:
        print(f"collage attach: {err}", file=sys.stderr)  # noqa: T201
        return 2
    except ManifestError as err:  # its messages name files relative to the folder
        print(f"collage attach: {args.model}: {err}", file=sys.stderr)  # noqa: T201
        return 2
    attached = [
        {"thing": cg.thing, "class_id": cg.class_id, "files": [cg.encoder.path, cg.decoder.path]}
        for cg in manifest.class_generators
    ]
    print(json.dumps({"model": str(args.model), "class_generators": attached}, indent=2))  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
