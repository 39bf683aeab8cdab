#!/usr/bin/perl

# Cluster mode: the peer records agree on every host, as on one host.
# Three hosts (three nginx on 127.0.0.1, 127.0.0.2 and 127.0.0.3), each
# with its own peer database, and one Redis.
#
# An id registered only with host 2 and offline now: host 1 and host 3
# have no row for it, yet answer a punch hole request OFFLINE, as one
# host would (the cluster bound it: rustdesk:uuid:<id>); an id nobody
# registered stays ID_NOT_EXIST.  A peer that registered with host 1,
# then again with host 2 with a new key (same uuid), and comes back to
# host 1 over UDP: host 1 asks for its key (request_pk) as it comes
# online, takes the new one (zone and database), and a requester on host
# 1 gets the new key signed; the new key passes host 1's checks from
# another IP too (the cluster vouches for it), another key does not.
# created_at agrees: the cluster has the first registration's (host 1's,
# exactly as in its row), a new row on another host seconds later takes
# it, over UDP and over WebSocket, and an existing row keeps its own,
# even if the cluster says another; a time of another form in Redis is
# ignored, said.  Redis gone: each host answers alone, as before, at
# once, a new row with its own created_at.
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
use RustDesk::Client qw/ msg_text msg_norm random_bytes /;
use RustDesk::WebSocket;
use RustDesk::Redis;
use RustDesk::Cluster;
use RustDesk::Sqlite qw/ has_sqlite3 sql /;

my $t2 = Test::Nginx->new()->modules('rendezvous');
my $t3 = Test::Nginx->new()->modules('rendezvous');
my $t = Test::Nginx->new()->has()->modules('rendezvous');

plan(skip_all => 'no redis-server (Debian package redis-server)')
	unless RustDesk::Redis->available();
plan(skip_all => 'no sqlite3 CLI') unless has_sqlite3();

$t->plan(36);

my $d = $t->testdir();
my $TIME = qr/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/;
my $start = sql(':memory:', 'select current_timestamp');
my $redis = RustDesk::Redis->start($d, port(9));
my %H = (1 => $t, 2 => $t2, 3 => $t3);

for my $h (1 .. 3) {
	mkdir "$d/db$h" or die "mkdir: $!\n";
	host_start($H{$h}, $h, $redis, keys => "$d/keys",
		database => db($h),
		directives => [ 'rustdesk_online_timeout 2s;' ]);
}

my $key = $t->key();
my %PK;                                 # id -> its key, for msg_norm

###############################################################################

# 1. an id registered only with host 2, offline now: OFFLINE everywhere

my $p = RustDesk::Client->udp_peer(port(1), 'cr-only-2', PeerHost => ip(2));
$p->{udp}->close();

is(sql(db(2), "select id from peer where id = 'cr-only-2'"), 'cr-only-2',
	'in host 2\'s database');
is(sql(db(1), "select count(*) from peer where id = 'cr-only-2'"), '0',
	'not in host 1\'s');

# offline: its directory entry gone (expired)
wait_until(sub { defined $redis->cmd('GET', 'rustdesk:peer:cr-only-2') }, 3);
$redis->cmd('DEL', 'rustdesk:peer:cr-only-2');
sleep 2.2;

is(punch(2, 'cr-only-2'), 'punch_hole_response{failure=2}',
	'host 2 (its row): OFFLINE');
is(punch(1, 'cr-only-2'), 'punch_hole_response{failure=2}',
	'host 1 (no row, bound in the cluster): OFFLINE, as one host');
is(punch_ws(3, 'cr-only-2'), 'punch_hole_response{failure=2}',
	'host 3, over WebSocket: OFFLINE');
is($t->wait_log(qr/peer "cr-only-2" is registered in the cluster, not online/),
	1, 'said');
is(punch(1, 'cr-nobody'), 'punch_hole_response{}',
	'an id nobody registered: ID_NOT_EXIST');
is(host_online(1, 'cr-only-2', 'cr-nobody'), '00',
	'the online query: neither online, as one host');

###############################################################################

# 2. a new key on host 2, then back to host 1: host 1 takes the new key

my $u = RustDesk::Client->udp(port(1), PeerHost => ip(1));
my $old = random_bytes(32);
my $new = random_bytes(32);

