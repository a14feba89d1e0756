"""The lab's VMSnapshot handler: what the agent runs for install/enable/... in the guest.

It behaves like Microsoft's VMSnapshotLinux: ``enable`` reads the newest settings,
writes a ``transitioning`` status and detaches a worker that runs the pre-script, the
consistency step, the blob snapshots and the post-script, then writes the final status
and uploads it to the status blob. Standard library only (the guest's ``python3``).
"""
