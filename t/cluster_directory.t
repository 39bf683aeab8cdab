#!/usr/bin/perl

# Cluster mode's directory of online peers: three hosts (three nginx, on
# 127.0.0.1, 127.0.0.2 and 127.0.0.3 with the same ports) and one Redis.
# A peer registered on one host (over UDP, TCP or WebSocket) is written
# to Redis with its host, transport and address; the online query of
# any host shows the peers online on the others; a punch hole request
# for a peer on another host is sent to it by that host.  Heartbeats write at most once per refresh
# period (a third of rustdesk_cluster_ttl).  Redis slow or gone: answers
# from the host alone, within rustdesk_cluster_timeout, never a hang.
#
# Redis is Debian's redis-server, started by this test on a free loopback
# port and stopped at its end.

use warnings;
use strict;

use Test::More;
use Time::HiRes qw/ sleep time /;

use lib 't/lib';
use Test::Nginx qw/ port wait_until wait_value background
	background_result /;
use RustDesk::Conf;
use RustDesk::Client qw/ msg_text /;
use RustDesk::WebSocket;
use RustDesk::Redis;
use RustDesk::Cluster;

# hosts 2 and 3 first: the last one made is the harness's own, whose
# error log the END block checks (2 and 3 are checked below)
my $t2 = Test::Nginx->new()->modules('rendezvous');
my $t3 = Test::Nginx->new()->modules('rendezvous');
my $t = Test::Nginx->new()->has()->modules('rendezvous');

plan(skip_all => 'no redis-server (Debian package redis-server)')
	unless RustDesk::Redis->available();

$t->plan(28);

my $redis = RustDesk::Redis->start($t->testdir(), port(9),
	'enable-debug-command' => 'yes');

my $keys = $t->testdir() . '/keys';
my %H = (1 => $t, 2 => $t2, 3 => $t3);

host_start($H{$_}, $_, $redis, keys => $keys) for 1 .. 3;

my $key = $t->key();

###############################################################################

# 1. a peer on each host, each way: written to the directory

my $n = 0;
my $p1 = RustDesk::Client->udp_peer(port(1), id('udp'), PeerHost => ip(1));
my $p2 = tcp_peer(2, id('tcp'));
my $p3 = ws_peer(3, id('ws'));

my $ENTRY = qr/^1 (\d+) (\S+) (\S+) 127\.0\.0\.1 \d+$/;

like(entry($p1->{id}), qr/^1 \d+ h1 udp 127\.0\.0\.1 \d+$/,
	'UDP peer on host 1: host, transport, address');
like(entry($p2->{id}), qr/^1 \d+ h2 tcp 127\.0\.0\.1 \d+$/,
	'TCP peer on host 2');
like(entry($p3->{id}), qr/^1 \d+ h3 ws 127\.0\.0\.1 \d+$/,
	'WebSocket peer on host 3');

my ($seen) = entry($p1->{id}) =~ $ENTRY;
ok(abs($seen - time()) <= 2, 'the entry says when it was written');

my $ttl = $redis->cmd('TTL', 'rustdesk:peer:' . $p1->{id});
ok($ttl > 890 && $ttl <= 900, "with rustdesk_cluster_ttl (900 s): $ttl");

###############################################################################

# 2. the online query, on any host, answers for the cluster

my @ask = ($p1->{id}, $p2->{id}, $p3->{id}, 'cl-nobody');

is(online(1, @ask), '1110', 'online query on host 1 (NAT port)');
is(online(2, @ask), '1110', 'online query on host 2');
is(online_ws(3, @ask), '1110', 'online query on host 3 (WebSocket port)');
is(online(1, 'cl-nobody', $p1->{id}), '01',
	'a peer of this host, and nobody');

###############################################################################

# 3. a punch hole request for a peer of another host: that host sends it
# to the peer (the whole flow: t/cluster_punch.t)

my $rq = punch_request(1, $p2->{id});
my ($pt) = $p2->{c}->recv_msg(3);
is($pt // 'nothing', 'fetch_local_addr',
	'punch hole for a peer of host 2, asked on host 1: sent by host 2 '
	. '(same IP: FetchLocalAddr)');
is($t->wait_log(qr/peer "$p2->{id}" is online on host "h2": asking it/),
	1, 'logged with the host');
$rq->close();
is(punch(1, 'cl-nobody-2'), 'punch_hole_response{}',
	'an id no host has: ID_NOT_EXIST (0)');

# a peer that moves: its entry follows it

my $p4 = RustDesk::Client->udp_peer(port(1), id('move'), PeerHost => ip(1));
like(entry($p4->{id}), qr/ h1 udp /, 'registered on host 1');
$p4->{udp}->close();
$p4 = reregister($p4, 2);
like(entry($p4->{id}, qr/ h2 /), qr/ h2 udp /,
	'registered again on host 2: moved');

# entries this module did not write: as if absent

$redis->cmd('SET', 'rustdesk:peer:cl-junk-1', 'junk');
$redis->cmd('SET', 'rustdesk:peer:cl-junk-2',
	'1 ' . time() . ' ' . ('h' x 300) . ' udp 127.0.0.1 1');
$redis->cmd('SET', 'rustdesk:peer:cl-junk-3',
	'1 ' . time() . ' h2 udp 300.1.1.1 1');

is(online(1, 'cl-junk-1', 'cl-junk-2', 'cl-junk-3', $p2->{id}), '0001',
	'malformed entries: not online');
is(punch(1, 'cl-junk-2'), 'punch_hole_response{}',
	'a malformed entry: ID_NOT_EXIST, as absent');

