// The node helper: a small Perl program started once per pooled connection on one exec channel
// (helper-session.ts), which then runs every command of that connection without an sshd session
// of its own: a fork and an exec per command instead of sshd's session setup, a login shell and
// the wrapper's three processes (remote-run.ts). Perl because `perl-base` is Essential on Debian,
// Ubuntu and Raspberry Pi OS, and it alone gives select(2), fork, setsid and exec of an argv
// without a shell; only modules shipped in perl-base are used (POSIX, IO::Select, Fcntl: not
// Time::HiRes, so the clock is /proc/uptime, 10 ms resolution).
//
// Kill semantics, the same as the wrapper's:
//  - each command runs in a session of its own (fork, setsid, exec of the argv: no shell, so
//    nothing on the node parses it) with CASTELLAN_RUN=<runId> in its environment, so
//    findRemoteRun / killRemoteRun find it after a worker crash like a wrapper's run;
//  - a stop (cancel frame, or the remote deadline, which the helper enforces even when the client
//    is gone) TERMs every member of the run, waits the kill grace, KILLs, and reports what it
//    verified. Members are found by a sweep of /proc: the session (process groups made inside it
//    included), anything carrying the run's CASTELLAN_RUN, and their descendants;
//  - the lifeline: EOF (or a broken pipe) on the helper's stdin, i.e. the connection dropped or
//    the client died, stops every live run that way, then the helper exits.
// The helper never blocks: output waits in a buffer (at most 1 MiB, then the commands' pipes are
// no longer read), so deadlines fire even when the client stops reading.
import { quoteArgv } from './quote.js';

export const HELPER_NAME = 'castellan-helper';

