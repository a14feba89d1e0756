"""Stand-in for the table of Azure durations while the handler runs from the repository.

In the handler zip, ``lab.extension.package`` puts ``lab/extension/durations.py`` itself
in this file's place, so the guest reads the platform's own table.
"""

from lab.extension.durations import *  # noqa: F403
