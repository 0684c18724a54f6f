"""What every process pool of fastnn (tagger ensembles, random search, experiments) asks of its worker processes."""
import multiprocessing
import multiprocessing.connection
import os
import threading


def end_with_parent(before_exit=None):
    """In a pool's worker process: end this process when its parent ends (killed: `kill -9`, a job's time limit),
    after before_exit() if given (e.g. stop the work under way, writing its checkpoint).  A worker whose parent died
    worked on for nobody, then waited for work for ever: it holds both ends of the pool's pipes, so no end of file
    comes.  Watches the parent's sentinel from a daemon thread; a pool initializer calls it."""
    parent = multiprocessing.parent_process()
    if parent is None:                      # not a multiprocessing child
        return

    def watch():
        multiprocessing.connection.wait([parent.sentinel])
        if before_exit is not None:
            before_exit()
        os._exit(1)
    threading.Thread(target=watch, name="fastnn-end-with-parent", daemon=True).start()


def stop_workers(executor):
    """Terminate the worker processes of a concurrent.futures.ProcessPoolExecutor whose work is given up (an
    interrupted search: its trials are not checkpointed).  Without it the interpreter's exit waits for the running
    calls to end (each a whole training run) after the pool was shut down without waiting."""
    for p in list((getattr(executor, "_processes", None) or {}).values()):
        p.terminate()
