#!/usr/bin/perl

# Cluster mode when Redis misbehaves, with two hosts (127.0.0.1 and
# 127.0.0.2): Redis restarted with its AOF keeps the directory and the
# peer records (uuid, key), and the hosts answer from it again; Redis
# full (maxmemory, noeviction) refuses the directory's writes, said once
# at warn, while registrations are answered as ever and reads go on;
# Redis back empty: the peers online are written again at their next
# heartbeat, once each.  (Redis stopped and asleep, a wrong password, a
# host killed: t/cluster_redis.t, t/cluster_directory.t,
# t/cluster_punch.t.)
#
# Redis is Debian's redis-server, started by this test on a free loopback
# port and stopped at its end.

use warnings;
use strict;

use Test::More;
use Time::HiRes qw/ sleep time /;

use lib 't/lib';
use Test::Nginx qw/ port wait_until wait_value /;
use RustDesk::Conf;
use RustDesk::Client;
use RustDesk::Redis;
use RustDesk::Cluster;

my $t2 = Test::Nginx->new()->modules('rendezvous');
my $t = Test::Nginx->new()->has()->modules('rendezvous');

plan(skip_all => 'no redis-server (Debian package redis-server)')
	unless RustDesk::Redis->available();

$t->plan(13);

my $redis = RustDesk::Redis->start($t->testdir(), port(9),
	appendonly => 'yes', appendfsync => 'always');

my $keys = $t->testdir() . '/keys';

host_start($t, 1, $redis, keys => $keys);
host_start($t2, 2, $redis, keys => $keys);

###############################################################################

# 1. Redis restarted with its AOF: the directory is still there

my $p = RustDesk::Client->udp_peer(port(1), 'cf-aof-1', PeerHost => '127.0.0.1');
wait_until(sub { defined $redis->cmd('GET', 'rustdesk:peer:cf-aof-1') }, 3);
my $before = $redis->cmd('GET', 'rustdesk:peer:cf-aof-1') // 'none';
my @record = map { $redis->cmd('GET', "rustdesk:$_:cf-aof-1") // 'none' }
	qw/ uuid pk /;

is(host_online(2, 'cf-aof-1'), '1', 'a peer of host 1, online on host 2');

$redis->restart();
$t2->wait_log(qr/is available again/, 3, 15);

is($redis->cmd('GET', 'rustdesk:peer:cf-aof-1') // 'none', $before,
	'its entry survives the restart (AOF)');
ok($record[0] eq 'uuid-cf-aof-1' && length $record[1] == 32
	&& join(' ', map { $redis->cmd('GET', "rustdesk:$_:cf-aof-1") // 'none' }
		qw/ uuid pk /) eq "@record",
	'and its record: the uuid and the key');
is(wait_value(sub { host_online(2, 'cf-aof-1') }, '1', 5), '1',
	'and host 2 answers from it again');

###############################################################################

# 2. Redis full: writes refused (said once), registrations answered

$redis->cmd('CONFIG', 'SET', 'maxmemory-policy', 'noeviction');
$redis->cmd('CONFIG', 'SET', 'maxmemory', 100 * 1024);

like($redis->cmd('SET', 'cf-probe', 'x'), qr/^-OOM/, 'Redis is full');

my $t0 = time();
my @peers = map { RustDesk::Client->udp_peer(port(1), "cf-full-$_",
	PeerHost => '127.0.0.1') } 1 .. 5;
ok(time() - $t0 < 2, 'registrations answered as ever');

ok($t->wait_log(qr/\[warn\].*redis redis:\S+ refused a write: OOM/) >= 1,
	'the refused write said at warn');
sleep 0.5;
ok($t->log_count(qr/refused a write/) <= 2,
	'once (per worker), not once per write');

is(host_online(2, 'cf-aof-1', 'cf-full-1'), '10',
	'reads go on: a peer written before is online on host 2, one not '
	. 'written is not');

$redis->cmd('CONFIG', 'SET', 'maxmemory', 0);

###############################################################################

# 3. Redis back empty: written again at the next heartbeats

$t->write_file_expand('nginx.conf', host_conf(1, keys => $keys,
	directives => [ 'rustdesk_online_timeout 2s;',
		'rustdesk_cluster_ttl 1d;' ]));
$t->reload();
wait_until(sub { host_listeners($redis, 1) == 1 }, 5);

my @q = map { RustDesk::Client->udp_peer(port(1), "cf-back-$_",
	PeerHost => '127.0.0.1') } 1 .. 4;
wait_until(sub { defined $redis->cmd('GET', 'rustdesk:peer:cf-back-4') }, 3);

$redis->restart(appendonly => 'no');
wait_until(sub { grep(/^ngx_rustdesk:h1:/, $redis->client_names()) == 3 }, 15);
is($redis->cmd('DBSIZE'), 0, 'Redis came back empty');

# Each worker writes each of its peers again at the peer's first
# registration after it saw Redis back (a peer that went offline
# meanwhile, when Redis took longer than an online timeout to come back,
# at once as it comes back online): once each, not per heartbeat.

my $sets0 = sets();
heartbeats();

is(wait_value(sub { join(' ', map {
		defined $redis->cmd('GET', "rustdesk:peer:$_->{id}")
		? 'back' : 'missing' } @q) }, 'back back back back', 2),
	'back back back back', 'the online peers written again at their heartbeat');

my ($end, $beats) = (time() + 2, 4);

while (time() < $end) {
	$beats += heartbeats();
	sleep 0.1;
}

is(sets() - $sets0, 4, "once each ($beats heartbeats)");

$t2->check_log();

###############################################################################

# One heartbeat of each peer of @q, answered: how many.
sub heartbeats {
	for my $q (@q) {
		$q->{udp}->send_msg(register_peer => { id => $q->{id} });
		$q->{udp}->recv_msg(3);
	}

	return scalar @q;
}

sub sets {
	my $info = $redis->cmd('INFO', 'commandstats');
	return $info =~ /cmdstat_set:calls=(\d+)/ ? $1 : 0;
}

