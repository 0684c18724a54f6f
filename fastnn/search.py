"""Random hyper-parameter search (Bergstra and Bengio 2012): sample every trial's configuration independently from
a space of distributions, run the trials on a concurrent.futures Executor, and log each result as it finishes.

>>> space = {"lr": LogUniform(1e-3, 0.3), "hidden": Choice([100, 200, 300]), "window": Int(3, 7)}
>>> def train_and_score(params):               # train with these settings, return the dev score
...     return -abs(params["lr"] - 0.05) - params["window"] / 100
>>> records = random_search(train_and_score, space, n_trials=20, seed=0, workers=1)   # log="runs.jsonl" keeps them
>>> best(records, 1)[0]["params"]             # print(format_table(records)): the best trials as a table
{'hidden': 200, 'lr': 0.029357658952819443, 'window': 3}

Reproducibility: trial i's configuration depends only on (seed, i) (np.random.default_rng([seed, i])), so a larger
`n_trials` keeps the first trials and a log can be matched trial by trial.  The log is JSON lines, one object per
finished trial ({"trial", "params", "score", "seconds", ...}), appended and fsynced as each trial finishes; rerunning
with the same log runs only the trials it does not hold.  A trial whose objective raises is logged with its "error"
and score null and does not stop the search; such trials count as done unless `retry_failed=True`.

Executors: None runs a local process pool ("spawn" start method: forking after OpenMP has started threads can hang
the child) whose workers split the CPUs' threads between them; `workers=1` runs the trials one after another in this
process.  Any other concurrent.futures.Executor works, e.g. dask.distributed's `Client(address).get_executor()`
(the objective must then be picklable and the workers must see the same files).
"""
import concurrent.futures as cf
import json
import math
import multiprocessing
import numbers
import os
import pickle
import socket
import time
import traceback
import warnings

import numpy as np

from fastnn._validation import check_bool, check_callable, check_int

__all__ = ["Uniform", "LogUniform", "Int", "Choice", "parse_space", "load_space", "sample", "random_search",
           "read_log", "best", "format_table", "local_executor"]


# ---- distributions -----------------------------------------------------------------------------------------------

def _number(x, where):
    if isinstance(x, bool) or not isinstance(x, numbers.Real) or not math.isfinite(x):
        raise ValueError(f"{where}: bounds must be finite numbers; got {x!r}.")
    return x


class Uniform:
    """Uniform on [low, high)."""
    key = "uniform"

    def __init__(self, low, high):
        self.low, self.high = float(_number(low, "uniform")), float(_number(high, "uniform"))
        if not self.low <= self.high:
            raise ValueError(f"uniform: low must be <= high; got [{low}, {high}].")

    def sample(self, rng):
        return float(rng.uniform(self.low, self.high))

    def to_json(self):
        return {self.key: [self.low, self.high]}

    def __repr__(self):
        return f"{type(self).__name__}({self.low!r}, {self.high!r})"

    def __eq__(self, other):
        return type(self) is type(other) and self.to_json() == other.to_json()


class LogUniform(Uniform):
    """log x uniform on [log low, log high): the scale of a learning rate or a regularizer."""
    key = "loguniform"

    def __init__(self, low, high):
        super().__init__(low, high)
        if not self.low > 0:
            raise ValueError(f"loguniform: bounds must be > 0; got [{low}, {high}]. Use uniform for ranges that "
                             "include 0.")

    def sample(self, rng):
        return float(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))


class Int(Uniform):
    """An integer uniform on [low, high], both ends included."""
    key = "int"

    def __init__(self, low, high):
        for x in (low, high):
            if isinstance(x, bool) or not isinstance(x, numbers.Integral):
                raise ValueError(f"int: bounds must be integers; got [{low!r}, {high!r}].")
        if not low <= high:
            raise ValueError(f"int: low must be <= high; got [{low}, {high}].")
        self.low, self.high = int(low), int(high)

    def sample(self, rng):
        return int(rng.integers(self.low, self.high, endpoint=True))


class Choice:
    """One of a list of JSON values (numbers, strings, booleans, null), each equally likely."""
    key = "choice"

    def __init__(self, options):
        if isinstance(options, (str, bytes)) or not hasattr(options, "__len__") or len(options) == 0:
            raise ValueError(f"choice: options must be a non-empty list; got {options!r}.")
        for o in options:
            if not (o is None or isinstance(o, (bool, str)) or isinstance(o, numbers.Real)):
                raise ValueError(f"choice: options must be numbers, strings, booleans or null; got {o!r}.")
        self.options = [o.item() if isinstance(o, np.generic) else o for o in options]

    def sample(self, rng):
        return self.options[int(rng.integers(len(self.options)))]

    def to_json(self):
        return {self.key: list(self.options)}

    def __repr__(self):
        return f"Choice({self.options!r})"

    def __eq__(self, other):
        return type(self) is type(other) and self.options == other.options


