#!/usr/bin/perl

# Cluster mode: relay tickets through Redis (README "Relay tickets").  Host
# 1 (127.0.0.1) runs the rendezvous and a relay, host 2 (127.0.0.2) a relay
# alone (the relay module only), both with rustdesk_relay_tickets on, host
# 3 (127.0.0.3) a rendezvous alone, and one Redis.  A session brokered by host 1's rendezvous pairs at host 2's
# relay, its two halves on either worker, with the id of the peer asked to
# relay in the access log; its ticket is taken once per side, also when
# the other relay took them; an unknown or expired uuid is refused.  Redis
# not answering: a client that leaves while Redis is asked is let go, one
# that stays is refused after rustdesk_cluster_timeout.  Redis stopped:
# host 2 refuses what it cannot check (fail closed), said once at warn,
# host 1's own tickets keep working; Redis back: tickets from Redis again.
#
# Redis is Debian's redis-server, started by this test on a free loopback
# port and stopped at its end.

use warnings;
use strict;

use Test::More;
use Time::HiRes qw/ sleep /;

use lib 't/lib';
use Test::Nginx qw/ port wait_until /;
use RustDesk::Conf;
use RustDesk::Client;
use RustDesk::Relay qw/ side wait_close read_exact /;
use RustDesk::Session;
use RustDesk::Redis;
use RustDesk::Cluster;

my $t2 = Test::Nginx->new()->modules('relay');
my $t3 = Test::Nginx->new()->modules('rendezvous');
my $t = Test::Nginx->new()->has();

plan(skip_all => 'no redis-server (Debian package redis-server)')
	unless RustDesk::Redis->available();

$t->plan(30);

my $redis = RustDesk::Redis->start($t->testdir(), port(9));

my $keys = $t->testdir() . '/keys';
my $LOG = 'log_format relay \'$rustdesk_uuid $rustdesk_result '
	. '$rustdesk_peer_id\';';

# host 1: the rendezvous, and a relay of its own

host_start($t, 1, $redis, keys => $keys, directives => [
	'rustdesk_relay_servers 127.0.0.2:%%PORT_3%%;',
	'rustdesk_relay_tickets on;',
	'rustdesk_brokered_timeout 3s;', $LOG,
], servers => [ srv_block([ '127.0.0.1:%%PORT_3%% reuseport' ],
	'rustdesk_relay;', 'access_log %%TESTDIR%%/relay.log relay;') ]);

# host 2: a relay alone; Redis's answers may take up to 2 s here

$t2->write_file_expand('nginx.conf', stream_conf([
	'rustdesk_cluster redis://127.0.0.1:%%PORT_9%%;',
	'rustdesk_cluster_timeout 2s;',
	'rustdesk_relay_tickets on;', $LOG,
], srv_block([ '127.0.0.2:%%PORT_3%% reuseport' ], 'rustdesk_relay;',
	'access_log %%TESTDIR%%/relay.log relay;')));
$t2->run();
$t2->wait_log(qr/connected to redis/, 2);

# host 3: a rendezvous alone

host_start($t3, 3, $redis, keys => $keys, directives => [
	'rustdesk_relay_servers 127.0.0.2:%%PORT_3%%;',
]);

my $key = $t->key();
my %SESSION = (rendezvous_port => port(1), relay_port => port(3),
	key => $key);
my $H2 = '127.0.0.2';

###############################################################################

# 1. unmodified clients, brokered by host 1, relayed by host 2, until the
# two halves of one landed on different workers of host 2 (each half on
# either worker: about one session in two)

my ($n, @why) = (0);

while ($n < 30) {
	$n++;
	my $why = RustDesk::Session::relayed_session(%SESSION,
		relay_host => $H2);
	push @why, $why if $why;
	last if $n >= 6
		&& $t2->log_count(qr/paired with a connection from worker/);
}

is(join("\n", @why), '', "$n sessions brokered by host 1 relayed by host 2");
ok($t2->log_count(qr/paired with a connection from worker/),
	'... also with the two halves on different workers');
is(Test::Nginx::wait_value(sub {
		scalar(() = $t2->read_file('relay.log') =~ / paired session\d+$/mg)
	}, $n), $n, '... each paired, with the id of the peer asked to relay');
