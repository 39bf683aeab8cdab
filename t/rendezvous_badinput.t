#!/usr/bin/perl

# Hostile and broken input to the rendezvous server (PROTOCOL.md sections 2
# and 6): oversized frame headers, garbage frames, truncated and split
# frames, random datagrams, idle connections, a valid request followed by
# garbage.  After each group the server must still answer; no worker may
# die, no descriptor may leak, nothing may be logged above [error].

use warnings;
use strict;

use Test::More;
use IO::Select;
use IO::Socket::INET;
use Socket qw/ IPPROTO_TCP TCP_NODELAY /;
use Time::HiRes qw/ sleep time /;

use lib 't/lib';
use Test::Nginx qw/ port wait_until /;
use RustDesk::Conf;
use RustDesk::Client qw/ frame frame_header unframe encode_msg decode_msg
	padded random_bytes /;

local $SIG{PIPE} = 'IGNORE';

my $t = Test::Nginx->new()->has()->plan(56);

# ports 0 and 1 as a real deployment, with a short idle timeout; ports 2
# and 3 the same roles with a long one, so that a prompt close there can
# only be the frame check, never the timeout

$t->write_file_expand('nginx.conf', stream_conf([
	'rustdesk_key_dir %%TESTDIR%%/keys;',
	'rustdesk_timeout 2s;',
], srv_hbbs(1, 0, reuseport => 0), srv_hbbs(2, 3, reuseport => 0, udp => 0,
	directives => [ 'rustdesk_timeout 60s;' ])));

$t->run();

my $started = time();

my @workers = $t->worker_pids();
my $pk = $t->key();

my ($NAT, $MAIN, $MAIN_LONG, $NAT_LONG) = map { port($_) } 0 .. 3;
my $MAX = 65536;

srand(20240611);

###############################################################################

# helpers

# seconds until the server closed the connection, undef if not within limit
sub close_time {
	my ($c, $limit, $from) = @_;
	$from //= time();
	return $c->closed($limit - (time() - $from)) ? time() - $from : undef;
}

