#!/bin/sh
# A fake Nagios plugin for the command job tests: prints what the output
# shape named by $1 asks for and exits with its status.
case "$1" in
disk-ok)
	# check_disk 2.3.3 as Debian ships it.
	echo 'DISK OK - free space: / 80399MiB (86% inode=97%);| /=13487833088B;216442024755;243497277849;0;270552530944'
	exit 0 ;;
procs-warning)
	echo 'PROCS WARNING: 76 processes | procs=76;1;;0;'
	exit 1 ;;
critical-bare)
	echo 'CRITICAL - disk full'
	exit 2 ;;
unknown-colon)
	echo 'UNKNOWN: cannot read /proc/meminfo'
	exit 3 ;;
long-output)
	printf 'HTTP OK: HTTP/1.1 200 OK - 512 bytes\nfirst detail line\nsecond detail line\n'
	exit 0 ;;
multiline-perfdata)
	printf 'DISK WARNING - / is 91%% full | root=91%%;80;90\n/ 91%% used\n/var 40%% used | var=40%%;80;90\nboot=10%%;80;90\n'
	exit 1 ;;
status-disagrees)
	echo 'DISK WARNING - / is 91% full'
	exit 2 ;;
doubled-prefix)
	# A wrapper that puts its own status word in front of a plugin's line.
	echo 'CRITICAL - DISK CRITICAL - free space: / 1MiB (0% inode=97%);|/=1B;2;3;0;4'
	exit 2 ;;
three-word-service)
	echo 'CHECK_NRPE STATE CRITICAL: Socket timeout after 10 seconds.'
	exit 2 ;;
lowercase-service)
	echo 'backup ok - 3 files'
	exit 0 ;;
status-word-only)
	echo 'OK'
	exit 0 ;;
crlf)
	printf 'OK - fine\r\nlong line\r\n'
	exit 0 ;;
empty-critical)
	exit 2 ;;
empty-ok)
	exit 0 ;;
stderr-only)
	echo 'oops: no such device' >&2
	exit 1 ;;
stdout-and-stderr)
	echo 'LOAD OK - load average: 0.1'
	echo 'warning: deprecated option' >&2
	exit 0 ;;
huge)
	echo 'OK - a lot to say'
	head -c 300000 /dev/zero | tr '\0' x
	echo
	echo END
	exit 0 ;;
exit4)
	echo 'something odd'
	exit 4 ;;
exit127)
	echo 'sh: check_nothing: not found' >&2
	exit 127 ;;
exit255)
	exit 255 ;;
signal)
	echo 'DISK OK - about to die'
	kill -TERM $$
	sleep 5 ;;
invalid-utf8)
	printf 'OK - caf\351 | t=1\n'
	exit 0 ;;
control-chars)
	printf 'SMTP CRITICAL - 5.7.1 \033]0;TITLE\007 rejected\n\tindented \033[31mred\n'
	exit 2 ;;
esac
echo "plugin.sh: unknown shape $1"
exit 3
