"""Checks and parsers of the command line's values that need no TensorFlow: they answer bad input at once.

The CLI runs :func:`precheck` before it imports the labs (which takes seconds),
so a typo in ``--lrs``, ``--set`` or ``--option``, an unwritable ``--out``, a
missing report folder or a misspelt ``--task``, ``--optimizers``,
``--function`` or hyperparameter (checked against :mod:`optimlab._names` and
the generated :mod:`optimlab._catalog_data`) is one line within a second. The
same functions serve :mod:`optimlab.lab.commands` and, for the expansion of
optimizer names, :mod:`optimlab.lab.factory`.
"""

import contextlib
import fnmatch
import math
import os
import uuid
from pathlib import Path

from optimlab import _catalog_data, _names, spaces
from optimlab._names import did_you_mean, unknown


class LabError(Exception):
    """Bad input or missing data, with a message for the user."""


@contextlib.contextmanager
def user_errors():
    """Re-raise the library's argument and data errors as :class:`LabError`, on one line."""
    try:
        yield
    except (ValueError, TypeError, FileNotFoundError, KeyError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else str(error)
        raise LabError(" ".join(str(message).split())) from error  # one line on the terminal


def check_writable(path, option="--out", given=None):
    """``path`` is a folder or can become one, proven by writing a file there; leaves nothing on disk.

    ``given`` is the value the user gave when ``path`` is its folder (``--plot``'s
    file name): the message names it.

    ``os.access`` is not asked: it answers yes to root for folders that refuse
    new files (under /proc or /sys, a read-only mount, an immutable folder).
    Missing folders are created for the probe and removed after it.
    """
    target, shown = Path(path), repr(str(path if given is None else given))
    if given is None and target.exists() and not target.is_dir():
        raise LabError(f"{option} {shown} is a file, not a folder")
    made = []
    try:
        for folder in [*reversed(target.parents), target]:
            if folder.exists() and not folder.is_dir():
                raise LabError(f"{option} {shown} is not writable: {str(folder)!r} is a file")
            if not folder.exists():
                folder.mkdir()
                made.append(folder)
        probe = target / f".optimlab-write-test-{uuid.uuid4().hex}"
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        raise LabError(f"{option} {shown} is not writable: {error.strerror or error}") from None
    finally:
        for folder in reversed(made):
            with contextlib.suppress(OSError):  # another process may have started to use it meanwhile
                folder.rmdir()
    return target


def check_output_folder(path, option="--out"):
    """Create ``path`` if needed and prove it writable, before any work; LabError naming it."""
    folder = Path(path)
    try:
        if folder.exists() and not folder.is_dir():
            raise LabError(f"{option} {str(path)!r} is a file, not a folder")
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".optimlab-write-test-{uuid.uuid4().hex}"
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        raise LabError(f"{option} {str(path)!r} is not writable: {error.strerror or error}") from None
    return folder


def check_output_file(path, option, suffixes):
    """``path`` has one of ``suffixes`` and its folder is writable; LabError naming it otherwise."""
    target = Path(path)
    if target.suffix.lower() not in suffixes:
        raise LabError(f"{option} {str(path)!r} must end in {' or '.join(suffixes)}")
    if target.exists() and target.is_dir():
        raise LabError(f"{option} {str(path)!r} is a folder; give a file name")
    check_output_folder(target.parent if str(target.parent) else ".", option)
    return target


def parse_settings(items):
    """``["momentum=0.98", "epsilon=1e-8"]`` -> ``{"momentum": 0.98, "epsilon": 1e-8}`` (``--set``)."""
    settings = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        try:
            if not sep or not key.strip():
                raise ValueError
            settings[key.strip()] = float(value)
        except ValueError as error:
            raise LabError(f"--set takes KEY=NUMBER, e.g. --set momentum=0.98; got {item!r}") from error
    return settings


def check_settings(names, settings):
    """Every ``--set`` key is a hyperparameter of every optimizer; LabError with a suggestion otherwise.

    The keywords come from the generated catalog (each constructor's own and
    its bases'); an optimizer class of one's own (``package.module:Class``)
    checks its arguments itself when it is made.
    """
    entries = {entry["name"]: entry for entry in _catalog_data.OPTIMIZERS}
    for name in names:
        if ":" in name:
            continue
        allowed = entries[name]["keywords"]
        for key in settings:
            if key not in allowed:
                raise LabError(f"--set {key}: {name} has no hyperparameter {key!r}{did_you_mean(key, allowed)} "
                               f"; {name}'s own: {', '.join(entries[name]['own'])}")


def parse_grid(items):
    """``["momentum=0.9,0.99", "nesterov=true,false"]`` -> ``{"momentum": [0.9, 0.99], "nesterov": [True, False]}`` (``--grid``).

    Values are numbers or ``true`` / ``false``; ``none`` (no clipping) for ``clipnorm`` only.
    """
    grid = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key or not text.strip():
            raise LabError(f"--grid takes NAME=V1,V2,..., e.g. --grid momentum=0.9,0.99; got {item!r}")
        if key in grid:
            raise LabError(f"--grid {key}: given twice; list its values once, e.g. --grid {key}=V1,V2")
        allowed = "finite numbers, true or false" + (" or none" if key == "clipnorm" else "")
        values = []
        for part in (p.strip() for p in text.split(",")):
            try:
                value = None if key == "clipnorm" and part.lower() == "none" else parse_value(part)
            except ValueError:
                value = math.nan  # not a number: refused below, with the item
            if value is not None and not isinstance(value, bool) and not math.isfinite(value):
                raise LabError(f"--grid {key}: {part!r} is not a value; allowed: {allowed}")
            values.append(value)
        if len({repr(v) for v in values}) != len(values):
            raise LabError(f"--grid {key}: {text.strip()!r} lists a value twice")
        grid[key] = values
    return grid


def check_grid(names, grid, settings=None, clipnorms=None):
    """Every ``--grid`` name is a constructor argument of each optimizer (or ``clipnorm``), given once.

    From the catalog: the constructor's keywords, and where the optimizer's
    search space declares the argument, its kind (a switch takes true or
    false, a number no switch). The learning rate goes on ``--lrs``; a name
    also in ``--set``, or ``clipnorm`` also swept by ``--clipnorm``, is refused.
    A class of one's own (``package.module:Class``) checks its arguments when it is made.
    """
    entries = {entry["name"]: entry for entry in _catalog_data.OPTIMIZERS}
    swept_clip = clipnorms is not None and parse_list("--clipnorm", clipnorms, float) != [None]
    for key, values in grid.items():
        if key == "learning_rate":
            raise LabError("--grid learning_rate: the learning rate is swept by --lrs; give its values there")
        if key in (settings or {}):
            raise LabError(f"--grid {key}: also set by --set {key}=...; give it once")
        if key == "clipnorm" and swept_clip:
            raise LabError("--grid clipnorm: --clipnorm sweeps it already; give it once")
        for name in names:
            if ":" in name:
                continue
            allowed = entries[name]["keywords"]
            if key not in allowed:
                raise LabError(f"--grid {key}: {name} has no hyperparameter {key!r}{did_you_mean(key, allowed)}; "
                               f"allowed: {', '.join(n for n in entries[name]['own'] if n != 'learning_rate')}, "
                               "clipnorm (and the base's: " + ", ".join(
                                   n for n in allowed if n not in entries[name]["own"] and n != "clipnorm") + ")")
            declared = {d["name"]: d for d in entries[name].get("space", [])}.get(key)
            switch = declared is not None and declared["scale"] == "choice" and all(
                isinstance(c, bool) for c in declared["choices"])
            for value in values:
                if declared is not None and value is not None and isinstance(value, bool) != switch:
                    raise LabError(f"--grid {key}: {name}'s {key} takes " + ("true or false" if switch else "numbers")
                                   + f"; got {value!r}")


def parse_value(text):
    """``"true"`` -> True, ``"1000"`` -> 1000, ``"0.1"`` -> 0.1 (``--option`` values); ValueError otherwise."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    try:
        return int(text)
    except ValueError:
        return float(text)


OPTIONS = ("batchnorm", "mixup", "label_smoothing", "schedule")


def parse_options(items):
    """``--option`` items -> Runner keywords, e.g. ``mixup=0.2``, ``schedule=CosineDecay:decay_steps=1000``."""
    out = {}
    for item in items or []:
        key, sep, value = (t.strip() for t in item.partition("="))
        if not sep or key not in OPTIONS or not value:
            raise LabError(f"--option takes KEY=VALUE with KEY in {list(OPTIONS)}, e.g. --option mixup=0.2 or "
                           f"--option schedule=CosineDecay:decay_steps=1000; got {item!r}")
        try:
            if key == "schedule":
                name, _, args = value.partition(":")
                pairs = [a.partition("=") for a in args.split(",") if a.strip()]
                if any(not p[1] for p in pairs):
                    raise ValueError
                out[key] = (name.strip(), {k.strip(): parse_value(v.strip()) for k, _, v in pairs})
            else:
                out[key] = parse_value(value)
        except ValueError as error:
            raise LabError(f"--option {key}: cannot read {value!r} (schedule=Name:arg=NUMBER,...; "
                           f"batchnorm=true|false; mixup and label_smoothing take numbers)") from error
    return out


def parse_list(name, text, convert=str, none_ok=True, allowed="positive numbers or 'none'"):
    """``"a,b"`` -> ``[a, b]`` converted; ``none`` stays None where ``none_ok`` (``--clipnorm none,2``).

    ``allowed`` is what the error messages say the option takes.
    """
    items = [t.strip() for t in str(text).split(",")]
    if not any(items):
        raise LabError(f"{name} must hold at least one value ({allowed}); got {text!r}")
    if not all(items):
        raise LabError(f"{name} has an empty item; give {allowed} separated by single commas; got {text!r}")
    try:
        values = [None if none_ok and t.lower() == "none" else convert(t) for t in items]
    except ValueError as error:
        raise LabError(f"{name} must be a comma-separated list of {allowed}; got {text!r}") from error
    for v in values:
        if isinstance(v, float) and not (math.isfinite(v) and v > 0):
            raise LabError(f"{name} values must be {allowed}; got {text!r}")
    return values


def parse_numbers(text, name):
    """Floats from a comma-separated string such as ``"1e-3,1e-2"`` (converge's ``--lrs``, ``--init``).

    Any float passes (the convergence lab checks ranges), empty items are
    skipped; ValueError naming ``name`` otherwise.
    """
    try:
        values = [float(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{name} must be comma-separated numbers, e.g. 1e-3,1e-2; got {text!r}") from None
    if not values:
        raise ValueError(f"{name} must hold at least one number; got {text!r}")
    return values


def parse_clipnorm(text):
    """One ``--clipnorm`` value: a positive number or ``none``."""
    values = parse_list("--clipnorm", text, float)
    if len(values) != 1:
        raise LabError(f"--clipnorm takes one value here (a number or 'none'); got {text!r}")
    return values[0]


def check_task(task):
    """``--task`` is a built-in task or ``package.module:attribute`` (resolved later); LabError otherwise."""
    if ":" not in task and task not in _names.TASKS:
        raise LabError(f"--task: {unknown('task', task, _names.TASKS, also=' or package.module:attribute (your own Problem)')}")


def optimizer_names(text, option="--optimizers"):
    """The built-in optimizers that ``text`` names: ``"adam,sgd"``, wildcards (``"adam*"``), ``"all"``, aliases.

    Items with a colon (``package.module:Class``, your own class) are kept as
    given, to be imported later. LabError for an unknown name or a wildcard
    that matches nothing, e.g. ``optimizer_names("adma")`` -> "... did you mean 'adam'?".
    """
    items = [t.strip() for t in str(text).split(",") if t.strip()]
    if not items:
        raise LabError(f"{option} must name at least one optimizer; got {text!r}")
    names = []
    for item in items:
        key = item.lower()
        if ":" in item:
            found = [item]
        elif key == "all":
            found = list(_names.OPTIMIZERS)
        elif any(c in item for c in "*?["):
            found = fnmatch.filter(_names.OPTIMIZERS, key)
            if not found:
                raise LabError(f"{option}: no optimizer matches {item!r} (see optimlab optimizers)")
        elif _names.OPTIMIZER_ALIASES.get(key, key) in _names.OPTIMIZERS:
            found = [_names.OPTIMIZER_ALIASES.get(key, key)]
        else:
            known = [*_names.OPTIMIZERS, *_names.OPTIMIZER_ALIASES]
            raise LabError(f"{option}: {unknown('optimizer', item, _names.OPTIMIZERS, suggest_from=known)}")
        names += [n for n in found if n not in names]
    return names


def check_pattern(pattern):
    """``optimlab optimizers PATTERN`` matches at least one optimizer; LabError with a suggestion otherwise."""
    if not fnmatch.filter(_names.OPTIMIZERS, pattern.lower()):
        raise LabError(f"no optimizer matches {pattern!r}{did_you_mean(pattern, _names.OPTIMIZERS)} "
                       f"(try 'adam*' or see optimlab optimizers)")


def check_function(function):
    """``--function`` names a test function of the convergence lab (any case); LabError otherwise."""
    if function.lower() not in _names.FUNCTIONS:
        raise LabError(f"--function: {unknown('function', function, _names.FUNCTIONS)}")


def check_report_folder(folder):
    """``optimlab report FOLDER``: a folder holding run records; LabError saying which of these it is not."""
    path, run = Path(folder), f"run compare, sweep or tune with --out {folder}"
    if path.is_file():
        raise LabError(f"report folder {str(folder)!r} is a file, not a folder; name the folder given to --out")
    if not path.is_dir():
        raise LabError(f"report folder {str(folder)!r} does not exist; {run}")
    if next(path.glob("records/*/*/*.json"), None) is None:
        raise LabError(f"no run records under {str(folder)!r} (expected {folder}/records/...); {run}")


# SQLAlchemy's own dialects: what Optuna's RDB storage takes without a plugin (``dialect+driver://...``).
STORAGE_DIALECTS = ("sqlite", "postgresql", "mysql", "mariadb", "oracle", "mssql")


def check_storage(url):
    """``--storage`` is a SQLAlchemy URL whose dialect SQLAlchemy knows (Optuna's RDB storage); LabError otherwise.

    Only the URL is read (SQLAlchemy, no TensorFlow, no connection): opening the
    storage is :func:`optimlab.lab.training_commands.open_storage`'s work. Example::

        check_storage("postgresql://user@host/optuna")  # passes
        check_storage("foo://bar")  # LabError: --storage 'foo://bar': unknown database 'foo'; ...
    """
    try:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError, NoSuchModuleError
    except ImportError:  # Optuna brings SQLAlchemy; without it the tune command reports what is missing
        return
    allowed = (f"Optuna takes a SQLAlchemy URL: {', '.join(STORAGE_DIALECTS)} (dialect+driver allowed), "
               f"e.g. sqlite:///tuning.db or postgresql://user@host/db")
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise LabError(f"--storage {url!r} is not a database URL; {allowed}") from None
    try:
        parsed.get_dialect()
    except NoSuchModuleError:
        name = parsed.get_backend_name()
        raise LabError(f"--storage {url!r}: unknown database {name!r}{did_you_mean(name, STORAGE_DIALECTS)}; "
                       f"{allowed}") from None


def check_options(options):
    """``--option`` values in range (the problem checks them again): LabError naming the flag otherwise."""
    parsed = parse_options(options)
    if "batchnorm" in parsed and not isinstance(parsed["batchnorm"], bool):
        raise LabError(f"--option batchnorm must be true or false; got {parsed['batchnorm']!r}")
    mixup = parsed.get("mixup", 0)
    if isinstance(mixup, bool) or not (math.isfinite(mixup) and mixup >= 0):
        raise LabError(f"--option mixup must be a finite number >= 0 (0: off); got {mixup!r}")
    smoothing = parsed.get("label_smoothing", 0)
    if isinstance(smoothing, bool) or not 0 <= smoothing < 1:
        raise LabError(f"--option label_smoothing must be in [0, 1); got {smoothing!r}")
    if "schedule" in parsed:
        check_schedule(*parsed["schedule"])
    return parsed


def check_schedule(name, args, option="--option schedule"):
    """A schedule's name and argument names against the catalog (the arguments after the learning rate)."""
    known = {entry["name"]: entry for entry in _catalog_data.SCHEDULES}
    if name not in known:
        raise LabError(f"{option}: {unknown('schedule', name, sorted(known))}")
    allowed = known[name]["keywords"]
    for key in args:
        if key not in allowed:
            raise LabError(f"{option}: {name} takes no argument {key!r}{did_you_mean(key, allowed)} "
                           f"(after the learning rate it takes: {', '.join(allowed)})")
    missing = [key for key in known[name]["required"] if key not in args]
    if missing:
        raise LabError(f"{option}: {name} needs {', '.join(missing)}, e.g. "
                       f"{option.split()[-1]}={name}:{','.join(f'{key}=VALUE' for key in missing)}")


def check_storage_folder(url):
    """A sqlite ``--storage`` file's folder accepts new files (probed; other databases are opened later)."""
    with contextlib.suppress(ImportError):
        from sqlalchemy.engine import make_url

        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
            check_writable(Path(parsed.database).parent, "--storage", given=url)


def check_plot(plot):
    """``--plot`` ends in .png or .svg, is not a folder, and its folder accepts new files; nothing written."""
    target = Path(plot)
    if target.suffix.lower() not in (".png", ".svg"):
        raise LabError(f"--plot {str(plot)!r} must end in .png or .svg")
    if target.is_dir():
        raise LabError(f"--plot {str(plot)!r} is a folder; give a file name")
    check_writable(target.parent, "--plot", given=plot)


def check_fraction(valid_fraction):
    """``--valid-fraction`` is in [0, 1)."""
    if not (math.isfinite(valid_fraction) and 0 <= valid_fraction < 1):
        raise LabError(f"--valid-fraction must be in [0, 1); got {valid_fraction:g}")


def check_tuning(sampler, lr_range, space=None, pruner=None, names=()):
    """``--sampler`` is one of Optuna's samplers here; ``--lr-low`` < ``--lr-high``, both > 0; ``--pruner`` is
    known; every name of ``--space`` is in each optimizer's search space (from the catalog)."""
    if sampler is not None and sampler not in _names.SAMPLERS:
        raise LabError(f"--sampler: {unknown('sampler', sampler, _names.SAMPLERS)}")
    if lr_range is not None and not 0 < lr_range[0] < lr_range[1]:
        raise LabError(f"--lr-low and --lr-high must satisfy 0 < low < high; got {lr_range[0]:g} and "
                       f"{lr_range[1]:g}")
    if pruner is not None and pruner not in _names.PRUNERS:
        raise LabError(f"--pruner: {unknown('pruner', pruner, _names.PRUNERS)}")
    if space is None or space.strip() in ("lr", "learning_rate", "full"):
        return
    wanted = ["learning_rate" if n == "lr" else n for n in parse_list("--space", space, none_ok=False,
                                                                       allowed="'lr', 'full' or hyperparameter names")]
    if len(set(wanted)) != len(wanted):
        raise LabError(f"--space {space!r} names a hyperparameter twice")
    for name in names:
        if ":" not in name:  # a class of one's own is checked once it is imported
            try:  # the schedule is the tuner's own dimension, in every optimizer's space
                spaces.listed(name, [n for n in wanted if n != "schedule"])
            except ValueError as error:
                raise LabError(f"--space {space!r}: {error}") from None


def check_init(init):
    """converge's ``--init``: finite numbers, comma-separated (their count is checked with the function)."""
    try:
        values = parse_numbers(init, "--init")
    except ValueError as error:
        raise LabError(str(error)) from None
    if not all(math.isfinite(v) for v in values):
        raise LabError(f"--init must be finite numbers; got {init!r}")


def check_names(task=None, function=None, optimizers=None, optimizer=None, pattern=None, shapes=None):
    """The names of a command: task, function, optimizers, listing pattern, bench's shape sets."""
    if task is not None:
        check_task(task)
    if function is not None:
        check_function(function)
    names = []
    if optimizers is not None:
        names = optimizer_names(optimizers)
    if optimizer is not None:
        names = optimizer_names(optimizer, "--optimizer")
        if len(names) != 1:
            raise LabError(f"--optimizer takes one optimizer; {optimizer!r} names {len(names)}")
    if pattern is not None:
        check_pattern(pattern)
    for name in parse_list("--shapes", shapes, none_ok=False, allowed="shape set names") if shapes is not None else []:
        if name not in _names.SHAPE_SETS:
            raise LabError(f"--shapes: {unknown('shape set', name, _names.SHAPE_SETS)}")
    return names


def check_paths(out=None, plot=None, report_folder=None, storage=None, data=None):
    """Input files exist; every output place accepts new files (probed, nothing left behind)."""
    if data is not None and not Path(data).exists():
        raise LabError(f"--data {str(data)!r} does not exist")
    if report_folder is not None:
        check_report_folder(report_folder)
        check_writable(report_folder, "report folder")
    if out is not None:
        check_writable(out)
    if plot is not None:
        check_plot(plot)
    if storage is not None:
        check_storage_folder(storage)


def precheck(task=None, optimizers=None, optimizer=None, function=None, pattern=None, out=None, lrs=None,
             lrs_default=True, clipnorm=None, clipnorms=None, settings=None, data=None, plot=None,
             report_folder=None, storage=None, options=None, valid_fraction=None, sampler=None, lr_range=None,
             init=None, shapes=None, grid=None, space=None, pruner=None):
    """Every check that needs no library, in the order a user reads the command; LabError on the first.

    ``optimizers`` is a list option (``--optimizers``), ``optimizer`` the
    option of one optimizer (``--optimizer``), ``pattern`` the argument of
    ``optimlab optimizers``. ``lrs_default``: whether ``--lrs default`` is
    allowed (compare) or not (sweep, converge). ``grid``: sweep's ``--grid`` items. ``lr_range``: tune's
    ``(--lr-low, --lr-high)``. Output paths are probed last, so that a refused
    value never leaves a trace.
    """
    names = check_names(task, function, optimizers, optimizer, pattern, shapes)
    if lrs is not None and not (lrs_default and str(lrs).strip().lower() == "default"):
        parse_list("--lrs", lrs, float, none_ok=False,
                   allowed="positive numbers" + (" or 'default'" if lrs_default else ""))
    if init is not None:
        check_init(init)
    if clipnorm is not None:
        parse_clipnorm(clipnorm)
    if clipnorms is not None:
        parse_list("--clipnorm", clipnorms, float)
    check_settings(names, parse_settings(settings))
    if grid:
        check_grid(names, parse_grid(grid), parse_settings(settings), clipnorms)
    check_options(options)
    if valid_fraction is not None:
        check_fraction(valid_fraction)
    check_tuning(sampler, lr_range, space, pruner, names)
    if storage is not None:
        check_storage(storage)
    check_paths(out, plot, report_folder, storage, data)
