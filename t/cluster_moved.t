#!/usr/bin/perl

# Cluster mode: a peer that moves from host 1 to host 2 (it registers
# with host 2 while host 1 still has it online).  Host 2's write of the
# directory returns the entry it replaced (SET ... GET), names host 1, and
# host 1 is told on its channel: it takes the peer as offline and drops a
# stream of it, so that its requesters reach the peer at host 2 through
# the directory, not at its old address.  A move older than the peer's
# last registration on host 1 changes nothing.
#
# Two hosts (two nginx on 127.0.0.1 and 127.0.0.2 with the same ports);
# Redis is Debian's redis-server, started by this test on a free loopback
# port and stopped at its end.

use warnings;
use strict;

use Test::More;
use Time::HiRes qw/ sleep time /;

use lib 't/lib';
use Test::Nginx qw/ port wait_until /;
use RustDesk::Conf;
use RustDesk::Client qw/ msg_norm addr /;
use RustDesk::WebSocket;
use RustDesk::Redis;
use RustDesk::Cluster;

my $t2 = Test::Nginx->new()->modules('rendezvous');
my $t = Test::Nginx->new()->has()->modules('rendezvous');

plan(skip_all => 'no redis-server (Debian package redis-server)')
	unless RustDesk::Redis->available();

$t->plan(20);

my $redis = RustDesk::Redis->start($t->testdir(), port(9));

my $keys = $t->testdir() . '/keys';

host_start($t, 1, $redis, keys => $keys);
host_start($t2, 2, $redis, keys => $keys);

my $key = $t->key();
my %PK;
my $A_IP = '127.0.0.9';

###############################################################################

# 1. a UDP peer moves from host 1 to host 2

my $b = udp_b(1, 'cm-udp-1');
is(punch_to($b->{id}, $b->{udp}), 'punch_hole',
	'on host 1: host 1\'s requester reaches it there');

my $b2 = move($b, 2);

is($t2->wait_log(qr/peer "cm-udp-1" moved here from host "h1": telling it/),
	1, 'host 2: the entry it replaced was host 1\'s, told');
is($t->wait_log(qr/\[info\].*peer "cm-udp-1" moved to host "h2": offline here/),
	1, 'host 1: the peer is offline here, logged at info');

my $rq = a_tcp();
$rq->send_msg(punch_hole_request => { id => $b->{id}, licence_key => $key,
	nat_type => 1, version => '1.3.0' });

my ($type, $m) = $b2->{udp}->recv_msg(3);
is(norm($type, $m), 'punch_hole{nat_type=1 socket_addr=' . addr($rq) . '}',
	'host 1\'s requester: PunchHole at the peer\'s new socket, from host 2');
is(recv_type($b->{udp}, 1), 'nothing',
	'nothing at its old address from host 1\'s stale record');
is($t->log_count(qr/peer "cm-udp-1" is online on host "h2": asking it/), 1,
	'asked through the directory');

# the peer answers host 2, the requester on host 1 gets it

my $bt = RustDesk::Client->tcp(port(1), PeerHost => '127.0.0.2');
$bt->send_msg(punch_hole_sent => { socket_addr => $m->{socket_addr},
	id => $b->{id}, nat_type => 2, version => '1.3.0' });
is(norm($rq->recv_msg(3)), "punch_hole_response{nat_type=2 "
	. "pk=signed($b->{id}) socket_addr=" . addr($bt) . '}',
	'the answer through host 2');

is(online(1, $b->{id}), '1', 'online query on host 1: online (at host 2)');

# RequestRelay and FetchLocalAddr from host 1 go to host 2 as well

$rq = a_tcp();
$rq->send_msg(request_relay => { id => $b->{id}, uuid => 'cm-uuid-1',
	relay_server => 'relay.example:21117', licence_key => $key });
is(recv_type($b2->{udp}, 3), 'request_relay',
	'RequestRelay on host 1: at the new socket');

$rq = a_tcp('127.0.0.1');
$rq->send_msg(punch_hole_request => { id => $b->{id}, licence_key => $key,
	nat_type => 1 });
is(recv_type($b2->{udp}, 3), 'fetch_local_addr',
	'same IP: FetchLocalAddr at the new socket');
is(recv_type($b->{udp}, 0.5), 'nothing', 'none at the old one');

###############################################################################

# 2. and back to host 1: host 2 is told in turn

