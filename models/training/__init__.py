"""The trainer behind `collage train`; `models/train.py` is only its command line (as EDM's train.py is).

- `loop.py`: `training_loop`, the step, EMA, logging, sample grids and periodic checkpoints;
- `config.py`: trainer defaults, arch presets, `--key=value` overrides and their checks;
- `data.py`: the run's dataset and the order each process reads it in (what makes `--resume` exact);
- `setup.py`: processes and devices, RNG state, building the networks and `--init_from` weights;
- `runs.py`: the numbered run folders.

What a checkpoint holds, and reading it back, is `models/checkpoints.py` (shared with slim and export).
"""
