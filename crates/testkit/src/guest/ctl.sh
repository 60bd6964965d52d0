#!/bin/sh
# One control request: a line of base64 (a shell script) in, its output and exit status out.
read -r line
f=$(mktemp /tmp/ctl.XXXXXX)
echo "$line" | base64 -d > "$f"
sh "$f" < /dev/null 2>&1
echo "@@exit=$?"
rm -f "$f"
