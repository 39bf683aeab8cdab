#!/usr/bin/perl

# 10,000 peers registered over TCP streams at once (PROTOCOL.md section 8):
# every RegisterPk is answered OK with the configured keep_alive, the
# streams stay open and idle, the peers are online, heartbeats on them are
# answered, and once the client closes them all the workers hold no more
# descriptors than before.  The workers' memory per registered stream is
# reported (diag), not checked.
#
# The client holds 10,000 sockets and each worker may hold as many: the
# test raises its own soft RLIMIT_NOFILE (the shell's ulimit, then runs
# again) and needs a hard limit of at least 11,200 when nginx does not run
# as root.  No assertion is about time.

use warnings;
use strict;

my $N;
my $NOFILE;

BEGIN {
	$N = 10000;
	$NOFILE = $N + 1200;        # this process, and worker_rlimit_nofile

	my $soft = `ulimit -n 2>/dev/null` // '';
	chomp $soft;

	if ($soft ne 'unlimited' && $soft =~ /^\d+$/ && $soft < $NOFILE
		&& !$ENV{RUSTDESK_TEST_NOFILE})
	{
		# once only: the limit may be out of reach (skipped below)
		$ENV{RUSTDESK_TEST_NOFILE} = 1;
		exec('/bin/sh', '-c', 'ulimit -Sn "$1" 2>/dev/null; shift; exec "$@"',
			'sh', $NOFILE, $^X, (map { "-I$_" } @INC), $0, @ARGV);
	}
}

use Test::More;
use IO::Poll qw/ POLLIN POLLHUP POLLERR /;
use IO::Socket::INET;
use List::Util qw/ shuffle /;
use Time::HiRes qw/ sleep time /;

use lib 't/lib';
use Test::Nginx qw/ port /;
use RustDesk::Conf;
use RustDesk::Client qw/ frame unframe encode_msg decode_msg /;

local $SIG{PIPE} = 'IGNORE';

my $t = Test::Nginx->new()->modules('rendezvous')->has();

{
	my $soft = `ulimit -n 2>/dev/null` // '';
	my $hard = `ulimit -Hn 2>/dev/null` // '';
	chomp($soft, $hard);

	plan(skip_all => "needs $NOFILE open files, RLIMIT_NOFILE is $soft "
		. "(hard $hard)")
		if $soft ne 'unlimited' && $soft < $NOFILE;
	plan(skip_all => "nginx's workers need $NOFILE open files, the hard "
		. "limit is $hard (not root)")
		if $> != 0 && $hard ne 'unlimited' && $hard < $NOFILE;
}

$t->plan(12);

my $KEEP_ALIVE = 300;       # longer than the test: no ping from the server
my $CONNS = $N + 1024;      # either worker could get every stream

$t->connections($CONNS, $NOFILE)->write_file_expand('nginx.conf',
	stream_conf([
		'rustdesk_key_dir %%TESTDIR%%/keys;',
		'rustdesk_database off;',
		"rustdesk_keep_alive ${KEEP_ALIVE}s;",
	], srv_hbbs(1, 0)));

$t->run();

my $started = time();
my @workers = $t->worker_pids();

srand(20261124);

# Peer i: its id, uuid and key; it registers from 127.1.x.y, 25 peers per
# source address (the IP blocker allows 30 RegisterPk a minute from one).

my $RUN = sprintf('%04d', int(rand(10000)));

sub id { sprintf('7%s%05d', $RUN, $_[0]) }
sub uuid { sprintf('%08x-0000-4000-8000-%012x', $_[0], $_[0] * 7919) }
sub pk { pack('N', $_[0]) x 8 }

sub src {
	my $k = int($_[0] / 25);
	return sprintf('127.1.%d.%d', int($k / 250), $k % 250 + 1);
}

###############################################################################

my $base_fds = $t->stable_fds(qr/^socket:/);
my %mem0 = worker_mem();

note("worker sockets at rest: $base_fds; memory: " . mem_text(%mem0));

# 1. 10,000 streams, registered in batches of 500: connect, RegisterPk,
# wait for the answers of the batch (the KeyExchange the server offers
# first is skipped, as a client without secure TCP skips it)

my (@s, %results, %keep_alive, @why);
my $reg0 = time();

