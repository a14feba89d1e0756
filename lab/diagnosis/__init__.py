"""``diagnose``: run the checks for a VM and name the causes, with evidence and runbook.

The rules (:mod:`lab.diagnosis.rules`) map failing checks to the catalog's cause ids;
nothing here knows which fault was injected — only what the checks observed.
"""

from lab.diagnosis.engine import causes_from, diagnose, diagnose_context
from lab.diagnosis.model import Cause, Diagnosis, runbook_path
from lab.diagnosis.rules import CAUSE_IDS, RULES, Rule

__all__ = [
    "CAUSE_IDS",
    "RULES",
    "Cause",
    "Diagnosis",
    "Rule",
    "causes_from",
    "diagnose",
    "diagnose_context",
    "runbook_path",
]
