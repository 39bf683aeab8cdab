package RustDesk::RelayTest;

# Helpers for the relay (hbbr) tests: pairs of relay clients, streaming
# through them as fast as the relay lets (or at a given pace) while
# measuring at the receiving side, console commands.
#
#     my $p = relay_pair($t, port(0), 'uuid1', '127.0.0.2', '127.0.0.1');
#     my $r = stream([ flow($p->{b}, $p->{a}) ], 3);
#     rate($r->[0], 0.3, 3);      # bytes/s received between 0.3 s and 3 s
#
# A pair: {a} waited (first arrival), {b} came second; both are plain
# sockets once the RequestRelay frame is sent, and the pair was checked by
# one byte each way.

use warnings;
use strict;

use Exporter qw/ import /;
use Errno qw/ EAGAIN EWOULDBLOCK EINTR /;
use IO::Select;
use IO::Socket::INET;
use Time::HiRes qw/ sleep time /;

use RustDesk::Relay qw/ side read_exact /;

our @EXPORT = qw/ relay_side relay_pair relay_pairs_on_workers flow stream
	rate rate_at console console_closed workers close_pairs MiB /;

use constant MiB => 1024 * 1024;

my $CHUNK = 'x' x 65536;


# One relay client: connected from $src, its RequestRelay sent (with
# $extra raw bytes in the same write, if any).  Returns the socket.

sub relay_side {
	my ($port, $uuid, $src, $extra) = @_;
	return side($port, $uuid, ip => $src || '127.0.0.1', extra => $extra)
		->sock();
}

# A pair: a connects and is waited for (its "new relay request" logged),
# then b; one byte each way proves the pair.  Returns { a, b, uuid } or
# undef (with a diagnostic) when the pair does not work.

sub relay_pair {
	my ($t, $port, $uuid, $src_a, $src_b) = @_;

	my $a = relay_side($port, $uuid, $src_a);
	unless ($t->wait_log(qr/new relay request "\Q$uuid\E"/, 1, 5)) {
		Test::More::diag("relay $uuid: first side not waiting");
		return undef;
	}

	my $b = relay_side($port, $uuid, $src_b);
	my $p = { a => $a, b => $b, uuid => $uuid };

	return $p if check_pair($p);

	Test::More::diag("relay $uuid: no bytes through the pair");
	return undef;
}

sub check_pair {
	my ($p) = @_;

	local $SIG{PIPE} = 'IGNORE';

	$p->{b}->syswrite('B');
	return 0 unless (read_exact($p->{a}, 1, 5))[0] eq 'B';

	$p->{a}->syswrite('A');
	return 0 unless (read_exact($p->{b}, 1, 5))[0] eq 'A';

	return 1;
}

# $n pairs, as evenly as possible over the workers: a first side is kept
# only while its worker (where the pair will live) has fewer than its
# share.  Returns the list of pairs; each has {worker}.

sub relay_pairs_on_workers {
	my ($t, $port, $prefix, $n, $src_a, $src_b) = @_;

	my $nw = scalar(workers($t)) || 1;
	my $share = int(($n + $nw - 1) / $nw);
	my (%count, @waiting);

	for my $i (1 .. 20 * $n) {
		last if @waiting == $n;

		my $uuid = "$prefix-$i";
		my $a = relay_side($port, $uuid, $src_a);
		$t->wait_log(qr/new relay request "\Q$uuid\E"/, 1, 5) or next;

		my $w = $t->worker_of($a);

		if (($count{$w} || 0) >= $share) {
			close $a;
			next;
		}

		$count{$w}++;
		push @waiting, { a => $a, uuid => $uuid, worker => $w };
	}

	my @pairs;

	for my $p (@waiting) {
		$p->{b} = relay_side($port, $p->{uuid}, $src_b);
		if (check_pair($p)) {
			push @pairs, $p;
		} else {
			Test::More::diag("relay $p->{uuid}: no bytes through the pair");
		}
	}

	return @pairs;
}

# The worker pids, once there are 2 (the pid file and the listeners are
# there before the master forks them).
sub workers {
	my ($t, $n) = @_;
	my $end = time() + 5;
	my @w;

	for (;;) {
		@w = $t->worker_pids();
		return @w if @w >= ($n || 2) || time() >= $end;
		sleep 0.05;
	}
}

sub close_pairs {
	my ($t, @pairs) = @_;

	for my $p (grep { defined } @pairs) {
		close $p->{a} if $p->{a};
		close $p->{b} if $p->{b};
	}

	# let the relay notice before anything else happens

	for my $p (grep { defined } @pairs) {
		$t->wait_log(qr/relay "\Q$p->{uuid}\E" (?:closed|idle)/, 1, 3);
	}
}


# Streaming.  A flow: bytes written to $from as fast as it takes them (or
# at $pace bytes/s; no more than $max bytes if given), read from $to.
# stream() runs the flows together for $duration seconds (or until
# $tick->(elapsed) returns true, called about every 50 ms) and returns them
# with their samples: [ time, bytes received ] since the start, and when
# each side ended (EOF or error).

