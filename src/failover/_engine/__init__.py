"""The engine: one call down a route, driven by the pure decisions of ``failover._core`` and
the policies of ``failover.policies``. Only the drivers await."""
