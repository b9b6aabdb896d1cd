"""``failover demo``: fake providers that fail like real ones, a bundled config and scenarios.

Needs the ``http`` extra (httpx, h11); ``rich`` (the ``cli`` extra) draws the progress bar.
"""
