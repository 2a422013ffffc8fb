"""Release health: pure evaluation of node health reports over a soak window."""

from conveyor.health.columnar import (
    Columns,
    columns_from_reports,
    evaluate_columns,
)
from conveyor.health.timeline import (
    EntityHealth,
    HealthState,
    Report,
    Weekends,
    evaluate,
    sort_reports,
)

__all__ = [
    "Columns",
    "EntityHealth",
    "HealthState",
    "Report",
    "Weekends",
    "columns_from_reports",
    "evaluate",
    "evaluate_columns",
    "sort_reports",
]