sub flow {
	my ($from, $to, $pace, $max) = @_;
	return { from => $from, to => $to, pace => $pace, max => $max,
		sent => 0, got => 0, samples => [ [ 0, 0 ] ] };
}

sub stream {
	my ($flows, $duration, $tick) = @_;

	local $SIG{PIPE} = 'IGNORE';

	for my $f (@$flows) {
		$f->{from}->blocking(0);
		$f->{to}->blocking(0);
	}

	# a socket receiving in one flow is read by that flow only
	my %receiving = map { ("$_->{to}" => 1) } @$flows;

	my $start = time();
	my $last_tick = 0;

	for (;;) {
		my $now = time() - $start;
		last if $now >= $duration;

		if ($tick && $now - $last_tick >= 0.05) {
			$last_tick = $now;
			last if $tick->($now);
		}

		my $rd = IO::Select->new();
		my $wr = IO::Select->new();
		my %by;

		for my $f (@$flows) {
			unless (defined $f->{to_end}) {
				$rd->add($f->{to});
				$by{"r$f->{to}"} = $f;
			}

			next if defined $f->{from_end};

			# a sender that gets nothing: readable means EOF or reset
			unless ($receiving{"$f->{from}"}) {
				$rd->add($f->{from});
				$by{"s$f->{from}"} = $f;
			}

			next if defined $f->{pace} && $f->{sent} >= $f->{pace} * $now;
			next if defined $f->{max} && $f->{sent} >= $f->{max};

			$wr->add($f->{from});
			$by{"w$f->{from}"} = $f;
		}

		last unless $rd->count() || $wr->count();

		my ($r, $w) = IO::Select->select($rd, $wr, undef, 0.02);
		$now = time() - $start;

		for my $s (@{$r || []}) {
			if (my $f = $by{"r$s"}) {
				my $n = $s->sysread(my $buf, 262144);

				if ($n) {
					$f->{got} += $n;
					push @{$f->{samples}}, [ $now, $f->{got} ];

				} elsif (defined $n || ($! != EAGAIN && $! != EWOULDBLOCK
					&& $! != EINTR))
				{
					$f->{to_end} = $now;
					$f->{to_error} = defined $n ? '' : "$!";
				}
			}

			if (my $f = $by{"s$s"}) {
				my $n = $s->sysread(my $buf, 65536);

				if (!$n && (defined $n || ($! != EAGAIN
					&& $! != EWOULDBLOCK && $! != EINTR)))
				{
					$f->{from_end} = $now;
				}
			}
		}

		for my $s (@{$w || []}) {
			my $f = $by{"w$s"} or next;
			next if defined $f->{from_end};

			my $len = length $CHUNK;
			$len = $f->{pace} * $now - $f->{sent} + 1 if defined $f->{pace}
				&& $f->{pace} * $now - $f->{sent} + 1 < $len;
			$len = $f->{max} - $f->{sent} if defined $f->{max}
				&& $f->{max} - $f->{sent} < $len;

			my $n = $s->syswrite($CHUNK, int $len);

			if ($n) {
				$f->{sent} += $n;

			} elsif (!defined $n && $! != EAGAIN && $! != EWOULDBLOCK
				&& $! != EINTR)
			{
				$f->{from_end} = $now;
			}
		}
	}

	my $now = time() - $start;

	for my $f (@$flows) {
		push @{$f->{samples}}, [ $now, $f->{got} ];
		$f->{duration} = $now;
		$f->{from}->blocking(1);
		$f->{to}->blocking(1);
	}

	return $flows;
}

# Bytes received by a flow at a time (the last sample before it).
sub got_at {
	my ($f, $at) = @_;
	my $got = 0;

	for my $s (@{$f->{samples}}) {
		last if $s->[0] > $at;
		$got = $s->[1];
	}

	return $got;
}

# Receiving rate of a flow between two times (bytes/s); $to defaults to
# the end of the stream.
sub rate {
	my ($f, $from, $to) = @_;
	$to = $f->{duration} if !defined $to || $to > $f->{duration};
	return 0 if $to <= $from;
	return (got_at($f, $to) - got_at($f, $from)) / ($to - $from);
}

sub rate_at { rate(@_) }


# The console: one command in one write, everything it answers until it
# closes (or nothing more comes for $timeout seconds).

sub console {
	my ($port, $cmd, $timeout) = @_;
	my ($out) = console_closed($port, $cmd, $timeout);
	return $out;
}

# (answer, 1 if the server closed the connection within $timeout seconds
# of silence, else 0)
sub console_closed {
	my ($port, $cmd, $timeout) = @_;

	my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port",
		Proto => 'tcp') or die "Can't connect to 127.0.0.1:$port: $!\n";

	local $SIG{PIPE} = 'IGNORE';
	$s->syswrite($cmd) if length $cmd;

	my $sel = IO::Select->new($s);
	my $all = '';

	while ($sel->can_read($timeout // 3)) {
		my $n = $s->sysread(my $buf, 65536);
		return ($all, 1) unless $n;
		$all .= $buf;
	}

	return ($all, 0);
}

1;
