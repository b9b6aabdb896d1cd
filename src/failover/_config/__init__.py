"""Configuration: ``AI_*`` variables and ``failover.toml`` -> a validated plan -> routes."""
