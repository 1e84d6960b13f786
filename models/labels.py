"""Label sets: id, name, display colour and thing/stuff flag for every class a model can paint.

Standard library only, so the CLI, the exporter and tooling can read label sets without importing torch.
A label map is an H×W array of uint8 ids; colours exist only for display and for colour-coded label files.
"""

from __future__ import annotations

from collections.abc import Iterable
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
        # Some real label sets share colours between ids (Cityscapes' void classes); the first id wins.
        by_color = {label.color: label.id for label in reversed(self.labels)}
        object.__setattr__(self, "_by_color", by_color)

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
            {"id": lb.id, "name": lb.name, "color": list(lb.color), "is_thing": lb.is_thing}
            for lb in self.labels
        ]

    def id_of_color(self, color: RGB) -> int:
        try:
            return self._by_color[color]
        except KeyError:
            raise UnknownColorError(f"colour {color} is not a {self.name} label") from None

    def colors_to_ids(self, rgb: Any) -> Any:
        """Convert an H×W×3 uint8 colour-coded label image (numpy array) to an H×W uint8 id map.

        Raises UnknownColorError naming the first unknown colour (in row-major order) and its (x, y) position.
        The lookup is `common.colors`, the server's too; it is imported here, not at module level, because it
        needs numpy and importing the label sets stays stdlib-only.
        """
        from common import colors

        try:
            return colors.ids_from_colors(rgb, self.palette())
        except colors.UnknownColorError as e:
            raise UnknownColorError(
                f"unknown label colour {e.color} at (x={e.x}, y={e.y}) for label set {self.name!r}"
            ) from None

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


def _label_set(name: str, rows: Iterable[tuple[str, RGB, bool]], background: int = 0) -> LabelSet:
    return LabelSet(name, tuple(Label(i, n, c, t) for i, (n, c, t) in enumerate(rows)), background=background)


def _bit_palette(n: int) -> list[RGB]:
    """The PASCAL-VOC bit-interleaved palette of ids 1..n (pix2pixHD/SPADE draw COCO-Stuff maps with it).

    Bits 0, 1, 2 of the id go to the top bit of r, g, b, the next three to the next bit, and so on; the palette is
    therefore injective (every colour distinct) and never black, which stays free for "unlabeled".
    """
    colors = []
    for i in range(1, n + 1):
        r = g = b = 0
        for bit in range(7, 0, -1):
            r |= (i & 1) << bit
            g |= ((i >> 1) & 1) << bit
            b |= ((i >> 2) & 1) << bit
            i >>= 3
        colors.append((r, g, b))
    return colors


