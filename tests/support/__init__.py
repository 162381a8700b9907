"""Shared code of the test suite, imported by test modules and by ``conftest.py``
(``from support import ...``; pytest puts ``tests/`` on ``sys.path``).

* :mod:`support.course`: where things are (repository, fixtures, lessons) and the test
  course root's nbgrader settings;
* :mod:`support.notebooks`: nbgrader cell predicates and the dead-end scan of a notebook;
* :mod:`support.processes`: the processes a test left running.
"""
