#!/usr/bin/perl

# Cluster mode, every pair of hosts: three hosts (three nginx on
# 127.0.0.1, 127.0.0.2 and 127.0.0.3, same ports, one key pair) and one
# Redis.  A peer B on each host over each transport (UDP, TCP, WebSocket:
# nine peers); for each, a requester A on each of the two other hosts,
# over TCP or WebSocket in turn: a punch hole (PunchHole to B, B's
# PunchHoleSent to its host, the PunchHoleResponse to A with B's signed
# key), a relay request (RequestRelay, RelayResponse), A on B's address
# (FetchLocalAddr, LocalAddr), the online query, and another uuid taking
# B's id on A's host (UUID_MISMATCH).
#
# Redis is Debian's redis-server, started by this test on a free loopback
# port and stopped at its end.

use warnings;
use strict;

use Test::More;

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

my @KINDS = qw/ udp tcp ws /;
my @PAIRS = map { my $j = $_; map { [ $_, $j ] } grep { $_ != $j } 1 .. 3 }
	1 .. 3;                                 # [ A's host, B's host ]

$t->plan(@PAIRS * @KINDS * 5 + 3);

my $redis = RustDesk::Redis->start($t->testdir(), port(9));
my $keys = $t->testdir() . '/keys';
my %H = (1 => $t, 2 => $t2, 3 => $t3);

host_start($H{$_}, $_, $redis, keys => $keys) for 1 .. 3;

my $key = $t->key();
my %PK;                                 # id -> B's key, for msg_norm
my $A_IP = '127.0.0.9';                 # A: not on B's address

# the nine peers, each in the directory

my %B;

for my $j (1 .. 3) {
	for my $kind (@KINDS) {
		my $id = "cm-$kind-$j";

		if ($kind eq 'udp') {
			$B{"$j$kind"} = RustDesk::Client->udp_peer(port(1), $id,
				PeerHost => host_ip($j), keys => \%PK);
		} else {
			$B{"$j$kind"} = stream_peer($kind, $j, $id);
			$PK{$id} = $B{"$j$kind"}{pk};
		}
	}
}

ok(wait_until(sub { !grep { !defined $redis->cmd('GET', "rustdesk:peer:$_") }
	map { "cm-$_" } map { my $k = $_; map { "$k-$_" } 1 .. 3 } @KINDS }, 5),
	'nine peers, three per host, in the directory');

###############################################################################

my $n = 0;

