"""Run directories, configuration, atomic files, distribution strategies and fitting.

One mechanism serves every task: a task builds its data, model and loss, then calls
:func:`training.fit.fit_model` with a :class:`training.rundir.RunDir`. Under
``--strategy`` the model is built inside ``make_strategy(name).scope()`` and the same call
trains it (``model.fit``, or :mod:`training.loop` for multi-worker).
"""
