"""``python -m lstmlib.grading.analysis <assignment>``: the similarity and
delegation report (the same as ``python -m lstmlib.grading similarity``)."""
import sys

from .report import main

sys.exit(main())
