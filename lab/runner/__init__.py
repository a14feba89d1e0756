"""Run scenarios through their lifecycle, one lab each, and record every phase.

The package, by job:

- :mod:`~lab.runner.phases`: the lifecycle as data, a table of named phases over a
  :class:`RunContext`; :mod:`~lab.runner.without_fix`: the lifecycle that proves a
  runbook needs its fix;
- :mod:`~lab.runner.variants`: a run as a list of items, a scenario and a variant
  (``catalog``, ``without-fix``, ``scale=N``, ``agent=VERSION``), parsed from the CLI;
- :mod:`~lab.runner.engine`: runs one scenario's phases in order and records each;
- :mod:`~lab.runner.catalog`: many items, each in its own lab, on a thread pool,
  into one journal (Ctrl-C handling lives here);
- :mod:`~lab.runner.drivers`: everything outside the process, behind a protocol, so the
  engine is tested with fakes and run with :class:`DockerDrivers`;
- :mod:`~lab.runner.drill`: labs for people (``up --scenario``, ``inject``).

The names below are the package's interface; import them from ``lab.runner``.
"""

from lab.runner.catalog import (
    DEFAULT_LAB_PREFIX,
    LAB_PREFIX_MAX,
    RunOptions,
    check_lab_prefix,
    lab_name,
    run_catalog,
)
from lab.runner.drill import ScenarioFailed, apply_fault, prepare_lab, provision_scenario
from lab.runner.drivers import Diagnosis, DockerDrivers, Drivers, env_exports, repo_root
from lab.runner.engine import Observer, new_record, run_scenario
from lab.runner.phases import (
    KEEP_CHOICES,
    PHASES,
    SETUP_PHASES,
    Keep,
    Phase,
    PhaseFailed,
    PhaseSkipped,
    RunContext,
)
from lab.runner.variants import (
    CATALOG,
    LIFECYCLES,
    RunItem,
    Variant,
    parse_variant,
    plan_run,
)
from lab.runner.without_fix import WITHOUT_FIX_PHASES

__all__ = [
    "CATALOG",
    "DEFAULT_LAB_PREFIX",
    "KEEP_CHOICES",
    "LAB_PREFIX_MAX",
    "LIFECYCLES",
    "PHASES",
    "SETUP_PHASES",
    "WITHOUT_FIX_PHASES",
    "Diagnosis",
    "DockerDrivers",
    "Drivers",
    "Keep",
    "Observer",
    "Phase",
    "PhaseFailed",
    "PhaseSkipped",
    "RunContext",
    "RunItem",
    "RunOptions",
    "ScenarioFailed",
    "Variant",
    "apply_fault",
    "check_lab_prefix",
    "env_exports",
    "lab_name",
    "new_record",
    "parse_variant",
    "plan_run",
    "prepare_lab",
    "provision_scenario",
    "repo_root",
    "run_catalog",
    "run_scenario",
]
