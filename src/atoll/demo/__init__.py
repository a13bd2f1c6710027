"""``atoll demo``: a whole lab on one laptop — tenants in five sectors, live devices, faults, AI.

>>> from atoll.demo import LAB
>>> sorted(t.template for t in LAB)
['construction', 'finance', 'healthcare', 'manufacturing', 'retail']
"""

from atoll.demo.lab import LAB, LabTenant
from atoll.demo.runner import DemoOptions, DemoSummary, run_demo

__all__ = ["LAB", "DemoOptions", "DemoSummary", "LabTenant", "run_demo"]
