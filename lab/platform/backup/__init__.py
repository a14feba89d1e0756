"""The backup service: Azure Backup's side of a VM snapshot, run inside the fabric.

A backup job pushes new settings to the VMSnapshot extension through the goal state,
follows what the real agent reports back, checks the snapshots in real storage
(Azurite) and moves them to the vault container, ending ``Completed`` or ``Failed``
with Azure's own error code and message. It only ever sees what the agent reports and
what storage says, never which fault a scenario injected.

Modules, one job each:

- :mod:`.codes`          Azure's job error codes and messages (the one table)
- :mod:`.job`            the job state machine, pure
- :mod:`.restore_point`  what a completed job leaves behind
- :mod:`.prechecks`      the checks Azure runs before a job starts, in its order
- :mod:`.disks`          names and content of the lab's disks and blobs, pure
- :mod:`.storage`        the storage seam (protocol) the jobs use
- :mod:`.azure_storage`  that seam over Azurite with azure-storage-blob
- :mod:`.provisioner`    creates the disks once storage answers
- :mod:`.agent`          the agent seam: push settings, read the agent's reports
- :mod:`.store`          jobs and restore points in SQLite
- :mod:`.runner`         runs one job: Take Snapshot, then Transfer data to vault
- :mod:`.service`        starts jobs (pre-checks, one thread each) and answers queries
"""
