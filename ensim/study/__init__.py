"""Studies as objects: declare one, run it in memory or into a resumable folder, publish it.

* :class:`Study` — what a study is (story, configuration, cells, tables, figure,
  claims, backends, pairing key); :mod:`ensim.study.spec`.
* :func:`run` — the in-memory core, returning a :class:`StudyResult`; with
  ``out`` it keeps a resumable cell store (:mod:`ensim.study.store`) and publishes
  the results (:mod:`ensim.study.publish`).
* :func:`available_studies`, :func:`load_study` — the studies ensim ships and study
  files by path (:mod:`ensim.study.registry`).
"""

from .execute import Plan, StudyResult, check_options, connect, execute, plan, run
from .publish import publish
from .registry import available_studies, load_study, resolve
from .spec import Streams, Study, StudyError, apply_overrides, parse_override

__all__ = [
    "Plan",
    "Streams",
    "Study",
    "StudyError",
    "StudyResult",
    "apply_overrides",
    "available_studies",
    "check_options",
    "connect",
    "execute",
    "load_study",
    "parse_override",
    "plan",
    "publish",
    "resolve",
    "run",
]
