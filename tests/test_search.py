import concurrent.futures as cf
import json
import math
import multiprocessing
import os
import time

import numpy as np
import pytest

from fastnn import search
from fastnn.search import Choice, Int, LogUniform, Uniform

SPACE = {"lr": {"loguniform": [0.001, 0.3]}, "hidden": {"choice": [100, 200, 300]}, "window": {"int": [3, 7]},
         "dropout": {"uniform": [0.0, 0.5]}}


# Objectives are module-level so that spawned workers and dask can unpickle them by reference.
def quadratic(p):
    return -(math.log10(p["lr"]) + 1.5) ** 2 - (p["window"] - 5) ** 2 - p["dropout"]


def fails_on_big_windows(p):
    if p["window"] >= 6:
        raise FloatingPointError(f"loss diverged for window {p['window']}")
    return {"score": quadratic(p), "epochs": 3, "ppl": np.float32(12.5), "bad": float("nan")}


def dies_on_trial_window_7(p):
    if p["window"] == 7:
        os._exit(3)   # a worker killed outright (OOM killer, segfault): no exception to catch
    return quadratic(p)


def report_threads(p):
    import fastnn
    return {"score": 0.0, "threads": fastnn.get_num_threads(), "omp_env": os.environ.get("OMP_NUM_THREADS")}


# ---- distributions -----------------------------------------------------------------------------------------------

def test_distributions_ranges():
    rng = np.random.default_rng(0)
    u = [Uniform(-1.0, 2.0).sample(rng) for _ in range(4000)]
    assert min(u) >= -1 and max(u) < 2 and abs(np.mean(u) - 0.5) < 0.05
    lu = np.array([LogUniform(1e-3, 1e-1).sample(rng) for _ in range(4000)])
    assert lu.min() >= 1e-3 and lu.max() <= 1e-1
    # log-uniform: each decade equally likely, median at the geometric mean 1e-2
    assert abs(np.mean(lu < 1e-2) - 0.5) < 0.03
    ints = [Int(3, 7).sample(rng) for _ in range(2000)]
    assert all(type(i) is int for i in ints) and set(ints) == {3, 4, 5, 6, 7}   # both ends included
    assert set(Int(4, 4).sample(rng) for _ in range(10)) == {4}
    c = [Choice([100, "relu", True, None]).sample(rng) for _ in range(400)]
    assert set(map(repr, c)) == {"100", "'relu'", "True", "None"}


def test_parse_space_and_errors(tmp_path):
    sp = search.parse_space(SPACE)
    assert sp == {"lr": LogUniform(0.001, 0.3), "hidden": Choice([100, 200, 300]), "window": Int(3, 7),
                  "dropout": Uniform(0.0, 0.5)}
    bad = [({"lr": {"loguniform": [0, 1]}}, "bounds must be > 0"),
           ({"lr": {"uniform": [1, 0]}}, "low must be <= high"),
           ({"w": {"int": [3, 7.5]}}, "must be integers"),
           ({"w": {"int": [3]}}, r"needs \[low, high\]"),
           ({"h": {"choice": []}}, "non-empty list"),
           ({"h": {"normal": [0, 1]}}, "'h' must be one of"),
           ({"h": {"uniform": [0, 1], "int": [0, 1]}}, "'h' must be one of"),
           ({"h": {"uniform": [0, float("inf")]}}, "finite"),
           ({}, "non-empty object")]
    for space, msg in bad:
        with pytest.raises(ValueError, match=msg):
            search.parse_space(space)
    f = tmp_path / "s.json"
    f.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        search.load_space(str(f))
    f.write_text(json.dumps(SPACE))
    assert search.load_space(str(f)) == sp


def test_sample_depends_only_on_seed_and_trial():
    a = search.sample(SPACE, 7, 3)
    assert a == search.sample(dict(reversed(list(SPACE.items()))), 7, 3)   # entry order does not matter
    assert a != search.sample(SPACE, 7, 4) and a != search.sample(SPACE, 8, 3)
    assert json.loads(json.dumps(a)) == a                                   # exact JSON round trip
    assert type(a["window"]) is int and type(a["hidden"]) is int and type(a["lr"]) is float
    with pytest.raises(ValueError, match="'trial' must be an integer >= 0"):
        search.sample(SPACE, 0, -1)


