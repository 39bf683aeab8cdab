#!/usr/bin/perl

# The relay server (hbbr, PROTOCOL.md sections 2 and 7): two sides send
# a RequestRelay with the same uuid, the first waits for the second, then
# bytes flow raw both ways, whichever worker each side landed on.
#
# 1. 100 concurrent pairs, several MB each way, checked by SHA-256; some
#    pairs split across the two workers
# 6. half-close, 7. close propagation
# 8. reload with live pairs and a waiter
# 9. a worker killed with live pairs and waiters
# then with short timeouts: 2. no partner, 3. no request, 5. idle pairs;
# and with a key: 4. wrong and right licence keys.

use warnings;
use strict;

use Test::More;
use IO::Select;
use POSIX ();
use Socket qw/ SHUT_WR /;
use Time::HiRes qw/ sleep time /;

use lib 't/lib';
use Test::Nginx qw/ port background background_result /;
use RustDesk::Conf;
use RustDesk::Relay qw/ side read_exact wait_close wait_closes transfer
	chunk_data /;

local $SIG{PIPE} = 'IGNORE';

my $t = Test::Nginx->new()->modules('relay')->has()->plan(45)
	->allow_log(qr/exited on signal 9\b/);

my $PORT = port(0);
my $started = time();

srand(20240917);

