"""The evaluation sets stay disjoint from a model's training data."""

from types import SimpleNamespace

import pytest

from models.eval.data import check_disjoint, eval_seeds


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