_KINDS = {c.key: c for c in (Uniform, LogUniform, Int, Choice)}


def parse_space(space):
    """{name: distribution} from {name: Distribution or {"uniform"|"loguniform"|"int": [low, high]} or
    {"choice": [options]}}.  Raises ValueError naming the entry that is wrong."""
    if not isinstance(space, dict) or not space:
        raise ValueError(f"search space must be a non-empty object mapping names to distributions; got {space!r}.")
    out = {}
    for name, spec in space.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"search space: names must be non-empty strings; got {name!r}.")
        if isinstance(spec, (Uniform, Choice)):
            out[name] = spec
            continue
        if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in _KINDS:
            raise ValueError(f"search space: {name!r} must be one of {{\"uniform\": [low, high]}}, "
                             f"{{\"loguniform\": [low, high]}}, {{\"int\": [low, high]}}, {{\"choice\": [...]}}; "
                             f"got {spec!r}.")
        (kind, arg), = spec.items()
        try:
            if kind == "choice":
                out[name] = Choice(arg)
            else:
                if not isinstance(arg, (list, tuple)) or len(arg) != 2:
                    raise ValueError(f"{kind}: needs [low, high]; got {arg!r}.")
                out[name] = _KINDS[kind](*arg)
        except ValueError as exc:
            raise ValueError(f"search space: {name!r}: {exc}") from None
    return out


def load_space(path):
    """parse_space of a JSON file."""
    with open(path, encoding="utf-8") as f:
        try:
            obj = json.load(f)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not valid JSON ({exc}).") from None
    try:
        return parse_space(obj)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def sample(space, seed, trial):
    """Trial `trial`'s configuration: a dict of plain Python values that depends only on (space, seed, trial).

    The names are sampled in sorted order from np.random.default_rng([seed, trial]), so the order of the space's
    entries does not matter."""
    for x, what in ((seed, "seed"), (trial, "trial")):
        check_int(x, what, "sample", low=0)
    space = parse_space(space)
    rng = np.random.default_rng([int(seed), int(trial)])
    return {name: space[name].sample(rng) for name in sorted(space)}


# ---- the log -----------------------------------------------------------------------------------------------------

def _json_default(x):
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    return str(x)


