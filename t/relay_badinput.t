#!/usr/bin/perl

# Hostile and broken input to the relay server (hbbr, PROTOCOL.md sections
# 2 and 7): first frames that are not a RequestRelay with a uuid, frame
# headers announcing too much, partners that never come, thousands of
# connections that never finish their request.  Every bad connection is
# closed at once without a byte from the server (the request timeout is
# 30 s here, so a prompt close can only be the check), the workers'
# descriptors come back to what they were, no worker dies, nothing is
# logged above [error] (the harness checks the log at the end).

use warnings;
use strict;

use Test::More;
use IO::Poll qw/ POLLIN POLLHUP POLLERR /;
use IO::Select;
use IO::Socket::INET;
use Time::HiRes qw/ time /;

use lib 't/lib';
use Test::Nginx qw/ port /;
use RustDesk::Conf;
use RustDesk::Client qw/ frame frame_header encode_msg padded random_bytes /;
use RustDesk::Relay qw/ relay_request side read_exact wait_closes /;

local $SIG{PIPE} = 'IGNORE';

my $t = Test::Nginx->new()->modules('relay')->has()->plan(21);

# 2 workers as usual, with room for the thousands of connections below

$t->connections(8192)->write_file_expand('nginx.conf', stream_conf([
	'rustdesk_relay_request_timeout 30s;',
	'rustdesk_relay_pair_timeout 2s;',
], srv_relay(0)));

$t->run();

my $started = time();
my $PORT = port(0);

my @workers = $t->worker_pids();

srand(20240918);

###############################################################################

# 1. bad first frames: each on a connection of its own, all at once;
# every one must be closed within 1.5 s and get nothing

my @random = map { random_bytes(70000) } 1 .. 20;

# 70000 random bytes: whatever the first bytes announce is either more
# than 64 KiB or ends inside them, so there is no waiting for more
is(bad_batch('random bytes', @random), '', 'random bytes: closed at once');

is(bad_batch('random frame',
	map { frame(random_bytes(1 + int(rand(300)))) } 1 .. 20),
	'', 'random frames: closed at once');

is(bad_batch('not protobuf', frame("\xFF" x 30),
	frame('this is not a protobuf message'), frame("\x92\x01\x50abc"),
	frame("\x0a")),
	'', 'frames that do not decode: closed at once');

is(bad_batch('not a RequestRelay', frame(''),
	frame(encode_msg(test_nat_request => { serial => 1 })),
	frame(encode_msg(punch_hole_request => { id => 'abc',
		licence_key => '' })),
	frame(encode_msg(register_peer => { id => 'abc', serial => 1 })),
	frame(encode_msg(relay_response => { uuid => 'uuid-rr' })),
	frame(encode_msg(online_request => { id => 'abc', peers => [ 'x' ] }))),
	'', 'other RendezvousMessages: closed at once, nothing answered');

is(bad_batch('empty uuid', relay_request(id => 'abc'),
	relay_request(uuid => ''), relay_request(uuid => '', licence_key => 'k',
		relay_server => 'r:1')),
	'', 'RequestRelay without uuid: closed at once');

is(bad_batch('header', "\xFF\xFF\xFF\xFF" . ('x' x 1000),
	frame_header(65537) . ('x' x 1000), frame_header(0x3FFFFF) . 'x',
	"\xFF\xFF\xFF\xFF"),
	'', 'headers announcing 1 GiB, 64 KiB + 1, 4 MiB: closed at once');

alive('bad first frames');

# a RequestRelay of exactly 64 KiB (padded with an unknown field) is one

{
	my $a = RustDesk::Client->tcp($PORT, LocalAddr => '127.0.0.2');
	my $payload = padded(encode_msg(request_relay => { uuid => 'big-1' }),
		65536);
	$a->send_raw(frame($payload) . 'from A');
	$t->wait_log(qr/new relay request "big-1"/, 1, 2);

	my $b = side($PORT, 'big-1', ip => '127.0.0.3', extra => 'from B');
	my ($got_b) = read_exact($b, 6, 3);
	my ($got_a) = read_exact($a, 6, 3);
	is("$got_a|$got_b", 'from B|from A',
		'RequestRelay of 65536 bytes: accepted, pairs');
}

