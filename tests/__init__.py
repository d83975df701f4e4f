"""Test package. Being a package keeps pytest from putting ``tests/`` itself on ``sys.path``, where
``tests/eventstudy`` would shadow the PyPI ``eventstudy`` package that the benchmark test compares with."""
