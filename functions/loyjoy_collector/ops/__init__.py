"""Operator tooling: the command line and what it runs (bootstrap, dev, rows, replay, erase, check).

None of it serves requests: the request path is `handler.py` and the modules it imports, one level up.
"""
