#!/usr/bin/perl

# Cluster mode: the directory's entry of a peer that went offline on its
# host is removed by that host (worker 0 goes round the peers, a round
# every third of rustdesk_online_timeout, 1 s at least), so that the other
# hosts see it offline within rustdesk_online_timeout plus a round of its
# last heartbeat (its stream's close), not after the entry's whole life.
# The removal compares first: an entry another host wrote meanwhile
# stays.
#
# Two hosts (two nginx on 127.0.0.1 and 127.0.0.2 with the same ports),
# rustdesk_online_timeout 3s (a round: 1 s), rustdesk_cluster_ttl as by
# default (900 s: an entry left alone counts as online for 303 s).
# Redis is Debian's redis-server, started by this test on a free loopback
# port and stopped at its end.

use warnings;
use strict;

use Test::More;
use Time::HiRes qw/ sleep time /;

use lib 't/lib';
use Test::Nginx qw/ port wait_until /;
use RustDesk::Conf;
use RustDesk::Client;
use RustDesk::WebSocket;
use RustDesk::Redis;
use RustDesk::Cluster;

my $t2 = Test::Nginx->new()->modules('rendezvous');
my $t = Test::Nginx->new()->has()->modules('rendezvous');

plan(skip_all => 'no redis-server (Debian package redis-server)')
	unless RustDesk::Redis->available();

$t->plan(16);

my $redis = RustDesk::Redis->start($t->testdir(), port(9));

my $keys = $t->testdir() . '/keys';
my @D = ('rustdesk_online_timeout 3s;', 'rustdesk_ip_blocker 1000 1000;');

host_start($t, 1, $redis, keys => $keys, directives => \@D);
host_start($t2, 2, $redis, keys => $keys, directives => \@D);

# generous: 3 s offline, then at most a round of 1 s, on a busy machine
my $BOUND = 20;

###############################################################################

# 1. a UDP peer that stops heartbeating

my $u = udp_peer(1, 'co-udp-1');

is(online(2, 'co-udp-1'), '1', 'UDP peer of host 1: online on host 2');

# it heartbeats for a while: online all along, its entry stays

my $evals = evals();

for (1 .. 8) {
	$u->{udp}->send_msg(register_peer => { id => 'co-udp-1', serial => 0 });
	$u->{udp}->recv_msg(3);
	sleep 0.5;
}

ok(entry('co-udp-1') =~ / h1 udp /, 'heartbeating past the timeout: kept');
is(evals() - $evals, 0, 'no removal while it heartbeats');

# then stops

ok(wait_until(sub { online(2, 'co-udp-1') eq '0' }, $BOUND, 0.2),
	'stopped: offline on host 2 within the bound');
ok(wait_until(sub { entry('co-udp-1') eq '' }, 3),
	'its entry is gone from Redis');

###############################################################################

# 2. stream peers that disconnect: offline for the other host after the
# grace

for my $kind ('tcp', 'ws') {
	my $s = stream_peer($kind, 1, "co-$kind-1");
	wait_until(sub { entry("co-$kind-1") =~ / h1 / }, 3);

	is(online(2, "co-$kind-1"), '1', "$kind peer of host 1: online on host 2");

	my $closed = time();
	$s->{c}->close();

	ok(wait_until(sub { online(2, "co-$kind-1") eq '0'
			&& entry("co-$kind-1") eq '' }, $BOUND, 0.2),
		"$kind stream closed: offline on host 2, entry gone");

	# never before the grace (a slow machine only makes it later)
	my $took = time() - $closed;
	ok($took >= 2.9, sprintf("$kind: after the grace of 3 s: %.1f s",
		$took));
}

###############################################################################

# 3. compare-and-delete: an entry rewritten by another host meanwhile
# stays (here rewritten behind host 1's back, as if host 2 had written
# it without its message reaching host 1); a peer of host 1 going offline
# at the same time is the witness that host 1's round passed

my $c = udp_peer(1, 'co-rewritten');
my $w = udp_peer(1, 'co-witness');

my $other = '1 ' . int(time()) . ' h2 udp 127.0.0.1 4000';
$redis->cmd('SET', 'rustdesk:peer:co-rewritten', $other, 'EX', 900);

$evals = evals();

ok(wait_until(sub { entry('co-witness') eq '' && evals() - $evals >= 2 },
		$BOUND, 0.2),
	'both offline on host 1: both entries' . "'" . ' removals ran');
is(entry('co-rewritten'), $other, 'the entry host 2 wrote: still there');
is(online(1, 'co-rewritten'), '1', 'and online for host 1 (at host 2)');

# many peers going offline at once: every entry removed

my @many = map { udp_peer(1, sprintf('co-many-%03d', $_)) } 1 .. 40;

$evals = evals();

ok(wait_until(sub { !grep { entry($_->{id}) ne '' } @many }, $BOUND, 0.2),
	'40 peers offline: every entry removed');
diag('removals run for 40 peers gone offline: ' . (evals() - $evals));

###############################################################################

$t2->check_log();

###############################################################################

sub entry { $redis->cmd('GET', "rustdesk:peer:$_[0]") // '' }

sub evals {
	my $info = $redis->cmd('INFO', 'commandstats');
	return $info =~ /cmdstat_eval:calls=(\d+)/ ? $1 : 0;
}

sub udp_peer {
	my ($h, $id) = @_;
	my $p = RustDesk::Client->udp_peer(port(1), $id,
		PeerHost => host_ip($h));
	wait_until(sub { entry($id) =~ / h$h / }, 3);
	return $p;
}

sub online {
	my ($h, @ids) = @_;
	my $c = RustDesk::Client->tcp(port(0), PeerHost => host_ip($h));
	$c->send_msg(online_request => { id => 'co-asker', peers => \@ids });
	my ($type, $m) = $c->recv_msg(3);
	return 'no answer' unless ($type // '') eq 'online_response';
	return substr(unpack('B*', $m->{states} // '') . '0' x @ids, 0,
		scalar @ids);
}
