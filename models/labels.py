"""Label sets: id, name, display colour and thing/stuff flag for every class a model can paint.

Standard library only, so the CLI, the exporter and tooling can read label sets without importing torch.
A label map is an H×W array of uint8 ids; colours exist only for display and for colour-coded label files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

RGB = tuple[int, int, int]


@dataclass(frozen=True)
class Label:
    id: int  # value stored in a label map
    name: str  # human name, shown in the palette
    color: RGB  # display colour (and the colour in colour-coded label images)
    is_thing: bool = False  # countable object with instances (CollageGAN composes these)


class UnknownColorError(ValueError):
    """A colour-coded label image holds a colour that no label of the set uses."""


@dataclass(frozen=True)
class LabelSet:
    name: str
    labels: tuple[Label, ...]
    background: int = 0  # the id the eraser paints
    _by_color: dict[RGB, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        ids = [label.id for label in self.labels]
        if ids != list(range(len(ids))):
            raise ValueError(f"label set {self.name!r}: ids must be 0..N-1 in order")
        object.__setattr__(self, "_by_color", {label.color: label.id for label in self.labels})

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, key: int | str) -> Label:
        if isinstance(key, int):
            return self.labels[key]
        for label in self.labels:
            if label.name == key:
                return label
        raise KeyError(f"label set {self.name!r} has no label named {key!r}")

    @property
    def thing_ids(self) -> list[int]:
        return [label.id for label in self.labels if label.is_thing]

    def palette(self) -> list[RGB]:
        """Colours indexed by id, e.g. for PIL's putpalette or a numpy lookup table."""
        return [label.color for label in self.labels]

    def to_json(self) -> list[dict[str, Any]]:
        """The manifest's `labels` list."""
        return [
            {"id": lb.id, "name": lb.name, "color": list(lb.color), "is_thing": lb.is_thing} for lb in self.labels
        ]

    def id_of_color(self, color: RGB) -> int:
        try:
            return self._by_color[color]
        except KeyError:
            raise UnknownColorError(f"colour {color} is not a {self.name} label") from None

    def colors_to_ids(self, rgb: Any) -> Any:
        """Convert an H×W×3 uint8 colour-coded label image (numpy array) to an H×W uint8 id map.

        Raises UnknownColorError naming the first unknown colour (in row-major order) and its (x, y) position.
        numpy is imported here, not at module level, so that importing the label sets stays stdlib-only.
        """
        import numpy as np

        rgb = np.asarray(rgb)
        if rgb.ndim != 3 or rgb.shape[2] < 3:
            raise ValueError(f"expected an H×W×3 colour image, got shape {rgb.shape}")
        packed = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
        keys = np.array([(c[0] << 16) | (c[1] << 8) | c[2] for c in self._by_color], dtype=np.int64)
        values = np.array(list(self._by_color.values()), dtype=np.uint8)
        order = np.argsort(keys)
        keys, values = keys[order], values[order]
        pos = np.clip(np.searchsorted(keys, packed), 0, len(keys) - 1)
        known = keys[pos] == packed
        if not known.all():
            y, x = (int(v) for v in np.argwhere(~known)[0])
            color = tuple(int(c) for c in rgb[y, x, :3])
            raise UnknownColorError(f"unknown label colour {color} at (x={x}, y={y}) for label set {self.name!r}")
        return values[pos]

    def ids_to_colors(self, ids: Any) -> Any:
        """H×W id map → H×W×3 uint8 display colours (numpy)."""
        import numpy as np

        lut = np.array(self.palette(), dtype=np.uint8)
        return lut[np.asarray(ids)]


# The embedded label set for procedural landscapes. Sky is the background: the eraser paints sky.
LANDSCAPE = LabelSet(
    "landscape",
    (
        Label(0, "sky", (120, 178, 230)),
        Label(1, "cloud", (236, 238, 245)),
        Label(2, "mountain", (130, 110, 120)),
        Label(3, "snow", (255, 255, 255)),
        Label(4, "rock", (120, 120, 110), is_thing=True),
        Label(5, "hill", (160, 170, 80)),
        Label(6, "grass", (110, 200, 60)),
        Label(7, "flowers", (230, 120, 200)),
        Label(8, "tree", (30, 110, 40), is_thing=True),
        Label(9, "bush", (70, 150, 90)),
        Label(10, "sand", (230, 210, 140)),
        Label(11, "dirt", (150, 100, 60)),
        Label(12, "water", (40, 90, 200)),
        Label(13, "house", (200, 60, 50), is_thing=True),
    ),
    background=0,
)