# what follows the first frame is data, even when it is a frame too

{
	my $second = relay_request(uuid => 'two-1') . frame('more');
	my $a = side($PORT, 'two-1', ip => '127.0.0.2', extra => $second);
	$t->wait_log(qr/new relay request "two-1"/, 1, 2);
	my $b = side($PORT, 'two-1', ip => '127.0.0.3', extra => 'x');

	my ($got, $why) = read_exact($b, length $second, 3);
	ok($got eq $second && (read_exact($a, 1, 3))[0] eq 'x',
		'frames after the RequestRelay: relayed as they are');
}

###############################################################################

# 2. partners that never come, or come late, or too many: the pair
# timeouts run at once, each connection timed from its own start

{
	my $c = side($PORT, 'never-1', ip => '127.0.0.2');
	my $never_at = time();

	# a waiter that left: its uuid is free for the next two

	my $gone = side($PORT, 'left-1', ip => '127.0.0.2');
	$t->wait_log(qr/new relay request "left-1"/, 1, 2);
	$gone->close();
	$t->wait_log(qr/relay client of "left-1" left before its partner came/,
		1, 3);

	my $a = side($PORT, 'left-1', ip => '127.0.0.2', extra => 'from A');
	$t->wait_log(qr/new relay request "left-1"/, 2, 3);
	my $b = side($PORT, 'left-1', ip => '127.0.0.3', extra => 'from B');
	my ($got_b) = read_exact($b, 6, 3);
	my ($got_a) = read_exact($a, 6, 3);
	my $left = "$got_a|$got_b";

	# a third side for a uuid already paired waits for a partner of its
	# own

	$a = side($PORT, 'three-1', ip => '127.0.0.2', extra => 'from A');
	$t->wait_log(qr/new relay request "three-1"/, 1, 2);
	$b = side($PORT, 'three-1', ip => '127.0.0.3', extra => 'from B');
	($got_b) = read_exact($b, 6, 3);
	($got_a) = read_exact($a, 6, 3);

	my $third = side($PORT, 'three-1', ip => '127.0.0.4', extra => 'from C');
	my $third_at = time();

	my ($never, $closed) = wait_closes(5, [ $c, $never_at ],
		[ $third, $third_at ]);

	my ($st, $buf, $tm) = @$never;
	ok($st ne 'timeout' && $tm > 1.5 && $tm < 4 && !length $buf,
		'no partner: closed after 2-4 s, nothing sent')
		or diag(sprintf('%s after %.1f s', $st, $tm));
	ok($t->wait_log(qr/no partner for relay "never-1"/, 1, 2),
		'no partner: logged');

	is($left, 'from B|from A',
		'a waiter that left: the next two with its uuid pair');

	$a->send_raw('A again');
	$b->send_raw('B again');
	my ($again_b) = read_exact($b, 7, 3);
	my ($again_a) = read_exact($a, 7, 3);

	($st, $buf, $tm) = @$closed;
	is("$got_a|$got_b|$again_a|$again_b",
		'from B|from A|B again|A again',
		'a third side for a paired uuid: the pair goes on');
	ok($st ne 'timeout' && $tm > 1.5 && !length $buf,
		'a third side for a paired uuid: gets nothing, closed by the pair '
		. 'timeout') or diag(sprintf('%s after %.1f s, %d bytes', $st, $tm,
			length $buf));
}

###############################################################################

# 3. 2200 connections left unfinished: 1000 that send nothing, 1000 with
# half a RequestRelay, 200 waiters; then the client closes them all

my $base = $t->stable_fds();
note("worker descriptors at rest: $base");

