"""Deprecated: moved to :mod:`helpers.grading.feedback`; this shim goes after the next release.

It keeps copies of ``nbgrader_config.py`` that import ``helpers.grading_feedback`` working: the
name is the new module itself (same objects, same protections). Update such a copy to
``from helpers.grading.feedback import ...``.
"""

import sys
import warnings

from helpers.grading import feedback

warnings.warn("helpers.grading_feedback moved to helpers.grading.feedback; update the import (nbgrader_config.py)",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = feedback
