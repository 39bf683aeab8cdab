#!/usr/bin/perl

# Cluster mode's figures on the metrics listener: the connections to
# Redis usable now (a gauge: one per worker and worker 0's listener),
# those lost, the commands by result (ok, error, failed, not_sent), and
# the messages between hosts, sent and received.  Two hosts and a Redis;
# a punch hole from host 1 for a peer of host 2 is one message each way.
# A relay alone with tickets from the cluster (on 127.0.0.3) shows its
# own connections, labelled module="relay".  Without a cluster, none of
# these are shown (t/metrics.t).
#
# Redis is Debian's redis-server, started by this test on a free loopback
# port and stopped at its end.

use warnings;
use strict;

use Test::More;
use Time::HiRes qw/ sleep /;

use lib 't/lib';
use Test::Nginx qw/ port wait_until wait_value background
	background_result /;
use RustDesk::Conf;
use RustDesk::Client qw/ random_bytes /;
use RustDesk::Redis;
use RustDesk::Cluster;
use RustDesk::Metrics;

my $t2 = Test::Nginx->new()->modules('rendezvous');
my $t3 = Test::Nginx->new()->modules('relay');
my $t = Test::Nginx->new()->has()->modules('rendezvous');

plan(skip_all => 'no redis-server (Debian package redis-server)')
	unless RustDesk::Redis->available();

$t->plan(15);

my $redis = RustDesk::Redis->start($t->testdir(), port(9),
	'enable-debug-command' => 'yes');
my $keys = $t->testdir() . '/keys';

my $CONN = 'rustdesk_cluster_redis_connections{module="rendezvous"}';
my $LOST = 'rustdesk_cluster_redis_disconnects_total{module="rendezvous"}';
my $CMDS = 'rustdesk_cluster_redis_commands_total{module="rendezvous",result=';

my @METRICS = ('rustdesk_ip_blocker 1000 1000;',
	'rustdesk_online_timeout 10m;');

for my $h ([ $t, 1 ], [ $t2, 2 ]) {
	my ($tt, $n) = @$h;
	$tt->write_file_expand('nginx.conf', host_conf($n, keys => $keys,
		directives => [ @METRICS ], servers => [
			srv_block([ '127.0.0.1:%%PORT_' . (3 + $n) . '%%' ],
				'rustdesk_metrics;') ]));
	$tt->run();
	$tt->wait_log(qr/connected to redis/, 3);
	wait_until(sub { host_listeners($redis, $n) == 1 }, 5);
}

# a relay alone, tickets from the cluster: its metrics on port 6

$t3->write_file_expand('nginx.conf', stream_conf([
	'rustdesk_cluster redis://127.0.0.1:%%PORT_9%%;',
	'rustdesk_relay_tickets on;',
], srv_block([ '127.0.0.3:%%PORT_3%% reuseport' ], 'rustdesk_relay;'),
	srv_block([ '127.0.0.1:%%PORT_6%%' ], 'rustdesk_metrics;')));
$t3->run();
$t3->wait_log(qr/connected to redis/, 2);

###############################################################################

is(metric(3, 'rustdesk_cluster_redis_connections{module="relay"}') . ' '
	. metric(3, $CONN),
	'2 0', 'a relay alone: its two workers connected, no rendezvous');

is(metric(1, $CONN), 3,
	'three connections usable: two workers and the listener');
is(metric(1, $LOST), 0, 'none lost');

# a punch hole from host 1 for a peer of host 2: a message each way

my $b = RustDesk::Client->udp_peer(port(1), 'cmx-peer',
	PeerHost => '127.0.0.2');
wait_until(sub { defined $redis->cmd('GET', 'rustdesk:peer:cmx-peer') }, 3);

my $rq = RustDesk::Client->tcp(port(1), PeerHost => '127.0.0.1',
	LocalAddr => '127.0.0.9');
$rq->send_msg(punch_hole_request => { id => 'cmx-peer',
	licence_key => $t->key(), nat_type => 1 });
my ($type, $m) = $b->{udp}->recv_msg(3);

my $bt = RustDesk::Client->tcp(port(1), PeerHost => '127.0.0.2');
$bt->send_msg(punch_hole_sent => { socket_addr => $m->{socket_addr},
	id => 'cmx-peer', nat_type => 2 });
is(($rq->recv_msg(3))[0] // 'nothing', 'punch_hole_response',
	'the punch hole went across');

is(metric(1, 'rustdesk_cluster_messages_total{direction="sent"}') . ' '
	. metric(2, 'rustdesk_cluster_messages_total{direction="received"}') . ' '
	. metric(2, 'rustdesk_cluster_messages_total{direction="sent"}') . ' '
	. metric(1, 'rustdesk_cluster_messages_total{direction="received"}'),
	'1 1 1 1', 'the request and its answer: sent and received once each');
ok(metric(1, $CMDS . '"ok"}') >= 3,
	'commands answered (GET, SET, PUBLISH)');

# Redis asleep: the commands of the moment fail

my $sleeper = background(sub { $redis->cmd('DEBUG', 'SLEEP', 2); return });
sleep 0.3;

host_online(1, 'cmx-peer');
ok(wait_value(sub {
	metric(1, $CMDS . '"failed"}') > 0
		? 'failed' : 'none' }, 'failed', 5) eq 'failed',
	'Redis asleep: a command without an answer in time, failed');
background_result($sleeper);

# Redis gone: the connections lost, the commands not sent

$redis->stop();
$t->wait_log(qr/is not available/, 3);

is(wait_value(sub { metric(1, $CONN) }, 0, 5), 0,
	'Redis gone: no connection usable');
is(metric(1, $LOST), 3, 'three lost');

host_online(1, 'cmx-peer');
ok(metric(1, $CMDS . '"not_sent"}') > 0,
	'a command not sent');

is(wait_value(sub {
	metric(3, 'rustdesk_cluster_redis_connections{module="relay"}') }, 0, 5)
	. ' ' . metric(3, 'rustdesk_cluster_redis_disconnects_total{module="relay"}'),
	'0 2', 'and the relay\'s two lost');

$redis->restart();
is(wait_value(sub { metric(1, $CONN) }, 3, 15), 3,
	'Redis back: usable again');
is(wait_value(sub {
	metric(3, 'rustdesk_cluster_redis_connections{module="relay"}') }, 2, 15),
	2, 'the relay\'s too');

$t2->check_log();
$t3->check_log();

###############################################################################

# A value on host h's metrics listener (0 when absent).
sub metric {
	my ($h, $name) = @_;
	my $s = scrape_host($h);
	return $s->{$name} // 0;
}

sub scrape_host {
	my ($h) = @_;
	my ($status, $hd, $body) = http_get(port(3 + $h), '/metrics');
	return {} unless ($status // 0) == 200;
	my %v = map { /^(\S+) (\S+)$/ ? ($1, $2) : () } split /\n/, $body // '';
	return \%v;
}


###############################################################################
