"""The bottom layer: helpers every package may import, importing nothing from this project.

    core/io.py        atomic file writes (folders, JSON, CSV, arrays, figures)
    core/options.py   ``option``: a dataclass field with its command-line help
    core/errors.py    ``UserError``: the base of every error a user can fix

``data`` sits on these instead of on ``training``, so the data layer never imports the
training layer (checked by tests/test_layers.py).
"""
