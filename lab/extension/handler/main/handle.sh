#!/bin/sh
# The command the agent runs for every operation (HandlerManifest.json), with the handler
# directory as cwd. Picks the guest's python3 and runs main/handle.py with the operation;
# exit 3 = no python3. It logs to shell.log in the handler's log folder in the shape of
# the real extension's handle.sh (VMBackup/main/handle.sh): `date -u`, "- ", the message
# ("ConfigSequenceNumber from environment variable seqNo:N", "python3 path exists",
# "python version unknown", "N returned from handle.py"). Unlike the real one, which
# answers install/uninstall/update/disable from the shell, every operation runs Python.
operation="$1"
handler_dir=$(pwd)
log_folder=$(sed -n 's/.*"logFolder": *"\([^"]*\)".*/\1/p' HandlerEnvironment.json 2>/dev/null | head -n 1)
[ -n "$log_folder" ] || log_folder=/var/log/azure/Microsoft.Azure.RecoveryServices.VMSnapshotLinux
mkdir -p "$log_folder" 2>/dev/null
shell_log="$log_folder/shell.log"

say() {
    echo "$(date -u)- $*" >> "$shell_log" 2>/dev/null
}

if [ "$operation" = "enable" ]; then
    if [ -n "${ConfigSequenceNumber:-}" ]; then
        say "ConfigSequenceNumber from environment variable seqNo:$ConfigSequenceNumber"
    else
        say "ConfigSequenceNumber not found in environment variable seqNo:-1"
    fi
else
    say "The command is $operation"
fi
python=""
for candidate in /usr/bin/python3 /usr/local/bin/python3 "$(command -v python3 2>/dev/null)"; do
    if [ -n "$candidate" ] && [ -x "$candidate" ]; then
        python="$candidate"
        break
    fi
done
if [ -z "$python" ]; then
    say "python version unknown"
    say "3 returned from handle.py"
    exit 3
fi
say "$(basename "$python") path exists ($python)"
"$python" "$handler_dir/main/handle.py" "$operation"
rc=$?
say "$rc returned from handle.py"
exit $rc
