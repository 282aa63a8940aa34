"""Errors a user can act on. The command line prints their message alone, without a
traceback, and exits with status 1: the message names the file, key or value at fault."""


class LitforgeError(Exception):
    """Base of the errors whose message is the whole story."""