my $b1 = move($b2, 1);

is($t->wait_log(qr/peer "cm-udp-1" moved here from host "h2": telling it/),
	1, 'back on host 1: host 2 told');
is($t2->wait_log(qr/peer "cm-udp-1" moved to host "h1": offline here/), 1,
	'host 2: offline there');
is(punch_to($b->{id}, $b1->{udp}), 'punch_hole',
	'host 1\'s requester reaches it on host 1 again');

###############################################################################

# 3. a move older than the peer's last registration here changes nothing;
# a malformed one is ignored

$redis->cmd('PUBLISH', 'rustdesk:host:h1',
	'M' . chr(length $b->{id}) . $b->{id}
	. int((time() - 60) * 1000) . ' h9');
is($t->wait_log(qr/peer "cm-udp-1" moved to host "h9"$/m), 1,
	'an old move: heard');
is(punch_to($b->{id}, $b1->{udp}), 'punch_hole',
	'the peer registered since: still served here');

$redis->cmd('PUBLISH', 'rustdesk:host:h1', "M\x{05}abc");
is($t->wait_log(qr/\[warn\].*malformed cluster message ignored/), 1,
	'a malformed move: ignored, said');

###############################################################################

# 4. a TCP stream peer moves: its stream on host 1 is dropped (it closes
# at its next frame)

my $s = stream_peer('tcp', 1, 'cm-tcp-1');
wait_until(sub { defined $redis->cmd('GET', 'rustdesk:peer:cm-tcp-1') }, 3);

move({ %$s, udp => undef }, 2);

is($t->wait_log(qr/peer "cm-tcp-1" moved to host "h2": offline here, its stream here dropped/),
	1, 'host 1: offline, its stream dropped');

$s->{c}->send_heartbeat();
ok($s->{c}->closed(3), 'the old stream closes at its next frame');

###############################################################################

$t2->check_log();

###############################################################################

sub norm { msg_norm($key, \%PK, @_) }

sub a_tcp {
	my ($ip) = @_;
	return RustDesk::Client->tcp(port(1), PeerHost => '127.0.0.1',
		LocalAddr => $ip // $A_IP);
}

sub recv_type {
	my ($c, $timeout) = @_;
	my ($type) = $c->recv_msg($timeout);
	return $type // 'nothing';
}

# B registered over UDP on host h, written to the directory.
sub udp_b {
	my ($h, $id) = @_;
	my $b = RustDesk::Client->udp_peer(port(1), $id,
		PeerHost => "127.0.0.$h", keys => \%PK);
	wait_until(sub { entry($id) =~ / h$h / }, 3);
	return $b;
}

# The same peer (uuid and key) registered from a new UDP socket on host
# h, until the directory says host h.
sub move {
	my ($p, $h) = @_;
	my $u = RustDesk::Client->udp(port(1), PeerHost => "127.0.0.$h");

	$u->send_msg(register_pk => { id => $p->{id}, uuid => "uuid-$p->{id}",
		pk => $p->{pk} });
	my ($type, $m) = $u->recv_msg(3);
	die "no registration on host $h\n"
		unless ($type // '') eq 'register_pk_response'
			&& !($m->{result} // 0);

	$u->send_msg(register_peer => { id => $p->{id}, serial => 0 });
	$u->recv_msg(3);

	$PK{$p->{id}} = $p->{pk};
	wait_until(sub { entry($p->{id}) =~ / h$h / }, 3);

	return { %$p, udp => $u };
}

sub entry { $redis->cmd('GET', "rustdesk:peer:$_[0]") // '' }

# A punch hole request on host 1 for id: what $u gets.
sub punch_to {
	my ($id, $u) = @_;
	my $rq = a_tcp();
	$rq->send_msg(punch_hole_request => { id => $id, licence_key => $key,
		nat_type => 1 });
	return recv_type($u, 3);
}

sub online {
	my ($h, @ids) = @_;
	my $c = RustDesk::Client->tcp(port(0), PeerHost => "127.0.0.$h");
	$c->send_msg(online_request => { id => 'cm-asker', peers => \@ids });
	my ($type, $m) = $c->recv_msg(3);
	return 'no answer' unless ($type // '') eq 'online_response';
	return substr(unpack('B*', $m->{states} // '') . '0' x @ids, 0,
		scalar @ids);
}
