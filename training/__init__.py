"""Run directories, configuration, atomic files, distribution strategies and fitting.

One mechanism serves every task: a task builds its data, model and loss, then calls
:func:`training.fit.fit_model` with a :class:`training.rundir.RunDir`.
"""