def _finite(x):
    """x with non-finite floats replaced by None (strict JSON has no NaN or Infinity)."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_finite(v) for v in x]
    return x


def _dumps(record):
    return json.dumps(record, default=_json_default, allow_nan=False)


def read_log(path, *, repair=False):
    """The records of a JSON-lines log, in file order (a trial logged twice appears twice; the later line wins).

    A last line that is not a valid record is what a process killed in mid-write leaves: it is ignored with a
    warning, and with repair=True cut off the file so that appending continues on a clean line.  A bad line anywhere
    else raises ValueError.  A missing file has no records."""
    check_bool(repair, "repair", "read_log")          # (repair="no" cut the file)
    if not os.path.exists(path):
        return []
    with open(path, "rb") as f:
        data = f.read()
    lines = data.split(b"\n")
    last = max((i for i, raw in enumerate(lines) if raw.strip()), default=-1)
    records, offset, good_end = [], 0, 0
    for i, raw in enumerate(lines[:last + 1]):
        if raw.strip():
            try:
                rec = json.loads(raw.decode("utf-8"))
                if not isinstance(rec, dict) or not isinstance(rec.get("trial"), int) or "params" not in rec:
                    raise ValueError("not a trial record")
            except ValueError as exc:
                if i < last:
                    raise ValueError(f"{path}:{i + 1}: malformed log line ({exc}); fix or delete it.") from None
                warnings.warn(f"{path}:{i + 1}: ignoring a torn last line ({len(raw)} bytes), probably left by an "
                              "interrupted search; that trial will run again.", RuntimeWarning, stacklevel=2)
                if repair:
                    with open(path, "r+b") as f:
                        f.truncate(good_end)
                        f.flush()
                        os.fsync(f.fileno())
                return records
            records.append(rec)
            good_end = offset + len(raw) + 1  # through its newline (a torn line follows it)
        offset += len(raw) + 1
    if repair and records and not data.endswith(b"\n"):
        with open(path, "ab") as f:  # a complete last record without its newline
            f.write(b"\n")
            f.flush()
            os.fsync(f.fileno())
    return records


class _Log:
    """Appends one record per line, flushed and fsynced, so a killed search loses at most the line being written."""

    def __init__(self, path):
        self.path = path
        self.f = open(path, "a", encoding="utf-8") if path else None

    def write(self, record):
        if self.f is None:
            return
        self.f.write(_dumps(record) + "\n")
        self.f.flush()
        os.fsync(self.f.fileno())

    def close(self):
        if self.f is not None:
            self.f.close()


# ---- running trials ----------------------------------------------------------------------------------------------

def _run_trial(objective, trial, params, alive=None):
    """Runs in the worker: the trial's record.  The objective's exception becomes the record's "error".

    alive : the search's file (see _alive_file) or None: when this worker sees it, the trial is stopped (a
    KeyboardInterrupt raised in it) as soon as the file says "stop" or is removed, i.e. when the search was
    interrupted: cancelling a future does not stop a call under way (a process pool's, dask's), which trained on for
    nobody; a call that starts after the stop (one a process pool had queued) does not run."""
    t0 = time.perf_counter()
    state = _search_state(alive)
    if state == "stop":
        raise KeyboardInterrupt("the search was interrupted before this trial started")
    end_watch = _stop_when_told(alive) if state is not None else None
    try:
        score, extra, error = _call(objective, params)
    finally:
        if end_watch is not None:
            end_watch()
    rec = {"trial": trial, "params": params, "score": score, "seconds": round(time.perf_counter() - t0, 3)}
    if error is not None:
        rec["error"] = error
    if extra:
        rec["info"] = extra
    rec["worker"] = f"{socket.gethostname()}:{os.getpid()}"
    return rec


def _call(objective, params):
    """(score, extra, error) of one call of the objective."""
    score, extra, error = None, None, None
    try:
        out = objective(dict(params))
        if isinstance(out, dict):
            if "score" not in out:
                raise KeyError("the objective returned a dict without a 'score' entry")
            extra = _finite(json.loads(json.dumps({k: v for k, v in out.items() if k != "score"},
                                                  default=_json_default)))
            out = out["score"]
        # (float() took "0.5" and True for scores; None, an objective without its return, failed inside float())
        if out is None or isinstance(out, (str, bytes, bool)):
            raise TypeError(f"the objective must return a number (or a dict with one as 'score'); got "
                            f"{type(out).__name__} {out!r:.40}" + (" (no return statement?)" if out is None else ""))
        score = float(out)
        if not math.isfinite(score):
            score, error = None, f"the objective returned a non-finite score ({score})"
    except Exception as exc:  # noqa: BLE001 (any failure of one trial is recorded, not fatal)
        tb = traceback.extract_tb(exc.__traceback__)
        where = f" at {os.path.basename(tb[-1].filename)}:{tb[-1].lineno}" if tb else ""
        error = f"{type(exc).__name__}: {exc}{where}"
    return score, extra, error


def _search_state(alive):
    """"run" or "stop": what the search's file says; None when there is no file or this worker does not see it."""
    try:
        with open(alive, encoding="utf-8") as f:
            return f.read().strip() or "run"
    except (OSError, TypeError):
        return None


def _stop_when_told(alive, poll=0.2):
    """Watch the search's file from a daemon thread and raise KeyboardInterrupt in this thread once it says "stop" or
    is gone (at the next Python step: a long call into C finishes first); returns the function that ends the
    watch."""
    import ctypes
    import threading

    target, done, lock = threading.get_ident(), threading.Event(), threading.Lock()

    def watch():
        while not done.wait(poll):
            if _search_state(alive) != "run":
                with lock:
                    if not done.is_set():
                        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(target),
                                                                   ctypes.py_object(KeyboardInterrupt))
                return

    threading.Thread(target=watch, name="fastnn-trial-watch", daemon=True).start()

    def end():
        with lock:
            done.set()
    return end


def _stop_trials(alive, running, timeout=10.0):
    """Tell the trials to stop (the search's file says "stop") and give the calls that cancelling did not stop (a
    process pool's running and queued ones) `timeout` seconds to end: once the file is removed, a queued call could
    no longer tell that the search is over."""
    with open(alive, "w", encoding="utf-8") as f:
        f.write("stop\n")
    cf.wait(running, timeout)


def _alive_file(log):
    """A new empty file that stands while the search runs; "stop" written in it (or its removal) stops the trials
    under way (_run_trial).  Next to the log, which the workers see (they must see the search's files), else in the
    temporary directory (local workers; a remote worker that does not see the file runs its trial to the end)."""
    import tempfile
    fd, path = tempfile.mkstemp(prefix=".fastnn-search-", suffix=".running",
                                dir=os.path.dirname(os.path.abspath(log)) if log else None)
    os.close(fd)
    return path