# ADE20K SceneParsing (ADEChallengeData2016): the 150 classes with the SceneParsing colour palette and the
# thing/stuff split of the ADE20K panoptic benchmark (100 things). Annotation PNGs store 0 for "other" and
# 1..150 for the classes; we keep exactly those values (the SPADE convention, hence its 151 input channels), so
# ADE20K id k is the class that the 0-based SceneParsing list puts at k-1 and id 0 is "unlabeled".
_ADE20K_CLASSES: tuple[tuple[str, RGB, bool], ...] = (
    ("wall", (120, 120, 120), False),
    ("building", (180, 120, 120), False),
    ("sky", (6, 230, 230), False),
    ("floor", (80, 50, 50), False),
    ("tree", (4, 200, 3), False),
    ("ceiling", (120, 120, 80), False),
    ("road", (140, 140, 140), False),
    ("bed", (204, 5, 255), True),
    ("windowpane", (230, 230, 230), True),
    ("grass", (4, 250, 7), False),
    ("cabinet", (224, 5, 255), True),
    ("sidewalk", (235, 255, 7), False),
    ("person", (150, 5, 61), True),
    ("earth", (120, 120, 70), False),
    ("door", (8, 255, 51), True),
    ("table", (255, 6, 82), True),
    ("mountain", (143, 255, 140), False),
    ("plant", (204, 255, 4), False),
    ("curtain", (255, 51, 7), True),
    ("chair", (204, 70, 3), True),
    ("car", (0, 102, 200), True),
    ("water", (61, 230, 250), False),
    ("painting", (255, 6, 51), True),
    ("sofa", (11, 102, 255), True),
    ("shelf", (255, 7, 71), True),
    ("house", (255, 9, 224), False),
    ("sea", (9, 7, 230), False),
    ("mirror", (220, 220, 220), True),
    ("rug", (255, 9, 92), False),
    ("field", (112, 9, 255), False),
    ("armchair", (8, 255, 214), True),
    ("seat", (7, 255, 224), True),
    ("fence", (255, 184, 6), True),
    ("desk", (10, 255, 71), True),
    ("rock", (255, 41, 10), False),
    ("wardrobe", (7, 255, 255), True),
    ("lamp", (224, 255, 8), True),
    ("bathtub", (102, 8, 255), True),
    ("railing", (255, 61, 6), True),
    ("cushion", (255, 194, 7), True),
    ("base", (255, 122, 8), False),
    ("box", (0, 255, 20), True),
    ("column", (255, 8, 41), True),
    ("signboard", (255, 5, 153), True),
    ("chest of drawers", (6, 51, 255), True),
    ("counter", (235, 12, 255), True),
    ("sand", (160, 150, 20), False),
    ("sink", (0, 163, 255), True),
    ("skyscraper", (140, 140, 140), False),
    ("fireplace", (250, 10, 15), True),
    ("refrigerator", (20, 255, 0), True),
    ("grandstand", (31, 255, 0), False),
    ("path", (255, 31, 0), False),
    ("stairs", (255, 224, 0), True),
    ("runway", (153, 255, 0), False),
    ("case", (0, 0, 255), True),
    ("pool table", (255, 71, 0), True),
    ("pillow", (0, 235, 255), True),
    ("screen door", (0, 173, 255), True),
    ("stairway", (31, 0, 255), False),
    ("river", (11, 200, 200), False),
    ("bridge", (255, 82, 0), False),
    ("bookcase", (0, 255, 245), True),
    ("blind", (0, 61, 255), False),
    ("coffee table", (0, 255, 112), True),
    ("toilet", (0, 255, 133), True),
    ("flower", (255, 0, 0), True),
    ("book", (255, 163, 0), True),
    ("hill", (255, 102, 0), False),
    ("bench", (194, 255, 0), True),
    ("countertop", (0, 143, 255), True),
    ("stove", (51, 255, 0), True),
    ("palm", (0, 82, 255), True),
    ("kitchen island", (0, 255, 41), True),
    ("computer", (0, 255, 173), True),
    ("swivel chair", (10, 0, 255), True),
    ("boat", (173, 255, 0), True),
    ("bar", (0, 255, 153), False),
    ("arcade machine", (255, 92, 0), True),
    ("hovel", (255, 0, 255), False),
    ("bus", (255, 0, 245), True),
    ("towel", (255, 0, 102), True),
    ("light", (255, 173, 0), True),
    ("truck", (255, 0, 20), True),
    ("tower", (255, 184, 184), False),
    ("chandelier", (0, 31, 255), True),
    ("awning", (0, 255, 61), True),
    ("streetlight", (0, 71, 255), True),
    ("booth", (255, 0, 204), True),
    ("television receiver", (0, 255, 194), True),
    ("airplane", (0, 255, 82), True),
    ("dirt track", (0, 10, 255), False),
    ("apparel", (0, 112, 255), True),
    ("pole", (51, 0, 255), True),
    ("land", (0, 194, 255), False),
    ("bannister", (0, 122, 255), True),
    ("escalator", (0, 255, 163), False),
    ("ottoman", (255, 153, 0), True),
    ("bottle", (0, 255, 10), True),
    ("buffet", (255, 112, 0), False),
    ("poster", (143, 255, 0), False),
    ("stage", (82, 0, 255), False),
    ("van", (163, 255, 0), True),
    ("ship", (255, 235, 0), True),
    ("fountain", (8, 184, 170), True),
    ("conveyer belt", (133, 0, 255), False),
    ("canopy", (0, 255, 92), False),
    ("washer", (184, 0, 255), True),
    ("plaything", (255, 0, 31), True),
    ("swimming pool", (0, 184, 255), False),
    ("stool", (0, 214, 255), True),
    ("barrel", (255, 0, 112), True),
    ("basket", (92, 255, 0), True),
    ("waterfall", (0, 224, 255), False),
    ("tent", (112, 224, 255), False),
    ("bag", (70, 184, 160), True),
    ("minibike", (163, 0, 255), True),
    ("cradle", (153, 0, 255), False),
    ("oven", (71, 255, 0), True),
    ("ball", (255, 0, 163), True),
    ("food", (255, 204, 0), True),
    ("step", (255, 0, 143), True),
    ("tank", (0, 255, 235), False),
    ("trade name", (133, 255, 0), True),
    ("microwave", (255, 0, 235), True),
    ("pot", (245, 0, 255), True),
    ("animal", (255, 0, 122), True),
    ("bicycle", (255, 245, 0), True),
    ("lake", (10, 190, 212), False),
    ("dishwasher", (214, 255, 0), True),
    ("screen", (0, 204, 255), True),
    ("blanket", (20, 0, 255), False),
    ("sculpture", (255, 255, 0), True),
    ("hood", (0, 153, 255), True),
    ("sconce", (0, 41, 255), True),
    ("vase", (0, 255, 204), True),
    ("traffic light", (41, 0, 255), True),
    ("tray", (41, 255, 0), True),
    ("ashcan", (173, 0, 255), True),
    ("fan", (0, 245, 255), True),
    ("pier", (71, 0, 255), False),
    ("crt screen", (122, 0, 255), False),
    ("plate", (0, 255, 184), True),
    ("monitor", (0, 92, 255), True),
    ("bulletin board", (184, 255, 0), True),
    ("shower", (0, 133, 255), False),
    ("radiator", (255, 214, 0), True),
    ("glass", (25, 194, 194), True),
    ("clock", (102, 255, 0), True),
    ("flag", (92, 0, 255), True),
)

