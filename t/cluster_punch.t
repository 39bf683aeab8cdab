#!/usr/bin/perl

# Cluster mode: punch hole and relay requests between hosts.  Three
# hosts (three nginx on 127.0.0.1, 127.0.0.2 and 127.0.0.3 with the same
# ports and one key pair) and one Redis.  A asks host 1 for B, registered
# on host 2 or 3 over UDP, TCP or WebSocket: that host sends B the
# PunchHole, FetchLocalAddr or RequestRelay (from its own UDP port, or on
# B's stream), B answers that host on a new connection, and A gets the
# answer on host 1 with B's signed key, whichever worker holds A.  An
# answer for a requester that left is dropped there, said.  A host killed:
# requests for its peers get OFFLINE at once, and a peer registering
# elsewhere is reachable there at once.
#
# Redis is Debian's redis-server, started by this test on a free loopback
# port and stopped at its end.

use warnings;
use strict;

use Test::More;
use Time::HiRes qw/ sleep time /;

use lib 't/lib';
use Test::Nginx qw/ port wait_until /;
use RustDesk::Conf;
use RustDesk::Client qw/ msg_norm mangle addr random_bytes /;
use RustDesk::WebSocket;
use RustDesk::Redis;
use RustDesk::Cluster;

my $t2 = Test::Nginx->new()->modules('rendezvous');
my $t3 = Test::Nginx->new()->modules('rendezvous');
my $t = Test::Nginx->new()->has()->modules('rendezvous');

plan(skip_all => 'no redis-server (Debian package redis-server)')
	unless RustDesk::Redis->available();

$t->plan(16);

my $redis = RustDesk::Redis->start($t->testdir(), port(9));

my $keys = $t->testdir() . '/keys';
my %H = (1 => $t, 2 => $t2, 3 => $t3);

host_start($H{$_}, $_, $redis, keys => $keys) for 1 .. 3;

my $key = $t->key();
my %PK;                                 # id -> B's key, for msg_norm
my $A_IP = '127.0.0.9';                 # A: never B's IP, unless said

###############################################################################

# 1. B over UDP on host 2: PunchHole from host 2, PunchHoleSent back to
# host 2, PunchHoleResponse to A on host 1

my $b = udp_b(2, 'cp-udp-1');

for my $n (1 .. 10) {
	my $rq = a_tcp();
	$rq->send_msg(punch_hole_request => { id => $b->{id},
		licence_key => $key, nat_type => 1, version => '1.3.0' });

	my ($type, $m) = $b->{udp}->recv_msg(3);
	my $got = norm($type, $m);
	my ($relay) = $got =~ /relay_server=(\S*)/;

	if ($got ne 'punch_hole{nat_type=1 socket_addr=' . addr($rq) . '}') {
		fail("flow $n: PunchHole to B: $got");
		last;
	}

	my $bt = RustDesk::Client->tcp(port(1), PeerHost => '127.0.0.2');
	$bt->send_msg(punch_hole_sent => { socket_addr => $m->{socket_addr},
		id => $b->{id}, nat_type => 2, version => '1.3.0' });

	$got = norm($rq->recv_msg(3));
	my $exp = "punch_hole_response{nat_type=2 pk=signed($b->{id}) "
		. 'socket_addr=' . addr($bt) . '}';

	if ($got ne $exp) {
		fail("flow $n: $got, expected $exp");
		last;
	}

	pass('UDP peer on host 2: 10 punch flows from host 1, with B\'s '
		. 'signed key') if $n == 10;
}

is($t2->log_count(qr/PunchHole from another host to peer "cp-udp-1"/), 10,
	'host 2 sent each PunchHole');
is($t->log_count(qr/PunchHoleResponse from another host for a requester here/),
	10, 'host 1 got each answer');

# same IP: FetchLocalAddr, answered with LocalAddr

{
	my $rq = a_tcp('127.0.0.1');
	$rq->send_msg(punch_hole_request => { id => $b->{id},
		licence_key => $key, nat_type => 1, version => '1.3.0' });

	my ($type, $m) = $b->{udp}->recv_msg(3);
	is(norm($type, $m), 'fetch_local_addr{socket_addr=' . addr($rq) . '}',
		'same IP: FetchLocalAddr from host 2');

	my $bt = RustDesk::Client->tcp(port(1), PeerHost => '127.0.0.2');
	$bt->send_msg(local_addr => { socket_addr => $m->{socket_addr},
		local_addr => mangle('192.168.1.5', 4000), id => $b->{id},
		version => '1.3.0' });

	is(norm($rq->recv_msg(3)), 'punch_hole_response{is_local=1 '
		. "pk=signed($b->{id}) socket_addr=192.168.1.5:4000}",
		'A gets B\'s local address');
}

# RequestRelay, answered with RelayResponse

