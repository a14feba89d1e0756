"""The one error hierarchy of snaplab.

Every failure the user can act on is a :class:`SnaplabError`; the CLI is the only
place that turns them into messages and exit codes (tracebacks only with ``--debug``)::

    SnaplabError                 exit 1  something in the lab or the platform failed
    ├── BadInput                 exit 2  the user's input is wrong (argument, file, field)
    │   ├── UnknownAgentVersion
    │   ├── UnknownVm
    │   └── LabExists
    ├── LabNotFound              exit 2  no lab carries that name
    ├── EngineUnavailable        exit 2  no Docker engine answers and none can be installed
    ├── ImageBuildFailed         exit 1
    ├── ProvisionFailed          exit 1  a lab could not be brought up (it was torn down)
    ├── PlatformError            exit 1  an emulated endpoint did not answer as expected
    └── AzCliError               exit 1  the Azure CLI could not be installed or logged in

Errors carry data (which VM, which file) so tests can assert on more than the text.
"""

from __future__ import annotations


class SnaplabError(Exception):
    """Base of every error snaplab raises on purpose."""

    exit_code = 1


class BadInput(SnaplabError):
    """The user asked for something that cannot be done as asked."""

    exit_code = 2


class UnknownAgentVersion(BadInput):
    """An agent version the lab has no image for."""


class UnknownVm(BadInput):
    """A VM name that is not part of the lab."""


class LabExists(BadInput):
    """A lab with this name is already running."""


class LabNotFound(SnaplabError):
    """No Docker object carries this lab's label."""

    exit_code = 2


class EngineUnavailable(SnaplabError):
    """No Docker engine answers and none could be installed or started."""

    exit_code = 2


class ImageBuildFailed(SnaplabError):
    """An image recipe failed to build."""


class ProvisionFailed(SnaplabError):
    """A lab could not be brought up; what was created has been removed."""


class PlatformError(SnaplabError):
    """An emulated platform endpoint did not answer as expected."""


class AzCliError(SnaplabError):
    """The optional Azure CLI could not be installed, or set up for a lab."""
