"""Training datasets: procedural landscapes (rendered live or read from a shard cache, sample i being
`models.data.samples.render_sample(seed, i, size, mix)`) and real-dataset loaders.

Every dataset yields the sample dict of docs/contracts.md: `label` LongTensor [H,W], `instance` LongTensor [H,W]
(0 = stuff), `image` FloatTensor [3,H,W] in [-1, 1], `style` int (index into FAMILIES, -1 when unknown or free).
`make_dataset(spec, size)` turns the trainer's `--data` string into a dataset and its label set.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from tqdm import tqdm

from common.instances import instances_from_labels
from models.data import FAMILIES
from models.data.samples import NO_MIX, Mix, render_sample
from models.labels import (
    LANDSCAPE,
    LabelSet,
    UnknownColorError,
    get_label_set,
)

Size = int | tuple[int, int]
Sample = dict[str, Any]

VAL_SEED_OFFSET = 1_000_003  # procedural "val" split: the same generator, seeds no train sample uses
SHARD_SIZE = 256  # samples per cache shard
META_FILE = "meta.json"  # pairs-folder metadata written by `collage data export`: label set and styles
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
ID_MODES = ("L", "P", "I;16", "I")  # PIL modes of label maps whose pixel values are ids
COLOUR_MODES = ("RGB", "RGBA")  # PIL modes of colour-coded label maps (pairs folders only)
CHECK_DECODED = 8  # pairs PairsDataset.check decodes in full, spread over the dataset


def _hw(size: Size) -> tuple[int, int]:
    h, w = (size, size) if isinstance(size, int) else size
    if h < 1 or w < 1:
        raise ValueError(f"size must be positive, got {size}")
    return int(h), int(w)


def to_sample(label: np.ndarray, instance: np.ndarray, image: np.ndarray, style: int) -> Sample:
    """Numpy arrays (H×W ids, H×W instance ids, H×W×3 uint8) → the contract's tensor dict."""
    return {
        "label": torch.from_numpy(label.astype(np.int64)),  # [H,W]
        "instance": torch.from_numpy(instance.astype(np.int64)),  # [H,W]
        "image": torch.from_numpy(image).permute(2, 0, 1).float().div(127.5).sub(1.0),  # [3,H,W] in [-1,1]
        "style": int(style),
    }


# ---------------------------------------------------------------------------------------------------------
# Procedural landscapes
# ---------------------------------------------------------------------------------------------------------


def _renderer_fingerprint() -> str:
    """Hash of the procedural generator's source, so a changed renderer never reads a stale cache."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        if path.name != "cli.py":
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def cache_folder(cache_dir: str | os.PathLike[str], size: Size, seed: int, mix: Mix = NO_MIX) -> Path:
    """The shard folder of one dataset: its size, seed, mix (`Mix.suffix`) and the generator's fingerprint."""
    h, w = _hw(size)
    return Path(cache_dir) / f"procedural-{h}x{w}-seed{seed}{mix.suffix}-{_renderer_fingerprint()}"


def _shard_path(folder: Path, shard: int) -> Path:
    return folder / f"shard-{shard:05d}"


def _shard_count(folder: Path, shard: int) -> int:
    """Samples a finished shard holds (0 when absent). A shard directory appears only once complete."""
    try:
        return int((_shard_path(folder, shard) / "count").read_text())
    except FileNotFoundError:
        return 0


def _write_shard(
    folder: Path,
    shard: int,
    start: int,
    stop: int,
    size: Size,
    seed: int,
    mix: Mix = NO_MIX,
    bar: tqdm | None = None,
) -> int:
    """Render samples start..stop-1 into one shard directory of .npy files, renamed into place when complete."""
    h, w = _hw(size)
    n = stop - start
    labels = np.empty((n, h, w), np.uint8)
    instances = np.empty((n, h, w), np.uint16)
    images = np.empty((n, h, w, 3), np.uint8)
    styles = np.empty(n, np.int8)
    for j in range(n):
        label, instance, image, style = render_sample(seed, start + j, size, mix)
        if instance.max(initial=0) > np.iinfo(np.uint16).max:
            raise ValueError(f"sample {start + j} has more than 65535 instances")
        labels[j], instances[j], images[j], styles[j] = label, instance, image, style
        if bar is not None:
            bar.update(1)
    tmp = folder / f".tmp-{shard:05d}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name, array in (("label", labels), ("instance", instances), ("image", images), ("style", styles)):
        np.save(tmp / f"{name}.npy", array)
    (tmp / "count").write_text(str(n))
    final = _shard_path(folder, shard)
    if _shard_count(folder, shard) < n:
        shutil.rmtree(final, ignore_errors=True)  # a shorter shard from an earlier, shorter dataset
    try:
        os.replace(tmp, final)
    except OSError:  # another process (e.g. a DDP rank) finished this shard first
        if _shard_count(folder, shard) < n:
            raise
        shutil.rmtree(tmp)
    return n


