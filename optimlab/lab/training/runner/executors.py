"""Where the runs of an experiment are computed: here, in worker processes, or on a Ray cluster.

Every executor computes runs with the same function, :func:`compute`
(``spec`` in, record out; the record's key is the spec's, and the spec holds
the problem's fingerprint, computed once by the driver), and hands the records back to the driver, which
writes them (see :class:`~optimlab.lab.training.runner.experiments.Runner`):
workers never need the output folder, so a cluster needs no shared
filesystem. Results do not depend on the executor: a run is a pure function
of its spec.

* :class:`Serial` (``--jobs 1``): in this process; runs of one optimizer
  configuration in packs, one program each (``--runs-per-program``, see
  :mod:`~optimlab.lab.training.runner.packed`).
* :class:`Processes` (``--jobs N``): N spawned worker processes on this
  machine, each with ``cores // N`` TensorFlow threads. A worker that dies
  (killed, out of memory) is replaced and its run computed again.
* :class:`Ray` (``--ray ADDRESS`` or ``auto``): one Ray task per run on an
  existing cluster (``ray start --head``, then ``ray start --address HEAD:6379``
  on each other machine); Ray retries a task whose worker or node dies. Tasks
  ask for one CPU, and for a share of a GPU where the cluster has GPUs.

Each worker keeps its traced programs between runs (see
:class:`~optimlab.lab.training.runner.program.Program`), so a worker traces once
per configuration, not once per run.
"""

import concurrent.futures
import json
import multiprocessing
import os
import pickle
import time

from optimlab import _interrupt, _quiet

MAX_RETRIES = 3
_DATA = {}  # problems.data_digest -> Data: one object per data set in a worker, so its traced programs are reused
_THREADS = None


def set_threads(threads):
    """Give TensorFlow ``threads`` threads in this process (before its first operation)."""
    global _THREADS
    if threads is None or _THREADS == threads:
        return
    import tensorflow as tf  # here, not above: a spawned worker must load it after optimlab._quiet (see compute)

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(min(threads, 2))
    except RuntimeError:  # TensorFlow already started here: keep its threads
        pass
    _THREADS = threads


def compute(problem, data, spec, on_chunk=None):
    """The record of the run ``spec`` (a dict from ``Runner.spec``), trained in this process.

    ``on_chunk``: see :func:`~optimlab.lab.training.runner.loop.train_named` (a pruner; this process only).
    """
    # Imported here: a spawned worker imports this module to find its initializer, which must load TensorFlow
    # (quietly, optimlab._quiet) before anything else does.
    from optimlab.lab.training.problems import identity
    from optimlab.lab.training.runner import loop

    data = _DATA.setdefault(identity.data_digest(data), data)
    started = time.time()
    schedule = spec.get("schedule")
    result = loop.train_named(problem, data, spec["optimizer"], spec["hyperparameters"], spec["seed"],
                              epochs=spec["epochs"], batch_size=spec["batch_size"], eval_every=spec["eval_every"],
                              target=spec["target"], schedule=None if schedule is None else
                              (schedule["name"], schedule["args"]), on_chunk=on_chunk)
    return _record(problem, spec, result, started)


def _record(problem, spec, result, started):
    """The record of the run ``spec`` from its :class:`~optimlab.lab.training.runner.loop.Result`."""
    import keras
    import tensorflow as tf

    import optimlab
    from optimlab.lab.training import records

    return {
        "schema": records.SCHEMA,
        "key": records.run_key(spec),
        "spec": spec,
        "problem": problem.meta(),
        "status": result.status,
        "final": result.final,
        "time_to_target": result.time_to_target,
        "history": result.history.to_dict(orient="list"),
        "diagnostics": result.diagnostics,
        "started": started,
        "versions": {"optimlab": optimlab.__version__, "tensorflow": tf.__version__, "keras": keras.__version__},
    }


