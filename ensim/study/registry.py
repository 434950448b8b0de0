"""Finding studies: the ones ensim ships (``ensim.studies``), and study files by path."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import pkgutil
import sys
from pathlib import Path
from types import ModuleType

from .spec import Study, StudyError, study_from_module

__all__ = ["available_studies", "load_study", "resolve"]


def available_studies() -> dict[str, Study]:
    """``{name: Study}`` for every study ensim ships, in the report's order."""
    import ensim.studies as package

    found = []
    for info in pkgutil.iter_modules(package.__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"ensim.studies.{info.name}")
        if isinstance(getattr(module, "STUDY", None), Study):
            found.append(study_from_module(module))
    return {s.name: s for s in sorted(found, key=lambda s: (s.order, s.name))}


def _load_file(path: Path) -> Study:
    if not path.is_file():
        raise StudyError(f"No study file at {path}.")
    digest = hashlib.blake2b(str(path.resolve()).encode(), digest_size=6).hexdigest()
    module_name = f"ensim_study_file_{digest}"
    code = path.read_bytes()
    loaded = sys.modules.get(module_name)
    if loaded is not None and getattr(loaded, "__ensim_code__", None) == code:
        return study_from_module(loaded)       # the same file, unchanged: the same classes
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    module.__ensim_code__ = code
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[module_name]
        raise StudyError(f"Could not import the study file {path}: "
                         f"{type(exc).__name__}: {exc}") from exc
    study = study_from_module(module)
    # Worker processes cannot import this module by name: send its code by value
    # (joblib's process pool and Dask both pickle callables with cloudpickle).
    import cloudpickle

    cloudpickle.register_pickle_by_value(module)
    return study


def load_study(name: str) -> Study:
    """A study by its name (as ``ensim list`` shows it) or by the path of a ``.py`` file.

    A path lets a forked copy of a study run through the same runner
    (``ensim run ./my_study.py``).
    """
    if not isinstance(name, str):
        raise StudyError(f"A study is named by a string; got {name!r}.")
    if name.endswith(".py"):
        return _load_file(Path(name))
    studies = available_studies()
    if name not in studies:
        raise StudyError(f"Unknown study {name!r}; choose one of: {', '.join(studies)}, "
                         "or give the path of a study file (.py).")
    return studies[name]


def resolve(study) -> Study:
    """A :class:`Study` from a study, a name, a file path or a module."""
    if isinstance(study, Study):
        return study
    if isinstance(study, (str, Path)):
        return load_study(str(study))
    if isinstance(study, ModuleType):
        return study_from_module(study)
    raise StudyError(f"A study must be a name, a .py path, a module or a Study; got "
                     f"{type(study).__name__}.")