def _init_worker(n_threads):
    """Process-pool initializer: this worker's share of the CPUs, for fastnn's kernels, OpenMP and BLAS; the worker
    ends with this process (a killed search left its workers training for nobody)."""
    from fastnn._workers import end_with_parent
    end_with_parent()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n_threads)  # for anything that starts later (and subprocesses)
    import fastnn
    fastnn.threads(kernels=n_threads, blas=n_threads)  # the libraries already loaded read their variables at load time


def local_executor(workers=None):
    """A "spawn" process pool of `workers` processes (default: the CPUs this process may use), each limited to
    max(1, cpus // workers) threads so that the trials do not oversubscribe the machine."""
    from fastnn._threads import cpu_count
    cpus = cpu_count()
    workers = cpus if workers is None else workers
    check_int(workers, "workers", "local_executor")
    return cf.ProcessPoolExecutor(max_workers=int(workers), mp_context=multiprocessing.get_context("spawn"),
                                  initializer=_init_worker, initargs=(max(1, cpus // int(workers)),))


def _check_done(rec, space, seed, path):
    expected = sample(space, seed, rec["trial"])
    if rec["params"] != expected:
        raise ValueError(f"{path}: trial {rec['trial']} was logged with params {rec['params']} but seed {seed} and "
                         f"this space give {expected}. Use a new log, or the seed and space that wrote this one.")


def random_search(objective, space, n_trials, seed=0, *, executor=None, workers=None, log=None, retry_failed=False,
                  on_result=None):
    """Run trials 0..n_trials-1 of a random search; returns their records sorted by trial number.

    Parameters
    ----------
    objective : callable(params: dict) -> float, or a dict with a "score" entry plus any JSON-able extras (kept in
        the record's "info").  Higher or lower is better as the caller decides (see `best`).  Must be picklable for
        a process pool or dask (a module-level function or a functools.partial of one).
    space : dict, see parse_space.
    n_trials : int >= 0.
    seed : int >= 0; trial i samples from np.random.default_rng([seed, i]).
    executor : a concurrent.futures.Executor (not shut down here), e.g. ``Client(address).get_executor()``; None:
        `local_executor(workers)`, or the current process when workers == 1.
    log : path of the JSON-lines log, or None.  Records already in it are reused (and must match the sampled params,
        else ValueError); a torn last line is cut off with a warning.
    retry_failed : rerun logged trials whose score is null.
    on_result : callable(record), called in this process as each new trial finishes (progress output).

    Each record: {"trial", "params", "score" (float or None), "seconds", "worker", and "error" / "info" when present}.
    A trial that the executor itself fails (e.g. dask's KilledWorker) is returned with its error and a warning but not
    logged, so that a rerun tries it again.
    A KeyboardInterrupt cancels the trials not started, stops those under way and propagates; their work is lost,
    the finished trials are in the log.  The local pool's workers end; on an executor given, each trial's worker
    watches a file the search keeps next to the log (the temporary directory without a log), which then says
    "stop": the worker raises KeyboardInterrupt in the trial, and a call the executor had queued does not start (the
    search gives them 10 s).  A worker that does not see the file, and a long call into C, run to their end.
    """
    space = parse_space(space)
    # (checked here: a non-callable objective was logged as n_trials failed trials, each counting as done; a
    # non-callable on_result failed after the first trial)
    check_callable(objective, "objective", "random_search", "params")
    if on_result is not None:
        check_callable(on_result, "on_result", "random_search", "record")
    if executor is not None and workers is not None:
        raise ValueError("random_search: give executor or workers, not both (workers sizes the local pool).")
    check_int(n_trials, "n_trials", "random_search", low=0)
    check_bool(retry_failed, "retry_failed", "random_search")    # (retry_failed="no" reran the failed trials)
    done = {}
    if log is not None:
        for rec in read_log(log, repair=True):
            if rec["trial"] < n_trials:
                _check_done(rec, space, seed, log)
                done[rec["trial"]] = rec  # a later line for the same trial (a retry) wins
    if retry_failed:
        done = {t: r for t, r in done.items() if r.get("score") is not None}
    todo = [t for t in range(n_trials) if t not in done]
    results = dict(done)
    out = _Log(log)
    try:
        if todo and executor is None and workers == 1:
            for t in todo:
                rec = _run_trial(objective, t, sample(space, seed, t))
                out.write(rec)
                results[t] = rec
                if on_result is not None:
                    on_result(rec)
        elif todo:
            own = executor is None
            if own:
                try:  # fail now, not once per trial in the pool's feeder thread
                    pickle.dumps(objective)
                except Exception as exc:  # noqa: BLE001 (pickle raises several types)
                    raise TypeError(f"random_search: the objective must be picklable to run in worker processes "
                                    f"({type(exc).__name__}: {exc}); use a module-level function or "
                                    "functools.partial, or workers=1.") from None
            ex = local_executor(workers) if own else executor
            futures, broken, interrupted = {}, [], True
            alive = _alive_file(log)
            try:
                for t in todo:
                    futures[ex.submit(_run_trial, objective, t, sample(space, seed, t), alive)] = t
                for fut in cf.as_completed(futures):
                    t = futures[fut]
                    try:
                        rec = fut.result()
                    except cf.BrokenExecutor as exc:
                        broken.append((t, exc))  # the pool is gone: keep collecting the trials that finished
                        continue
                    except Exception as exc:  # noqa: BLE001 (the executor failed it, e.g. dask KilledWorker)
                        # not logged: the objective did not finish, so a rerun tries this trial again
                        rec = {"trial": t, "params": sample(space, seed, t), "score": None, "seconds": None,
                               "error": f"{type(exc).__name__}: {exc} (raised by the executor; not logged)"}
                        warnings.warn(f"random_search: trial {t}: {rec['error']}", RuntimeWarning, stacklevel=2)
                    else:
                        out.write(rec)
                    results[t] = rec
                    if on_result is not None:
                        on_result(rec)
                interrupted = False
            finally:
                try:
                    for fut in futures:
                        fut.cancel()      # (dask's futures are cancelled on the cluster, running or not)
                    if interrupted and not own:     # (the local pool's workers are ended below)
                        _stop_trials(alive, [f for f in futures if not f.done()])
                finally:
                    os.remove(alive)
                if own:
                    if interrupted:         # the trials under way are given up: the exit must not wait for them
                        from fastnn._workers import stop_workers
                        stop_workers(ex)
                    ex.shutdown(wait=not interrupted, cancel_futures=True)
            if broken:
                raise RuntimeError(f"random_search: a worker process died (killed, out of memory or a crash in native "
                                   f"code); trials {sorted(t for t, _ in broken)} did not finish and will run again "
                                   f"when the search is rerun with the same log. ({broken[0][1]})")
    finally:
        out.close()
    return [results[t] for t in sorted(results)]


# ---- reporting ---------------------------------------------------------------------------------------------------

def best(records, k=None, *, maximize=True):
    """The successful records, best first (ties broken by trial number); the first k if k is given."""
    if k is not None:                   # (k=-1 sliced off the last record, silently)
        check_int(k, "k", "best", low=0)
    if not isinstance(maximize, (bool, np.bool_)):      # ("no" was true)
        raise TypeError(f"best: 'maximize' must be True or False; got {maximize!r}.")
    ok = [r for r in records if r.get("score") is not None]
    ok.sort(key=lambda r: ((-r["score"] if maximize else r["score"]), r["trial"]))
    return ok if k is None else ok[:k]


def format_value(v):
    """A parameter value as the summary tables print it (floats to 4 significant digits)."""
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def format_table(records, k=10, *, maximize=True, metric="score"):
    """A plain-text table of the k best trials (one column per parameter) plus a line counting failures."""
    top = best(records, k, maximize=maximize)
    names = sorted({n for r in records for n in r["params"]})
    head = ["rank", "trial"] + names + [f"{metric} ({'higher' if maximize else 'lower'} is better)", "seconds"]
    sfmt = ".4f" if any(abs(r["score"]) >= 0.01 for r in top) else ".4g"  # aligned decimals unless all tiny
    rows = [[str(i + 1), str(r["trial"])] + [format_value(r["params"].get(n, "")) for n in names]
            + [format(r["score"], sfmt), f"{r['seconds']:.1f}" if r.get("seconds") is not None else "-"]
            for i, r in enumerate(top)]
    widths = [max(len(x) for x in col) for col in zip(head, *rows)]
    lines = ["  ".join(x.rjust(w) for x, w in zip(row, widths)) for row in [head] + rows]
    failed = [r for r in records if r.get("score") is None]
    lines.append(f"{len(records)} trials, {len(failed)} failed" + (
        f" (e.g. trial {failed[0]['trial']}: {failed[0].get('error')})" if failed else "")
        + (f"; best {len(top)} shown" if len(top) < len(records) - len(failed) else ""))
    return "\n".join(lines)
