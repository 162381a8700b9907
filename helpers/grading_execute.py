"""Deprecated: moved to :mod:`helpers.grading.execute`; this shim goes after the next release.

It keeps copies of ``nbgrader_config.py`` that import ``helpers.grading_execute`` working: the
name is the new module itself (same objects, same protections). Update such a copy to
``from helpers.grading.execute import ...``.
"""

import sys
import warnings

from helpers.grading import execute

warnings.warn("helpers.grading_execute moved to helpers.grading.execute; update the import (nbgrader_config.py)",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = execute
