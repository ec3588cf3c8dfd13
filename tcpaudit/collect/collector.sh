# tcpaudit collector (framed-dump format 1). Read-only POSIX sh; works with dash and busybox ash.
#
# Run it as `sh -s < collector.sh` (that is what `tcpaudit host user@H` and `tcpaudit fleet` do over SSH)
# or `sh collector.sh > dump.txt`, then `tcpaudit audit dump.txt`.
# It writes nothing anywhere (no files, no temp files, no history); it only reads /proc, /sys and
# /etc/os-release and runs ss, iptables-save (as root) and uname, grep, cat, head, sed.
#
# Output: marker lines start with "@@tcpaudit-"; every content line is prefixed with "|", so nothing a
# file or a command prints can ever look like a marker. Empty lines are separators.
#   @@tcpaudit-collector 1
#   @@tcpaudit-begin ITEM
#   |content...
#   @@tcpaudit-stderr ITEM            (only when the command wrote to stderr)
#   |stderr...
#   @@tcpaudit-end ITEM rc=N
#   @@tcpaudit-gap ITEM REASON DETAIL (something that could not be read, and why)
#   @@tcpaudit-done
# Persisted sysctl configuration (tcpaudit/collect/persisted.py): sysctl-conf-index lists the candidate files
# ("N PATH", at most 256), then sysctl-conf.N holds each one's first 10001 lines, cut at 8192 characters.
# Caps (must match tcpaudit/collect/dump.py): ss 200000 lines, ss-detail 100002 lines, /proc/net/tcp*
# 200001 lines (header + 200000); one line more is printed so the reader can tell a capped table from a complete one.
set -f
unset HISTFILE 2>/dev/null
LC_ALL=C
export LC_ALL

_tca_have() { command -v "$1" >/dev/null 2>&1; }

if _tca_have sed; then
    _tca_prefix() { sed 's/^/|/'; }
else
    _tca_prefix() { while IFS= read -r _tca_l || [ -n "$_tca_l" ]; do printf '|%s\n' "$_tca_l"; done; }
fi

if _tca_have head; then
    _tca_cap() { if [ "$1" -gt 0 ]; then head -n "$1"; else cat; fi; }
else
    _tca_cap() { cat; }
fi

_tca_gap() { printf '@@tcpaudit-gap %s %s %s\n' "$1" "$2" "$3"; }

# _tca_run ITEM CAP CMD [ARG...]: frame the first CAP lines (0: all) of CMD's stdout as ITEM,
# then its stderr (if any) and its exit status. Nothing is written to disk: stderr is kept in a variable.
_tca_run() {
    _tca_i=$1
    _tca_c=$2
    shift 2
    printf '@@tcpaudit-begin %s\n' "$_tca_i"
    _tca_r=$( { { "$@" 2>&4 3>&-; printf '\n@@rc=%s\n' "$?" >&4; } | _tca_cap "$_tca_c" | _tca_prefix >&3; } 4>&1 )
    printf '\n'
    _tca_rc=${_tca_r##*@@rc=}
    _tca_e=${_tca_r%@@rc=*}
    case $_tca_e in
    *[![:space:]]*)
        printf '@@tcpaudit-stderr %s\n' "$_tca_i"
        printf '%s\n' "$_tca_e" | _tca_prefix
        printf '\n'
        ;;
    esac
    printf '@@tcpaudit-end %s rc=%s\n' "$_tca_i" "$_tca_rc"
}

# _tca_file ITEM PATH [CAP]: a file's content, or a gap saying why not (the reader classifies cat's error).
_tca_file() {
    if [ -e "$2" ]; then
        _tca_run "$1" "${3:-0}" cat "$2"
    else
        _tca_gap "$1" missing "$2: No such file or directory"
    fi
}

_tca_marker() {
    if [ -e "$2" ]; then
        printf '@@tcpaudit-begin %s\n@@tcpaudit-end %s rc=0\n' "$1" "$1"
    fi
}

