"""The evaluation sets stay disjoint from a model's training data."""

from types import SimpleNamespace

import pytest

from models.eval.data import EVAL_SEED, check_disjoint, eval_seeds, kind_seeds


def test_check_disjoint_refuses_a_model_trained_on_an_eval_seed() -> None:
    from models.data.datasets import VAL_SEED_OFFSET

    seeds = eval_seeds(0)

    def model(data_seed: int | None) -> SimpleNamespace:
        config = {} if data_seed is None else {"data_seed": data_seed}
        return SimpleNamespace(name="m", manifest=SimpleNamespace(training={"config": config}))

    check_disjoint(model(0), seeds)  # the trainer's default seed: disjoint from every eval set
    check_disjoint(model(None), seeds)  # no record of the training data: nothing to check
    for name in ("eval", "heldout"):
        with pytest.raises(ValueError, match=rf"data_seed {seeds[name]}.*'{name}'"):
            check_disjoint(model(seeds[name]), seeds)
    # Its val split (data_seed + VAL_SEED_OFFSET) counts as trained on too.
    with pytest.raises(ValueError, match="'eval'"):
        check_disjoint(model(seeds["eval"] - VAL_SEED_OFFSET), seeds)
    both = eval_seeds(0, ("procedural", "painted"))
    with pytest.raises(ValueError, match="'painted_heldout'"):
        check_disjoint(model(both["painted_heldout"]), both)


def test_painted_layouts_have_sets_of_their_own() -> None:
    base = EVAL_SEED + 16 * 2
    # The default (procedural) seeds are those every published number was measured on.
    assert eval_seeds(2) == {
        "eval": base,
        "heldout": base + 1,
        "centroids": base + 2,
        "style_refs": base + 3,
        "free_refs": base + 4,  # the out-of-family style references (procedural layouts only)
        "train": 0,
    }
    both = eval_seeds(2, ("procedural", "painted"))
    assert {k: v for k, v in both.items() if not k.startswith("painted_")} == eval_seeds(2)
    assert len(set(both.values())) == len(both)  # every set its own seed
    assert max(both.values()) < eval_seeds(3)["eval"]  # within the 16 seeds of one --seed
    painted = kind_seeds(both, "painted")
    assert painted == {
        "eval": both["painted_eval"],
        "heldout": both["painted_heldout"],
        "centroids": both["painted_centroids"],
        "style_refs": both["style_refs"],  # the references stay procedural renders
    }
    assert kind_seeds(eval_seeds(2, ("painted",)), "painted") == painted
    assert "free_refs" not in eval_seeds(2, ("painted",))
