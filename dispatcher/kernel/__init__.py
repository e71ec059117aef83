"""The shared kernel: what the service and the campaign domain both stand on.

States and vocabularies (:mod:`~dispatcher.kernel.states`, mirrored by the schema), the
SQL loader (:mod:`~dispatcher.kernel.sql`), time (:mod:`~dispatcher.kernel.clock`) and
MSISDN normalisation (:mod:`~dispatcher.kernel.msisdn`). The kernel imports nothing else of
``dispatcher`` or ``campaigns``; ``campaigns`` imports nothing of ``dispatcher`` but the
kernel (``tests/test_layout.py`` holds both rules).

Settings are not here: they build the policy's calendar and window, and the policy stands
on the kernel, so settings in the kernel would make kernel and policy import each other.
"""