ADE20K = _label_set("ade20k", (("unlabeled", (0, 0, 0), False), *_ADE20K_CLASSES))

# COCO-Stuff 164k: stuffthingmaps PNGs store COCO category id - 1, i.e. 0..90 things (including the 11 ids COCO
# defines but never annotates: street sign, hat, shoe, eye glasses, plate, mirror, window, desk, door, blender,
# hair brush) and 91..181 stuff, with 255 for unlabeled pixels. Ids 0..181 keep their file values; 255 becomes
# id 182 "unlabeled" (the SPADE convention: 183 input channels). No palette ships with the dataset, so colours
# are the bit-interleaved palette that pix2pixHD/SPADE visualise COCO-Stuff with; unlabeled is black.
COCO_STUFF_UNLABELED_VALUE = 255  # value of unlabeled pixels in the stuffthingmaps PNGs
_COCO_STUFF_NAMES: tuple[str, ...] = tuple(
    name.strip()
    for name in """
person, bicycle, car, motorcycle, airplane, bus, train, truck, boat, traffic light, fire hydrant,
street sign, stop sign, parking meter, bench, bird, cat, dog, horse, sheep, cow, elephant, bear,
zebra, giraffe, hat, backpack, umbrella, shoe, eye glasses, handbag, tie, suitcase, frisbee, skis,
snowboard, sports ball, kite, baseball bat, baseball glove, skateboard, surfboard, tennis racket,
bottle, plate, wine glass, cup, fork, knife, spoon, bowl, banana, apple, sandwich, orange, broccoli,
carrot, hot dog, pizza, donut, cake, chair, couch, potted plant, bed, mirror, dining table, window,
desk, toilet, door, tv, laptop, mouse, remote, keyboard, cell phone, microwave, oven, toaster, sink,
refrigerator, blender, book, clock, vase, scissors, teddy bear, hair drier, toothbrush, hair brush,
banner, blanket, branch, bridge, building-other, bush, cabinet, cage, cardboard, carpet,
ceiling-other, ceiling-tile, cloth, clothes, clouds, counter, cupboard, curtain, desk-stuff, dirt,
door-stuff, fence, floor-marble, floor-other, floor-stone, floor-tile, floor-wood, flower, fog,
food-other, fruit, furniture-other, grass, gravel, ground-other, hill, house, leaves, light, mat,
metal, mirror-stuff, moss, mountain, mud, napkin, net, paper, pavement, pillow, plant-other, plastic,
platform, playingfield, railing, railroad, river, road, rock, roof, rug, salad, sand, sea, shelf,
sky-other, skyscraper, snow, solid-other, stairs, stone, straw, structural-other, table, tent,
textile-other, towel, tree, vegetable, wall-brick, wall-concrete, wall-other, wall-panel, wall-stone,
wall-tile, wall-wood, water-other, waterdrops, window-blind, window-other, wood
""".split(",")
)