sub test_nat_ok {
	my ($c, $timeout) = @_;
	my ($type, $m) = $c->recv_msg($timeout // 3);
	return 0 unless defined $type && $type eq 'test_nat_response';
	return ($m->{port} // 0) == $c->sockport();
}

sub udp_register_ok {
	my ($id) = @_;

	for (1 .. 5) {
		my $u = RustDesk::Client->udp($MAIN);
		$u->send_msg(register_peer => { id => $id, serial => 0x7FFFFFFF });
		my ($type, $m) = $u->recv_msg(1);
		return 1 if defined $type && $type eq 'register_peer_response'
			&& $m->{request_pk};
	}

	return 0;
}

my $alive_n = 0;

# the server still answers: TestNat on both TCP ports, RegisterPeer on UDP
sub alive {
	my ($what) = @_;
	$alive_n++;

	my $nat = RustDesk::Client->tcp($NAT);
	$nat->send_msg(test_nat_request => { serial => 0 });
	my $nat_ok = test_nat_ok($nat);

	my $main = RustDesk::Client->tcp($MAIN);
	$main->send_msg(test_nat_request => { serial => 0x7FFFFFFF });
	my $main_ok = test_nat_ok($main);

	my $udp_ok = udp_register_ok("alive$alive_n");

	ok($nat_ok && $main_ok && $udp_ok, "$what: server still answers")
		or diag("nat $nat_ok main $main_ok udp $udp_ok");
}

sub alerts {
	return join "\n", $t->read_file('error.log')
		=~ /^.*(?:\[alert\]|\[crit\]|\[emerg\]|exited on signal).*$/mg;
}

sub raw_connect {
	my ($port) = @_;
	my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port",
		Proto => 'tcp') or die "connect $port: $!\n";
	$s->autoflush(1);
	return $s;
}

###############################################################################

# 1. oversized frames: refused at the header, at once, never allocated

my $too_big = qr/client sent a frame of 1073741823 bytes, more than 65536/;

for my $p ([ $MAIN, 'main' ], [ $NAT, 'nat' ], [ $MAIN_LONG, 'main 60s' ],
	[ $NAT_LONG, 'nat 60s' ])
{
	my $c = RustDesk::Client->tcp($p->[0]);
	$c->send_raw("\xFF\xFF\xFF\xFF");
	my $tm = close_time($c, 1.5);
	ok(defined $tm, "1 GiB header on $p->[1] port: closed at once")
		or diag('still open after 1.5 s');
}

is($t->wait_log($too_big, 4), 4, '1 GiB header: logged, once per connection');

# the header of 1 GiB followed by data the client keeps sending: still
# closed at once, the data is not read into memory

{
	my $c = RustDesk::Client->tcp($MAIN_LONG);
	my $start = time();
	$c->send_raw("\xFF\xFF\xFF\xFF" . ("\x00" x 16384));
	my $tm = close_time($c, 1.5, $start);
	ok(defined $tm, '1 GiB header and data: closed at once');
}

# max + 1: header only, and header with some of the payload

for my $p ([ $MAIN_LONG, 'main' ], [ $NAT_LONG, 'nat' ]) {
	my $c = RustDesk::Client->tcp($p->[0]);
	$c->send_raw(frame_header($MAX + 1) . ("\x0a" x 1000));
	ok(defined close_time($c, 1.5), "max + 1 on $p->[1] port: closed");
}

is($t->wait_log(qr/frame of 65537 bytes, more than 65536/, 2), 2,
	'max + 1: logged');

# exactly max, garbage (0xFF never ends a varint): a malformed message

for my $p ([ $MAIN_LONG, 'main' ], [ $NAT_LONG, 'nat' ]) {
	my $c = RustDesk::Client->tcp($p->[0]);
	$c->send_raw(frame("\xFF" x $MAX));
	my ($type) = $c->recv_msg(0.5);
	ok(!defined $type && defined close_time($c, 1.5),
		"max bytes of garbage on $p->[1] port: closed, no answer");
}

is($t->wait_log(qr/malformed message of 65536 bytes/, 2), 2,
	'max bytes of garbage: logged as malformed');

# exactly max, a valid TestNatRequest padded with an unknown field: a
# frame the size of the limit is accepted and answered

for my $p ([ $MAIN_LONG, 'main' ], [ $NAT_LONG, 'nat' ]) {
	my $c = RustDesk::Client->tcp($p->[0]);
	my $payload = padded(encode_msg(test_nat_request =>
		{ serial => 0x7FFFFFFF }), $MAX);
	$c->send_raw(frame($payload));
	ok(test_nat_ok($c), "max bytes, valid message on $p->[1] port: answered");
}

# a big answer (an OnlineResponse of 3750 bytes, more than the session's
# first output buffer) to an OnlineRequest of 30000 empty ids

{
	my $c = RustDesk::Client->tcp($NAT);
	$c->send_msg(online_request => { id => 'x', peers => [ ('') x 30000 ] });
	my ($type, $m) = $c->recv_msg(3);
	ok(defined $type && $type eq 'online_response'
		&& length($m->{states} // '') == 3750
		&& $m->{states} eq "\0" x 3750,
		'OnlineRequest of 30000 ids: answered, all offline');
}

alive('oversized frames');

###############################################################################

# 2. garbage frames: well framed, random or mutated payloads; every
# connection is closed or answered, none is left hanging

my @templates = (
	encode_msg(test_nat_request => { serial => 5 }),
	encode_msg(online_request => { id => 'abcdef', peers => [ 'a', 'bb' ] }),
	encode_msg(punch_hole_request => { id => 'peer123', licence_key => $pk,
		nat_type => 1, conn_type => 2, version => '1.2.3', udp_port => 5,
		socket_addr_v6 => "\x01" x 18 }),
	encode_msg(request_relay => { id => 'peer123', uuid => 'u-u-i-d',
		socket_addr => "\x01\x02\x03", relay_server => 'r:21117' }),
	encode_msg(punch_hole_sent => { socket_addr => "\x05" x 10, id => 'p',
		relay_server => 'x', version => '1' }),
	encode_msg(local_addr => { socket_addr => "\x05" x 10,
		local_addr => "\x06" x 18, id => 'p' }),
	encode_msg(relay_response => { socket_addr => "\x07" x 6, uuid => 'u',
		id => 'peer123' }),
	encode_msg(register_pk => { id => 'peer123', uuid => 'uuid',
		pk => "\x01" x 32 }),
	encode_msg(register_peer => { id => 'peer123', serial => 1 }),
	encode_msg(key_exchange => { keys => [ "\x01" x 64, "\x02" x 48 ] }),
	encode_msg(hc => { token => 'tok' }),
	encode_msg(peer_discovery => { cmd => 'ping', mac => 'm' }),
);

sub garbage_payload {
	my $kind = rand();

	if ($kind < 0.4) {
		return random_bytes(int(rand(300)));
	}

	if ($kind < 0.5) {
		# big enough to make the session grow its frame buffer
		return random_bytes(1000 + int(rand(6000)));
	}

	my $p = $templates[int(rand(@templates))];

	for (1 .. 1 + int(rand(4))) {
		my $what = rand();
		my $at = int(rand(length($p) + 1));

		if ($what < 0.4 && length $p) {
			$at = int(rand(length $p));
			substr($p, $at, 1) = chr(ord(substr($p, $at, 1))
				^ (1 << int(rand(8))));

		} elsif ($what < 0.6) {
			substr($p, $at) = '';

		} elsif ($what < 0.8) {
			substr($p, $at, 0) = random_bytes(1 + int(rand(8)));

		} else {
			substr($p, $at, 0) = chr(int(rand(256)));
		}
	}

	return $p;
}

# sends each connection's bytes on a connection of its own, all at once,
# and waits for every one to be closed or answered; returns counts
sub garbage_batch {
	my ($port, @sends) = @_;
	my (%st, %buf, %answered);
	my $sel = IO::Select->new();
	my %res = (closed => 0, answered => 0, hang => 0, bad_answer => 0);

	for my $bytes (@sends) {
		my $s = raw_connect($port);
		$s->syswrite($bytes);
		$sel->add($s);
		$buf{$s} = '';
	}

	my $end = time() + 2 + 1.5;             # the idle timeout and a margin

	while ($sel->count() && time() < $end) {
		for my $s ($sel->can_read($end - time())) {
			my $n = $s->sysread($buf{$s}, 65536, length $buf{$s});

			if (!$n) {
				$res{$answered{$s} ? 'answered' : 'closed'}++;
				$sel->remove($s);
				close $s;
				next;
			}

			my @p = unframe(\$buf{$s});
			next unless @p;

			for my $p (@p) {
				# an empty frame answers an empty one (a heartbeat)
				next if $p eq '' && $port == $MAIN;

				my @m = eval { decode_msg($p) };
				$res{bad_answer}++ unless @m;
			}

			# answered: the client may go now, as a real one would
			$answered{$s} = 1;
			$res{answered}++;
			$sel->remove($s);
			close $s;
		}
	}

	$res{hang} = $sel->count();
	close $_ for $sel->handles();

	return \%res;
}

for my $p ([ $MAIN, 'main' ], [ $NAT, 'nat' ]) {
	my %tot = (closed => 0, answered => 0, hang => 0, bad_answer => 0);

	# 200 connections of one garbage frame each, 25 at a time

	for (1 .. 8) {
		my $r = garbage_batch($p->[0],
			map { frame(garbage_payload()) } 1 .. 25);
		$tot{$_} += $r->{$_} for keys %$r;
	}

	# 20 connections of 10 garbage frames each, in one write

	my $r = garbage_batch($p->[0],
		map { join '', map { frame(garbage_payload()) } 1 .. 10 } 1 .. 20);
	$tot{$_} += $r->{$_} for keys %$r;

	note("garbage on $p->[1] port: $tot{closed} closed, "
		. "$tot{answered} answered, $tot{hang} hanging");

	is($tot{hang}, 0, "garbage on $p->[1] port: nothing left hanging");
	is($tot{closed} + $tot{answered}, 220,
		"garbage on $p->[1] port: all closed or answered");
	is($tot{bad_answer}, 0, "garbage on $p->[1] port: answers decode");
}

is(alerts(), '', 'garbage frames: no alerts');
alive('garbage frames');

###############################################################################

# 3. truncated and split frames

# a header of 100 bytes, then 10 of them, then the client goes away

my $mid = qr/client closed connection in the middle of a frame/;
my $mid_before = $t->log_count($mid);

for my $port ($MAIN, $NAT) {
	my $c = RustDesk::Client->tcp($port);
	$c->send_raw(frame_header(100) . ('z' x 10));
	$t->wait_read($c);
	$c->close();
}

# and a header cut in the middle (3 bytes of a 4-byte one)
{
	my $c = RustDesk::Client->tcp($MAIN);
	$c->send_raw(substr(frame_header(0x400000), 0, 3));
	$t->wait_read($c);
	$c->close();
}

is($t->wait_log($mid, $mid_before + 3) - $mid_before, 3,
	'mid-frame disconnects logged');

# a frame that never completes: the idle timeout closes it

{
	my $c = RustDesk::Client->tcp($MAIN);
	my $start = time();
	$c->send_raw(frame_header(100) . ('z' x 10));
	my $tm = close_time($c, 5, $start);
	ok(defined $tm && $tm > 1.5, 'incomplete frame: closed by the timeout')
		or diag(defined $tm ? "closed after $tm s" : 'not closed');
}

# a 2-byte header in two writes, then the payload; each piece is read by
# the server before the next is sent

for my $p ([ $MAIN, 'main' ], [ $NAT, 'nat' ]) {
	my $c = RustDesk::Client->tcp($p->[0]);
	$c->sock()->setsockopt(IPPROTO_TCP, TCP_NODELAY, 1);
	my $f = frame(padded(encode_msg(test_nat_request =>
		{ serial => 0x7FFFFFFF }), 100));
	$c->send_raw(substr($f, 0, 1));
	$t->wait_read($c);
	$c->send_raw(substr($f, 1));
	ok(test_nat_ok($c), "split 2-byte header on $p->[1] port: answered");
}

# a 3-byte header a byte at a time, then a payload of 20000 bytes

{
	my $c = RustDesk::Client->tcp($NAT);
	$c->sock()->setsockopt(IPPROTO_TCP, TCP_NODELAY, 1);
	my $f = frame(padded(encode_msg(test_nat_request => { serial => 1 }),
		20000));
	for my $i (0 .. 2) {
		$c->send_raw(substr($f, $i, 1));
		$t->wait_read($c);
	}
	$c->send_raw(substr($f, 3));
	ok(test_nat_ok($c), 'split 3-byte header, 20000 bytes: answered');
}

# a whole frame a byte at a time

for my $p ([ $MAIN, 'main' ], [ $NAT, 'nat' ]) {
	my $c = RustDesk::Client->tcp($p->[0]);
	$c->sock()->setsockopt(IPPROTO_TCP, TCP_NODELAY, 1);
	my $f = frame(padded(encode_msg(test_nat_request =>
		{ serial => 0x7FFFFFFF }), 70));
	for my $i (0 .. length($f) - 1) {
		$c->send_raw(substr($f, $i, 1));
		$t->wait_read($c);
	}
	ok(test_nat_ok($c), "byte at a time on $p->[1] port: answered");
}

# a small message with a 4-byte header: the low bits say how long the
# header is, nothing requires the shortest one (section 2)

{
	my $c = RustDesk::Client->tcp($NAT);
	my $payload = encode_msg(test_nat_request => { serial => 1 });
	$c->send_raw(pack('V', (length($payload) << 2) | 3) . $payload);
	ok(test_nat_ok($c), 'non-minimal 4-byte header: answered');
}

alive('truncated and split frames');

###############################################################################

# 4. random datagrams

my $malformed = qr/malformed datagram of \d+ bytes/;
my $malformed_before = $t->log_count($malformed);
my $rcvbuf_errors_before = udp_rcvbuf_errors();
my $udp_seen_before = $t->log_count(qr/udp client \S+ connected/);

{
	my @u = map {
		IO::Socket::INET->new(PeerAddr => "127.0.0.1:$MAIN",
			Proto => 'udp') or die "udp: $!\n";
	} 1 .. 4;

	my $pool = random_bytes(1 << 20);
	my $sent = 0;
	my $t0 = time();

	for my $i (1 .. 10000) {
		my $len = int(rand(1501));
		my $d = substr($pool, int(rand(length($pool) - 1500)), $len);
		$sent++ if defined $u[$i % 4]->send($d);

		# a sleep: the pace of the flood, 50 datagrams at a time, so
		# that most reach the server rather than fill its receive buffer
		sleep 0.004 unless $i % 50;
	}

	note(sprintf("udp: %d of 10000 datagrams sent in %.1f s", $sent,
		time() - $t0));

	# until the server has taken them all
	wait_until(sub { !grep { $_->{rx} }
		$t->udp_sockets(local => "127.0.0.1:$MAIN") }, 10);
	close $_ for @u;
}

my $udp_seen = $t->log_count(qr/udp client \S+ connected/) - $udp_seen_before;

ok(udp_register_ok('afterflood'), 'random datagrams: RegisterPeer answered');

my $malformed_n = $t->log_count($malformed) - $malformed_before;
my $rcvbuf_errors = udp_rcvbuf_errors() - $rcvbuf_errors_before;
diag("random datagrams: $udp_seen of 10000 reached the server, "
	. "$malformed_n 'malformed datagram' lines, "
	. "$rcvbuf_errors UDP receive buffer drops (whole host)");
ok($malformed_n > 5000, 'random datagrams: most refused as malformed');

is(alerts(), '', 'random datagrams: no alerts');
alive('random datagrams');

sub udp_rcvbuf_errors {
	open my $fh, '<', '/proc/net/snmp' or return 0;
	my @udp = grep { /^Udp:/ } <$fh>;
	close $fh;
	return 0 unless @udp == 2;
	my @k = split ' ', $udp[0];
	my @v = split ' ', $udp[1];
	my %h;
	@h{@k} = @v;
	return $h{RcvbufErrors} // 0;
}

###############################################################################

# 5. idle connections: closed by the client, and timed out by the server;
# the workers' descriptors come back to what they were

my $base = $t->stable_fds(qr/^socket:/);
note("worker socket descriptors at rest: $base");

{
	my @c = map { raw_connect($_ % 2 ? $MAIN : $NAT) } 1 .. 200;
	my $open = $t->wait_fds('>=', $base + 200, 1.5, qr/^socket:/);
	note("200 idle connections: $open socket descriptors");
	ok($open >= $base + 200, 'idle connections accepted');

	close $_ for @c;
	my $after = $t->wait_fds('<=', $base + 2, 5, qr/^socket:/);
	note("closed by the client: $after socket descriptors");
	ok($after <= $base + 2, 'closed by the client: descriptors released')
		or diag("$after descriptors, $base at rest");
}

{
	my $timed_out = qr/client timed out/;
	my $to_before = $t->log_count($timed_out);

	my $start = time();
	my @c = map { raw_connect($_ % 2 ? $MAIN : $NAT) } 1 .. 200;
	my $open = $t->wait_fds('>=', $base + 200, 1.5, qr/^socket:/);
	note("200 idle connections: $open socket descriptors");

	# every one must be closed by the server (EOF) after about 2 s

	my $sel = IO::Select->new(@c);
	my ($closed, $early) = (0, 0);
	my $end = $start + 6;

	while ($sel->count() && time() < $end) {
		for my $s ($sel->can_read($end - time())) {
			my $n = $s->sysread(my $buf, 4096);
			next if $n;
			$closed++;
			$early++ if time() - $start < 1.5;
			$sel->remove($s);
		}
	}

	is($closed, 200, 'idle connections timed out by the server');
	is($early, 0, 'no idle connection closed before the timeout');

	my $after = $t->wait_fds('<=', $base + 2, 3, qr/^socket:/);
	note("timed out by the server: $after socket descriptors");
	ok($after <= $base + 2, 'timed out: descriptors released')
		or diag("$after descriptors, $base at rest");

	is($t->wait_log($timed_out, $to_before + 200) - $to_before, 200,
		'timeouts logged');

	close $_ for @c;
}

alive('idle connections');

###############################################################################

# 6. a valid request and garbage in the same write: the answer, then close

sub phr {
	return frame(encode_msg(punch_hole_request => { id => $_[0],
		licence_key => $pk }));
}

sub punch_failure_ok {
	my ($c) = @_;
	my ($type, $m) = $c->recv_msg(3);
	return defined $type && $type eq 'punch_hole_response'
		&& ($m->{failure} // 0) == 0 && !defined $m->{socket_addr};
}

{
	my $mal_before = $t->log_count(qr/malformed message of 20 bytes/);

	my $c = RustDesk::Client->tcp($MAIN);
	$c->send_raw(phr('nosuchpeer1') . frame("\xFF" x 20));
	ok(punch_failure_ok($c), 'request and garbage frame: answered');
	ok(defined close_time($c, 1.5), 'request and garbage frame: then closed');

	is($t->wait_log(qr/malformed message of 20 bytes/, $mal_before + 1)
		- $mal_before, 1, 'request and garbage frame: logged');
}

{
	my $c = RustDesk::Client->tcp($MAIN);
	$c->send_raw(phr('nosuchpeer2') . "\xFF\xFF\xFF\xFF" . ('x' x 100));
	ok(punch_failure_ok($c), 'request and 1 GiB header: answered');
	ok(defined close_time($c, 1.5), 'request and 1 GiB header: then closed');
}

{
	my $c = RustDesk::Client->tcp($MAIN);
	$c->send_raw(phr('nosuchpeer3') . phr('nosuchpeer4')
		. frame(random_bytes(1) . "\xFF" x 30));
	ok(punch_failure_ok($c) && punch_failure_ok($c),
		'two requests and garbage: both answered');
	ok(defined close_time($c, 1.5), 'two requests and garbage: then closed');
}

# garbage that is not even a whole frame after a valid request: answered,
# then the timeout

{
	my $c = RustDesk::Client->tcp($MAIN);
	my $start = time();
	$c->send_raw(phr('nosuchpeer5') . frame_header(500) . "\xFF" x 7);
	ok(punch_failure_ok($c), 'request and partial frame: answered');
	my $tm = close_time($c, 5, $start);
	ok(defined $tm, 'request and partial frame: closed by the timeout')
		or diag('not closed');
}

alive('request and garbage');

###############################################################################

my @now = $t->worker_pids();
ok(@workers == 2 && "@now" eq "@workers", 'no worker replaced')
	or diag("workers at start: @workers, now: @now");
is(alerts(), '', 'no alerts');

note(sprintf('runtime %.1f s', time() - $started));

###############################################################################