for (my $from = 0; $from < $N; $from += 500) {
	my $to = $from + 500 < $N ? $from + 500 : $N;
	my (%buf, %idx);
	my $poll = IO::Poll->new();

	for my $i ($from .. $to - 1) {
		my $c = IO::Socket::INET->new(PeerAddr => '127.0.0.1:' . port(1),
			LocalAddr => src($i), Proto => 'tcp');

		unless ($c) {
			push @why, "connect $i: $!";
			next;
		}

		$c->syswrite(frame(encode_msg(register_pk => { id => id($i),
			uuid => uuid($i), pk => pk($i) })));

		$s[$i] = $c;
		$buf{$c} = '';
		$idx{$c} = $i;
		$poll->mask($c => POLLIN);
	}

	my $end = time() + 10;

	while ($poll->handles() && time() < $end) {
		$poll->poll(0.5);

		for my $c ($poll->handles(POLLIN | POLLHUP | POLLERR)) {
			my $i = $idx{$c};
			my $n = sysread($c, $buf{$c}, 4096, length $buf{$c});

			unless ($n) {
				push @why, "stream $i closed before the answer";
				$results{closed}++;
				$poll->remove($c);
				undef $s[$i];
				next;
			}

			for my $p (unframe(\$buf{$c})) {
				my ($type, $m) = decode_msg($p);
				$type //= 'nothing';
				next if $type eq 'key_exchange';

				if ($type ne 'register_pk_response') {
					push @why, "stream $i: $type";
					$results{$type}++;
					next;
				}

				$results{$m->{result} // 0}++;
				$keep_alive{$m->{keep_alive} // 0}++;
				$poll->remove($c);
				last;
			}
		}
	}

	for my $c ($poll->handles()) {
		push @why, "stream $idx{$c}: no answer in 10 s";
		$results{'no answer'}++;
	}
}

my $reg_time = time() - $reg0;

is(join(' ', map { "$_:$results{$_}" } sort keys %results), "0:$N",
	"$N RegisterPk over TCP: all answered OK")
	or diag(join("\n", grep { defined } @why[0 .. 9]));
is(join(' ', map { "$_:$keep_alive{$_}" } sort keys %keep_alive),
	"$KEEP_ALIVE:$N", "RegisterPkResponse: keep_alive $KEEP_ALIVE");

my @open = grep { defined $s[$_] } 0 .. $N - 1;
my $held = $t->wait_fds('>=', $base_fds + $N, 10, qr/^socket:/);

ok($held >= $base_fds + $N, "workers hold the $N streams")
	or diag("$held worker sockets, $base_fds at rest");

# 2. idle for a couple of seconds: nothing arrives, nothing closes (a
# sleep: the period in which nothing may happen)

sleep 2;

my %mem1 = worker_mem();
my @quiet = readable(0, @open);

is(scalar @quiet, 0, "$N streams idle for 2 s: none closed, nothing sent")
	or diag(scalar(@quiet) . ' streams readable, e.g. ' . id($quiet[0]));

my $held2 = $t->worker_fds(qr/^socket:/);
ok($held2 >= $base_fds + $N, 'still held by the workers')
	or diag("$held2 worker sockets, $base_fds at rest");

diag(sprintf('%d streams registered in %.1f s; workers: %s -> %s: '
	. '%s per stream', scalar @open, $reg_time, mem_text(%mem0),
	mem_text(%mem1), per_stream(\%mem0, \%mem1, scalar @open)));

# 3. a sample of the peers is online (OnlineRequest on the NAT port), and
# ids nobody registered are not

my @sample = (shuffle(@open))[0 .. 199];
my @unknown = map { sprintf('8%s%05d', $RUN, $_) } 0 .. 7;

is(online(@sample, @unknown), ('1' x 200) . ('0' x 8),
	'200 of the peers online, 8 unknown ids not');

# 4. heartbeats on a sample of 500 streams: one empty frame each, answered
# by one empty frame on the same stream, and nothing on the others

my @hb = (shuffle(@open))[0 .. 499];
my %in_hb = map { $_ => 1 } @hb;

$s[$_]->syswrite("\x00") for @hb;

my %got = collect(5, 1, @hb);

is(join(' ', grep { ($got{$_} // '') ne "\x00" } @hb), '',
	'heartbeats on 500 streams: each answered by an empty frame');

my @others = grep { !$in_hb{$_} } @open;
my @noise = readable(0.2, @others, @hb);
my %extra = collect(0, 0, @noise);

is(join(' ', map { id($_) . '=' . unpack('H*', $extra{$_} // '')
	. (defined $s[$_] ? '' : '(closed)') } @noise), '',
	'nothing else on any stream');

# 5. the client closes every stream: the workers' descriptors come back,
# the peers stay online for a while (30 s after their stream)

my $before_close = $t->worker_fds(qr/^socket:/);
close($s[$_]) for grep { defined $s[$_] } 0 .. $N - 1;
@s = ();

my $after = $t->wait_fds('<=', $base_fds, 15, qr/^socket:/);
note("worker sockets: $base_fds at rest, $before_close with the streams, "
	. "$after after they closed");
ok($after <= $base_fds, "$N streams closed by the client: worker sockets "
	. "back to $base_fds") or diag("$after worker sockets now");

is(online(@sample[0 .. 49]), '1' x 50,
	'their peers still online just after the close');

my %mem2 = worker_mem();
note('workers after the close: ' . mem_text(%mem2));

# 6. nothing went wrong on the server side

my @now = $t->worker_pids();
ok(@workers == 2 && "@now" eq "@workers", 'no worker replaced')
	or diag("workers at start: @workers, now: @now");

is($t->log_count(qr/\[error\]/), 0, 'no [error] lines');

note(sprintf('runtime %.1f s', time() - $started));

###############################################################################

# Streams (indexes) with something to read (data or a close) within the
# timeout.

sub readable {
	my ($timeout, @idx) = @_;
	my $poll = IO::Poll->new();
	my %idx;

	for my $i (@idx) {
		next unless defined $s[$i];
		$poll->mask($s[$i] => POLLIN);
		$idx{$s[$i]} = $i;
	}

	$poll->poll($timeout);
	return sort { $a <=> $b }
		map { $idx{$_} } $poll->handles(POLLIN | POLLHUP | POLLERR);
}

# What arrives on the streams within the timeout (waiting, until each has
# $want bytes, or reading once what is there when $want is 0): index =>
# bytes; a stream closed by the server is undefined in @s afterwards.

sub collect {
	my ($timeout, $want, @idx) = @_;
	my $poll = IO::Poll->new();
	my (%idx, %got);

	for my $i (@idx) {
		next unless defined $s[$i];
		$poll->mask($s[$i] => POLLIN);
		$idx{$s[$i]} = $i;
		$got{$i} = '';
	}

	my $end = time() + $timeout;

	while ($poll->handles()) {
		$poll->poll($want ? 0.2 : 0);

		for my $c ($poll->handles(POLLIN | POLLHUP | POLLERR)) {
			my $i = $idx{$c};
			my $n = sysread($c, $got{$i}, 4096, length $got{$i});

			if (!$n) {
				$poll->remove($c);
				close $c;
				undef $s[$i];

			} elsif (!$want || length $got{$i} >= $want) {
				$poll->remove($c);
			}
		}

		last if !$want || time() >= $end;
	}

	return %got;
}

# The online bits of the ids (a string of 0 and 1), through OnlineRequest
# on the NAT port: 'none' if it was not answered.

sub online {
	my (@i) = @_;
	my @ids = map { /^\d+$/ && $_ < $N ? id($_) : $_ } @i;

	my $c = RustDesk::Client->tcp(port(0));
	$c->send_msg(online_request => { id => 'asker', peers => \@ids });
	my ($type, $m) = $c->recv_msg();
	$c->close();

	return 'none' unless defined $type && $type eq 'online_response';

	my $bits = unpack('B*', $m->{states} // '');
	return substr($bits . ('0' x @ids), 0, scalar @ids);
}

# The workers' memory: VmRSS and Pss in kB, summed.

sub worker_mem {
	my %m = (rss => 0, pss => 0);

	for my $pid ($t->worker_pids()) {
		for ([ status => 'VmRSS', 'rss' ], [ smaps_rollup => 'Pss', 'pss' ])
		{
			my ($file, $key, $name) = @$_;
			open my $fh, '<', "/proc/$pid/$file" or next;
			while (<$fh>) {
				$m{$name} += $1 if /^$key:\s+(\d+)/;
			}
			close $fh;
		}
	}

	return %m;
}

sub mem_text {
	my (%m) = @_;
	return "VmRSS $m{rss} kB, Pss $m{pss} kB";
}

sub per_stream {
	my ($m0, $m1, $n) = @_;
	return 'n/a' unless $n;
	return sprintf('%.0f bytes VmRSS, %.0f bytes Pss',
		($m1->{rss} - $m0->{rss}) * 1024 / $n,
		($m1->{pss} - $m0->{pss}) * 1024 / $n);
}

###############################################################################