# ---- search, log, resume -----------------------------------------------------------------------------------------

def test_sequential_search_logs_every_trial(tmp_path):
    log = tmp_path / "runs.jsonl"
    seen = []
    recs = search.random_search(quadratic, SPACE, 6, seed=1, workers=1, log=str(log), on_result=seen.append)
    assert [r["trial"] for r in recs] == list(range(6)) and len(seen) == 6
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    assert [x["trial"] for x in lines] == list(range(6))
    for r in lines:
        assert set(r) >= {"trial", "params", "score", "seconds"}
        assert r["params"] == search.sample(SPACE, 1, r["trial"])
        assert r["score"] == pytest.approx(quadratic(r["params"]))
    top = search.best(recs)
    assert top[0]["score"] == max(r["score"] for r in recs)
    assert search.best(recs, 2, maximize=False)[0]["score"] == min(r["score"] for r in recs)
    table = search.format_table(recs, k=3)
    assert "score (higher is better)" in table and "6 trials, 0 failed; best 3 shown" in table
    assert table.splitlines()[1].split()[1] == str(top[0]["trial"])


def test_failing_trials_are_logged_not_fatal(tmp_path):
    log = tmp_path / "runs.jsonl"
    recs = search.random_search(fails_on_big_windows, SPACE, 12, seed=0, workers=1, log=str(log))
    bad = [r for r in recs if r["params"]["window"] >= 6]
    good = [r for r in recs if r["params"]["window"] < 6]
    assert bad and good
    for r in bad:
        assert r["score"] is None and r["error"].startswith("FloatingPointError: loss diverged")
        assert "test_search.py" in r["error"]
    for r in good:
        assert r["score"] is not None and r["info"] == {"epochs": 3, "ppl": 12.5, "bad": None}
    lines = log.read_text().splitlines()
    assert len(lines) == 12 and "NaN" not in log.read_text()                 # strict JSON
    assert "failed (e.g. trial" in search.format_table(recs)
    # failed trials count as done...
    calls = []
    search.random_search(lambda p: calls.append(p) or 0.0, SPACE, 12, seed=0, workers=1, log=str(log))
    assert calls == []
    # ...unless retried; the retry's line wins on reread
    recs2 = search.random_search(quadratic, SPACE, 12, seed=0, workers=1, log=str(log), retry_failed=True)
    assert len(log.read_text().splitlines()) == 12 + len(bad)
    assert all(r["score"] is not None for r in recs2)
    assert {r["trial"] for r in recs2} == set(range(12))


def test_resume_after_interruption_runs_only_the_rest(tmp_path):
    log = tmp_path / "runs.jsonl"
    full = search.random_search(quadratic, SPACE, 8, seed=3, workers=1)
    search.random_search(quadratic, SPACE, 5, seed=3, workers=1, log=str(log))
    with open(log, "a") as f:                    # killed while writing trial 5's line
        f.write(json.dumps(full[5])[:37])
    calls = []

    def counting(p):
        calls.append(p)
        return quadratic(p)

    with pytest.warns(RuntimeWarning, match="torn last line"):
        recs = search.random_search(counting, SPACE, 8, seed=3, workers=1, log=str(log))
    assert calls == [search.sample(SPACE, 3, t) for t in (5, 6, 7)]
    assert [r["score"] for r in recs] == [r["score"] for r in full]
    lines = [json.loads(x) for x in log.read_text().splitlines()]          # the torn part was cut off
    assert [x["trial"] for x in lines] == list(range(8))
    # a larger N runs only the new trials; a smaller N runs nothing and returns the first N
    calls.clear()
    assert len(search.random_search(counting, SPACE, 10, seed=3, workers=1, log=str(log))) == 10 and len(calls) == 2
    calls.clear()
    assert [r["trial"] for r in search.random_search(counting, SPACE, 4, seed=3, workers=1, log=str(log))] == \
        [0, 1, 2, 3] and calls == []


