"""``python -m research.batch``: a grid worker process (see :mod:`research.batch.executors`)."""
from research.batch.executors import _worker_main

if __name__ == "__main__":  # pragma: no cover - grid worker process
    _worker_main()
