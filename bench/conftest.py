"""Make `pytest bench` collect bench/bench_*.py (the project's python_files only matches test_*.py).

A file named on the command line is collected by pytest itself, so it is skipped here to avoid collecting it twice.
"""
import pytest


def pytest_collect_file(file_path, parent):
    if (file_path.suffix == ".py" and file_path.name.startswith("bench_")
            and not parent.session.isinitpath(file_path)):
        return pytest.Module.from_parent(parent, path=file_path)
    return None