# _tca_conf_list: the *.conf files of the sysctl.d directories in `sysctl --system` directory order, then
# /etc/sysctl.conf, one per line (names with a newline cannot be framed and are skipped). Globbing is off
# everywhere else (set -f); it is switched on only for these fixed patterns.
_tca_conf_list() {
    for _tca_d in /etc/sysctl.d /run/sysctl.d /usr/local/lib/sysctl.d /usr/lib/sysctl.d /lib/sysctl.d; do
        [ -d "$_tca_d" ] || continue
        set +f
        for _tca_f in "$_tca_d"/*.conf; do
            set -f
            case $_tca_f in
            *"
"*) continue ;;
            esac
            if [ -e "$_tca_f" ] || [ -L "$_tca_f" ]; then
                printf '%s\n' "$_tca_f"
            fi
        done
        set -f
    done
    if [ -e /etc/sysctl.conf ] || [ -L /etc/sysctl.conf ]; then
        printf '%s\n' /etc/sysctl.conf
    fi
}

_tca_conf_cat() {
    if _tca_have cut; then
        cat "$1" | cut -c 1-8192
    else
        cat "$1"
    fi
}

# Both passes read the list from a pipe (no here-document: some shells back those with a temporary file).
_tca_persisted() {
    _tca_list=$(_tca_conf_list)
    printf '@@tcpaudit-begin sysctl-conf-index\n'
    printf '%s\n' "$_tca_list" | {
        _tca_n=0
        while IFS= read -r _tca_f; do
            [ -n "$_tca_f" ] || continue
            _tca_n=$((_tca_n + 1))
            [ "$_tca_n" -le 256 ] || break
            printf '|%s %s\n' "$_tca_n" "$_tca_f"
        done
        printf '\n@@tcpaudit-end sysctl-conf-index rc=0\n'
        if [ "$_tca_n" -gt 256 ]; then
            _tca_gap sysctl-conf truncated "more than 256 files; the first 256 were read"
        fi
    }
    printf '%s\n' "$_tca_list" | {
        _tca_n=0
        while IFS= read -r _tca_f; do
            [ -n "$_tca_f" ] || continue
            _tca_n=$((_tca_n + 1))
            [ "$_tca_n" -le 256 ] || break
            if [ ! -e "$_tca_f" ]; then
                _tca_gap "sysctl-conf.$_tca_n" missing "dangling link"
            elif [ -d "$_tca_f" ]; then
                _tca_gap "sysctl-conf.$_tca_n" error "$_tca_f: Is a directory"
            elif [ ! -r "$_tca_f" ]; then
                _tca_gap "sysctl-conf.$_tca_n" permission_denied "$_tca_f: Permission denied"
            else
                _tca_run "sysctl-conf.$_tca_n" 10001 _tca_conf_cat "$_tca_f" </dev/null
            fi
        done
    }
}

_tca_euid() {
    _tca_u=
    if [ -r /proc/self/status ]; then
        while IFS= read -r _tca_l; do
            case $_tca_l in
            Uid:*)
                set -- $_tca_l
                _tca_u=${3:-}
                break
                ;;
            esac
        done </proc/self/status
    fi
    if [ -z "$_tca_u" ] && _tca_have id; then
        _tca_u=$(id -u 2>/dev/null)
    fi
    printf '%s' "$_tca_u"
}

_tca_main() {
    exec 3>&1
    printf '@@tcpaudit-collector 1\n'

    if [ -r /proc/sys/kernel/hostname ]; then
        _tca_run hostname 0 cat /proc/sys/kernel/hostname
    else
        _tca_run hostname 0 uname -n
    fi
    if [ -r /proc/sys/kernel/osrelease ]; then
        _tca_run osrelease 0 cat /proc/sys/kernel/osrelease
    else
        _tca_run osrelease 0 uname -r
    fi
    _tca_file proc_version /proc/version
    if [ -r /proc/version_signature ]; then
        _tca_run version_signature 0 cat /proc/version_signature
    fi
    if [ -r /etc/os-release ]; then
        _tca_run os-release 0 cat /etc/os-release
    elif [ -r /usr/lib/os-release ]; then
        _tca_run os-release 0 cat /usr/lib/os-release
    else
        _tca_gap os-release missing "no /etc/os-release or /usr/lib/os-release"
    fi
    _tca_file uptime /proc/uptime
    _tca_file netstat /proc/net/netstat
    _tca_file snmp /proc/net/snmp
    _tca_file sockstat /proc/net/sockstat
    _tca_file sockstat6 /proc/net/sockstat6
    _tca_file nf_conntrack_stat /proc/net/stat/nf_conntrack
    for _tca_d in sys_vendor product_name bios_vendor chassis_asset_tag board_vendor; do
        _tca_file "dmi.$_tca_d" "/sys/class/dmi/id/$_tca_d"
    done
    _tca_file cgroup /proc/1/cgroup
    _tca_marker marker.dockerenv /.dockerenv
    _tca_marker marker.containerenv /run/.containerenv
    _tca_marker marker.k8s-serviceaccount /var/run/secrets/kubernetes.io/serviceaccount
    if [ -n "${KUBERNETES_SERVICE_HOST:-}" ]; then
        printf '@@tcpaudit-begin env.kubernetes\n@@tcpaudit-end env.kubernetes rc=0\n'
    fi

    _tca_dirs=
    for _tca_d in ipv4 ipv6 core netfilter; do
        if [ -d "/proc/sys/net/$_tca_d" ]; then
            _tca_dirs="$_tca_dirs /proc/sys/net/$_tca_d"
        else
            _tca_gap "sysctl:net.$_tca_d" missing "/proc/sys/net/$_tca_d does not exist"
        fi
    done
    if [ -n "$_tca_dirs" ]; then
        # word splitting of $_tca_dirs is intended; set -f rules out globbing. Secrets (IPv6 stable_secret,
        # tcp_fastopen_key, netdev_rss_key) are not read where grep has --exclude (GNU; not busybox: the
        # parser drops them there); exit 2 = unknown option.
        if grep --exclude=x -s '' /dev/null 2>/dev/null || [ $? -lt 2 ]; then
            _tca_run sysctls 0 grep -r --exclude=stable_secret --exclude=tcp_fastopen_key \
                --exclude=netdev_rss_key '' $_tca_dirs
        else
            _tca_run sysctls 0 grep -r '' $_tca_dirs
        fi
    fi

    _tca_persisted

    # The socket table from ss; from /proc/net/tcp{,6} when ss is missing or fails (141: cut by the cap).
    _tca_ss=missing
    if _tca_have ss; then
        _tca_run ss 200001 ss -tanoeH
        _tca_ss=$_tca_rc
        _tca_run ss-detail 100003 ss -tinH state established
    else
        _tca_gap ss missing "ss not installed"
    fi
    case $_tca_ss in
    0 | 141) ;;
    *)
        _tca_file proc-net-tcp /proc/net/tcp 200002
        _tca_file proc-net-tcp6 /proc/net/tcp6 200002
        ;;
    esac

    if _tca_have iptables-save; then
        if [ "$(_tca_euid)" = 0 ]; then
            _tca_run iptables-nat 0 iptables-save -t nat
        else
            _tca_gap iptables-nat permission_denied "reading NAT rules needs root"
        fi
    fi
    printf '@@tcpaudit-done\n'
}

# Everything above only defines functions: a script cut short in transit runs nothing.
# stdin is /dev/null so no command can read the rest of this script (sent on stdin to `sh -s`).
_tca_main </dev/null
exit 0