{
	my $rq = a_tcp();
	$rq->send_msg(request_relay => { id => $b->{id}, uuid => 'cp-uuid-1',
		relay_server => 'relay.example:21117', licence_key => $key });

	my ($type, $m) = $b->{udp}->recv_msg(3);
	is(norm($type, $m), "request_relay{id=$b->{id} licence_key=$key "
		. 'relay_server=relay.example:21117 socket_addr=' . addr($rq)
		. ' uuid=cp-uuid-1}', 'RequestRelay from host 2, as A sent it');

	my $bt = RustDesk::Client->tcp(port(1), PeerHost => '127.0.0.2');
	$bt->send_msg(relay_response => { socket_addr => $m->{socket_addr},
		uuid => 'cp-uuid-1', relay_server => 'relay.example:21117',
		id => $b->{id}, version => '1.3.0' });

	is(norm($rq->recv_msg(3)), "relay_response{pk=signed($b->{id}) "
		. 'relay_server=relay.example:21117 uuid=cp-uuid-1 version=1.3.0}',
		'A gets the RelayResponse with B\'s signed key');
}

###############################################################################

# 2. B on a stream: TCP on host 3, WebSocket on host 2

for my $s ([ 3, 'tcp' ], [ 2, 'ws' ]) {
	my ($h, $kind) = @$s;
	my $sb = stream_b($h, $kind, "cp-$kind-1");

	my $rq = a_tcp();
	$rq->send_msg(punch_hole_request => { id => $sb->{id},
		licence_key => $key, nat_type => 1, version => '1.3.0' });

	my ($type, $m) = $sb->{c}->recv_msg(3);
	is(norm($type, $m), 'punch_hole{nat_type=1 socket_addr=' . addr($rq)
		. '}', "$kind peer on host $h: PunchHole on its stream");

	my $bt = $kind eq 'ws'
		? RustDesk::WebSocket->connect(port(2), PeerHost => "127.0.0.$h")
		: RustDesk::Client->tcp(port(1), PeerHost => "127.0.0.$h");
	$bt->send_msg(punch_hole_sent => { socket_addr => $m->{socket_addr},
		id => $sb->{id}, nat_type => 2, version => '1.3.0' });

	is(norm($rq->recv_msg(3)), "punch_hole_response{nat_type=2 "
		. "pk=signed($sb->{id}) socket_addr=" . addr($bt) . '}',
		"$kind peer on host $h: A gets the answer");
}

###############################################################################

# 3. A left before B answered: dropped on host 1, said

{
	my $rq = a_tcp();
	$rq->send_msg(punch_hole_request => { id => $b->{id},
		licence_key => $key, nat_type => 1 });

	my ($type, $m) = $b->{udp}->recv_msg(3);
	$rq->close();
	sleep 0.2;

	my $bt = RustDesk::Client->tcp(port(1), PeerHost => '127.0.0.2');
	$bt->send_msg(punch_hole_sent => { socket_addr => $m->{socket_addr},
		id => $b->{id}, nat_type => 2 });

	ok($t->wait_log(qr/answer from another host for a requester that is not waiting|PunchHoleResponse for a requester that is not waiting/),
		'an answer for a requester that left: dropped');
}

###############################################################################

# 4. a host killed (SIGKILL, all its processes): a request for its peer
# gets OFFLINE at once (nobody listens to its channel); the peer
# registering on another host is reachable there at once

{
	my $d = udp_b(3, 'cp-moving-1');

	kill 'KILL', $t3->master_pid(), $t3->worker_pids();
	wait_until(sub { host_listeners($redis, 3) == 0 }, 5);

	my $rq = a_tcp();
	my $t0 = time();
	$rq->send_msg(punch_hole_request => { id => $d->{id},
		licence_key => $key, nat_type => 1 });

	is(norm($rq->recv_msg(3)), 'punch_hole_response{failure=2}',
		'peer of a killed host: OFFLINE');
	ok(time() - $t0 < 1, 'at once');

	# the peer registers again, on host 2 (same uuid and key)
	my $u = RustDesk::Client->udp(port(1), PeerHost => '127.0.0.2');
	$u->send_msg(register_pk => { id => $d->{id}, uuid => "uuid-$d->{id}",
		pk => $d->{pk} });
	$u->recv_msg(3);
	wait_until(sub { ($redis->cmd('GET', "rustdesk:peer:$d->{id}") // '')
		=~ / h2 / }, 3);

	$rq->send_msg(punch_hole_request => { id => $d->{id},
		licence_key => $key, nat_type => 1 });
	my ($type) = $u->recv_msg(3);
	is($type // 'nothing', 'punch_hole',
		'registered on host 2: reachable there at once');
}

###############################################################################

$t3->stop();
$t2->check_log();

###############################################################################



sub norm { msg_norm($key, \%PK, @_) }

sub a_tcp {
	my ($ip) = @_;
	return RustDesk::Client->tcp(port(1), PeerHost => '127.0.0.1',
		LocalAddr => $ip // $A_IP);
}

# B registered over UDP on host h, written to the directory.
sub udp_b {
	my ($h, $id) = @_;
	my $b = RustDesk::Client->udp_peer(port(1), $id,
		PeerHost => "127.0.0.$h", keys => \%PK);
	wait_until(sub { defined $redis->cmd('GET', "rustdesk:peer:$id") }, 3);
	return $b;
}

# B registered on a stream (tcp or ws) of host h, in the directory.
sub stream_b {
	my ($h, $kind, $id) = @_;
	my $b = stream_peer($kind, $h, $id);

	$PK{$id} = $b->{pk};
	wait_until(sub { defined $redis->cmd('GET', "rustdesk:peer:$id") }, 3);

	return $b;
}