is($t2->log_count(qr/ticket from the cluster/), 2 * $n,
	'... each side\'s ticket from Redis');

# what the rendezvous wrote: the peer's id, for the brokered timeout

my $peer = RustDesk::Client->udp_peer(port(1), 'ct-peer1',
	PeerHost => '127.0.0.1');
my $uuid = broker($peer, 'record');
my $tk = "rustdesk:ticket:$uuid";

is($redis->cmd('HGET', $tk, 'id'), 'ct-peer1',
	'the ticket in Redis names the peer asked to relay');
my $pttl = $redis->cmd('PTTL', $tk);
ok($pttl > 0 && $pttl <= 3000, "... for rustdesk_brokered_timeout ($pttl ms)");

# a uuid nobody brokered: refused at host 2

my $a = side(port(3), 'ct-stranger', key => $key, host => $H2);
my $b = side(port(3), 'ct-stranger', key => $key, host => $H2);

is(join(' ', (wait_close($a, 3))[0], (wait_close($b, 3))[0]), 'eof eof',
	'a uuid nobody brokered: both connections refused at host 2');
ok($t2->wait_log(qr/relay request "ct-stranger" refused: no session brokered in the cluster/,
	2), '... with a log line');

# a brokered uuid pairs once at host 2: a third connection is refused

my $p1 = side(port(3), $uuid, key => $key, host => $H2);
my $p2 = side(port(3), $uuid, key => $key, host => $H2);
$p1->send_raw('12345');
is((read_exact($p2->sock(), 5, 5))[0], '12345',
	'a uuid brokered by host 1 pairs at host 2');

my $p3 = side(port(3), $uuid, key => $key, host => $H2);
is((wait_close($p3, 3))[0], 'eof', 'a third connection with it is refused');
ok($t2->wait_log(qr/relay request "\Q$uuid\E" refused: its two connections came/,
	2), '... with a log line');
$p1->close();
$p2->close();

# both tickets taken at host 1's relay (from its own rendezvous): gone in
# Redis too

$uuid = broker($peer, 'local');
$p1 = side(port(3), $uuid, key => $key);
$p2 = side(port(3), $uuid, key => $key);
$p1->send_raw('local');
is((read_exact($p2->sock(), 5, 5))[0], 'local',
	'a session paired at host 1\'s relay');
