"""Stand-in for the backup service contract while the handler runs from the repository.

In the handler zip, ``lab.extension.package`` puts ``lab/extension/protocol.py`` itself
in this file's place, so the guest has one copy and the repository has one source.
"""

from lab.extension.protocol import *  # noqa: F403