def test_log_mismatch_and_corruption_are_errors(tmp_path):
    log = tmp_path / "runs.jsonl"
    search.random_search(quadratic, SPACE, 3, seed=0, workers=1, log=str(log))
    with pytest.raises(ValueError, match="trial 0 was logged with params .* Use a new log"):
        search.random_search(quadratic, SPACE, 3, seed=1, workers=1, log=str(log))
    text = log.read_text().splitlines()
    log.write_text(text[0] + "\n{garbage\n" + text[1] + "\n")
    with pytest.raises(ValueError, match=r"runs.jsonl:2: malformed log line"):
        search.read_log(str(log))
    # a complete last record without its newline is kept and the newline restored
    log.write_text("\n".join(text))
    assert len(search.read_log(str(log), repair=True)) == 3 and log.read_text().endswith("}\n")
    assert search.read_log(str(tmp_path / "missing.jsonl")) == []


def test_argument_errors():
    with pytest.raises(ValueError, match="'n_trials' must be an integer >= 0"):
        search.random_search(quadratic, SPACE, -1)
    with pytest.raises(ValueError, match="not both"):
        search.random_search(quadratic, SPACE, 1, executor=cf.ThreadPoolExecutor(1), workers=2)
    with pytest.raises(ValueError, match="'workers' must be an integer >= 1"):
        search.local_executor(0)


class _FailingExecutor(cf.ThreadPoolExecutor):
    """Fails trial 1 itself, as dask does with KilledWorker."""

    def submit(self, fn, *args, **kwargs):
        if args[1] == 1:
            f = cf.Future()
            f.set_exception(OSError("worker lost"))
            return f
        return super().submit(fn, *args, **kwargs)


def test_executor_failures_are_returned_not_logged(tmp_path):
    log = tmp_path / "runs.jsonl"
    with _FailingExecutor(2) as ex, pytest.warns(RuntimeWarning, match="trial 1: OSError: worker lost"):
        recs = search.random_search(quadratic, SPACE, 3, executor=ex, log=str(log))
    assert recs[1]["score"] is None and "raised by the executor" in recs[1]["error"]
    assert sorted(r["trial"] for r in search.read_log(str(log))) == [0, 2]
    calls = []
    search.random_search(lambda p: calls.append(p) or 1.0, SPACE, 3, workers=1, log=str(log))
    assert calls == [search.sample(SPACE, 0, 1)]
    with pytest.raises(TypeError, match="objective must be picklable"):
        search.random_search(lambda p: 0.0, SPACE, 2, workers=2)


def test_thread_pool_executor(tmp_path):
    with cf.ThreadPoolExecutor(3) as ex:
        recs = search.random_search(fails_on_big_windows, SPACE, 9, seed=2, executor=ex, log=str(tmp_path / "l"))
    ref = search.random_search(fails_on_big_windows, SPACE, 9, seed=2, workers=1)
    assert [(r["params"], r["score"], r.get("error", "")[:30]) for r in recs] == \
        [(r["params"], r["score"], r.get("error", "")[:30]) for r in ref]