wait_until(sub { ($redis->cmd('HGET', "rustdesk:ticket:$uuid", 'taken') // 0)
	>= 2 }, 3);
$p3 = side(port(3), $uuid, key => $key, host => $H2);
is((wait_close($p3, 3))[0], 'eof', '... its uuid is refused at host 2');
$p1->close();
$p2->close();

# an expired ticket

$uuid = broker($peer, 'late');
wait_until(sub { !$redis->cmd('EXISTS', "rustdesk:ticket:$uuid") }, 6);
$p1 = side(port(3), $uuid, key => $key, host => $H2);
is((wait_close($p1, 3))[0], 'eof', 'a ticket expired: refused at host 2');

# A on host 1 asks for B on host 3: host 1 brokers the RequestRelay, host
# 3 B's RelayResponse (the ticket written again keeps the tickets taken)

my $b3 = RustDesk::Client->udp_peer(port(1), 'ct-peer3',
	PeerHost => '127.0.0.3');
wait_until(sub { defined $redis->cmd('GET', 'rustdesk:peer:ct-peer3') }, 3);

my $rq = RustDesk::Client->tcp(port(1), PeerHost => '127.0.0.1');
$rq->send_msg(request_relay => { id => 'ct-peer3', uuid => 'ct-uuid-13',
	relay_server => "$H2:" . port(3), licence_key => $key });
my ($type, $m) = $b3->{udp}->recv_msg(3);
my $resp = { socket_addr => $m->{socket_addr}, uuid => 'ct-uuid-13',
	relay_server => "$H2:" . port(3), id => 'ct-peer3', version => '1.3.0' };
RustDesk::Client->tcp(port(1), PeerHost => '127.0.0.3')
	->send_msg(relay_response => $resp);
($type) = $rq->recv_msg(3);
is($type // 'nothing', 'relay_response',
	'A on host 1, B on host 3: RelayResponse through host 3');

$p1 = side(port(3), 'ct-uuid-13', key => $key, host => $H2);
$p2 = side(port(3), 'ct-uuid-13', key => $key, host => $H2);
$p1->send_raw('1to3!');
is((read_exact($p2->sock(), 5, 5))[0], '1to3!', '... pairs at host 2');

# B answers again (host 3 writes the ticket again): still no third

RustDesk::Client->tcp(port(1), PeerHost => '127.0.0.3')
	->send_msg(relay_response => $resp);
$rq->recv_msg(3);
$p3 = side(port(3), 'ct-uuid-13', key => $key, host => $H2);
is((wait_close($p3, 3))[0], 'eof',
	'... a third connection refused, after the session was brokered again');
$p1->close();
$p2->close();
$rq->close();

###############################################################################

# 2. Redis not answering (CLIENT PAUSE ... WRITE holds scripts): a client
# that leaves while Redis is asked is let go; one that stays is refused
# after rustdesk_cluster_timeout (fail closed)

$redis->cmd('CLIENT', 'PAUSE', 8000, 'WRITE');

my $gone = side(port(3), 'ct-gone', key => $key, host => $H2);
$gone->close();
ok($t2->wait_log(qr/relay client of "ct-gone" left while its ticket was asked/,
	1, 5), 'Redis not answering: a client that left meanwhile is let go');

my $slow = side(port(3), 'ct-slow', key => $key, host => $H2);
is((wait_close($slow, 6))[0], 'eof',
	'... one that stays is refused after rustdesk_cluster_timeout');
ok($t2->wait_log(qr/\[warn\].*"ct-slow" refused: its ticket cannot be checked \(redis did not answer in time\)/),
	'... said at warn');

$redis->cmd('CLIENT', 'UNPAUSE');

is(RustDesk::Session::relayed_session(%SESSION, relay_host => $H2), '',
	'Redis answering again: tickets from the cluster as before');
ok($t2->wait_log(qr/\[notice\].*relay tickets are checked in redis again/),
	'... said');

###############################################################################

# 3. Redis stopped: host 2 refuses what it cannot check, said once; host
# 1's relay keeps its own tickets

my $mark = length $t2->read_file('error.log');

$redis->stop();
$t2->wait_log(qr/is not available/, 1, 5);

my @s = map { side(port(3), "ct-down-$_", key => $key, host => $H2) } 1 .. 6;
my @open = grep { (wait_close($_, 3))[0] ne 'eof' } @s;
$_->close() for @s;

is(scalar @open, 0, 'Redis stopped: unknown uuids refused at host 2');
is(Test::Nginx::wait_value(sub {
		scalar(() = since($mark) =~ /its ticket cannot be checked/g) }, 6),
	6, '... each refusal said');
is(scalar(() = since($mark) =~ /\[warn\].*its ticket cannot be checked/g), 1,
	'... once at warn');

is(RustDesk::Session::relayed_session(%SESSION), '',
	'a session brokered by host 1 still pairs at host 1\'s relay');

# Redis back: host 2 checks tickets in Redis again

$redis->restart();
$t2->wait_log(qr/is available again/, 1, 15);
$t->wait_log(qr/is available again/, 1, 15);

is(RustDesk::Session::relayed_session(%SESSION, relay_host => $H2), '',
	'Redis back: host 2 relays sessions of host 1 again');
ok($t2->wait_log(qr/\[notice\].*relay tickets are checked in redis again/,
	2), '... said');

###############################################################################

$t3->check_log();
$t2->check_log();
$t->check_log();

###############################################################################

# Host 2's error log since offset mark.
sub since {
	my ($mark) = @_;
	return substr($t2->read_file('error.log'), $mark);
}

# A RequestRelay from A for the peer, passed on by host 1's rendezvous (the
# peer hears it): the session's uuid, brokered, in Redis too.
sub broker {
	my ($peer, $name) = @_;
	my $uuid = RustDesk::Session::brokered_uuid(port(1), $peer, "ct-$name",
		key => $key);

	# sent before the peer heard of it, on another connection than ours
	wait_until(sub { $redis->cmd('EXISTS', "rustdesk:ticket:$uuid") }, 3);

	return $uuid;
}

###############################################################################
