"""The lab's VMSnapshot extension (Microsoft.Azure.RecoveryServices.VMSnapshotLinux).

``protocol`` is the contract between the backup service and the extension; the
``handler`` folder is what the guest runs (manifest, ``main/handle.sh``, the
``vmsnapshot`` package); ``package`` zips it for the fabric to serve. Everything here is
standard-library only: it runs in the fabric container and, zipped, inside the guests.
"""
