"""The agent's log bundle (``waagent -collect-logs``): reading it safely and diagnosing it.

Paths inside a bundle mirror the guest's absolute paths without the leading slash
(``var/log/waagent.log``, ``etc/waagent.conf``), as the agent's log collector writes them.
"""