def packs(problem, data, specs, runs_per_program):
    """``specs``' indices grouped into packs of at most ``runs_per_program`` runs, and the notes on runs left alone.

    Runs share a pack when :mod:`~optimlab.lab.training.runner.packed` can
    train them in one program: the same optimizer, optimizer structure, budget
    and options (they may differ in seed and in hyperparameters held in
    variables). A run that cannot be packed is a pack of one, and
    ``notes`` holds the reason once per optimizer (only where a pack of several runs was possible).
    """
    from optimlab.lab.training.runner import packed

    groups, notes, reasons = {}, {}, {}
    for i, spec in enumerate(specs):
        key = None
        if runs_per_program > 1:
            budget = json.dumps({k: v for k, v in spec.items() if k not in ("seed", "hyperparameters")}, sort_keys=True)
            schedule = spec.get("schedule")
            configuration = (budget, json.dumps(spec["hyperparameters"], sort_keys=True))
            if configuration not in reasons:  # one check per configuration, not per seed
                reasons[configuration] = packed.reason(
                    problem, data, spec["optimizer"], spec["hyperparameters"],
                    None if schedule is None else (schedule["name"], schedule["args"]))
            why = reasons[configuration]
            if why is None:
                key = (budget, packed.structure(problem, data, spec["optimizer"], spec["hyperparameters"]))
            else:
                notes.setdefault(spec["optimizer"], (why, []))[1].append(i)
        groups.setdefault(key if key is not None else ("alone", i), []).append(i)
    out = []
    for indices in groups.values():
        out += [indices[j:j + runs_per_program] for j in range(0, len(indices), max(1, runs_per_program))]
    notes = {name: why for name, (why, indices) in notes.items() if len(indices) > 1}
    return out, notes


def compute_pack(problem, data, specs, size=None):
    """The records of runs ``specs`` (one pack of :func:`packs`), trained in one program of this process.

    ``size``: the program's number of runs (a smaller pack is padded: one trace serves every pack).
    """
    from optimlab.lab.training.problems import identity
    from optimlab.lab.training.runner import packed

    if len(specs) == 1:
        return [compute(problem, data, specs[0])]
    data = _DATA.setdefault(identity.data_digest(data), data)
    started = time.time()
    first = specs[0]
    results = packed.train(problem, data, first["optimizer"], [s["hyperparameters"] for s in specs],
                           [s["seed"] for s in specs], epochs=first["epochs"], batch_size=first["batch_size"],
                           eval_every=first["eval_every"], target=first["target"], size=size)
    return [_record(problem, spec, result, started) for spec, result in zip(specs, results)]


class Serial:
    """Runs one after the other in this process, or (``runs_per_program`` > 1) packs of runs in one program each.

    ``notes`` collects, per optimizer, why its runs were not packed (see :func:`packs`).
    Runs with a pruner (``on_chunk``) go one per program: each stops at its own chunk.
    """

    def __init__(self, runs_per_program=1):
        self.runs_per_program = runs_per_program
        self.notes = {}

    def run(self, problem, data, specs, on_start=None, on_retry=None, on_chunk=None):
        """Yield ``(index, record)`` for every spec, as each finishes (``on_chunk``: a pruner, see :func:`compute`)."""
        if self.runs_per_program > 1 and on_chunk is None and len(specs) > 1:
            groups, notes = packs(problem, data, specs, self.runs_per_program)
            self.notes.update(notes)
        else:
            groups = [[i] for i in range(len(specs))]
        for group in groups:
            _interrupt.check()  # a Ctrl-C stops before the next run (one in progress stops within a step: loop.py)
            for i in group:
                if on_start is not None:
                    on_start(specs[i])
            if len(group) == 1:
                yield group[0], compute(problem, data, specs[group[0]], on_chunk)
            else:
                yield from zip(group, compute_pack(problem, data, [specs[i] for i in group], self.runs_per_program))

    def close(self):
        pass


def _worker_init(threads, quiet, payload):
    """Set up a worker: Ctrl-C ignored, TensorFlow loaded (silently when the driver is), the problem and data.

    The problem and data come pickled, so that TensorFlow is imported here
    under :mod:`optimlab._quiet`, not while the arguments are unpickled.
    """
    _interrupt.worker_process(quiet)
    set_threads(threads)
    _worker_init.problem, _worker_init.data = pickle.loads(payload)


def _worker_compute(spec):
    return compute(_worker_init.problem, _worker_init.data, spec)


