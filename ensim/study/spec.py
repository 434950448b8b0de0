"""What a study is: its story, its configuration, its cells, tables, figure and claims.

A study module declares one :class:`Study` (conventionally ``STUDY``) from plain
functions. The runner (:mod:`ensim.study.execute`) calls them; nothing here runs
a study.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import json
import numbers
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np

from .._backend import BACKENDS
from .._random import child_seed, key_from_name, key_from_params

__all__ = ["Streams", "Study", "StudyError", "apply_overrides", "parse_override"]

_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")


class StudyError(ValueError):
    """A study cannot be defined, configured or run as asked (bad options, folder, cluster)."""


@dataclass(frozen=True)
class Streams:
    """The random streams of one cell.

    A study's *pairing key* names the cell parameters that define a replicate.
    Cells that differ only in other parameters (the *arms* of a comparison) are
    the same replicate and get the same :attr:`seed`, so they share their training
    set, split and initial weights (common random numbers). Each arm can still
    draw streams of its own with :meth:`own`.

    Attributes
    ----------
    seed : numpy.random.SeedSequence
        The replicate's stream: the child of the root seed keyed by the pairing
        parameters' values (all parameters when the study declares no key).
    arm_seed : numpy.random.SeedSequence
        The cell's own stream: the child of the root seed keyed by all its
        parameters.
    """

    seed: np.random.SeedSequence
    arm_seed: np.random.SeedSequence

    @classmethod
    def for_cell(cls, root: np.random.SeedSequence, params: dict, pairing) -> Streams:
        shared = params if pairing is None else {k: params[k] for k in pairing}
        return cls(child_seed(root, *key_from_params(shared)),
                   child_seed(root, *key_from_params(params)))

    def shared(self, name: str) -> np.random.SeedSequence:
        """The stream ``name`` of the replicate: the same in every arm."""
        return child_seed(self.seed, *key_from_name(name))

    def own(self, name: str) -> np.random.SeedSequence:
        """The stream ``name`` of this arm alone."""
        return child_seed(self.arm_seed, *key_from_name(name))


def _split_doc(doc: str) -> tuple[str, str]:
    lines = (doc or "").strip().splitlines()
    if not lines:
        return "", ""
    return lines[0].strip(), "\n".join(lines[1:]).strip()


@dataclass(frozen=True, eq=False)
class Study:
    """A study: a grid of independent cells, the tables they fill, a figure and claims.

    Parameters
    ----------
    name : str
        What ``ensim run`` and ``ensim list`` call it (lower case and hyphens).
    doc : str
        The story, in Markdown: the first line is the title, the rest the question,
        the setup and how to read the figure (the module's docstring, usually).
    config : type
        A frozen dataclass; every field JSON-serialisable, with a commented default.
    quick, full : config instances
        The two named scales (``quick``: every study in about a minute on 2 cores).
    cells : callable ``(config) -> list[dict]``
        One JSON-serialisable dict of parameters per independent cell.
    run_cell : callable ``(config, params, streams, backend) -> dict``
        Measures one cell: returns ``{table name: rows}`` (a list of row dicts,
        or one dict), or just the rows when the study has one table. Must not read
        or write files, print or depend on global state.
    plot : callable ``(tables, config) -> matplotlib.figure.Figure``
        Draws from the tables (a dict of pandas DataFrames) alone.
    claims : callable ``(tables, config) -> list[Claim]``
        The study's checked statements, from the tables alone.
    tables : tuple of str
        The names of the tables ``run_cell`` fills, in the order they are written.
    backends : tuple of str
        The array backends the study's cells use (``"numpy"``, ``"cupy"``).
    pairing : tuple of str or None
        The pairing key (see :class:`Streams`); ``None``: every cell is its own
        replicate.
    order : int
        Position in ``ensim list`` and the report (ascending).
    """

    name: str
    doc: str
    config: type
    quick: Any
    full: Any
    cells: Callable
    run_cell: Callable
    plot: Callable
    claims: Callable
    tables: tuple = ("cells",)
    backends: tuple = ("numpy",)
    pairing: tuple | None = None
    order: int = 100
    source: str | None = field(default=None, compare=False)

    def __post_init__(self):
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise StudyError(f"A study's name must be lower-case letters, digits and hyphens; "
                             f"got {self.name!r}.")
        if not (isinstance(self.config, type) and dataclasses.is_dataclass(self.config)
                and self.config.__dataclass_params__.frozen):
            raise StudyError(f"Study {self.name!r}: 'config' must be a frozen dataclass.")
        for scale in ("quick", "full"):
            if not isinstance(getattr(self, scale), self.config):
                raise StudyError(f"Study {self.name!r}: {scale!r} must be an instance of its "
                                 f"config class {self.config.__name__}.")
        for attr in ("cells", "run_cell", "plot", "claims"):
            if not callable(getattr(self, attr)):
                raise StudyError(f"Study {self.name!r}: {attr!r} must be a function.")
        tables = tuple(self.tables)
        if not tables or len(set(tables)) != len(tables) or not all(
                isinstance(t, str) and _NAME.match(t) for t in tables):
            raise StudyError(f"Study {self.name!r}: 'tables' must be distinct lower-case "
                             f"names; got {self.tables!r}.")
        object.__setattr__(self, "tables", tables)
        backends = tuple(self.backends)
        if not backends or any(b not in BACKENDS for b in backends):
            raise StudyError(f"Study {self.name!r}: 'backends' must be a non-empty subset of "
                             f"{BACKENDS}; got {self.backends!r}.")
        object.__setattr__(self, "backends", backends)
        if self.pairing is not None:
            object.__setattr__(self, "pairing", tuple(self.pairing))
        if not self.title:
            raise StudyError(f"Study {self.name!r}: its 'doc' must start with a title line.")
        if self.source is None:        # the file whose code is part of the run's identity
            with contextlib.suppress(TypeError, OSError):
                object.__setattr__(self, "source", inspect.getsourcefile(self.run_cell))

    @property
    def title(self) -> str:
        """The story's first line."""
        return _split_doc(self.doc)[0]

    @property
    def story(self) -> str:
        """The story without its title (Markdown)."""
        return _split_doc(self.doc)[1]

    @property
    def fields(self) -> dict:
        """``{name: default value at full scale}`` of the configuration's fields."""
        return {f.name: getattr(self.full, f.name) for f in dataclasses.fields(self.config)}

    def configure(self, scale: str = "quick", config=None, overrides: dict | None = None):
        """The configuration of a run: ``config`` or the named scale, with ``overrides``.

        Returns ``(config, label)``: the label is the scale's name, or ``"custom"``
        when a configuration or overrides were given.
        """
        if config is None:
            if scale not in ("quick", "full"):
                raise StudyError(f"The 'scale' option must be 'quick' or 'full'; got {scale!r}.")
            config, label = getattr(self, scale), scale
        else:
            if not isinstance(config, self.config):
                raise StudyError(f"The 'config' option of study {self.name!r} must be a "
                                 f"{self.config.__name__}; got {type(config).__name__}.")
            label = "custom"
        if overrides:
            config, label = apply_overrides(self, config, overrides), "custom"
        return config, label

    def check_grid(self, config) -> list[dict]:
        """The cells of ``config``, checked: distinct, and holding the pairing key."""
        grid = [dict(p) for p in self.cells(config)]
        seen = set()
        for params in grid:
            text = json.dumps(params, sort_keys=True, default=str)
            if text in seen:
                raise StudyError(f"Study {self.name!r} lists the cell {text} twice.")
            seen.add(text)
            missing = [k for k in (self.pairing or ()) if k not in params]
            if missing:
                raise StudyError(f"Study {self.name!r}: the cell {text} lacks the pairing "
                                 f"parameter(s) {', '.join(missing)}.")
        return grid

    def main(self, argv=None):
        """Run this study from the command line: ``python my_study.py [options]``."""
        from ..cli import main_for_study

        return main_for_study(self, argv)

    def __repr__(self):
        return f"Study({self.name!r}: {self.title})"


# --------------------------------------------------------------- configuration


def _type_name(value) -> str:
    if isinstance(value, bool):
        return "a boolean (true or false)"
    if isinstance(value, numbers.Integral):
        return "an integer"
    if isinstance(value, numbers.Real):
        return "a real number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, tuple):
        plural = {"an integer": "integers", "a real number": "real numbers",
                  "a string": "strings", "a boolean (true or false)": "booleans"}
        kinds = sorted({plural.get(_type_name(v), "values") for v in value}) or ["values"]
        if "integers" in kinds and "real numbers" in kinds:
            kinds.remove("integers")
        return f"a comma-separated list of {' or '.join(kinds)}"
    return type(value).__name__


def _coerce(study, key, value, default):
    """``value`` as the type of ``default``, or a :class:`StudyError` naming all three."""
    bad = StudyError(f"The setting {key!r} of study {study.name!r} must be "
                     f"{_type_name(default)}; got {value!r}.")
    if isinstance(default, bool):
        if isinstance(value, (bool, np.bool_)):
            return bool(value)
        raise bad
    if isinstance(default, numbers.Integral):
        if isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_)):
            return int(value)
        raise bad
    if isinstance(default, numbers.Real):
        if isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)):
            return float(value)
        raise bad
    if isinstance(default, str):
        if isinstance(value, str):
            return value
        raise bad
    if isinstance(default, tuple):
        if not isinstance(value, (list, tuple)) or not value:
            raise bad
        if not default:
            return tuple(value)
        template = default[0] if len({type(v) for v in default}) == 1 else 1.0
        return tuple(_coerce(study, key, v, template) for v in value)
    if default is None or isinstance(value, type(default)):
        return value
    raise bad


