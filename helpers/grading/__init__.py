"""The instructor's grading around nbgrader (not lesson code; no notebook imports it).

* :mod:`~helpers.grading.commands`  ``python -m helpers release|collect|autograde|feedback|export``
* :mod:`~helpers.grading.execute`   nbgrader's execute step: each submission in the runner, in the sandbox
* :mod:`~helpers.grading.sandbox`   bubblewrap around the runner, its launcher and limits
* :mod:`~helpers.grading.runner`    runs a notebook cell by cell inside the sandbox
* :mod:`~helpers.grading.guard`     the runner's snapshot and reference-call guard
* :mod:`~helpers.grading.audit`     the static integrity audit and metadata repair
* :mod:`~helpers.grading.feedback`  safe feedback pages and zip collection

Importing this package does nothing (the grading runner imports it inside the sandbox).
"""
