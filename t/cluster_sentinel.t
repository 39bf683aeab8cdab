#!/usr/bin/perl

# Cluster mode through Redis Sentinel (rustdesk_cluster
# redis-sentinel://sentinel[,sentinel...]/name): two hosts, a primary and
# its replica, a Sentinel watching them, and the address of a Sentinel
# that is down, listed first.  Each worker asks the Sentinels where the
# primary is (the next one at once when one does not answer), checks
# that what it was given is a primary (ROLE), and asks again when the
# connection is lost: the primary killed, the Sentinel promotes the
# replica, and the hosts write to it and answer across hosts from it.
# A Sentinel that does not know the name, and one that names a replica:
# clear errors, logged once.
#
# Redis and Sentinel are Debian's redis-server, started by this test on
# free loopback ports and stopped at its end.

use warnings;
use strict;

use Test::More;
use IO::Socket::INET;
use Time::HiRes qw/ sleep time /;

use lib 't/lib';
use Test::Nginx qw/ port wait_until wait_value background /;
use RustDesk::Conf;
use RustDesk::Client;
use RustDesk::Redis;
use RustDesk::Cluster;
use RustDesk::Sqlite qw/ has_sqlite3 sql /;

my $t2 = Test::Nginx->new()->modules('rendezvous');
my $t = Test::Nginx->new()->has()->modules('rendezvous');

plan(skip_all => 'no redis-server (Debian package redis-server)')
	unless RustDesk::Redis->available();

$t->plan(16);

my $dir = $t->testdir();
my $keys = "$dir/keys";

###############################################################################

# the URL: checked when the configuration is loaded

like(config_error('redis-sentinel://127.0.0.1:%%PORT_7%%'),
	qr/has no name of the primary after the Sentinels/, 'no name');
like(config_error('redis-sentinel://127.0.0.1:%%PORT_7%%,/rdmain'),
	qr/has an empty Sentinel address/, 'an empty Sentinel address');

###############################################################################

my $primary = RustDesk::Redis->start($dir, port(9));
my $replica = RustDesk::Redis->start($dir, port(8),
	replicaof => [ '127.0.0.1', port(9) ]);

wait_until(sub { $replica->cmd('INFO', 'replication')
	=~ /master_link_status:up/ }, 10);

my $sentinel = RustDesk::Redis->sentinel($dir, port(7), 'rdmain', port(9));

# the Sentinel must know the replica before it can promote it
wait_until(sub { my $r = $sentinel->cmd('SENTINEL', 'replicas', 'rdmain');
	ref $r && @$r }, 20, 0.2);

# port 6: no Sentinel there; port 5: one that names the replica
my $URL = 'redis-sentinel://127.0.0.1:%%PORT_6%%,127.0.0.1:%%PORT_7%%';
my $liar = fake_sentinel(port(5), port(8));

# 1. host 1: the dead Sentinel passed over at once, the primary found

$t->write_file_expand('nginx.conf', host_conf(1, keys => $keys,
	cluster => "$URL/rdmain"));
$t->run();

my $P9 = port(9);
is($t->wait_log(qr/redis \S+: the primary is 127\.0\.0\.1:$P9\b/, 3, 10), 3,
	'each connection found the primary through the Sentinels');
wait_until(sub { host_listeners($primary, 1) == 1 }, 5);
is($t->log_count(qr/is not available/), 0,
	'the Sentinel that is down was passed over without an error');

# 2. host 2: a name the Sentinels do not know, then a Sentinel that
# names a replica: each said once per connection, never connected

$t2->write_file_expand('nginx.conf', host_conf(2, keys => $keys,
	cluster => "$URL/nosuch"));
$t2->run();

is($t2->wait_log(qr/\[error\].*is not available: the Sentinel 127\.0\.0\.1:\d+: it does not know the primary "nosuch"/,
	3, 10), 3, 'an unknown name: said once per connection');

$t2->write_file_expand('nginx.conf', host_conf(2, keys => $keys,
	cluster => 'redis-sentinel://127.0.0.1:%%PORT_5%%/rdmain'));
$t2->reload();

is($t2->wait_log(qr/\[error\].*is not available: the address the Sentinels named is not a primary/,
	3, 10), 3, 'a replica named: not taken');
