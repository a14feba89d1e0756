"""Customer cases: a case file (``case.yaml``) that says what a customer's VMs are and what
their backup did, and the lab that is built from it (``snaplab case up|run|export``).

* :mod:`lab.cases.model` — the file's shape (pydantic, strict);
* :mod:`lab.cases.load` — read and validate a file (one-line errors), write one back;
* :mod:`lab.cases.build` — realise a case as a lab with the lab's own mechanisms;
* :mod:`lab.cases.compare` — a backup job's outcome against the customer's symptom.

The schema is documented in ``docs/case-file.md``.
"""
