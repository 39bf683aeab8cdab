#!/usr/bin/perl

# Cluster mode: an id is bound to the uuid that registered it first, on
# every host (rustdesk:uuid:<id> in Redis, written when a RegisterPk is
# answered OK).  A RegisterPk with another uuid on another host gets
# UUID_MISMATCH, over UDP, TCP and WebSocket; the same uuid registers on
# any host.  Without Redis each host decides alone, as without the
# cluster.
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
use RustDesk::Client qw/ random_bytes /;
use RustDesk::WebSocket;
use RustDesk::Redis;
use RustDesk::Cluster;

my $t2 = Test::Nginx->new()->modules('rendezvous');
my $t = Test::Nginx->new()->has()->modules('rendezvous');

plan(skip_all => 'no redis-server (Debian package redis-server)')
	unless RustDesk::Redis->available();

$t->plan(9);

my $redis = RustDesk::Redis->start($t->testdir(), port(9));
my $keys = $t->testdir() . '/keys';

host_start($t, 1, $redis, keys => $keys);
host_start($t2, 2, $redis, keys => $keys);

my $pk = random_bytes(32);

###############################################################################

is(register('udp', 1, 'cb-peer-1', 'uuid-one'), 'OK',
	'registered on host 1 with one uuid');
is(wait_value_get('rustdesk:uuid:cb-peer-1'), 'uuid-one',
	'bound to it in Redis');

is(register('udp', 2, 'cb-peer-1', 'uuid-two'), 'UUID_MISMATCH',
	'another uuid on host 2, over UDP: UUID_MISMATCH');
is(register('tcp', 2, 'cb-peer-1', 'uuid-two'), 'UUID_MISMATCH',
	'over TCP');
is(register('ws', 2, 'cb-peer-1', 'uuid-two'), 'UUID_MISMATCH',
	'over WebSocket');
is($t2->log_count(qr/peer "cb-peer-1" is registered with another uuid in the cluster/),
	3, 'said each time');

is(register('udp', 2, 'cb-peer-1', 'uuid-one'), 'OK',
	'its own uuid on host 2: OK');

# Redis gone: each host decides alone

$redis->stop();
$t2->wait_log(qr/is not available/, 3);

is(register('udp', 2, 'cb-peer-2', 'uuid-three'), 'OK',
	'Redis gone: a new id on host 2, decided there');

$redis->restart();

$t2->check_log();

###############################################################################

# RegisterPk over a transport ('udp', 'tcp', 'ws') of host h: the result's
# name.
sub register {
	my ($kind, $h, $id, $uuid) = @_;
	my $c = $kind eq 'udp'
		? RustDesk::Client->udp(port(1), PeerHost => host_ip($h))
		: $kind eq 'ws'
		? RustDesk::WebSocket->connect(port(2), PeerHost => host_ip($h))
		: RustDesk::Client->tcp(port(1), PeerHost => host_ip($h));

	$c->send_msg(register_pk => { id => $id, uuid => $uuid, pk => $pk });
	my ($type, $m) = $c->recv_msg(3);

	return 'no answer: ' . ($type // 'nothing')
		unless ($type // '') eq 'register_pk_response';

	my %name = (0 => 'OK', 2 => 'UUID_MISMATCH', 3 => 'ID_EXISTS',
		4 => 'TOO_FREQUENT', 7 => 'SERVER_ERROR');
	return $name{$m->{result} // 0} // $m->{result};
}

sub wait_value_get {
	my ($k) = @_;
	wait_until(sub { defined $redis->cmd('GET', $k) }, 3);
	return $redis->cmd('GET', $k) // 'none';
}