class Processes:
    """``jobs`` worker processes on this machine (spawned: TensorFlow does not survive ``fork``)."""

    def __init__(self, jobs, threads=None):
        if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
            raise ValueError(f"jobs must be a positive integer; got {jobs!r}")
        self.jobs = jobs
        self.threads = threads or max(1, (os.cpu_count() or 1) // jobs)
        self._pool = None
        self._for = None

    def _pool_for(self, problem, data):
        if self._pool is None or self._for != (problem, id(data)):
            self.close()
            context = multiprocessing.get_context("spawn")
            self._pool = concurrent.futures.ProcessPoolExecutor(
                self.jobs, mp_context=context, initializer=_worker_init,
                initargs=(self.threads, _quiet.quiet(), pickle.dumps((problem, data))))
            self._for = (problem, id(data))
        return self._pool

    def run(self, problem, data, specs, on_start=None, on_retry=None):
        """Yield ``(index, record)`` as runs finish; a run whose worker died is computed again."""
        pending = dict(enumerate(specs))
        tries = dict.fromkeys(pending, 0)
        while pending:
            pool = self._pool_for(problem, data)
            futures = {}
            for i, spec in pending.items():
                futures[pool.submit(_worker_compute, spec)] = i
            started = set()
            try:
                for future in _as_completed_with_start(futures, started, on_start):
                    i = futures[future]
                    record = future.result()
                    del pending[i]
                    yield i, record
            except KeyboardInterrupt:  # Ctrl-C (or Interrupted): the runs in progress are dropped, not waited for
                self.stop()
                raise
            except concurrent.futures.process.BrokenProcessPool:
                self.close()  # a worker died: every unfinished run goes to a fresh pool
                for i in pending:
                    tries[i] += 1
                    if tries[i] > MAX_RETRIES:
                        raise RuntimeError(f"run {specs[i]} lost its worker {MAX_RETRIES + 1} times") from None
                    if on_retry is not None and any(futures[f] == i for f in started):
                        on_retry(specs[i])

    def close(self):
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def stop(self):
        """End the workers now; their unfinished runs are lost (the driver writes records, so nothing else is)."""
        if self._pool is not None:
            _interrupt.terminate(self._pool)
            self._pool = None


def _as_completed_with_start(futures, started, on_start):
    """``as_completed`` that also reports runs as they start (a future turns running)."""
    remaining = set(futures)
    while remaining:
        _interrupt.check()  # every 0.2 s: a Ctrl-C stops the wait (and, in the caller, the workers)
        for f in remaining:
            if f not in started and (f.running() or f.done()):
                started.add(f)
                if on_start is not None:
                    on_start(None)
        done, _ = concurrent.futures.wait(remaining, timeout=0.2, return_when=concurrent.futures.FIRST_COMPLETED)
        for f in done:
            if f not in started:
                started.add(f)
                if on_start is not None:
                    on_start(None)
            remaining.discard(f)
            yield f


def _ray_compute(threads, problem, data, spec):
    set_threads(threads)
    return compute(problem, data, spec)


class Ray:
    """One Ray task per run on the cluster at ``address`` (``auto``: the one this machine belongs to)."""

    def __init__(self, address, threads=1, gpus_per_run=None):
        try:
            import ray
        except ImportError:
            raise ValueError("ray: Ray is not installed; pip install 'optimlab[cluster]' (on every machine of the cluster)") from None
        self.ray = ray
        if not ray.is_initialized():
            try:
                ray.init(address=address, log_to_driver=False, include_dashboard=False, configure_logging=False)
            except ConnectionError as error:
                raise ValueError(f"ray: no Ray cluster at {address!r} ({error}); start one with `ray start --head` "
                                 "and pass its address, or auto") from None
        gpus = ray.cluster_resources().get("GPU", 0)
        self.gpus = (0.25 if gpus else 0) if gpus_per_run is None else gpus_per_run
        self.threads = threads
        self.task = ray.remote(_ray_compute).options(num_cpus=1, num_gpus=self.gpus, max_retries=MAX_RETRIES,
                                                       retry_exceptions=False)

    def run(self, problem, data, specs, on_start=None, on_retry=None):
        """Yield ``(index, record)`` as tasks finish; Ray recomputes a task whose worker or node died."""
        data_ref = self.ray.put(data)
        refs = {self.task.remote(self.threads, problem, data_ref, spec): i for i, spec in enumerate(specs)}
        # Ray runs as many tasks as the cluster has CPUs; the others wait in its queue.
        slots = max(1, int(self.ray.cluster_resources().get("CPU", 1)))
        started = min(slots, len(refs))
        for _ in range(started if on_start is not None else 0):
            on_start(None)
        remaining = list(refs)
        try:
            while remaining:
                _interrupt.check()
                done, remaining = self.ray.wait(remaining, num_returns=1, timeout=0.2)
                for ref in done:
                    if on_start is not None and started < len(refs):
                        started += 1
                        on_start(None)
                    yield refs[ref], self.ray.get(ref)
        except KeyboardInterrupt:  # Ctrl-C: cancel the tasks still queued or running on the cluster
            for ref in remaining:
                self.ray.cancel(ref, force=True)
            raise

    def close(self):
        pass


def make(jobs=1, ray=None, runs_per_program=1):
    """The executor for ``--jobs`` / ``--ray`` (``runs_per_program``: packs of runs, in this process only)."""
    if ray is not None:
        if jobs != 1:
            raise ValueError(f"jobs and ray cannot be combined (Ray decides the parallelism); got jobs={jobs!r}")
        return Ray(ray)
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be a positive integer; got {jobs!r}")
    return Serial(runs_per_program) if jobs == 1 else Processes(jobs)
