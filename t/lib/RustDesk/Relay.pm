package RustDesk::Relay;

# The test side of the relay server (hbbr, PROTOCOL.md sections 2 and 7):
# a side connects, sends one framed RendezvousMessage RequestRelay{uuid},
# and once its partner with the same uuid has come, bytes flow raw both
# ways.
#
#     my $a = side($port, 'uuid-1', extra => 'hello');   # frame + bytes
#     my $b = side($port, 'uuid-1');
#     my ($got, $why) = read_exact($b, 5);               # 'hello', 'ok'
#
#     # many pairs at once, each side streaming its own pseudo-random
#     # bytes, checked by SHA-256 at the other end
#     my $r = transfer(pairs => [ { port => $port, uuid => 'u1',
#         a => { len => 3e6 }, b => { len => 2e6, start => 0.2 } } ]);
#     # $r->[0]{ok}, $r->[0]{err}

use warnings;
use strict;

use Exporter qw/ import /;
use Digest::SHA;
use Errno qw/ EAGAIN EWOULDBLOCK EINTR /;
use IO::Select;
use IO::Socket::INET;
use Socket qw/ SHUT_WR /;
use Time::HiRes qw/ time sleep /;

use RustDesk::Client qw/ frame encode_msg /;

our @EXPORT_OK = qw/ relay_request side read_exact wait_close wait_closes
	transfer chunk_data /;

# A framed RequestRelay with these fields.
sub relay_request {
	my (%f) = @_;
	return frame(encode_msg(request_relay => \%f));
}

