import json
import subprocess
import sys

import numpy as np
import pytest

from models.labels import (
    ADE20K,
    CITYSCAPES,
    CITYSCAPES_IGNORE,
    CITYSCAPES_TRAIN_IDS,
    COCO_STUFF,
    LABEL_SETS,
    LANDSCAPE,
    Label,
    LabelSet,
    UnknownColorError,
    get_label_set,
)


def test_real_label_set_sizes_and_unlabeled_conventions() -> None:
    # ADE20K: 150 classes at their annotation values 1..150, 0 = unlabeled ("other").
    assert len(ADE20K) == 151
    assert [lb.name for lb in ADE20K.labels if lb.name != "unlabeled"] == [
        lb.name for lb in ADE20K.labels[1:]
    ]
    assert ADE20K[0].name == "unlabeled" and ADE20K[1].name == "wall" and ADE20K[150].name == "flag"
    assert ADE20K["sky"].color == (6, 230, 230) and ADE20K["sky"].id == 3
    assert len(ADE20K.thing_ids) == 100
    # COCO-Stuff: 182 file ids 0..181 (incl. 11 never-annotated things), 255 in files becomes id 182.
    assert len(COCO_STUFF) == 183
    assert COCO_STUFF[11].name == "street sign" and COCO_STUFF[90].name == "hair brush"
    assert COCO_STUFF[91].name == "banner" and COCO_STUFF[181].name == "wood"
    assert COCO_STUFF[182].name == "unlabeled" and COCO_STUFF.background == 182
    assert COCO_STUFF.thing_ids == list(range(91))
    # Cityscapes: ids 0..33 as in gtFine labelIds, license plate (official id -1) at 34.
    assert len(CITYSCAPES) == 35
    assert CITYSCAPES["road"].id == 7 and CITYSCAPES["road"].color == (128, 64, 128)
    assert CITYSCAPES[34].name == "license plate"
    assert [CITYSCAPES[i].name for i in CITYSCAPES.thing_ids] == [
        "person", "rider", "car", "truck", "bus", "caravan", "trailer", "train", "motorcycle", "bicycle",
    ]  # fmt: skip


def test_names_are_unique_within_each_set() -> None:
    for label_set in LABEL_SETS.values():
        names = [lb.name for lb in label_set.labels]
        assert len(set(names)) == len(names), label_set.name


def test_cityscapes_train_ids() -> None:
    assert set(CITYSCAPES_TRAIN_IDS) == set(range(35))
    used = {k: v for k, v in CITYSCAPES_TRAIN_IDS.items() if v != CITYSCAPES_IGNORE}
    assert sorted(used.values()) == list(range(19))
    assert CITYSCAPES[min(used, key=used.__getitem__)].name == "road"
    assert CITYSCAPES_TRAIN_IDS[CITYSCAPES["bicycle"].id] == 18
    assert CITYSCAPES_TRAIN_IDS[CITYSCAPES["license plate"].id] == CITYSCAPES_IGNORE


@pytest.mark.parametrize("name", sorted(LABEL_SETS))
def test_color_round_trip(name: str) -> None:
    label_set = LABEL_SETS[name]
    ids = np.arange(len(label_set), dtype=np.uint8).reshape(1, -1).repeat(3, axis=0)  # every id, 3 rows
    back = label_set.colors_to_ids(label_set.ids_to_colors(ids))
    # Ids that share a colour with an earlier id come back as that first id; all others exactly.
    first_of_color: dict[tuple[int, int, int], int] = {}
    for lb in label_set.labels:
        first_of_color.setdefault(lb.color, lb.id)
    expected = np.array([first_of_color[lb.color] for lb in label_set.labels], dtype=np.uint8)
    np.testing.assert_array_equal(back, np.broadcast_to(expected, ids.shape))
    assert back.dtype == np.uint8


def test_duplicate_colours_map_to_first_id() -> None:
    assert CITYSCAPES.id_of_color((0, 0, 0)) == 0
    assert CITYSCAPES.id_of_color((153, 153, 153)) == CITYSCAPES["pole"].id
    assert CITYSCAPES.id_of_color((0, 0, 142)) == CITYSCAPES["car"].id
    assert ADE20K.id_of_color((140, 140, 140)) == ADE20K["road"].id
    assert len(set(COCO_STUFF.palette())) == len(COCO_STUFF)  # the bit palette never repeats
    assert len(set(ADE20K.palette())) == len(ADE20K) - 1  # road and skyscraper share grey


def test_unknown_colour_error_names_colour_and_position() -> None:
    rgb = ADE20K.ids_to_colors(np.full((4, 5), 3, dtype=np.uint8))
    rgb[2, 3] = (1, 2, 3)
    rgb[3, 0] = (9, 9, 9)  # later in row-major order: not the one reported
    with pytest.raises(UnknownColorError, match=r"\(1, 2, 3\) at \(x=3, y=2\).*ade20k"):
        ADE20K.colors_to_ids(rgb)
    with pytest.raises(ValueError, match="H×W×3"):
        ADE20K.colors_to_ids(np.zeros((4, 5), dtype=np.uint8))


def test_get_label_set() -> None:
    assert get_label_set("COCO-Stuff") is COCO_STUFF
    assert get_label_set("coco_stuff") is COCO_STUFF
    assert get_label_set("Cityscapes") is CITYSCAPES
    assert get_label_set("landscape") is LANDSCAPE
    with pytest.raises(KeyError, match="unknown label set 'pascal'.*ade20k"):
        get_label_set("pascal")


def test_to_json_is_manifest_ready() -> None:
    entries = json.loads(json.dumps(COCO_STUFF.to_json()))
    assert entries[0] == {"id": 0, "name": "person", "color": [128, 0, 0], "is_thing": True}
    assert entries[-1] == {"id": 182, "name": "unlabeled", "color": [0, 0, 0], "is_thing": False}


def test_label_set_rejects_gaps_in_ids() -> None:
    with pytest.raises(ValueError, match="0..N-1"):
        LabelSet("bad", (Label(0, "a", (0, 0, 0)), Label(2, "b", (1, 1, 1))))


def test_import_is_stdlib_only() -> None:
    code = (
        "import sys, models.labels as L; L.get_label_set('ade20k'); "
        "print(sorted(m for m in ('torch', 'numpy', 'PIL') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
