"""Course tooling (not lesson code; no notebook imports it).

* :mod:`~helpers.tools.cli`        ``python -m helpers <command>`` (``helpers/__main__.py`` calls it)
* :mod:`~helpers.tools.bootstrap`  find or build the course environment; standard library only
* :mod:`~helpers.tools.kernels`    the course kernel's settings and kernelspec
* :mod:`~helpers.tools.runner`     ``python -m helpers course``: execute the answer notebooks, the summary table
* :mod:`~helpers.tools.lab`        ``python -m helpers lab``: JupyterLab on notebooks/
* :mod:`~helpers.tools.hosted`     the Colab/Binder badges and the hosted set-up cell of every lesson
* :mod:`~helpers.tools.dictation`  which exercises' answers the learner can read before the check (instructor notes)

Importing this package does nothing, and must stay standard-library only: the command
line imports it on a bare Python, before the course environment exists.
"""