def test_local_process_pool_splits_the_threads(tmp_path):
    from fastnn._threads import cpu_count
    recs = search.random_search(report_threads, {"x": {"uniform": [0, 1]}}, 4, seed=0, workers=2,
                                log=str(tmp_path / "l.jsonl"))
    share = max(1, cpu_count() // 2)
    assert all(r["score"] == 0.0 for r in recs), recs
    assert {r["info"]["omp_env"] for r in recs} == {str(share)}
    import fastnn
    if fastnn.openmp_enabled():
        assert {r["info"]["threads"] for r in recs} == {share}
    assert all(r["worker"].split(":")[1] != str(os.getpid()) for r in recs)  # ran in other processes
    recs2 = search.random_search(quadratic, SPACE, 5, seed=4, workers=2)
    assert [r["score"] for r in recs2] == [quadratic(search.sample(SPACE, 4, t)) for t in range(5)]


def test_dead_worker_stops_the_search_and_a_rerun_finishes_it(tmp_path):
    log = tmp_path / "runs.jsonl"
    n = 6
    assert any(search.sample(SPACE, 0, t)["window"] == 7 for t in range(n))
    with pytest.raises(RuntimeError, match="a worker process died.*will run again"):
        search.random_search(dies_on_trial_window_7, SPACE, n, seed=0, workers=2, log=str(log))
    logged = search.read_log(str(log))
    assert all(r["params"]["window"] != 7 and r["score"] is not None for r in logged)
    recs = search.random_search(quadratic, SPACE, n, seed=0, workers=1, log=str(log))
    assert [r["score"] for r in recs] == [quadratic(search.sample(SPACE, 0, t)) for t in range(n)]


def test_dask_local_cluster(tmp_path):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cl, \
            distributed.Client(cl) as client:
        ex = client.get_executor()
        log = tmp_path / "runs.jsonl"
        recs = search.random_search(fails_on_big_windows, SPACE, 6, seed=5, executor=ex, log=str(log))
        more = search.random_search(fails_on_big_windows, SPACE, 8, seed=5, executor=ex, log=str(log))
    ref = search.random_search(fails_on_big_windows, SPACE, 8, seed=5, workers=1)
    assert [r["score"] for r in more] == [r["score"] for r in ref]
    assert [r["trial"] for r in recs] == list(range(6))
    assert len(log.read_text().splitlines()) == 8 and any("error" in r for r in more)


def slow_unless_stopped(p, steps=3000):
    """A trial of a minute in small Python steps (as a training loop's batches); a file says it ran to its end.
    Counted in steps, not by the clock: a process paused (SIGSTOP) for a minute must not find its trial over."""
    for _ in range(steps):
        time.sleep(0.02)
    with open(os.path.join(p["dir"], f"finished-{os.getpid()}-{time.monotonic_ns()}"), "w"):
        pass
    return 0.0


def _interrupt_after(seconds):
    """Ctrl-C to this process (a signal: it wakes a main thread waiting on a lock, as _thread.interrupt_main
    does not) in `seconds`."""
    import signal
    import threading
    timer = threading.Timer(seconds, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    return timer


@pytest.fixture
def ctrl_c_raises():
    """SIGINT raises KeyboardInterrupt during the test, also where pytest inherited it ignored (a job started in the
    background by a non-interactive shell, as `cmd &` in a CI script: Python then keeps SIGINT ignored)."""
    import signal
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, old)


@pytest.mark.parametrize("kind", ["processes", "threads"])
def test_an_interrupted_search_stops_the_trials_under_way_of_an_executor_given(tmp_path, kind, ctrl_c_raises):
    """Ctrl-C in a search on an executor given (a process pool of one's own, dask) cancelled the trials not started
    but left those under way training for nobody: the pool's shutdown (or the interpreter's exit) waited for them.
    They stop now: the search's file next to the log says so, and each trial's worker raises KeyboardInterrupt in
    it."""
    space = {"dir": {"choice": [str(tmp_path)]}}
    log = tmp_path / "runs.jsonl"
    ex = (cf.ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) if kind == "processes"
          else cf.ThreadPoolExecutor(2))
    try:
        list(ex.map(abs, [1, 2]))                       # (the workers started: spawning takes a while)
        timer = _interrupt_after(2.0)
        with pytest.raises(KeyboardInterrupt):
            search.random_search(slow_unless_stopped, space, 4, executor=ex, log=str(log))
        timer.cancel()
        t0 = time.monotonic()
    finally:
        ex.shutdown(wait=True)                          # waits for the trials under way
    assert time.monotonic() - t0 < 20, "the trials under way were not stopped"
    assert not list(tmp_path.glob("finished-*")) and not list(tmp_path.glob(".fastnn-search-*"))
    assert search.read_log(str(log)) == []


def test_an_interrupted_search_stops_its_trials_on_dask(tmp_path, ctrl_c_raises):
    distributed = pytest.importorskip("distributed", reason="dask.distributed is not installed (pip install "
                                                            "'fastnn[distributed]'); the process-pool test covers "
                                                            "the same stop")
    space = {"dir": {"choice": [str(tmp_path)]}}
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cl, \
            distributed.Client(cl) as client:
        ex = client.get_executor()
        timer = _interrupt_after(2.0)
        with pytest.raises(KeyboardInterrupt):
            search.random_search(slow_unless_stopped, space, 4, executor=ex, log=str(tmp_path / "runs.jsonl"))
        timer.cancel()
        t0 = time.monotonic()
        while time.monotonic() - t0 < 20 and any(t.name.startswith("fastnn-trial-watch")
                                                 for t in __import__("threading").enumerate()):
            time.sleep(0.1)
        assert time.monotonic() - t0 < 20, "the trials under way were not stopped"
    assert not list(tmp_path.glob("finished-*"))