for my $p (@PAIRS) {
	my ($i, $j) = @$p;

	for my $kind (@KINDS) {
		my $b = $B{"$j$kind"};
		my $a_kind = $n++ % 2 ? 'ws' : 'tcp';
		my $what = "$kind peer on host $j, $a_kind requester on host $i";

		# punch hole

		my $rq = requester($a_kind, $i, $A_IP);
		$rq->send_msg(punch_hole_request => { id => $b->{id},
			licence_key => $key, nat_type => 1, version => '1.3.0' });

		my ($type, $m) = b_recv($b);
		my $bt = b_answer($b, $kind, $j, $type, $m, punch_hole_sent => {
			socket_addr => $m->{socket_addr}, id => $b->{id},
			nat_type => 2, version => '1.3.0' });

		is(norm($rq->recv_msg(3)), "punch_hole_response{nat_type=2 "
			. "pk=signed($b->{id}) socket_addr="
			. ($bt ? addr($bt) : 'no PunchHole: ' . norm($type, $m)) . '}',
			"$what: punch hole");

		# relay

		my $uuid = "cm-uuid-$n";
		$rq = requester($a_kind, $i, $A_IP);
		$rq->send_msg(request_relay => { id => $b->{id}, uuid => $uuid,
			relay_server => 'relay.example:21117', licence_key => $key });

		($type, $m) = b_recv($b);
		b_answer($b, $kind, $j, $type, $m, relay_response => {
			socket_addr => $m->{socket_addr}, uuid => $uuid,
			relay_server => 'relay.example:21117', id => $b->{id},
			version => '1.3.0' });

		is(norm($rq->recv_msg(3)), "relay_response{pk=signed($b->{id}) "
			. "relay_server=relay.example:21117 uuid=$uuid version=1.3.0}",
			"$what: relay request");

		# A on B's address: FetchLocalAddr, answered with LocalAddr; not
		# for a WebSocket requester, which cannot reach a LAN address
		# (PROTOCOL.md section 6): a PunchHole

		$rq = requester($a_kind, $i, '127.0.0.1');
		$rq->send_msg(punch_hole_request => { id => $b->{id},
			licence_key => $key, nat_type => 1, version => '1.3.0' });

		($type, $m) = b_recv($b);
		my $got = norm($type, $m);

		if ($a_kind eq 'ws') {
			is($got, 'punch_hole{nat_type=1 socket_addr=' . addr($rq) . '}',
				"$what: on B's address, a PunchHole");

		} else {
			if ($got =~ /^fetch_local_addr\{/) {
				b_answer($b, $kind, $j, $type, $m, local_addr => {
					socket_addr => $m->{socket_addr},
					local_addr => mangle('192.168.1.5', 4000),
					id => $b->{id}, version => '1.3.0' });
				$got = norm($rq->recv_msg(3));
			}

			is($got, "punch_hole_response{is_local=1 pk=signed($b->{id}) "
				. 'socket_addr=192.168.1.5:4000}', "$what: FetchLocalAddr");
		}

		# online query

		is(host_online($i, $b->{id}, 'cm-nobody'), '10',
			"$what: online query");

		# another uuid for B's id, on A's host

		is(register_pk($a_kind, $i, $b->{id}, "other-$n"), 'UUID_MISMATCH',
			"$what: another uuid refused");
	}
}

$t2->check_log();
$t3->check_log();

###############################################################################

sub norm { msg_norm($key, \%PK, @_) }

sub requester {
	my ($kind, $h, $ip) = @_;
	return $kind eq 'ws'
		? RustDesk::WebSocket->connect(port(2), PeerHost => host_ip($h),
			LocalAddr => $ip)
		: RustDesk::Client->tcp(port(1), PeerHost => host_ip($h),
			LocalAddr => $ip);
}

# What B gets from its host: on its UDP socket, or its stream.
sub b_recv {
	my ($b) = @_;
	return ($b->{udp} // $b->{c})->recv_msg(3);
}

# B answers its own host on a new connection, as a client does (TCP for a
# UDP peer, its own kind for a stream peer): the connection, or undef
# when B got nothing to answer.
sub b_answer {
	my ($b, $kind, $h, $type, $m, $msg, $fields) = @_;

	return undef unless defined $type && $m->{socket_addr};

	my $c = $kind eq 'ws'
		? RustDesk::WebSocket->connect(port(2), PeerHost => host_ip($h))
		: RustDesk::Client->tcp(port(1), PeerHost => host_ip($h));
	$c->send_msg($msg => $fields);

	return $c;
}

# RegisterPk on host h over TCP or WebSocket: the result's name.
sub register_pk {
	my ($kind, $h, $id, $uuid) = @_;
	my $c = requester($kind, $h, $A_IP);
	$c->send_msg(register_pk => { id => $id, uuid => $uuid,
		pk => random_bytes(32) });
	my ($type, $m) = $c->recv_msg(3);
	return 'no answer: ' . ($type // 'nothing')
		unless ($type // '') eq 'register_pk_response';
	my %name = (0 => 'OK', 2 => 'UUID_MISMATCH', 3 => 'ID_EXISTS',
		4 => 'TOO_FREQUENT', 5 => 'INVALID_ID_FORMAT', 7 => 'SERVER_ERROR');
	return $name{$m->{result} // 0} // $m->{result};
}

###############################################################################
