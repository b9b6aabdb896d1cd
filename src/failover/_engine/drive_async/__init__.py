"""The async driver: the only code of the engine that awaits.

It sequences the decisions of :mod:`failover._engine.decide` (and the policies' hooks) and
does what they cannot: awaiting the operation, sleeping, queueing for bulkhead slots, racing
hedge lanes, asking the fleet for leases. Runs on asyncio and trio alike (anyio).
"""

from failover._engine.drive_async.walk import start

__all__ = ["start"]
