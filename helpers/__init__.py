"""Reference implementations, data and checks for the U-Net segmentation course.

Import the modules you need by name, e.g. ``from helpers import data, models``.
Importing this package does no work: no data generation, no TensorFlow set-up.
"""

__version__ = "0.1.0"