# A blocking RustDesk::Client connection that has sent its RequestRelay
# and, in the same write, the bytes of 'extra'.  Options: ip (source
# address), host (the relay's, default 127.0.0.1), key (licence_key), id,
# extra.
sub side {
	my ($port, $uuid, %o) = @_;

	my $c = RustDesk::Client->tcp($port,
		LocalAddr => $o{ip} // '127.0.0.1',
		PeerHost => $o{host} // '127.0.0.1');

	my %f = (uuid => $uuid);
	$f{licence_key} = $o{key} if defined $o{key};
	$f{id} = $o{id} if defined $o{id};

	$c->send_raw(relay_request(%f) . ($o{extra} // ''));
	return $c;
}

# Reads until $n bytes came: returns (data, 'ok'), or what came and why
# it stopped: 'eof', 'reset', 'timeout'.
sub read_exact {
	my ($c, $n, $timeout) = @_;
	my $s = ref $c eq 'RustDesk::Client' ? $c->sock() : $c;
	my $end = time() + ($timeout // 5);
	my $sel = IO::Select->new($s);
	my $buf = '';

	while (length $buf < $n) {
		my $left = $end - time();
		return ($buf, 'timeout') if $left <= 0 || !$sel->can_read($left);

		my $got = sysread($s, $buf, $n - length $buf, length $buf);
		next if !defined $got && ($! == EAGAIN || $! == EINTR);
		return ($buf, 'reset') unless defined $got;
		return ($buf, 'eof') if $got == 0;
	}

	return ($buf, 'ok');
}

# Waits for the other end to close: returns ('eof' or 'reset' or
# 'timeout', the bytes that came before, seconds waited).
sub wait_close {
	my ($c, $timeout) = @_;
	my $s = ref $c eq 'RustDesk::Client' ? $c->sock() : $c;
	my $start = time();
	my $end = $start + ($timeout // 5);
	my $sel = IO::Select->new($s);
	my $buf = '';

	for (;;) {
		my $left = $end - time();
		return ('timeout', $buf, time() - $start)
			if $left <= 0 || !$sel->can_read($left);

		my $got = sysread($s, $buf, 65536, length $buf);
		next if !defined $got && ($! == EAGAIN || $! == EINTR);
		return ('reset', $buf, time() - $start) unless defined $got;
		return ('eof', $buf, time() - $start) if $got == 0;
	}
}

# wait_close() for several connections at once, each timed from its own
# start: [ connection, start time ] ...; the timeout counts from now.
# Returns [ 'eof' or 'reset' or 'timeout', the bytes that came before,
# seconds since its start ] for each, in the same order.
sub wait_closes {
	my ($timeout, @c) = @_;
	my $end = time() + $timeout;
	my $sel = IO::Select->new();
	my (%i, @r);

	for my $n (0 .. $#c) {
		my $c = $c[$n][0];
		my $s = ref $c eq 'RustDesk::Client' ? $c->sock() : $c;
		$i{$s} = $n;
		$r[$n] = [ 'timeout', '' ];
		$sel->add($s);
	}

	while ($sel->count()) {
		my $left = $end - time();
		last if $left <= 0;

		for my $s ($sel->can_read($left)) {
			my $n = $i{$s};
			my $got = sysread($s, $r[$n][1], 65536, length $r[$n][1]);
			next if !defined $got && ($! == EAGAIN || $! == EINTR);
			next if $got;

			$r[$n][0] = defined $got ? 'eof' : 'reset';
			$r[$n][2] = time() - $c[$n][1];
			$sel->remove($s);
		}
	}

	$r[$_][2] //= time() - $c[$_][1] for 0 .. $#c;
	return @r;
}


# The bytes a streaming side sends: chunks of 32 KiB, each a header
# (side number, chunk number) and a slice of a random pool, so that every
# side of every pair sends other bytes and a byte in the wrong place
# changes the digest.

my $CHUNK = 32768;
my $POOL;
my $side_no = 0;

sub pool {
	return $POOL if defined $POOL;
	my $r = 0x2545F491;
	my @w;
	for (1 .. (1 << 20) / 4) {
		# xorshift32: the same pool on every run
		$r ^= ($r << 13) & 0xFFFFFFFF;
		$r ^= $r >> 17;
		$r ^= ($r << 5) & 0xFFFFFFFF;
		push @w, $r;
	}
	return $POOL = pack('V*', @w);
}

sub chunk_data {
	my ($side, $i, $len) = @_;
	my $pool = pool();
	my $off = ($side * 104729 + $i * 7919) % (length($pool) - $CHUNK);
	my $c = pack('NN', $side, $i) . substr($pool, $off, $CHUNK - 8);
	return $len < $CHUNK ? substr($c, 0, $len) : $c;
}


# transfer(pairs => [ pair, ... ], timeout => s, tick => sub { ... })
#
# A pair: { port, uuid, key (licence_key, optional), a => side, b => side }
# A side: { len => bytes to send, ip => source address, start => seconds
# after the start to connect (default 0), or a code ref called with the
# elapsed time that says when, rate => bytes per second (default
# unlimited) }.
#
# Each side connects at its start time and sends its RequestRelay and its
# first bytes in one write, then the rest as the socket takes it; once it
# has sent everything and received something, it shuts its write side
# down; it is done when it has read the end of what the other side sent.
# tick is called with the elapsed time on every turn of the loop.
#
# Returns [ { uuid, ok, err, a_addr, b_addr, a_got, b_got }, ... ] in the
# order of the pairs.

sub transfer {
	my (%o) = @_;
	my $timeout = $o{timeout} // 60;
	my @sides;

	local $SIG{PIPE} = 'IGNORE';

	for my $p (@{$o{pairs}}) {
		for my $n (qw/ a b /) {
			my $s = { %{$p->{$n}}, name => $n, pair => $p,
				no => ++$side_no, sent => 0, made => 0, chunk => 0,
				out => '', got => 0, sha_out => Digest::SHA->new(256),
				sha_in => Digest::SHA->new(256), start => $p->{$n}{start} // 0 };
			$p->{"_$n"} = $s;
			push @sides, $s;
		}
		$p->{_a}{other} = $p->{_b};
		$p->{_b}{other} = $p->{_a};
	}

	my $t0 = time();
	my $end = $t0 + $timeout;
	my @pending = @sides;
	my @live;

	while ((@pending || @live) && time() < $end) {
		my $now = time() - $t0;

		$o{tick}->($now) if $o{tick};

		my @later;

		for my $s (@pending) {
			my $go = ref $s->{start} eq 'CODE' ? $s->{start}->($now)
				: $s->{start} <= $now;

			unless ($go) {
				push @later, $s;
				next;
			}

			connect_side($s, $t0);
			push @live, $s unless $s->{done};
		}

		@pending = @later;

		my ($rin, $win) = ('', '');

		for my $s (@live) {
			my $fd = fileno($s->{sock});
			vec($rin, $fd, 1) = 1 unless $s->{eof};
			vec($win, $fd, 1) = 1 if want_write($s, $t0);
		}

		my $wait = 0.02;

		my ($rout, $wout) = ($rin, $win);
		my $n = select($rout, $wout, undef, $wait);
		next if $n < 0 && $! == EINTR;
		die "select: $!\n" if $n < 0;

		for my $s (@live) {
			my $fd = fileno($s->{sock});
			read_side($s) if $n > 0 && vec($rout, $fd, 1);
			write_side($s, $t0) if $n > 0 && vec($wout, $fd, 1)
				|| $s->{sent} == 0;
			finish_side($s);
		}

		@live = grep { !$_->{done} } @live;
	}

	for my $s (@live, @pending) {
		$s->{err} //= 'timeout';
		close $s->{sock} if $s->{sock};
	}

	my @r;

	for my $p (@{$o{pairs}}) {
		my ($a, $b) = @$p{qw/ _a _b /};
		my @bad;

		for my $s ($a, $b) {
			my $peer = $s->{other};
			my $why = $s->{err} ? " ($s->{err})" : '';
			push @bad, "$s->{name} got $s->{got} of $peer->{len} bytes$why"
				if $s->{got} != $peer->{len} || $s->{err};
			push @bad, "$s->{name} got other bytes (SHA-256)"
				if $s->{got} == $peer->{len} && $peer->{made} == $peer->{len}
				&& $s->{sha_in}->clone->hexdigest
					ne $peer->{sha_out}->clone->hexdigest;
		}

		push @r, { uuid => $p->{uuid}, ok => !@bad,
			err => "$p->{uuid}: " . join(', ', @bad),
			a_addr => $a->{addr} // '', b_addr => $b->{addr} // '',
			a_got => $a->{got}, b_got => $b->{got} };

		delete @$p{qw/ _a _b /};
		delete $_->{other} for $a, $b;
	}

	return \@r;
}

sub connect_side {
	my ($s, $t0) = @_;
	my $p = $s->{pair};

	my $sock = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$p->{port}",
		LocalAddr => $s->{ip} // '127.0.0.1', Proto => 'tcp');

	unless ($sock) {
		$s->{err} = "connect: $!";
		$s->{done} = 1;
		return;
	}

	$sock->blocking(0);
	$s->{sock} = $sock;
	$s->{addr} = $sock->sockhost() . ':' . $sock->sockport();
	$s->{t} = time();

	my %f = (uuid => $p->{uuid});
	$f{licence_key} = $p->{key} if defined $p->{key};
	$s->{out} = relay_request(%f);
	$s->{head} = length $s->{out};

	# the first bytes go in the same write as the RequestRelay
	make_chunk($s);
}

sub make_chunk {
	my ($s) = @_;
	my $left = $s->{len} - $s->{made};
	return 0 if $left <= 0;

	my $c = chunk_data($s->{no}, $s->{chunk}++, $left);
	$s->{sha_out}->add($c);
	$s->{made} += length $c;
	$s->{out} .= $c;
	return 1;
}

sub may_make {
	my ($s) = @_;
	return 0 if $s->{made} >= $s->{len};
	return 1 unless $s->{rate};
	return $s->{made} < $s->{rate} * (time() - $s->{t}) + $CHUNK;
}

sub want_write {
	my ($s) = @_;
	return 0 if $s->{shut} || $s->{err};
	return length $s->{out} || may_make($s);
}

sub write_side {
	my ($s) = @_;
	return if $s->{shut} || $s->{err};

	for (1 .. 8) {
		make_chunk($s) if length $s->{out} < $CHUNK && may_make($s);
		last unless length $s->{out};

		my $n = syswrite($s->{sock}, $s->{out});

		unless (defined $n) {
			last if $! == EAGAIN || $! == EWOULDBLOCK || $! == EINTR;
			$s->{err} = "write: $!";
			return;
		}

		$s->{sent} += $n;
		substr($s->{out}, 0, $n) = '';
		last if length $s->{out};
	}
}

sub read_side {
	my ($s) = @_;

	for (1 .. 8) {
		my $n = sysread($s->{sock}, my $buf, 262144);

		unless (defined $n) {
			return if $! == EAGAIN || $! == EWOULDBLOCK || $! == EINTR;
			$s->{err} = "read: $!";
			$s->{eof} = 1;
			return;
		}

		if ($n == 0) {
			$s->{eof} = 1;
			return;
		}

		$s->{got} += $n;
		$s->{sha_in}->add($buf);
	}
}

# Everything sent, and paired (something came, or the other side is
# done): shut the write side down.  Done when the other side's end came
# too, or on an error.
sub finish_side {
	my ($s) = @_;
	return if $s->{done};

	if (!$s->{shut} && !$s->{err} && $s->{made} >= $s->{len}
		&& !length $s->{out}
		&& ($s->{got} > 0 || $s->{eof} || !$s->{other}{len}))
	{
		shutdown($s->{sock}, SHUT_WR);
		$s->{shut} = 1;
	}

	if ($s->{eof} && $s->{shut} || $s->{err}) {
		close $s->{sock};
		$s->{done} = 1;
	}
}

1;
