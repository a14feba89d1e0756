#!/bin/sh
# The command the agent runs for every operation (HandlerManifest.json), with the handler
# directory as cwd. Logs its own lines to shell.log in the handler's log folder, picks
# the guest's python3 and runs main/handle.py with the operation; exit 3 = no python3.
operation="$1"
handler_dir=$(pwd)
log_folder=$(sed -n 's/.*"logFolder": *"\([^"]*\)".*/\1/p' HandlerEnvironment.json 2>/dev/null | head -n 1)
[ -n "$log_folder" ] || log_folder=/var/log/azure/Microsoft.Azure.RecoveryServices.VMSnapshotLinux
mkdir -p "$log_folder" 2>/dev/null
shell_log="$log_folder/shell.log"

say() {
    echo "$(date -u '+%Y-%m-%dT%H:%M:%SZ') [$$] $*" >> "$shell_log" 2>/dev/null
}

say "operation '$operation' in $handler_dir (ConfigSequenceNumber=${ConfigSequenceNumber:-unset})"
python=""
for candidate in /usr/bin/python3 /usr/local/bin/python3 "$(command -v python3 2>/dev/null)"; do
    if [ -n "$candidate" ] && [ -x "$candidate" ]; then
        python="$candidate"
        break
    fi
done
if [ -z "$python" ]; then
    say "no python3 found: cannot run the handler"
    exit 3
fi
say "running $python main/handle.py $operation"
"$python" "$handler_dir/main/handle.py" "$operation"
rc=$?
say "main/handle.py $operation exited $rc"
exit $rc