const SCRIPT = String.raw`use strict;
use warnings;
use POSIX ();
use IO::Select;
use Fcntl qw(F_GETFL F_SETFL O_NONBLOCK);
$0 = 'castellan-helper';
# A handler, not IGNORE: a write to a closed pipe still fails with EPIPE here, and a command
# starts with SIGPIPE at its default (exec resets caught signals) without a write in the child.
$SIG{PIPE} = sub { };
my $MAXBUF = 1 << 20;
my ($wake_r, $wake_w);
pipe($wake_r, $wake_w) or die "castellan-helper: pipe: $!\n";
nb($wake_r); nb($wake_w);
$SIG{CHLD} = sub { syswrite($wake_w, 'c') };
# Made once: between fork and exec the child writes as little as it can (see start_run).
my $NOSIGS = POSIX::SigSet->new();
open(my $DEVNULL, '<', '/dev/null') or die "castellan-helper: /dev/null: $!\n";
binmode STDIN; binmode STDOUT;
nb(\*STDIN); nb(\*STDOUT);
my (%runs, %fh);
my ($in, $out, $eof, $broken) = ('', "\x1ecastellan-helper 1 $$\n", 0, 0);

sub nb { my $f = shift; my $fl = fcntl($f, F_GETFL, 0); fcntl($f, F_SETFL, $fl | O_NONBLOCK) }
sub now { open(my $u, '<', '/proc/uptime') or return time; my $l = <$u>; close $u; (split / /, $l)[0] }
sub frame { my ($t, $id, $p) = @_; $out .= pack('NaN', 5 + length $p, $t, $id) . $p unless $broken }

sub start_run {
  my ($id, $p) = @_;
  my ($dl, $gr, $n) = unpack('NNN', $p);
  my ($o, @s) = (12);
  for (1 .. $n) { my $l = unpack('N', substr($p, $o, 4)); push @s, substr($p, $o + 4, $l); $o += 4 + $l }
  my ($runid, $stdin, @argv) = @s;
  my ($or, $ow, $er, $ew, $ir, $iw);
  unless (pipe($or, $ow) && pipe($er, $ew) && (!length $stdin || pipe($ir, $iw))) { frame('F', $id, "pipe: $!"); return }
  # Every page the child writes before its exec is a copy-on-write fault, and on some machines
  # (small boards, some VMs) each costs tens of microseconds: the child only sets its signal
  # mask, its session and its descriptors. The run's tag is set before the fork and inherited;
  # the child never leaves this block (exec, or _exit), so it never sees the tag taken back.
  my $pid;
  {
    local $ENV{CASTELLAN_RUN} = $runid;
    $pid = fork;
    if (defined $pid && $pid == 0) {
      # Commands start with no signal blocked, whatever the helper's mask was at the fork (perl
      # blocks them all around fork): one that cannot receive TERM cannot be stopped politely.
      # Caught signals (PIPE, CHLD) are reset to their defaults by the exec itself.
      POSIX::sigprocmask(POSIX::SIG_SETMASK(), $NOSIGS);
      POSIX::setsid();
      POSIX::dup2(fileno($ir // $DEVNULL), 0);
      POSIX::dup2(fileno $ow, 1);
      POSIX::dup2(fileno $ew, 2);
      { no warnings; exec { $argv[0] } @argv }
      my $enoent = $!{ENOENT};
      syswrite(STDERR, "castellan-helper: $argv[0]: " . ($enoent ? 'not found' : "$!") . "\n");
      POSIX::_exit($enoent ? 127 : 126);
    }
  }
  unless (defined $pid) { frame('F', $id, "fork: $!"); return }
  close $ow; close $ew;
  my $r = { id => $id, pid => $pid, runid => $runid, grace => $gr / 1000, deadline => now() + $dl / 1000, open => 2 };
  if ($ir) { close $ir; nb($iw); $r->{in} = $iw; $r->{inbuf} = $stdin; $fh{fileno $iw} = [$r, 'I', $iw] }
  nb($or); nb($er);
  $fh{fileno $or} = [$r, 'O', $or];
  $fh{fileno $er} = [$r, 'E', $er];
  $runs{$id} = $r;
  frame('R', $id, pack('N', $pid));
}

# Every live process of the run: its session (a process group made inside it included), anything
# carrying its CASTELLAN_RUN, and their descendants.
sub members {
  my $r = shift;
  my (%par, %in);
  opendir(my $d, '/proc') or return ();
  for my $p (grep { /^\d+$/ } readdir $d) {
    next if $p == $$;
    open(my $f, '<', "/proc/$p/stat") or next;
    my $l = <$f>; close $f;
    next unless defined $l && $l =~ /\) (\S) (\d+) \d+ (\d+)/s;
    next if $1 eq 'Z' || $1 eq 'X';
    $par{$p} = $2;
    if ($3 == $r->{pid} || $p == $r->{pid}) { $in{$p} = 1; next }
    if (open(my $e, '<', "/proc/$p/environ")) {
      local $/; my $env = <$e>; close $e;
      $in{$p} = 1 if defined $env && index("\0$env", "\0CASTELLAN_RUN=$r->{runid}\0") >= 0;
    }
  }
  for (my $more = 1; $more;) {
    $more = 0;
    for my $p (keys %par) { if (!$in{$p} && $in{$par{$p}}) { $in{$p} = 1; $more = 1 } }
  }
  return keys %in;
}

sub stop_run {
  my ($r, $t) = @_;
  return if $r->{stopping};
  $r->{stopping} = 1;
  my @m = members($r);
  if (!@m) { stopped($r, 'gone'); return }
  # Frozen while the TERMs go out: a shell must not see its child die of TERM and run its next
  # command before its own TERM is there.
  kill 'STOP', @m; kill 'TERM', @m; kill 'CONT', @m;
  $r->{killat} = $t + $r->{grace};
  $r->{poll} = $t + 0.1;
}

sub stopped {
  my ($r, $word) = @_;
  $r->{reported} = 1;
  frame('K', $r->{id}, $word);
  if (defined $r->{status}) { close_fh($_) for grep { $fh{$_}[0] == $r } keys %fh }
}

sub stop_poll {
  my ($r, $t) = @_;
  return if $t < $r->{poll};
  $r->{poll} = $t + 0.1;
  my @m = members($r);
  if (!@m) { stopped($r, $r->{killed} ? 'killed' : 'terminated'); return }
  if ($r->{killed}) { kill 'KILL', @m; stopped($r, "survivors @m") if $t >= $r->{giveup}; return }
  if ($t >= $r->{killat}) { kill 'KILL', @m; $r->{killed} = 1; $r->{giveup} = $t + 3 }
}

sub close_fh {
  my $n = shift;
  my $e = delete $fh{$n} or return;
  close $e->[2];
  $e->[0]{open}-- unless $e->[1] eq 'I';
  delete $e->[0]{in} if $e->[1] eq 'I';
}

sub finish_runs {
  while ((my $pid = waitpid(-1, POSIX::WNOHANG())) > 0) {
    for my $r (values %runs) { $r->{status} = $? if $r->{pid} == $pid }
  }
  for my $r (values %runs) {
    next unless defined $r->{status};
    if (!$r->{exited} && $r->{open} <= 0) {
      my $s = $r->{status};
      if ($r->{deadline_hit}) { frame('X', $r->{id}, pack('CNC', 0, 124, 1)) }
      elsif ($s & 127) { frame('X', $r->{id}, pack('CNC', 1, $s & 127, 0)) }
      else { frame('X', $r->{id}, pack('CNC', 0, $s >> 8, 0)) }
      $r->{exited} = 1;
      close_fh($_) for grep { $fh{$_}[0] == $r } keys %fh;
    }
    delete $runs{$r->{id}} if $r->{exited} && (!$r->{stopping} || $r->{reported});
  }
}

sub lifeline {
  return if $eof;
  $eof = 1;
  my $t = now();
  stop_run($_, $t) for values %runs;
}

sub read_frames {
  while (length $in >= 4) {
    my $len = unpack('N', $in);
    if ($len < 5 || $len > (256 << 20)) { print STDERR "castellan-helper: bad frame length $len\n"; $in = ''; lifeline(); return }
    last if length $in < 4 + $len;
    my ($t, $id) = unpack('aN', substr($in, 4, 5));
    my $p = substr($in, 9, $len - 5);
    substr($in, 0, 4 + $len) = '';
    if ($t eq 'S') { start_run($id, $p) }
    elsif ($t eq 'C') { if ($runs{$id}) { stop_run($runs{$id}, now()) } else { frame('K', $id, 'gone') } }
    else { print STDERR "castellan-helper: unknown frame type\n"; $in = ''; lifeline(); return }
  }
}

for (;;) {
  finish_runs();
  my ($wait, $t);
  if (%runs) {
    $t = now();
    for my $r (values %runs) {
      if (!$r->{stopping} && $t >= $r->{deadline}) { $r->{deadline_hit} = 1; stop_run($r, $t) }
      stop_poll($r, $t) if $r->{stopping} && !$r->{reported};
      my $next = $r->{stopping} ? ($r->{reported} ? undef : $r->{poll}) : $r->{deadline};
      $wait = $next - $t if defined $next && (!defined $wait || $next - $t < $wait);
    }
    finish_runs();
    $wait = 0 if defined $wait && $wait < 0;
  }
  # Checked after the timers, which may just have reported the last stop: with stdin gone and
  # no pipe left, a select without a timeout would wait for ever.
  last if ($eof || $broken) && !grep { !$_->{reported} } values %runs;
  $wait = 0.5 if ($eof || $broken) && !defined $wait;
  my $rs = IO::Select->new($wake_r);
  my $ws = IO::Select->new();
  $rs->add(\*STDIN) unless $eof;
  for my $e (values %fh) {
    if ($e->[1] eq 'I') { $ws->add($e->[2]) }
    elsif (length $out < $MAXBUF) { $rs->add($e->[2]) }
  }
  $ws->add(\*STDOUT) if length $out && !$broken;
  my ($r, $w) = IO::Select->select($rs, $ws, undef, $wait);
  for my $h (@{$r || []}) {
    if (fileno($h) == fileno($wake_r)) { my $x; sysread($wake_r, $x, 512); next }
    if (fileno($h) == 0) {
      my $n = sysread(STDIN, $in, 65536, length $in);
      if (defined $n && $n == 0) { lifeline() }
      elsif (!defined $n) { lifeline() unless $!{EAGAIN} || $!{EINTR} }
      read_frames();
      next;
    }
    my $e = $fh{fileno $h} or next;
    my $buf;
    my $n = sysread($h, $buf, 65536);
    if ($n) { frame($e->[1], $e->[0]{id}, $buf) }
    elsif (defined $n || !($!{EAGAIN} || $!{EINTR})) { close_fh(fileno $h) }
  }
  for my $h (@{$w || []}) {
    if (fileno($h) == 1) {
      my $n = syswrite(STDOUT, $out);
      if (defined $n) { substr($out, 0, $n) = '' }
      elsif (!($!{EAGAIN} || $!{EINTR})) { $broken = 1; $out = ''; lifeline() }
      next;
    }
    my $e = $fh{fileno $h} or next;
    my $r = $e->[0];
    my $n = syswrite($h, $r->{inbuf});
    if (defined $n) { substr($r->{inbuf}, 0, $n) = '' }
    close_fh(fileno $h) if !defined $n ? !($!{EAGAIN} || $!{EINTR}) : !length $r->{inbuf};
  }
}`;

/**
 * The script as sent: without its whole-line comments, which are for the reader. Dropbear takes
 * at most 9000 bytes of command line (server-limits.ts) and the helper travels as one; the
 * script has no heredoc or multi-line string a `#` line could belong to.
 */
const SENT = SCRIPT.replace(/^[ \t]*#.*\n/gm, '');

/** The exec command line that starts the helper (sshd hands it to the login shell). */
export function helperCommand(): string {
  return quoteArgv(['perl', '-e', SENT, HELPER_NAME]);
}