is(register_pk($u, 'cr-moves', $old), 0, 'registered with host 1');
is(register_pk(RustDesk::Client->udp(port(1), PeerHost => ip(2)), 'cr-moves',
	$new), 0, 'again with host 2, with a new key (same uuid)');
wait_until(sub { ($redis->cmd('GET', 'rustdesk:pk:cr-moves') // '') eq $new },
	3);
ok(($redis->cmd('GET', 'rustdesk:pk:cr-moves') // '') eq $new,
	'the cluster has the new key');

# offline on host 1 meanwhile (rustdesk_online_timeout 2s), then back

sleep 2.2;

my $asked = register_peer($u, 'cr-moves');
is($asked, 'request_pk', 'back on host 1: its key is asked for');
is($t->wait_log(qr/peer "cr-moves" has another key in the cluster/), 1,
	'said');

# as a client does: its key when asked for

is($asked eq 'request_pk' ? register_pk($u, 'cr-moves', $new) : 'not asked',
	0, 'the new key: OK');
is(register_peer($u, 'cr-moves'), 'ok', 'heartbeats as usual after it');
is(sql(db(1), "select hex(pk) from peer where id = 'cr-moves'"),
	uc unpack('H*', $new), 'host 1\'s database has the new key');

$PK{'cr-moves'} = $new;
is(punch_answer(1, $u, 'cr-moves'),
	'punch_hole_response{nat_type=2 pk=signed(cr-moves) socket_addr=}',
	'a requester on host 1 gets the new key signed');

# the same from another IP: a key the cluster vouches for passes host 1's
# checks, as it would on one host; another key does not

my $v = RustDesk::Client->udp(port(1), PeerHost => ip(2));
my $vk = random_bytes(32);
register_pk($v, 'cr-vouched', random_bytes(32));
register_pk(RustDesk::Client->udp(port(1), PeerHost => ip(1)), 'cr-vouched',
	random_bytes(32));
register_pk($v, 'cr-vouched', $vk);
wait_until(sub { ($redis->cmd('GET', 'rustdesk:pk:cr-vouched') // '') eq $vk },
	3);

my $far = RustDesk::Client->udp(port(1), PeerHost => ip(1),
	LocalAddr => '127.0.0.7');
is(register_pk($far, 'cr-vouched', random_bytes(32)), 2,
	'another IP, another key: UUID_MISMATCH, as on one host');
is(register_pk($far, 'cr-vouched', $vk), 0,
	'another IP, the cluster\'s key: OK');

###############################################################################

# 4. created_at: the first registration's on every host's new row

my $born = sql(db(1), "select created_at from peer where id = 'cr-moves'");
like($born, $TIME, 'host 1 registered cr-moves first');
is($redis->cmd('GET', 'rustdesk:created:cr-moves'), $born,
	'the cluster has its row\'s created_at');

# seconds after (section 2 waited), a new row on host 3, over UDP

is(register_pk(RustDesk::Client->udp(port(1), PeerHost => ip(3)), 'cr-moves',
	$new), 0, 'registered with host 3 later');
is(sql(db(3), "select created_at from peer where id = 'cr-moves'"), $born,
	'host 3\'s new row: host 1\'s created_at, not its own');

# an existing row keeps its created_at, whatever the cluster says; a new
# row takes the cluster's, over WebSocket too

$redis->cmd('SET', 'rustdesk:created:cr-only-2', '2001-02-03 04:05:06');

my $own = sql(db(2), "select created_at from peer where id = 'cr-only-2'");
my $k2 = random_bytes(32);

is(register_pk(RustDesk::Client->udp(port(1), PeerHost => ip(2)),
	'cr-only-2', $k2), 0, 'cr-only-2 again with host 2, a new key');
is(sql(db(2), "select hex(pk) || ' ' || created_at from peer "
	. "where id = 'cr-only-2'"), uc(unpack('H*', $k2)) . " $own",
	'its row on host 2: the new key, its own created_at still');

my $w = stream_peer('ws', 3, 'cr-only-2', $k2);
is(sql(db(3), "select created_at from peer where id = 'cr-only-2'"),
	'2001-02-03 04:05:06', 'a new row on host 3, over WebSocket: the '
	. 'cluster\'s created_at');
is($redis->cmd('GET', 'rustdesk:created:cr-only-2'), '2001-02-03 04:05:06',
	'the cluster\'s kept: the first registration wins');

# not a time: ignored, said; the new row has its own

$redis->cmd('SET', 'rustdesk:created:cr-odd', 'yesterday');

is(register_pk(RustDesk::Client->udp(port(1), PeerHost => ip(1)), 'cr-odd',
	random_bytes(32)), 0, 'a time of another form in the cluster: OK');
is($t->wait_log(qr/peer "cr-odd" has an unusable created time in the cluster/),
	1, 'said');
ok(own_time(1, 'cr-odd'), 'the new row: its own created_at');

###############################################################################

# 3. Redis gone: each host answers alone, at once

$redis->stop();
$t->wait_log(qr/is not available/, 2);

is(punch(1, 'cr-only-2'), 'punch_hole_response{}',
	'Redis gone: host 1 alone does not know the id (ID_NOT_EXIST)');
sleep 2.2;
is(register_peer($u, 'cr-moves'), 'ok',
	'a peer coming back: answered from host 1\'s record');
is(register_pk(RustDesk::Client->udp(port(1), PeerHost => ip(1)), 'cr-alone',
	random_bytes(32)), 0, 'a new peer: OK');
ok(own_time(1, 'cr-alone'), 'its row: its own created_at');

$redis->restart();

$t2->check_log();
$t3->check_log();

###############################################################################

sub ip { "127.0.0.$_[0]" }

sub db { "$d/db$_[0]/db_v2.sqlite3" }

# The created_at of id's row on host h is a time of this test's run.
sub own_time {
	my ($h, $id) = @_;
	my $at = sql(db($h), "select created_at from peer where id = '$id'");
	return $at =~ $TIME && $at ge $start;
}

sub register_pk {
	my ($c, $id, $pk) = @_;
	$c->send_msg(register_pk => { id => $id, uuid => "uuid-$id",
		pk => $pk });
	my ($type, $m) = $c->recv_msg(3);
	return ($type // '') eq 'register_pk_response' ? $m->{result} // 0
		: 'no answer';
}

sub register_peer {
	my ($c, $id) = @_;
	$c->send_msg(register_peer => { id => $id, serial => 0 });
	my ($type, $m) = $c->recv_msg(3);
	return ($type // '') ne 'register_peer_response' ? 'no answer'
		: $m->{request_pk} ? 'request_pk' : 'ok';
}

sub punch {
	my ($h, $id) = @_;
	my $c = RustDesk::Client->tcp(port(1), PeerHost => ip($h));
	return punch_on($c, $id);
}

sub punch_ws {
	my ($h, $id) = @_;
	my $c = RustDesk::WebSocket->connect(port(2), PeerHost => ip($h));
	return punch_on($c, $id);
}

sub punch_on {
	my ($c, $id) = @_;
	$c->send_msg(punch_hole_request => { id => $id, licence_key => $key,
		nat_type => 1 });
	my ($type, $m) = $c->recv_msg(3);
	return defined $type ? msg_text($type, $m) : 'nothing';
}

# A asks host h for B (registered there on b's UDP socket): B gets the
# PunchHole, answers PunchHoleSent; what A gets, its address left out.
sub punch_answer {
	my ($h, $b, $id) = @_;
	my $a = RustDesk::Client->tcp(port(1), PeerHost => ip($h),
		LocalAddr => '127.0.0.9');

	$a->send_msg(punch_hole_request => { id => $id, licence_key => $key,
		nat_type => 1, version => '1.3.0' });

	my ($type, $m) = $b->recv_msg(3);
	return 'B got ' . ($type // 'nothing') unless ($type // '') eq 'punch_hole';

	my $bt = RustDesk::Client->tcp(port(1), PeerHost => ip($h));
	$bt->send_msg(punch_hole_sent => { socket_addr => $m->{socket_addr},
		id => $id, nat_type => 2, version => '1.3.0' });

	my $got = msg_norm($key, \%PK, $a->recv_msg(3));
	$got =~ s/socket_addr=\S+?([ }])/socket_addr=$1/;
	return $got;
}
