"""Experiments that show why RNNs are hard to train, on the adding problem (fastnn.data.adding) and on handwritten
digits read one pixel per step (fastnn.data.digits):

- adding: tanh, sigmoid, ReLU and IRNN networks trained with the same budget (test MSE against steps);
- gradients: ||d loss / d h_t|| against the distance from the loss, before and after training;
- clipping: one exploding setup without clipping, with norm clipping and with element-wise clipping (of the BPTT
  error and of the summed gradient), each threshold from the mean-norm heuristic, plus a threshold sweep;
- digits: IRNN, ReLU, tanh and LSTM classifiers of 8x8 digits, plain and permuted pixel order, best of a small grid;
- plots: the PNGs (matplotlib optional).

Run them with `fastnn experiment adding|gradients|clipping|digits ...` or bench/rnn_*.py.
"""
import contextlib
import math
import numbers


def jsonable(obj):
    """obj with non-finite floats replaced by None (strict JSON has no NaN or Infinity) and numpy scalars made
    Python numbers."""
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if hasattr(obj, "item") and not hasattr(obj, "__len__"):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def save_json(path, obj):
    """Write jsonable(obj) as JSON, atomically."""
    import json

    from fastnn import io
    data = json.dumps(jsonable(obj), allow_nan=False).encode()
    io.atomic_write(path, lambda f: f.write(data))


def settings_for(where, defaults, settings, *, steps=None, **choices):
    """dict(defaults, **settings) once settings holds only known keys (TypeError otherwise); steps, when not None,
    replaces "steps"; each choices entry name=(values, allowed) checks that every value is allowed (ValueError)."""
    unknown = set(settings) - set(defaults)
    if unknown:
        raise TypeError(f"{where}: unknown settings {sorted(unknown)}; known: {sorted(defaults)}.")
    for name, (values, allowed) in choices.items():
        for v in check_list(values, f"{name}s", where):
            if v not in allowed:
                raise ValueError(f"{where}: each {name} must be one of {allowed}; got {v!r}.")
    s = dict(defaults, **settings)
    if steps is not None:
        s["steps"] = steps
    if "n_test" in s:                   # (n_test=0 reported a test MSE of nan)
        from fastnn._validation import check_int
        check_int(s["n_test"], "n_test", where)
    return s


def check_list(values, name, where):
    """`values` (an option taking several: models, orders, modes) as a list, read once: a caller uses what this
    returns (a generator was used up by the check, and the run then trained nothing and returned []).  One string is
    a TypeError (its letters were read as the values: "got 't'" for models="tanh"), and so is a non-iterable."""
    if isinstance(values, (str, bytes)):
        raise TypeError(f"{where}: '{name}' must be a list; got the string {values!r}. Pass [{values!r}].")
    try:
        return list(values)
    except TypeError:                   # (a number was "'int' object is not iterable")
        raise TypeError(f"{where}: '{name}' must be a list; got {type(values).__name__} {values!r:.60}.") from None


def check_grid(where, grid):
    """grid["lr"] and grid["clip"] are non-empty lists of numbers > 0 (ValueError otherwise); returns dict(grid)."""
    if not isinstance(grid, dict):      # (a list was "cannot convert dictionary update sequence element #0")
        raise TypeError(f"{where}: 'grid' must be a dict like {{'lr': [0.01, 0.1], 'clip': [1.0, 10.0]}} or None; got "
                        f"{type(grid).__name__} {grid!r:.60}.")
    grid = dict(grid)
    for key in ("lr", "clip"):
        vals = grid.get(key)
        if isinstance(vals, numbers.Real):          # (a number was "'float' object is not iterable")
            raise TypeError(f"{where}: grid[{key!r}] must be a list of numbers > 0; got the number {vals!r}. Pass "
                            f"[{vals!r}].")
        if not vals or any(isinstance(v, bool) or not isinstance(v, numbers.Real) or not v > 0 for v in vals):
            raise ValueError(f"{where}: grid[{key!r}] must be a non-empty list of numbers > 0; got {vals!r}.")
    return grid


def map_jobs(fn, jobs, workers=1, on_result=None):
    """[fn(job) for job in jobs], run in `workers` spawned processes when workers > 1 (results in job order);
    on_result(result) is called as each one arrives (progress lines).  fn must be a module-level function."""
    if isinstance(workers, bool) or not isinstance(workers, numbers.Integral) or workers < 1:
        raise ValueError(f"map_jobs: 'workers' must be an int >= 1; got {workers!r}.")
    out = []
    with contextlib.ExitStack() as stack:
        if workers > 1 and len(jobs) > 1:
            import concurrent.futures
            import multiprocessing
            # spawn, not fork: a forked child of a process whose OpenMP runtime has started can hang
            from fastnn._workers import end_with_parent, stop_workers
            ctx = multiprocessing.get_context("spawn")
            pool = stack.enter_context(concurrent.futures.ProcessPoolExecutor(workers, mp_context=ctx,
                                                                              initializer=end_with_parent))
            # interrupted (Ctrl-C, SIGTERM): end the jobs under way rather than wait for them (nothing keeps them)
            stack.push(lambda kind, e, tb: kind is not None and stop_workers(pool))
            results = pool.map(fn, jobs)
        else:
            results = map(fn, jobs)
        for r in results:
            out.append(r)
            if on_result:
                on_result(r)
    return out