is($t2->log_count(qr/the primary is /), 0, 'and never used');

# 3. host 2 right: a peer of each host is online for the other

$t2->write_file_expand('nginx.conf', host_conf(2, keys => $keys,
	cluster => "$URL/rdmain"));
$t2->reload();
wait_until(sub { host_listeners($primary, 2) == 1 }, 10);

my $p1 = RustDesk::Client->udp_peer(port(1), 'sn-one', PeerHost => '127.0.0.1');
my $p2 = RustDesk::Client->udp_peer(port(1), 'sn-two', PeerHost => '127.0.0.2');

is(wait_value(sub { host_online(2, 'sn-one') . host_online(1, 'sn-two') },
	'11', 5),
	'11', 'a peer of each host, online for the other');

# 4. failover: the primary killed, the replica promoted, the hosts move

$primary->stop('KILL');

my $P8 = port(8);
my $promoted = wait_until(sub {
	my $r = $sentinel->cmd('SENTINEL', 'get-master-addr-by-name', 'rdmain');
	ref $r && $r->[1] == $P8 }, 30, 0.2);
ok($promoted, 'the Sentinel promoted the replica');

is($t->wait_log(qr/the primary is 127\.0\.0\.1:$P8\b/, 3, 20), 3,
	'host 1 moved to the new primary');
is($t2->wait_log(qr/the primary is 127\.0\.0\.1:$P8\b/, 3, 20), 3,
	'host 2 too');
is(wait_until(sub { host_listeners($replica, 1) + host_listeners($replica, 2)
	}, 10), 2, 'both listen to their channels there');

my $p3 = RustDesk::Client->udp_peer(port(1), 'sn-three',
	PeerHost => '127.0.0.2');

ok(wait_until(sub { defined $replica->cmd('GET', 'rustdesk:peer:sn-three') },
	5), 'a peer registered after the failover is written to the new primary');
is(wait_value(sub { host_online(1, 'sn-three', 'sn-one') }, '11', 5), '11',
	'and online across hosts, with the peers written before it');

# 5. rustdesk-cluster-import finds the primary through the Sentinels too

SKIP: {
	skip 'no sqlite3 CLI', 1 unless has_sqlite3();

	my $db = "$dir/db_v2.sqlite3";
	sql($db, q{create table peer (guid blob primary key not null,
		id varchar(100) not null, uuid blob not null, pk blob not null,
		created_at datetime not null default(current_timestamp),
		user blob, status tinyint, note varchar(300), info text not null);
		insert into peer (guid, id, uuid, pk, info) values
			(X'01', 'sn-imported', CAST('uuid-imp' AS BLOB), X'AA', '{}');});

	my $url = 'redis-sentinel://127.0.0.1:' . port(6) . ',127.0.0.1:'
		. port(7) . '/rdmain';
	my $out = `$Test::Nginx::ROOT/scripts/rustdesk-cluster-import $url $db 2>&1`;

	is($replica->cmd('GET', 'rustdesk:uuid:sn-imported') // $out, 'uuid-imp',
		'rustdesk-cluster-import binds on the new primary');
}

$t2->check_log();

###############################################################################

sub config_error {
	my ($url) = @_;
	$t->write_file_expand('bad.conf', host_conf(1, keys => $keys,
		cluster => $url));
	my ($rc, $out) = $t->test_config('bad.conf');
	return $rc ? $out : "accepted: $out";
}


# A Sentinel that answers every command with 127.0.0.1:$to, in a child
# process that ends with the test (or after a minute).
sub fake_sentinel {
	my ($port, $to) = @_;

	my $s = IO::Socket::INET->new(LocalAddr => "127.0.0.1:$port",
		Listen => 16, ReuseAddr => 1) or die "listen: $!\n";

	my $bg = background(sub {
		my $end = time() + 60;
		my $answer = "*2\r\n\$9\r\n127.0.0.1\r\n\$" . length($to)
			. "\r\n$to\r\n";

		while (time() < $end) {
			my $c = $s->accept() or next;
			my $buf;
			$c->sysread($buf, 4096);
			$c->syswrite($answer);
			$c->close();
		}

		return;
	});

	close $s;
	return $bg;
}

END { kill 'TERM', $liar->{pid} if $liar && $liar->{pid} }

###############################################################################
