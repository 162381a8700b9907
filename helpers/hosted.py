"""Deprecated: moved to :mod:`helpers.tools.hosted`; this shim goes after the next release.

``python -m helpers.hosted`` still runs it (the lessons' badge line names that command
until the notebooks are regenerated); ``import helpers.hosted`` is the new module itself.
"""

import sys
import warnings

from helpers.tools import hosted

if __name__ == "__main__":
    sys.exit(hosted.main())
warnings.warn("helpers.hosted moved to helpers.tools.hosted; run python -m helpers.tools.hosted",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = hosted
