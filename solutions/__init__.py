"""Exercise modules, one per exercise set.

``solutions/`` holds the reference answers and is the source of truth; ``exercises/`` is generated from it
by ``tools/make_exercises.py``, with every function body you are to write replaced by a stub.
"""