###############################################################################

# 4. heartbeats write once per refresh period, not each time

my $sets = sets();
heartbeat($p1, 1, 30, 0.1);
my $more = sets() - $sets;
ok($more <= 1, "30 heartbeats in 3 s, TTL 900 s: $more writes");

# with a TTL of 3 s (refresh every second): one write a second

$t->write_file_expand('nginx.conf', host_conf(1, keys => $keys,
	directives => [ 'rustdesk_cluster_ttl 3s;' ]));
$t->reload();

$sets = sets();
heartbeat($p1, 1, 35, 0.1);
$more = sets() - $sets;
ok($more >= 2 && $more <= 5, "35 heartbeats in 3.5 s, TTL 3 s: $more "
	. 'writes');
$ttl = $redis->cmd('TTL', 'rustdesk:peer:' . $p1->{id});
ok($ttl >= 1 && $ttl <= 3, "the entry's TTL follows: $ttl");

###############################################################################

# 5. Redis slow (DEBUG SLEEP): this host's answer after
# rustdesk_cluster_timeout, never a hang; a requester that leaves first
# changes nothing

my $sleep = background(sub { $redis->cmd('DEBUG', 'SLEEP', '2.5'); 1 });
sleep 0.3;

my $gone = RustDesk::Client->tcp(port(0), PeerHost => ip(2));
$gone->send_msg(online_request => { id => 'x', peers => [ $p3->{id} ] });
$gone->close();

my $t0 = time();
my $got = online(2, $p3->{id}, $p2->{id});
my $took = time() - $t0;

is($got, '01', 'Redis asleep: the answer from host 2 alone');
ok($took > 0.5 && $took < 2, sprintf('after the timeout (1 s): %.2f s',
	$took));
is($t2->wait_log(qr/\[warn\].*redis redis:\S+ did not answer within 1000 ms/),
	1, 'logged');

background_result($sleep);

is(online(2, $p3->{id}, $p2->{id}), '11', 'Redis awake: the cluster again');

###############################################################################

# 6. Redis gone: every host answers for its own peers, at once

$redis->stop();
$t3->wait_log(qr/is not available/, 2);

$t0 = time();
is(online(3, @ask), '0010', 'Redis gone: host 3 answers for its peers');
ok(time() - $t0 < 0.5, 'at once');
is(punch(1, $p2->{id}), 'punch_hole_response{}',
	'a punch hole for a peer elsewhere: as one host alone');

###############################################################################

$redis->restart();

$t3->check_log();
$t2->check_log();

###############################################################################

sub ip { "127.0.0.$_[0]" }

sub id { sprintf('cl%s%04d', $_[0], ++$n) }



# A peer's entry, once written (the write follows the answer); with
# "like", the value it should have by then.
sub entry {
	my ($id, $like) = @_;
	my $get = sub { $redis->cmd('GET', "rustdesk:peer:$id") // '' };

	wait_until(sub { my $v = $get->(); $like ? $v =~ $like : $v ne '' }, 3);
	return $get->() || 'none';
}

sub sets {
	my $info = $redis->cmd('INFO', 'commandstats');
	return $info =~ /cmdstat_set:calls=(\d+)/ ? $1 : 0;
}

# A peer registered on a stream: RegisterPk on it, kept open.

sub tcp_peer { stream_peer('tcp', @_) }

sub ws_peer { stream_peer('ws', @_) }


# The same peer (uuid and key) from a new UDP socket on host h.

sub reregister {
	my ($p, $h) = @_;
	my $u = RustDesk::Client->udp(port(1), PeerHost => ip($h));

	$u->send_msg(register_pk => { id => $p->{id}, uuid => "uuid-$p->{id}",
		pk => $p->{pk} });
	my ($type) = $u->recv_msg(3);
	die "no registration on host $h\n"
		unless ($type // '') eq 'register_pk_response';

	return { %$p, udp => $u };
}

sub heartbeat {
	my ($p, $h, $count, $every) = @_;

	for (1 .. $count) {
		$p->{udp}->send_msg(register_peer => { id => $p->{id} });
		my ($type, $m) = $p->{udp}->recv_msg(3);
		die "no answer to a heartbeat\n"
			unless ($type // '') eq 'register_peer_response';
		sleep $every;
	}
}

sub online {
	my ($h, @ids) = @_;
	my $c = RustDesk::Client->tcp(port(0), PeerHost => ip($h));
	$c->send_msg(online_request => { id => 'cl-asker', peers => \@ids });
	return states(scalar @ids, $c->recv_msg(3));
}

sub online_ws {
	my ($h, @ids) = @_;
	my $w = RustDesk::WebSocket->connect(port(2), PeerHost => ip($h));
	$w->send_msg(online_request => { id => 'cl-asker', peers => \@ids });
	return states(scalar @ids, $w->recv_msg(3));
}

sub states {
	my ($count, $type, $m) = @_;
	return 'no answer: ' . ($type // 'nothing')
		unless ($type // '') eq 'online_response';
	return substr(unpack('B*', $m->{states} // '') . '0' x $count, 0,
		$count);
}

sub punch_request {
	my ($h, $id) = @_;
	my $c = RustDesk::Client->tcp(port(1), PeerHost => ip($h));
	$c->send_msg(punch_hole_request => { id => $id, licence_key => $key,
		nat_type => 1 });
	return $c;
}

sub punch {
	my ($h, $id) = @_;
	my ($type, $m) = punch_request($h, $id)->recv_msg(3);
	return defined $type ? msg_text($type, $m) : 'nothing';
}