start('rustdesk_relay_single_bandwidth 0;
    rustdesk_relay_total_bandwidth 0;
    rustdesk_relay_pair_timeout 10s;');

###############################################################################

# 1. 100 pairs at once, 2-4 MB each way, different bytes on every side;
# the first bytes go in the same write as the RequestRelay.  In half of
# the pairs both sides come at once, in the others B comes up to 0.35 s
# after A (A's first bytes wait in the server).

{
	my @pairs = map { {
		port => $PORT, uuid => sprintf('pair-%03d', $_),
		a => { len => 2_000_000 + int(rand(2_000_000)), ip => '127.0.0.2' },
		b => { len => 2_000_000 + int(rand(2_000_000)), ip => '127.0.0.3',
			start => $_ % 2 ? 0 : 0.05 + rand(0.3) },
	} } 1 .. 100;

	my $t0 = time();
	my $r = transfer(pairs => \@pairs, timeout => 45);
	my $bytes = 0;
	$bytes += $_->{a_got} + $_->{b_got} for @$r;
	note(sprintf('100 pairs: %.0f MB relayed in %.1f s', $bytes / 1e6,
		time() - $t0));

	my @bad = grep { !$_->{ok} } @$r;
	is(join("\n", map { $_->{err} } @bad[0 .. ($#bad > 9 ? 9 : $#bad)]), '',
		'100 pairs: each side got exactly what the other sent (SHA-256)')
		or diag(scalar(@bad) . ' pairs failed');

	my @uuids = map { $_->{uuid} } @pairs;

	$t->wait_log(qr/relay "pair-\d+" closed/, 100, 5);
	my $log = $t->read_file('error.log');

	is(join(' ', grep {
		$t->log_count(qr/new relay request "\Q$_\E"/, $log) != 1
	} @uuids), '', '100 pairs: "new relay request" once per uuid');
	is(join(' ', grep { $t->log_count(qr/relay "\Q$_\E" paired/, $log) != 1 }
		@uuids), '', '100 pairs: "paired" once per uuid');
	is(join(' ', grep { $t->log_count(qr/relay "\Q$_\E" closed/, $log) < 1 }
		@uuids), '', '100 pairs: "closed" logged for each');

	# split pairs: the line, the log's idea of where each side was
	# accepted, and the worker named in the line

	my %wk = $t->client_workers();
	my @workers = $t->worker_pids();
	my %is_worker = map { $_ => 1 } @workers;

	my ($cross, $split, @wrong) = (0, 0);

	while ($log =~ /\] (\d+)#\d+: .*relay "(pair-\d+)" paired with a connection from worker (\d+)/g) {
		my ($in, $uuid, $from) = ($1, $2, $3);
		$cross++;
		push @wrong, "$uuid: in $in from $from"
			if $in == $from || !$is_worker{$in} || !$is_worker{$from};
	}

	for my $x (@$r) {
		my ($wa, $wb) = ($wk{$x->{a_addr}} // 0, $wk{$x->{b_addr}} // 0);
		$split++ if $wa && $wb && $wa != $wb;
	}

	diag("100 pairs: $cross \"paired with a connection from worker\" "
		. "lines, $split pairs accepted on different workers");
	ok($cross > 0, "100 pairs: some split across workers ($cross)");
	is($cross, $split, '100 pairs: one "from worker" line per pair whose '
		. 'sides were accepted by different workers');
	is(join(', ', @wrong), '',
		'"paired with a connection from worker": the other worker');
}

###############################################################################

# 6. half-close: A shuts its write side down, B still talks to A

{
	my ($a, $b) = pair('half-1');

	$a->send_raw('A: last words');
	shutdown($a->sock(), SHUT_WR);

	my ($st, $buf) = wait_close($b, 3);
	is("$st: $buf", 'eof: A: last words',
		'half-close: B gets A\'s last bytes, then the end');

	my $big = join('', map { chunk_data(7, $_, 32768) } 0 .. 9);
	$b->send_raw($big);
	my ($got, $why) = read_exact($a, length $big, 5);
	ok($why eq 'ok' && $got eq $big,
		'half-close: B still sends to A (320 KiB), A gets it')
		or diag("$why, " . length($got) . ' bytes');

	($st) = wait_close($a, 0.5);
	is($st, 'timeout', 'half-close: A not closed while B is open');

	$b->send_raw('B: bye');
	shutdown($b->sock(), SHUT_WR);
	($st, $buf) = wait_close($a, 3);
	is("$st: $buf", 'eof: B: bye', 'half-close: B done, A sees the end');

	$a->close();
	$b->close();
	ok($t->wait_log(qr/relay "half-1" closed/, 1, 3),
		'half-close: closed, logged');
}

###############################################################################

# 7. close propagation

{
	# A sends 1 MB and closes at once: B gets all of it, then the end

	my ($a, $b) = pair('close-1');
	my $data = join('', map { chunk_data(8, $_, 32768) } 0 .. 31);

	$a->send_raw($data);
	$a->close();

	my ($st, $buf) = wait_close($b, 5);
	ok($st eq 'eof' && $buf eq $data,
		'close: B gets what A sent before closing (1 MiB), then the end')
		or diag("$st, " . length($buf) . ' bytes');
	$b->close();

	# A closes while B streams to it: B's connection ends

	($a, $b) = pair('close-2');
	$a->close();

	my $s = $b->sock();
	my $sel = IO::Select->new($s);
	$s->blocking(0);
	my $end = time() + 5;
	my $how = 'timeout';
	my $chunk = 'x' x 65536;

	while (time() < $end) {
		my $n = syswrite($s, $chunk);
		if (!defined $n && !$!{EAGAIN}) {
			$how = "write: $!";
			last;
		}
		my $r = sysread($s, my $x, 65536);
		if (defined $r && $r == 0) {
			$how = 'eof';
			last;
		}
		if (!defined $r && !$!{EAGAIN}) {
			$how = "read: $!";
			last;
		}

		# nothing taken: until the socket can take more, or has news
		IO::Select->select($sel, $sel, undef, 0.1) unless $n;
	}

	isnt($how, 'timeout', 'close: A gone while B streams, B\'s connection '
		. "ends ($how)");
	$b->close();

	ok($t->wait_log(qr/relay "close-[12]" closed/, 2, 3),
		'close: both pairs logged as closed');
}

###############################################################################

# 8. reload: 20 pairs streaming across it (1 MB/s each way for 2 s), a
# waiter from before it whose partner comes after it, new pairs after it

{
	my @old = $t->worker_pids();
	my %old = map { $_ => 1 } @old;
	my ($new_seen, $looked) = (0, 0);

	my @pairs = map { {
		port => $PORT, uuid => "reload-$_",
		a => { len => 2_000_000, rate => 1_000_000, ip => '127.0.0.2' },
		b => { len => 2_000_000, rate => 1_000_000, ip => '127.0.0.3' },
	} } 1 .. 20;

	push @pairs, { port => $PORT, uuid => 'reload-waiter',
		a => { len => 300_000, ip => '127.0.0.4' },
		b => { len => 300_000, ip => '127.0.0.5', start => sub {
			# when a new worker is up
			return 1 if $new_seen;
			return 0 if time() - $looked < 0.1;
			$looked = time();
			return $new_seen = grep { !$old{$_} } $t->worker_pids();
		} } };

	my $bg = transfer_bg(go_at => 0.5, pairs => \@pairs, timeout => 20);

	ok(wait_go($bg, 10), 'reload: transfers started');

	my $reload_at = time();
	$t->reload();
	my $reload_done = time();

	my ($r, $child_end) = bg_results($bg);
	my @bad = grep { !$_->{ok} } @$r;
	my ($waiter) = grep { $_->{uuid} eq 'reload-waiter' } @$r;
	@bad = grep { $_ != $waiter } @bad if $waiter;

	note(sprintf('reload: done after %.1f s, the transfers ended %.1f s '
		. 'after it began', $reload_done - $reload_at,
		($child_end // 0) - $reload_at));

	is(join("\n", map { $_->{err} } @bad) . (@$r == 21 ? '' : 'no results'),
		'', 'reload: 20 pairs live across it finished, SHA-256 checked');
	ok(($child_end // 0) > $reload_at + 0.5,
		'reload: the pairs were still streaming when it began');
	ok($waiter && $waiter->{ok},
		'reload: a waiter from before it pairs with a partner after it')
		or diag($waiter ? $waiter->{err} : 'no result');

	is($t->replaced(), '2/2', 'reload: two new workers');

	my @after = map { {
		port => $PORT, uuid => "after-reload-$_",
		a => { len => 1_000_000 + int(rand(1e6)), ip => '127.0.0.2' },
		b => { len => 1_000_000 + int(rand(1e6)), ip => '127.0.0.3',
			start => 0.1 * ($_ % 3) },
	} } 1 .. 20;

	$r = transfer(pairs => \@after, timeout => 20);
	@bad = grep { !$_->{ok} } @$r;
	is(join("\n", map { $_->{err} } @bad), '', 'reload: 20 new pairs after it');
}

###############################################################################

# 9. a worker killed with pairs streaming and waiters waiting: the pairs
# of the other worker go on; the waiters' uuids can be used again; new
# pairs pair

{
	my @w = $t->worker_pids();
	my ($victim, $survivor) = @w;

	# 4 waiters accepted by the worker to be killed

	my @waiters;

	for my $i (1 .. 60) {
		last if @waiters == 4;
		my $uuid = "kill-wait-$i";
		my $c = side($PORT, $uuid, ip => '127.0.0.4');
		$t->wait_log(qr/new relay request "\Q$uuid\E"/, 1, 2);
		if ($t->worker_of($c) == $victim) {
			push @waiters, [ $uuid, $c ];
		} else {
			$c->close();
		}
	}

	is(scalar(@waiters), 4, 'kill: 4 waiters on the worker to be killed');

	# 20 pairs streaming, 3 MB each way at 1 MB/s; A first, so that A's
	# worker holds the pair

	my @pairs = map { {
		port => $PORT, uuid => "kill-pair-$_",
		a => { len => 3_000_000, rate => 1_000_000, ip => '127.0.0.2' },
		b => { len => 3_000_000, rate => 1_000_000, ip => '127.0.0.3',
			start => 0.15 },
	} } 1 .. 20;

	my $bg = transfer_bg(go_at => 1, pairs => \@pairs, timeout => 15);
	wait_go($bg, 10);

	my @now = $t->kill_worker($victim);

	ok(@now == 2 && !(grep { $_ == $victim } @now)
		&& (grep { $_ == $survivor } @now),
		'kill: worker replaced, the other one still there');

	my ($r) = bg_results($bg);
	my %wk = $t->client_workers();
	my (@held, @lost, @hung);

	for my $x (@$r) {
		my $holder = $wk{$x->{a_addr}} // 0;
		if ($holder == $survivor) {
			push @held, $x;
		} else {
			push @lost, $x;
		}
		push @hung, $x->{err} if !$x->{ok} && $x->{err} =~ /timeout/;
	}

	note(scalar(@held) . ' pairs held by the surviving worker, '
		. scalar(@lost) . ' by the killed one');

	is(join("\n", map { $_->{err} } grep { !$_->{ok} } @held)
		. (@held ? '' : 'none held by the survivor'), '',
		'kill: pairs held by the surviving worker finished, SHA-256 checked');
	is(join("\n", @hung) . (@$r == 20 ? '' : 'no results'), '',
		'kill: pairs held by the killed worker ended, none hung');

	my @open = grep { (wait_close($_->[1], 3))[0] eq 'timeout' } @waiters;
	is(join(' ', map { $_->[0] } @open), '',
		'kill: the killed worker\'s waiters disconnected');

	# the waiters' uuids again, whichever worker the new sides land on

	my @again = map { {
		port => $PORT, uuid => $_->[0],
		a => { len => 200_000, ip => '127.0.0.2' },
		b => { len => 200_000, ip => '127.0.0.3', start => 0.3 },
	} } @waiters;

	$r = transfer(pairs => \@again, timeout => 15);
	is(join("\n", map { $_->{err} } grep { !$_->{ok} } @$r), '',
		'kill: the dead waiters\' uuids pair again');

	my $uuids = join('|', map { quotemeta $_->[0] } @waiters);
	note($t->log_count(
		qr/"(?:$uuids)" was in worker $victim, which is gone/)
		. ' of them found the entry left by the killed worker');

	my @more = map { {
		port => $PORT, uuid => "after-kill-$_",
		a => { len => 500_000, ip => '127.0.0.2' },
		b => { len => 500_000, ip => '127.0.0.3', start => 0.1 * ($_ % 2) },
	} } 1 .. 20;

	$r = transfer(pairs => \@more, timeout => 15);
	is(join("\n", map { $_->{err} } grep { !$_->{ok} } @$r), '',
		'kill: 20 new pairs');

	@now = $t->worker_pids();
	ok((grep { $_ == $survivor } @now) && @now == 2,
		'kill: no other worker died');
}

###############################################################################

# short timeouts: 2. a side without partner, 3. a connection without
# request, 5. idle pairs; all at once, each connection timed from its own
# start (the pair that talks in a child process of its own, at its pace)

start('rustdesk_relay_pair_timeout 1s;
    rustdesk_relay_request_timeout 1s;
    rustdesk_relay_idle_timeout 2s;');

{
	# 5. a pair talking every 0.5 s, A and B in turn, for 5 s, then silent

	my ($ta, $tb) = pair('idle-2');

	my $talk = background(sub {
		my @bad;

		for my $i (1 .. 10) {
			sleep 0.5;      # a sleep: the pace of the talk is what is tested
			my ($from, $to) = $i % 2 ? ($ta, $tb) : ($tb, $ta);
			my $msg = "tick $i;";
			$from->send_raw($msg);
			my ($got, $why) = read_exact($to, length $msg, 1);
			push @bad, "$i: $why '$got'" if $got ne $msg;
		}

		my ($st, $buf, $tm) = wait_close($ta, 6);
		return (join(', ', @bad), $st, $tm);
	});

	$_->close() for $ta, $tb;

	# 2. sides without partner, 3. a silent client and half a RequestRelay,
	# 5. a silent pair

	my @lone = map { [ "lone-$_", side($PORT, "lone-$_",
		ip => "127.0.0.$_"), time() ] } 2 .. 5;

	my $silent = RustDesk::Client->tcp($PORT, LocalAddr => '127.0.0.2');
	my $silent_at = time();

	my $half = RustDesk::Client->tcp($PORT, LocalAddr => '127.0.0.3');
	$half->send_raw(substr(RustDesk::Relay::relay_request(uuid => 'never'),
		0, 6));
	my $half_at = time();

	my ($ia, $ib) = pair('idle-1');
	my $idle_at = time();

	my @r = wait_closes(6, (map { [ $_->[1], $_->[2] ] } @lone),
		[ $silent, $silent_at ], [ $half, $half_at ], [ $ia, $idle_at ],
		[ $ib, $idle_at ]);

	# 2. no partner: closed after about 1 s, logged

	my @bad;

	for my $x (@lone) {
		my ($st, $buf, $tm) = @{shift @r};
		push @bad, sprintf('%s: %s after %.1f s, %d bytes', $x->[0], $st,
			$tm, length $buf)
			if $st eq 'timeout' || $tm < 0.7 || $tm > 3.5 || length $buf;
	}

	is(join(', ', @bad), '', 'pair timeout: lone sides closed after ~1 s');
	ok($t->wait_log(qr/no partner for relay "lone-\d"/, 4, 2) == 4,
		'pair timeout: "no partner" logged');

	# the uuid is free again

	my ($a, $b, $ok) = pair('lone-2');
	ok($ok, 'pair timeout: its uuid pairs afterwards');

	# 3. request timeout

	my ($st, $buf, $tm) = @{shift @r};
	ok($st ne 'timeout' && $tm > 0.7 && $tm < 3.5 && !length $buf,
		'request timeout: silent client closed after ~1 s')
		or diag(sprintf('%s after %.1f s', $st, $tm));

	($st, $buf, $tm) = @{shift @r};
	ok($st ne 'timeout' && $tm > 0.7 && $tm < 3.5 && !length $buf,
		'request timeout: half a request, closed after ~1 s')
		or diag(sprintf('%s after %.1f s', $st, $tm));

	# 5. idle pairs (2 s, checked once a second): B closed within 1 s of A

	($st, $buf, $tm) = @{shift @r};
	my ($st2, undef, $tm2) = @{shift @r};
	$st2 = 'timeout' if $st2 ne 'timeout' && $tm2 > $tm + 1;
	ok($st ne 'timeout' && $st2 ne 'timeout' && $tm > 1.5 && $tm < 4.5,
		'idle: a silent pair closed after 2-4 s')
		or diag(sprintf('A %s after %.1f s, B %s', $st, $tm, $st2));
	ok($t->wait_log(qr/relay "idle-1" idle/, 1, 2), 'idle: logged');

	my ($talk_bad, $talk_st, $talk_tm) = background_result($talk);

	is($talk_bad, '', 'idle: a pair talking every 0.5 s lives 5 s');
	ok($talk_st ne 'timeout' && $talk_tm > 1.5 && $talk_tm < 4.5,
		'idle: then silent, closed after 2-4 s')
		or diag(sprintf('%s after %.1f s', $talk_st, $talk_tm));
}

###############################################################################

# 4. a key: the relay requires the public key of the key directory

start('rustdesk_key_dir %%TESTDIR%%/keys;
    rustdesk_key -;');

{
	my $key = $t->key();
	ok(length $key == 44, 'key: public key made');

	my $before = $t->log_count(
		qr/\[warn\].*relay refused to 127\.0\.0\.2: wrong key/);

	my $c = side($PORT, 'key-1', ip => '127.0.0.2', key => 'wrong' . $key);
	my ($st, $buf, $tm) = wait_close($c, 3);
	ok($st ne 'timeout' && $tm < 1.5 && !length $buf,
		'key: a wrong key closed at once');

	ok($t->wait_log(qr/\[warn\].*relay refused to 127\.0\.0\.2: wrong key/,
		$before + 1, 2) == $before + 1, 'key: wrong key logged');

	$c = side($PORT, 'key-2', ip => '127.0.0.2');
	($st, $buf, $tm) = wait_close($c, 3);
	ok($st ne 'timeout' && $tm < 1.5, 'key: no key closed at once');

	# A right, B wrong: B closed, A still waits and pairs with B'

	my $a = side($PORT, 'key-3', ip => '127.0.0.2', key => $key,
		extra => 'from A');
	$t->wait_log(qr/new relay request "key-3"/, 1, 2);
	my $b = side($PORT, 'key-3', ip => '127.0.0.3', key => substr($key, 1),
		extra => 'from bad B');
	($st) = wait_close($b, 3);
	is($st eq 'timeout' ? 'open' : 'closed', 'closed',
		'key: wrong partner closed');

	$b = side($PORT, 'key-3', ip => '127.0.0.3', key => $key,
		extra => 'from B');
	my ($got_b) = read_exact($b, 6, 3);
	my ($got_a) = read_exact($a, 6, 3);
	is("$got_a|$got_b", 'from B|from A',
		'key: the waiter pairs with a right partner after a wrong one');

	my @pairs = map { {
		port => $PORT, uuid => "key-pair-$_", key => $key,
		a => { len => 1_000_000, ip => '127.0.0.2' },
		b => { len => 1_000_000, ip => '127.0.0.3', start => 0.1 * $_ },
	} } 1 .. 4;

	my $r = transfer(pairs => \@pairs, timeout => 15);
	is(join("\n", map { $_->{err} } grep { !$_->{ok} } @$r), '',
		'key: right key, pairs relay (SHA-256)');
}

note(sprintf('runtime %.1f s', time() - $started));

###############################################################################

# (Re)starts nginx with these relay directives.

sub start {
	my ($relay) = @_;
	$t->restart(stream_conf([ $relay ], srv_relay(0)));
}

# Two sides of a uuid, paired: A waits, B comes, a greeting each way.
# Returns (A, B, whether the greetings got through).

sub pair {
	my ($uuid) = @_;

	my $a = side($PORT, $uuid, ip => '127.0.0.2', extra => "A:$uuid;");
	$t->wait_log(qr/new relay request "\Q$uuid\E"/, 1, 2);
	my $b = side($PORT, $uuid, ip => '127.0.0.3', extra => "B:$uuid;");

	my ($got_b) = read_exact($b, length "A:$uuid;", 3);
	my ($got_a) = read_exact($a, length "B:$uuid;", 3);

	my $ok = $got_a eq "B:$uuid;" && $got_b eq "A:$uuid;";
	diag("$uuid: not paired: A got '$got_a', B got '$got_b'") unless $ok;

	return ($a, $b, $ok);
}

# transfer() in a child process, which says "go" after go_at seconds:
# what the parent waits for to act while the pairs stream.

sub transfer_bg {
	my (%o) = @_;

	pipe(my $rd, my $wr) or die "pipe: $!\n";
	my $pid = fork() // die "fork: $!\n";

	if ($pid == 0) {
		close $rd;
		$wr->autoflush(1);

		my $said;
		my $r = eval {
			transfer(%o, tick => sub {
				return if $said || $_[0] < $o{go_at};
				print $wr "go\n";
				$said = 1;
			});
		};

		print $wr "go\n" unless $said;
		for my $x (@{$r || []}) {
			print $wr join("\t", $x->{ok} ? 1 : 0, $x->{uuid},
				$x->{a_addr}, $x->{b_addr}, $x->{err}), "\n";
		}
		print $wr "error\t$@\n" if $@;
		printf $wr "end\t%.6f\n", time();
		close $wr;

		# no END blocks: they would stop nginx
		POSIX::_exit(0);
	}

	close $wr;
	return { pid => $pid, fh => $rd };
}

sub wait_go {
	my ($bg, $timeout) = @_;
	my $sel = IO::Select->new($bg->{fh});
	return 0 unless $sel->can_read($timeout);
	my $line = readline($bg->{fh}) // '';
	return $line eq "go\n";
}

# ([ results as transfer() returns them ], the time the child ended)
sub bg_results {
	my ($bg) = @_;
	my (@r, $end);
	my $fh = $bg->{fh};

	while (my $line = <$fh>) {
		chomp $line;
		my @f = split /\t/, $line, -1;
		if ($f[0] eq 'end') {
			$end = $f[1];
		} elsif ($f[0] eq 'error') {
			diag("transfer: $f[1]");
		} elsif ($f[0] ne 'go') {
			push @r, { ok => $f[0], uuid => $f[1], a_addr => $f[2],
				b_addr => $f[3], err => $f[4] };
		}
	}

	close $fh;
	waitpid($bg->{pid}, 0);
	return (\@r, $end);
}

###############################################################################
