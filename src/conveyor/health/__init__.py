"""Release health: pure evaluation of node health reports over a soak window."""

from conveyor.health.timeline import (
    EntityHealth,
    HealthState,
    Report,
    Weekends,
    evaluate,
    sort_reports,
)

__all__ = ["EntityHealth", "HealthState", "Report", "Weekends", "evaluate", "sort_reports"]
