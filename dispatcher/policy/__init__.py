"""Pure policy: functions of their inputs and an explicit ``now``, no I/O."""