{
	my $storm0 = time();
	my (@idle, @half, @wait);

	for my $i (1 .. 2200) {
		my $ip = '127.0.0.' . (2 + $i % 4);
		my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$PORT",
			LocalAddr => $ip, Proto => 'tcp');

		unless ($s) {
			diag("connect $i: $!");
			last;
		}

		if ($i <= 1000) {
			push @idle, $s;

		} elsif ($i <= 2000) {
			my $r = relay_request(uuid => "half-$i", id => 'someone');
			syswrite($s, substr($r, 0, int(length($r) / 2)));
			push @half, $s;

		} else {
			syswrite($s, relay_request(uuid => "storm-$i"));
			push @wait, $s;
		}
	}

	my $n = @idle + @half + @wait;
	my $open = $t->wait_fds('>=', $base + 2200, 10);
	note(sprintf('%d connections in %.1f s; worker descriptors: %d', $n,
		time() - $storm0, $open));
	ok($n == 2200 && $open >= $base + 2200,
		'2200 unfinished connections: all accepted');

	alive('with 2200 unfinished connections');

	# the waiters: closed by the pair timeout (2 s), nothing sent

	my $poll = IO::Poll->new();
	$poll->mask($_ => POLLIN) for @wait;
	my ($closed, $bytes) = (0, 0);
	my %done;
	my $end = time() + 6;

	while ($closed < @wait && time() < $end) {
		$poll->poll(0.5);
		for my $s ($poll->handles(POLLIN | POLLHUP | POLLERR)) {
			my $r = sysread($s, my $buf, 4096);
			if ($r) {
				$bytes += $r;
				next;
			}
			$closed++;
			$poll->remove($s);
		}
	}

	is("$closed closed, $bytes bytes", '200 closed, 0 bytes',
		'200 waiters among them: closed by the pair timeout');
	is($t->wait_log(qr/no partner for relay "storm-\d+"/, 200, 3), 200,
		'200 waiters: "no partner" logged');

	my $mid = $t->worker_fds();
	close $_ for @idle, @half, @wait;

	my $after = $t->wait_fds('<=', $base, 10);
	note("after the client closed them: $after worker descriptors "
		. "($mid before)");
	ok($after <= $base, '2200 connections closed: worker descriptors back '
		. "to $base") or diag("$after descriptors, $base at rest");
}

alive('after 2200 unfinished connections');

###############################################################################

my @now = $t->worker_pids();
ok(@workers == 2 && "@now" eq "@workers", 'no worker replaced')
	or diag("workers at start: @workers, now: @now");

note(sprintf('runtime %.1f s', time() - $started));

###############################################################################

# Each string on a connection of its own, all at once; every connection
# must be closed by the server within 1.5 s, no byte sent.  Returns what
# went wrong, '' if nothing.

sub bad_batch {
	my ($what, @sends) = @_;
	my (%buf, %name, @bad);
	my $sel = IO::Select->new();

	for my $i (0 .. $#sends) {
		my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$PORT",
			LocalAddr => '127.0.0.2', Proto => 'tcp')
			or die "connect: $!\n";
		$s->blocking(0);
		syswrite($s, $sends[$i]);
		$sel->add($s);
		$buf{$s} = '';
		$name{$s} = "$what #" . ($i + 1);
	}

	my $end = time() + 1.5;

	while ($sel->count() && time() < $end) {
		for my $s ($sel->can_read($end - time())) {
			my $n = sysread($s, $buf{$s}, 65536, length $buf{$s});
			next if !defined $n && $!{EAGAIN};
			next if $n;

			# end or reset: closed
			push @bad, "$name{$s}: " . length($buf{$s}) . ' bytes sent'
				if length $buf{$s};
			$sel->remove($s);
			close $s;
		}
	}

	for my $s ($sel->handles()) {
		push @bad, "$name{$s}: not closed";
		close $s;
	}

	return join(', ', @bad);
}

my $alive_n = 0;

# a pair still relays
sub alive {
	my ($what) = @_;
	my $uuid = 'alive-' . ++$alive_n;

	my $a = side($PORT, $uuid, ip => '127.0.0.2', extra => 'ping');
	$t->wait_log(qr/new relay request "\Q$uuid\E"/, 1, 2);
	my $b = side($PORT, $uuid, ip => '127.0.0.3', extra => 'pong');
	my ($got_b) = read_exact($b, 4, 3);
	my ($got_a) = read_exact($a, 4, 3);

	is("$got_a|$got_b", 'pong|ping', "$what: a pair still relays");
}

###############################################################################