def prepare_cache(
    cache_dir: str | os.PathLike[str],
    size: Size,
    length: int,
    seed: int,
    workers: int = 1,
    mix: Mix = NO_MIX,
) -> Path:
    """Render samples 0..length-1 of dataset `seed`, mixed as `mix` says, into shards under cache_dir, skipping
    finished shards.

    Returns the cache folder. `workers` > 1 renders shards in parallel processes.
    """
    folder = cache_folder(cache_dir, size, seed, mix)
    folder.mkdir(parents=True, exist_ok=True)
    todo = []
    for shard in range((length + SHARD_SIZE - 1) // SHARD_SIZE):
        stop = min(length, (shard + 1) * SHARD_SIZE)
        start = shard * SHARD_SIZE
        if _shard_count(folder, shard) < stop - start:
            todo.append((shard, start, stop))
    total = sum(stop - start for _, start, stop in todo)
    if not todo:
        return folder
    with tqdm(total=total, desc=f"rendering cache {folder.name}", unit="pair") as bar:
        if workers <= 1:
            for shard, start, stop in todo:
                _write_shard(folder, shard, start, stop, size, seed, mix, bar)
        else:
            with ProcessPoolExecutor(workers) as pool:
                futures = [pool.submit(_write_shard, folder, *job, size, seed, mix) for job in todo]
                for future in as_completed(futures):
                    bar.update(future.result())
    return folder


class ProceduralLandscapes(Dataset[Sample]):
    """The embedded dataset: sample i is `render_sample(seed, i, size, mix)`; with cache_dir it is read from
    disk shards."""

    def __init__(
        self,
        size: Size,  # output H×W (int for square)
        length: int,  # number of samples
        seed: int,  # dataset seed; sample i depends only on (seed, i)
        cache_dir: str | os.PathLike[str] | None = None,  # render everything up front into shards here
        workers: int = 1,  # processes used to fill the cache
        mix: Mix = NO_MIX,  # shares of painted layouts, free styles and large crops
    ) -> None:
        if length < 1:
            raise ValueError(f"length must be at least 1, got {length}")
        self.size, self.length, self.seed, self.mix = _hw(size), length, seed, mix
        self.folder = (
            prepare_cache(cache_dir, size, length, seed, workers, mix) if cache_dir is not None else None
        )
        self._shards: dict[int, dict[str, np.ndarray]] = {}  # memory-mapped per process, opened lazily

    def __len__(self) -> int:
        return self.length

    def _shard(self, shard: int) -> dict[str, np.ndarray]:
        if shard not in self._shards:
            assert self.folder is not None
            path = _shard_path(self.folder, shard)
            self._shards[shard] = {
                name: np.load(path / f"{name}.npy", mmap_mode="r") for name in ("label", "instance", "image")
            } | {"style": np.load(path / "style.npy")}
        return self._shards[shard]

    def __getitem__(self, index: int) -> Sample:
        return to_sample(*self._render_or_read(index))

    def arrays(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sample `index` as numpy (label uint8, instance, image H×W×3 uint8), without the tensor conversion
        (instance-crop datasets cut uint8 crops from it)."""
        label, instance, image, _ = self._render_or_read(index)
        return label, instance, image

    def _render_or_read(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        if not -self.length <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} samples")
        index %= self.length
        if self.folder is None:
            return render_sample(self.seed, index, self.size, self.mix)
        arrays = self._shard(index // SHARD_SIZE)
        j = index % SHARD_SIZE
        return (
            np.array(arrays["label"][j]),
            np.array(arrays["instance"][j]),
            np.array(arrays["image"][j]),
            int(arrays["style"][j]),
        )

    def __getstate__(self) -> dict[str, Any]:
        # Memory maps are reopened in each DataLoader worker instead of being pickled as arrays.
        return self.__dict__ | {"_shards": {}}


# ---------------------------------------------------------------------------------------------------------
# Paired real images and label maps
# ---------------------------------------------------------------------------------------------------------


class BadSampleError(ValueError):
    """A pair on disk that cannot become a sample: a file PIL cannot read, a map of another size than its image,
    a colour or id outside the label set, transparent pixels. The message names the file."""


T = TypeVar("T")


def _read_file(path: Path, read: Callable[[Path], T]) -> T:
    """read(path), with a decoding error or a reader's refusal turned into a BadSampleError naming the file."""
    try:
        return read(path)
    except (OSError, ValueError) as e:  # PIL: not an image, truncated; readers: unknown colour, bad mode
        raise BadSampleError(f"{path}: {e}") from None


def _header(path: Path) -> tuple[str, tuple[int, int]]:
    """(mode, (width, height)) from the file's header alone: PIL decodes no pixels until asked."""
    with Image.open(path) as im:
        return im.mode, im.size


def _read_rgb(path: Path) -> Image.Image:
    """A picture as RGB; transparent pixels are refused: the colour under them is arbitrary (often black)."""
    with Image.open(path) as im:
        if im.has_transparency_data and np.asarray(im.convert("RGBA"))[..., 3].min() < 255:
            raise ValueError("has transparent pixels; flatten the picture onto a background first")
        return im.convert("RGB")


def _size_mismatch(
    path: Path, size: tuple[int, int], image: Path, image_size: tuple[int, int]
) -> BadSampleError:
    """A map whose (width, height) differs from its picture's."""
    return BadSampleError(f"{path} is {size[0]}×{size[1]} but {image} is {image_size[0]}×{image_size[1]}")


@dataclass(frozen=True)
class Pair:
    """One image with its label map (and optionally an instance map) on disk."""

    image: Path
    label: Path
    instance: Path | None = None
    style: int = -1  # index into FAMILIES, -1 when unknown


def _resize_crop_indices(src: int, dst_scaled: int, offset: int, out: int) -> np.ndarray:
    """Source row/column of each output pixel after scaling src → dst_scaled and cropping [offset, offset+out)."""
    centers = (offset + np.arange(out) + 0.5) * (src / dst_scaled)
    return np.minimum(centers.astype(np.int64), src - 1)


class PairsDataset(Dataset[Sample]):
    """Image/label pairs resized to cover `size` (bicubic image, nearest labels) and cropped to it.

    The crop is central; with augment=True it is placed at random and the pair is flipped left-right half
    the time (torch's RNG, so DataLoader workers get their own streams).
    """

    def __init__(
        self,
        pairs: Sequence[Pair],  # the files, in a fixed order
        size: Size,  # output H×W (int for square)
        label_set: LabelSet,  # ids must lie in 0..len(label_set)-1 after read_label
        read_label: Callable[[Path], np.ndarray],  # label file → H×W integer ids
        read_instance: Callable[[Path], np.ndarray] | None = None,  # instance file → H×W ids, 0 = stuff
        augment: bool = False,  # random crop position and horizontal flips
        label_modes: Sequence[str] = ID_MODES,  # PIL modes read_label accepts (checked from headers)
    ) -> None:
        if not pairs:
            raise ValueError("no image/label pairs")
        self.pairs, self.size, self.label_set = list(pairs), _hw(size), label_set
        self.read_label, self.read_instance, self.augment = read_label, read_instance, augment
        self.label_modes = tuple(label_modes)

    def __len__(self) -> int:
        return len(self.pairs)

    def check(self, decoded: int = CHECK_DECODED) -> None:
        """Raise BadSampleError for the first pair found that training would fail on, cheaply enough for large
        folders: every file's header (mode and size; PIL reads no pixels), then `decoded` pairs spread over the
        dataset in full (colours, ids, transparency, truncated files)."""
        for pair in self.pairs:
            _, size = _read_file(pair.image, _header)
            mode, label_size = _read_file(pair.label, _header)
            if mode not in self.label_modes:
                raise BadSampleError(
                    f"{pair.label}: label map mode {mode!r}; want {', '.join(self.label_modes)}"
                )
            maps = [(pair.label, label_size)]
            if pair.instance is not None:
                maps.append((pair.instance, _read_file(pair.instance, _header)[1]))
            for path, map_size in maps:
                if map_size != size:
                    raise _size_mismatch(path, map_size, pair.image, size)
        with torch.random.fork_rng(devices=[]):  # augmentation must not move the caller's RNG
            for index in range(0, len(self), -(-len(self) // decoded)):
                self[index]

    def __getitem__(self, index: int) -> Sample:
        pair = self.pairs[index]
        image = _read_file(pair.image, _read_rgb)
        label = _read_file(pair.label, self.read_label)
        if label.ndim != 2:
            raise BadSampleError(
                f"{pair.label}: a label map holds one id per pixel, not {label.shape[2]} values"
            )
        if label.shape != (image.height, image.width):
            raise _size_mismatch(pair.label, (label.shape[1], label.shape[0]), pair.image, image.size)
        bad = (label < 0) | (label >= len(self.label_set))
        if bad.any():
            y, x = (int(v) for v in np.argwhere(bad)[0])
            raise BadSampleError(
                f"{pair.label}: id {int(label[y, x])} at (x={x}, y={y}) is not a {self.label_set.name} label "
                f"(0..{len(self.label_set) - 1})"
            )
        instance = None
        if pair.instance is not None and self.read_instance is not None:
            instance = _read_file(pair.instance, self.read_instance)
            if instance.shape != label.shape:
                raise _size_mismatch(
                    pair.instance, (instance.shape[1], instance.shape[0]), pair.image, image.size
                )

        h, w = self.size
        h0, w0 = label.shape
        scale = max(h / h0, w / w0)
        sh, sw = max(h, round(h0 * scale)), max(w, round(w0 * scale))
        if self.augment:
            top = int(torch.randint(sh - h + 1, ()).item())
            left = int(torch.randint(sw - w + 1, ()).item())
            flip = bool(torch.rand(()) < 0.5)
        else:
            top, left, flip = (sh - h) // 2, (sw - w) // 2, False
        if (sh, sw) != (h0, w0):
            image = image.resize((sw, sh), Image.Resampling.BICUBIC)
        pixels = np.asarray(image.crop((left, top, left + w, top + h)))
        rows = _resize_crop_indices(h0, sh, top, h)[:, None]
        cols = _resize_crop_indices(w0, sw, left, w)[None, :]
        label = label[rows, cols].astype(np.uint8)
        if instance is None:
            instance = instances_from_labels(label, self.label_set.thing_ids)
        else:
            instance = _compact_instances(instance[rows, cols])
        if flip:
            pixels, label, instance = pixels[:, ::-1], label[:, ::-1], instance[:, ::-1]
        return to_sample(
            np.ascontiguousarray(label), np.ascontiguousarray(instance), pixels.copy(), pair.style
        )


def _compact_instances(instance: np.ndarray) -> np.ndarray:
    """Renumber the non-zero instance ids present to 1..K (in increasing order of the original ids)."""
    values, inverse = np.unique(instance, return_inverse=True)
    offset = 0 if values[0] == 0 else 1
    return (inverse.reshape(instance.shape) + offset).astype(np.int32)


def _read_png(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im)


def read_label_image(path: Path, label_set: LabelSet) -> np.ndarray:
    """Label PNG → ids: single-channel (L, P, I;16, I) files hold ids; RGB files hold colours of label_set
    (RGBA only when opaque: a transparent pixel's colour means nothing)."""
    with Image.open(path) as im:
        if im.mode in ID_MODES:
            return np.asarray(im).astype(np.int64)
        if im.mode not in COLOUR_MODES:
            raise ValueError(f"unsupported label image mode {im.mode!r} (want L, P or RGB)")
        if im.mode == "RGBA" and np.asarray(im)[..., 3].min() < 255:
            raise ValueError("has transparent pixels; a label map must be opaque")
        rgb = np.asarray(im.convert("RGB"))
    try:
        return label_set.colors_to_ids(rgb).astype(np.int64)
    except UnknownColorError as error:
        hint = "smoothing (a resize that is not nearest-neighbour, JPEG) blends label colours"
        raise UnknownColorError(f"{error}; {hint}") from None


def _find_pairs(
    images: list[Path],
    label_of: Callable[[Path], Path],
    instance_of: Callable[[Path], Path] | None = None,
    style_of: Callable[[Path], int] | None = None,
    where: Path | None = None,
) -> list[Pair]:
    """Pair every image with its label (and instance) file; a missing partner file is an error, not a skip."""
    if not images:
        raise FileNotFoundError(f"no images found in {where}")
    pairs = []
    for image in images:
        label = label_of(image)
        if not label.is_file():
            raise FileNotFoundError(f"label map {label} for image {image} is missing")
        instance = instance_of(image) if instance_of is not None else None
        if instance is not None and not instance.is_file():
            raise FileNotFoundError(f"instance map {instance} for image {image} is missing")
        pairs.append(Pair(image, label, instance, style_of(image) if style_of is not None else -1))
    return pairs


def _images_in(folder: Path, pattern: str = "*") -> list[Path]:
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder {folder} does not exist")
    return sorted(p for p in folder.glob(pattern) if p.suffix.lower() in IMAGE_SUFFIXES)


def _split_dir(split: str, names: dict[str, str], dataset: str) -> str:
    try:
        return names[split]
    except KeyError:
        raise ValueError(f"{dataset} has no split {split!r}; choose from {', '.join(names)}") from None


def folder_dataset(
    root: str | os.PathLike[str], size: Size, label_set: LabelSet | None = None, augment: bool = False
) -> PairsDataset:
    """A pairs folder: images/*.jpg|png, labels/<stem>.png (ids or colours), optional instances/<stem>.png.

    An optional meta.json names the label set ({"label_set": "landscape"}) and per-stem style families
    ({"styles": {"00000": "dusk"}}); `label_set` overrides it, landscape is the default.
    """
    root = Path(root)
    meta = _read_meta(root / META_FILE)
    if label_set is None:
        try:
            label_set = get_label_set(str(meta.get("label_set", LANDSCAPE.name)))
        except KeyError as e:
            raise ValueError(f"{root / META_FILE}: {e.args[0]}") from None
    styles = meta.get("styles", {})
    if not isinstance(styles, dict):
        raise ValueError(f"{root / META_FILE}: styles must map image stems to family names")
    has_instances = (root / "instances").is_dir()
    pairs = _find_pairs(
        _images_in(root / "images"),
        lambda im: root / "labels" / f"{im.stem}.png",
        (lambda im: root / "instances" / f"{im.stem}.png") if has_instances else None,
        lambda im: FAMILIES.index(styles[im.stem]) if styles.get(im.stem) in FAMILIES else -1,
        where=root / "images",
    )
    return PairsDataset(
        pairs,
        size,
        label_set,
        lambda path: read_label_image(path, label_set),
        _read_png if has_instances else None,
        augment,
        ID_MODES + COLOUR_MODES,
    )


def _read_meta(path: Path) -> dict[str, Any]:
    """A pairs folder's meta.json ({} when absent); a malformed one is a ValueError naming the file."""
    if not path.is_file():
        return {}
    try:
        meta = json.loads(path.read_text())
    except ValueError as e:  # JSONDecodeError, or bytes that are not UTF-8
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(meta, dict):
        raise ValueError(f'{path}: expected a JSON object such as {{"label_set": "landscape"}}')
    return meta


DATA_SPECS = ("procedural", "folder:PATH", "ade20k:PATH", "cocostuff:PATH", "cityscapes:PATH")


def data_kind(spec: str) -> str:
    """The kind of a `--data` spec, normalised as make_dataset reads it ("Pro-cedural:" → "procedural")."""
    return spec.partition(":")[0].lower().replace("-", "").replace("_", "")


def make_dataset(
    spec: str,  # one of DATA_SPECS
    size: Size,  # output H×W (int for square)
    *,
    split: str = "train",  # train | val (Cityscapes also test); ignored by folder
    length: int = 4096,  # procedural only: number of samples
    seed: int = 0,  # procedural only: dataset seed (val adds VAL_SEED_OFFSET)
    cache_dir: str | os.PathLike[str] | None = None,  # procedural only: shard cache folder
    workers: int = 1,  # procedural only: processes that fill the cache
    mix: Mix = NO_MIX,  # procedural only: `--data_painted`, `--data_free_styles`, `--data_large`
    augment: bool = False,  # real data only: random crops and flips
    label_set: LabelSet | None = None,  # folder only: overrides meta.json
) -> tuple[Dataset[Sample], LabelSet]:
    """The trainer's `--data` flag: parse `spec` and return (dataset, its label set)."""
    kind, path = data_kind(spec), spec.partition(":")[2]
    if kind == "procedural":
        if path:
            raise ValueError(f"data spec {spec!r}: procedural takes no path (use cache_dir)")
        if split not in ("train", "val"):
            raise ValueError(f"procedural data has no split {split!r}; choose train or val")
        seed = seed + VAL_SEED_OFFSET if split == "val" else seed
        return ProceduralLandscapes(size, length, seed, cache_dir, workers, mix), LANDSCAPE
    for share, what in (
        (mix.painted, "painted layouts"),
        (mix.free, "free styles"),
        (mix.large, "large crops"),
    ):
        if share:
            raise ValueError(f"data spec {spec!r}: {what} mix into procedural data only")
    from models.data.public_datasets import ade20k_dataset, cityscapes_dataset, cocostuff_dataset

    loaders = {"ade20k": ade20k_dataset, "cocostuff": cocostuff_dataset, "cityscapes": cityscapes_dataset}
    if kind != "folder" and kind not in loaders or not path:
        raise ValueError(f"unknown data spec {spec!r}; expected one of: {', '.join(DATA_SPECS)}")
    if not Path(path).exists():
        raise FileNotFoundError(f"data spec {spec!r}: {path} does not exist")
    if kind == "folder":
        dataset = folder_dataset(path, size, label_set, augment)
    else:
        dataset = loaders[kind](path, size, split, augment)
    return dataset, dataset.label_set
