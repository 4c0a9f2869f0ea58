"""The feedbot process: command line and roles, the composition root, the poller,
the web server and its pages, settings, logging, operator alerts and the
database copy. It builds on ``feeds`` (the source side) and ``bot`` (Telegram).
"""
