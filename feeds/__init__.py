"""The source side of feedbot: fetch the statement page, parse it, store, render feeds.

Nothing here knows about Telegram; the ``bot`` package builds on this one.
"""
