"""The service side of feedbot: command line, scheduler, HTTP server and Telegram bot.

Built on ``feeds`` (the source side), which knows nothing of this package.
"""