def apply_overrides(study: Study, config, overrides: dict):
    """``config`` with ``overrides`` (``{field: value}``), each checked against the field.

    An unknown field is an error listing the valid ones; a value of the wrong type
    names the field, the value and the type expected. Values are converted to the
    field's type (an int for a float field, a list for a tuple field).
    """
    defaults = {f.name: getattr(config, f.name) for f in dataclasses.fields(study.config)}
    changes = {}
    for key, value in overrides.items():
        if key not in defaults:
            raise StudyError(f"Study {study.name!r} has no setting {key!r}; its settings are: "
                             f"{', '.join(defaults)}.")
        changes[key] = _coerce(study, key, value, defaults[key])
    try:
        return dataclasses.replace(config, **changes)
    except (TypeError, ValueError) as exc:
        raise StudyError(f"Study {study.name!r}: {exc}") from exc


_TRUE, _FALSE = ("true", "yes", "1", "on"), ("false", "no", "0", "off")


def _parse_scalar(text: str, template):
    text = text.strip()
    if isinstance(template, bool):
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        return text
    if isinstance(template, numbers.Integral):
        try:
            return int(text)
        except ValueError:
            return text
    if isinstance(template, numbers.Real):
        try:
            return float(text)
        except ValueError:
            return text
    return text


def parse_override(study: Study, text: str) -> tuple[str, Any]:
    """``"KEY=VALUE"`` from the command line as ``(key, value)`` typed like the field.

    Lists are comma-separated (``ks=1,2,5``) or JSON (``ks=[1, 2, 5]``).
    """
    if "=" not in text:
        raise StudyError(f"A --set option must look like KEY=VALUE; got {text!r}.")
    key, raw = (part.strip() for part in text.split("=", 1))
    defaults = study.fields
    if key not in defaults:
        raise StudyError(f"Study {study.name!r} has no setting {key!r}; its settings are: "
                         f"{', '.join(defaults)}.")
    default = defaults[key]
    if isinstance(default, tuple):
        if raw.startswith("["):
            try:
                items = json.loads(raw)
            except ValueError:
                raise StudyError(f"The setting {key!r} of study {study.name!r} must be "
                                 f"{_type_name(default)}; got {raw!r}.") from None
        else:
            items = [item for item in raw.split(",") if item.strip()]
        template = default[0] if default and len({type(v) for v in default}) == 1 else 1.0
        return key, [_parse_scalar(i, template) if isinstance(i, str) else i for i in items]
    return key, _parse_scalar(raw, default)


def study_from_module(module: ModuleType) -> Study:
    """The :class:`Study` a module declares as ``STUDY``."""
    study = getattr(module, "STUDY", None)
    if not isinstance(study, Study):
        raise StudyError(f"{getattr(module, '__file__', module.__name__)} is not a study: it "
                         "declares no STUDY = ensim.study.Study(...) (see docs/studies.md).")
    return study
