"""The box's init: the first process in every box, on both backends, and the only one that is ours.

It is a short Perl program (perl-base is in every Debian image; a Python init would cost ~15 ms a
job) that the backends start in place of the job, with a clean environment:

1. It makes itself non-dumpable (prctl PR_SET_DUMPABLE 0). The job runs as the same user, yet can
   then neither ptrace it nor open its /proc files (mem, fd, environ): nothing the job can reach
   matters to the verdict. On bubblewrap it is the box's pid 1 (`--as-pid-1`, so bwrap's own init,
   which runs outside the seccomp filter, is not there), which the job cannot signal either; so it
   is on Docker, where it is the container's own first process. On bubblewrap it then sets
   the job's rlimits on itself (lowering one's own needs no capability; the job inherits them).
2. On Docker only: it becomes the reaper of the job's orphans, reads the files mark (a secret, on
   the first line of stdin), then the job itself (`job_message`: a warm box's init is started
   before its job exists) and the files' tar (exactly as many bytes as announced), and loads
   `seccomp.arch_guard` (runc kills only the calling thread on a foreign ABI).
3. It links what a setup step built into the image's /opt/microcred/autograder-source into
   /box/autograder/source, and makes the results folders of the Gradescope and PrairieLearn
   layouts when the job's files use them.
4. It marks the start (a line on the status pipe for bubblewrap, the per-job nonce on stderr for
   Docker): whatever fails before the mark is ours, whatever follows it is the job's.
5. It runs the job as its child with the job's environment, waits for it, reaping any orphan on
   the way, and reports the job's real wait status and the CPU time of what it reaped. On Docker it
   first kills every process of the box user that is left, then writes the report after the files
   mark on stderr, then the tar of the files to collect and the files mark again, and waits to be
   removed (the worker reads the box's cgroup meanwhile); on bubblewrap it writes the report on the
   status pipe and exits (exit_group directly: perl's own exit costs a few hundred microseconds
   more), and the kernel kills whatever is left in the box's pid namespace.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sandbox.seccomp import native_syscall

PERL = "/usr/bin/perl"
INIT_FAILED = 125
SETUP_SOURCE = "/opt/microcred/autograder-source"  # where a setup image keeps /autograder/source
FILES_MARK_LENGTH = 32  # hex characters of the Docker files mark

INIT_SOURCE = r"""
sub fail { syswrite STDERR, "microcred box init: $_[0]: $!\n"; exit 125 }
sub readn {
    my ($want, $data) = ($_[0], "");
    while (length($data) < $want) {
        sysread(STDIN, $data, $want - length($data), length($data)) or fail("reading stdin");
    }
    $data
}
sub others_left {
    opendir(my $proc, "/proc") or return 0;
    for my $pid (readdir $proc) {
        next unless $pid =~ /^\d+$/ && $pid != $$;
        open(my $fh, "<", "/proc/$pid/status") or next;
        while (<$fh>) { return 1 if /^Uid:\s+(\d+)/ && $1 == $< }
    }
    0
}
my ($prctl, $prlimit, $exit_group, $limits, $status_fd) = splice @ARGV, 0, 5;
syscall($prctl, 4, 0) == 0 && syscall($prctl, 3, 0) == 0 or fail("PR_SET_DUMPABLE");
for (split /,/, $limits) {
    my ($resource, $soft, $hard) = split /:/;
    syscall($prlimit, 0, $resource + 0, pack("QQ", $soft, $hard), 0) == 0 or fail("setting rlimit $resource");
}
my ($status, $files_mark);
if ($status_fd >= 0) {
    open($status, ">&=", $status_fd) or fail("status pipe");
} else {
    syscall($prctl, 36, 1) == 0 or fail("PR_SET_CHILD_SUBREAPER");
    $files_mark = readn(33);
    chop $files_mark;
    # On Docker the init starts before its job exists (a warm box): the rest of its argv comes here.
    @ARGV = split /\0/, readn(readn(10) + 0), -1;
}
my ($start, $tar_size, $guard, $ncollect, $nenv) = splice @ARGV, 0, 5;
my @collect = splice @ARGV, 0, $ncollect;
my %env = map { split /=/, $_, 2 } splice @ARGV, 0, $nenv;
if (length $guard) {
    my $program = pack("H*", $guard);
    syscall($prctl, 22, 2, pack("S x6 p", length($program) / 8, $program)) == 0 or fail("seccomp");
}
if ($tar_size > 0) {
    my $archive = readn($tar_size);
    open(my $tar, "|-", "tar", "-x", "-f", "-", "-C", "/box", "--no-same-owner") or fail("tar");
    print $tar $archive;
    close($tar) or fail("placing the files");
}
my $built = "@SETUP_SOURCE@";
if (opendir(my $dir, $built)) {
    mkdir "/box/autograder";
    mkdir "/box/autograder/source";
    for my $name (readdir $dir) {
        next if $name eq "." || $name eq "..";
        symlink("$built/$name", "/box/autograder/source/$name") unless lstat("/box/autograder/source/$name");
    }
}
for my $layout ("/box/autograder", "/box/grade") { mkdir "$layout/results" if -d $layout }
if ($status) { syswrite($status, "up\n") or fail("status pipe") } else { syswrite(STDERR, $start) }
my $job = fork;
defined $job or fail("fork");
if (!$job) {
    close($status) if $status;
    %ENV = %env;
    exec { $ARGV[0] } @ARGV;
    my $code = $! == 2 ? 127 : 126;
    syswrite STDERR, "$ARGV[0]: $!\n";
    exit $code;
}
my $wait_status = -1;
while ((my $pid = wait) > 0) {
    if ($pid == $job) { $wait_status = $?; last }
}
if ($status) {
    my (undef, undef, $cu, $cs) = times;
    syswrite($status, "exit $wait_status $cu $cs\n");
    syscall($exit_group, 0);
}
for (1 .. 500) {
    kill "KILL", -1;
    1 while waitpid(-1, 1) > 0;
    last unless others_left();
    select(undef, undef, undef, 0.002);
}
my (undef, undef, $cu, $cs) = times;
syswrite(STDERR, "$files_mark$wait_status $cu $cs\n");
if (@collect) {
    my $tar = fork;
    if (defined $tar && !$tar) {
        open(STDOUT, ">&", \*STDERR) or exit 0;
        open(STDERR, ">", "/dev/null");
        exec "tar", "-c", "-f", "-", "-C", "/box", "--ignore-failed-read", "--", @collect;
        exit 0;
    }
    waitpid($tar, 0) if $tar;
}
# The mark again ends the tar, and ends stdout (Docker copies the two streams apart, in no order);
# the box stays up so the worker can read its cgroup, then removes it.
syswrite(STDOUT, $files_mark);
syswrite(STDERR, $files_mark);
sleep while 1;
""".replace("@SETUP_SOURCE@", SETUP_SOURCE)


@dataclass(frozen=True)
class Report:
    """What the init said about the job: started at all, how it ended, the CPU it reaped."""

    started: bool = False
    wait_status: int | None = None
    cpu_seconds: float | None = None


def init_argv(
    command: Sequence[str],
    env: Mapping[str, str],
    *,
    rlimits: Sequence[tuple[int, int, int]] = (),
    status_fd: int,
) -> list[str]:
    """The argv that starts bubblewrap's init, which then runs `command` with exactly `env`, sets
    the `rlimits` (resource, soft, hard) on itself and reports on `status_fd` (a pipe)."""
    return [*_init_head(rlimits, status_fd), *_job_fields(command, env, "", 0, b"", ())]


def waiting_init_argv() -> list[str]:
    """The argv of Docker's init, started before its job is known (a warm box): it waits for the
    files mark and then `job_message` on stdin, and stays up after the job until it is removed."""
    return _init_head((), -1)


def job_message(
    command: Sequence[str],
    env: Mapping[str, str],
    *,
    start_mark: str,
    tar_size: int,
    guard: bytes,
    collect: Sequence[str],
) -> bytes:
    """What Docker's waiting init reads after the files mark: the job's part of its argv, NUL
    separated (no argument, variable or path may hold a NUL), after its length in 10 digits."""
    fields = "\0".join(_job_fields(command, env, start_mark, tar_size, guard, collect)).encode()
    return b"%010d" % len(fields) + fields


def _init_head(rlimits: Sequence[tuple[int, int, int]], status_fd: int) -> list[str]:
    numbers = [native_syscall(name) for name in ("prctl", "prlimit64", "exit_group")]
    if None in numbers:
        raise RuntimeError("this architecture lacks prctl, prlimit64 or exit_group")
    limits = ",".join(f"{resource}:{soft}:{hard}" for resource, soft, hard in rlimits)
    return [PERL, "-e", INIT_SOURCE, "--", *(str(number) for number in numbers), limits, str(status_fd)]


def _job_fields(
    command: Sequence[str],
    env: Mapping[str, str],
    start_mark: str,
    tar_size: int,
    guard: bytes,
    collect: Sequence[str],
) -> list[str]:
    pairs = [f"{key}={value}" for key, value in env.items()]
    header = [start_mark, str(tar_size), guard.hex(), str(len(collect)), str(len(pairs))]
    return [*header, *collect, *pairs, *command]


def parse_report_line(line: bytes) -> Report:
    """`<wait status> <children user s> <children system s>`, as the init writes it after the job."""
    try:
        status, user, system = line.split()
        wait_status = int(status)
        return Report(True, wait_status if wait_status >= 0 else None, float(user) + float(system))
    except ValueError:
        return Report(True)


def parse_status_pipe(data: bytes) -> Report:
    """The bubblewrap init's status pipe: `up`, then `exit <report>` once the job has ended."""
    lines = data.split(b"\n")
    if not lines or lines[0] != b"up":
        return Report()
    for line in lines[1:]:
        if line.startswith(b"exit "):
            return parse_report_line(line[len(b"exit ") :])
    return Report(True)