COCO_STUFF = _label_set(
    "cocostuff",
    (
        *((n, c, i <= 90) for i, (n, c) in enumerate(zip(_COCO_STUFF_NAMES, _bit_palette(182), strict=True))),
        ("unlabeled", (0, 0, 0), False),
    ),
    background=182,
)

# Cityscapes: the 34 label ids 0..33 of gtFine *_labelIds.png with the official colours; the instance classes
# (person … bicycle) are things. "license plate" has the official id -1 and never appears in the label PNGs (it is
# drawn as the car beneath it), so it takes id 34 here to keep ids 0..N-1 (35 classes, as in SPADE). Colours are
# not unique (five void classes are black, polegroup shares pole's, license plate shares car's); colour → id
# therefore gives the first id with that colour.
_CITYSCAPES_CLASSES: tuple[tuple[str, RGB, bool], ...] = (
    ("unlabeled", (0, 0, 0), False),
    ("ego vehicle", (0, 0, 0), False),
    ("rectification border", (0, 0, 0), False),
    ("out of roi", (0, 0, 0), False),
    ("static", (0, 0, 0), False),
    ("dynamic", (111, 74, 0), False),
    ("ground", (81, 0, 81), False),
    ("road", (128, 64, 128), False),
    ("sidewalk", (244, 35, 232), False),
    ("parking", (250, 170, 160), False),
    ("rail track", (230, 150, 140), False),
    ("building", (70, 70, 70), False),
    ("wall", (102, 102, 156), False),
    ("fence", (190, 153, 153), False),
    ("guard rail", (180, 165, 180), False),
    ("bridge", (150, 100, 100), False),
    ("tunnel", (150, 120, 90), False),
    ("pole", (153, 153, 153), False),
    ("polegroup", (153, 153, 153), False),
    ("traffic light", (250, 170, 30), False),
    ("traffic sign", (220, 220, 0), False),
    ("vegetation", (107, 142, 35), False),
    ("terrain", (152, 251, 152), False),
    ("sky", (70, 130, 180), False),
    ("person", (220, 20, 60), True),
    ("rider", (255, 0, 0), True),
    ("car", (0, 0, 142), True),
    ("truck", (0, 0, 70), True),
    ("bus", (0, 60, 100), True),
    ("caravan", (0, 0, 90), True),
    ("trailer", (0, 0, 110), True),
    ("train", (0, 80, 100), True),
    ("motorcycle", (0, 0, 230), True),
    ("bicycle", (119, 11, 32), True),
    ("license plate", (0, 0, 142), False),
)
CITYSCAPES = _label_set("cityscapes", _CITYSCAPES_CLASSES)
CITYSCAPES_IGNORE = 255  # train id of every class that the 19-class benchmark ignores
# label id → train id (0..18 for the 19 evaluated classes, CITYSCAPES_IGNORE for the rest); covers all 35 ids.
_CITYSCAPES_TRAIN_CLASSES = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign", "vegetation",
    "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle",
)  # fmt: skip
CITYSCAPES_TRAIN_IDS: dict[int, int] = {label.id: CITYSCAPES_IGNORE for label in CITYSCAPES.labels} | {
    CITYSCAPES[name].id: train_id for train_id, name in enumerate(_CITYSCAPES_TRAIN_CLASSES)
}

LABEL_SETS: dict[str, LabelSet] = {ls.name: ls for ls in (LANDSCAPE, ADE20K, COCO_STUFF, CITYSCAPES)}


def get_label_set(name: str) -> LabelSet:
    """Look a label set up by name; case, '-' and '_' are ignored ("COCO-Stuff" → cocostuff)."""
    key = name.lower().replace("-", "").replace("_", "")
    try:
        return LABEL_SETS[key]
    except KeyError:
        raise KeyError(f"unknown label set {name!r}; known: {', '.join(LABEL_SETS)}") from None
