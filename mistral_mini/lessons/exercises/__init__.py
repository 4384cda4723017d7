"""Checks for the notebook exercises: ``exercises.check_rope(my_rope)`` passes, or fails and says why.

Each ``check_*`` runs the learner's function on a few cases and compares the results with the package's.
All match: it prints ``PASS``. Otherwise it prints what differed on the first failing case and names the
classic mistake it recognises (or gives a hint that does not give the answer away), then raises
``ExerciseFailed``, so the cell fails; ``ExerciseNotDone`` while the function still raises
``NotImplementedError``. ``checking`` holds how a check runs and reports, ``compare`` the comparisons,
``models`` the configurations the checks count on.

One module per notebook holds that notebook's checks (``nb07_prefill`` has those of notebook 07); everything
a notebook calls is re-exported here. Handing out and grading the notebooks is ``lessons.classroom``.
"""

# The verdicts a check raises, and the comparisons, for learners who want to compare their own results.
from .checking import ExerciseFailed as ExerciseFailed
from .checking import ExerciseNotDone as ExerciseNotDone
from .compare import number_difference as number_difference
from .compare import tensor_difference as tensor_difference
from .compare import value_difference as value_difference
from .nb00_welcome import *  # noqa: F403 (each module's __all__ lists its checks)
from .nb01_tokens import *  # noqa: F403
from .nb02_rope import *  # noqa: F403
from .nb03_attention import *  # noqa: F403
from .nb04_gqa import *  # noqa: F403
from .nb05_receptive_field import *  # noqa: F403
from .nb06_cache import *  # noqa: F403
from .nb07_prefill import *  # noqa: F403
from .nb08_model import *  # noqa: F403
from .nb09_generation import *  # noqa: F403
from .nb10_gpu import *  # noqa: F403
from .nb11_training import *  # noqa: F403
